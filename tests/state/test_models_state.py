"""Models on the one record: ``FreshnessRun.models`` through the newest-wins merge, the codec,
the exposition and back from series. A model's values change only through a newer build (or a
newer freshness check) of that model; a run that reports no models, or other models, keeps them;
a run with only model results leaves every source series as it was."""

from __future__ import annotations

from dataclasses import replace

from dbt_prom_bridge import state
from dbt_prom_bridge.codec import run_from_json, run_to_json
from dbt_prom_bridge.exposition import RUN_SUCCESS, RUN_TIMESTAMP, held_from_series, render
from dbt_prom_bridge.model import FreshnessRun, Status
from dbt_prom_bridge.nodes import BUILD_STATUS, LAST_SUCCESS, BuildStatus, ModelCheck
from dbt_prom_bridge.sinks.pushgateway import parse_sample
from tests.nodes.support import model_check
from tests.reliability.runs import T0, run


def model(
    name: str,
    status: BuildStatus | None = BuildStatus.SUCCESS,
    built: float | None = T0,
    **kw: object,
) -> ModelCheck:
    base = model_check(
        name,
        schema="analytics",
        seen_at=built,
        build_status=status,
        built_at=built,
        last_success_at=built if status is BuildStatus.SUCCESS else None,
        build_duration=1.25,
        warn_after=3600.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def models_only(at: float, *models: ModelCheck) -> FreshnessRun:
    return FreshnessRun(
        project="shop",
        target="dev",
        checks=(),
        generated_at=at,
        elapsed=None,
        success=True,
        models=models,
        sources_checked=False,
    )


def by_name(held: FreshnessRun) -> dict[str, ModelCheck]:
    return {m.model: m for m in held.models}


def test_a_models_only_run_changes_the_models_and_nothing_about_sources() -> None:
    sources = state.initial(run(T0))
    merged = state.merge(sources, models_only(T0 + 600, model("orders", built=T0 + 500)))
    assert merged.changed and merged.models_updated == ("orders",)
    assert not merged.updated and not merged.run_level_changed
    held = merged.state
    assert held.checks == sources.checks
    assert (held.generated_at, held.success, held.sources_checked) == (T0, True, True)
    assert by_name(held)["orders"].build_status is BuildStatus.SUCCESS


def test_a_source_run_keeps_the_models_it_does_not_report() -> None:
    held = state.merge(None, models_only(T0, model("orders"), model("daily"))).state
    assert not held.sources_checked
    later = state.merge(held, run(T0 + 60))
    assert later.state.sources_checked and later.run_level_changed
    assert later.state.models == held.models and not later.models_updated


def test_newest_build_wins_per_model_in_any_order() -> None:
    failed = model("orders", BuildStatus.ERROR, built=T0 + 100)
    good = model("orders", built=T0)
    other = model("daily", built=T0 + 50)
    one = state.merge(state.merge(None, models_only(T0, good)).state, models_only(T0 + 100, failed, other))
    two = state.merge(state.merge(None, models_only(T0 + 100, failed, other)).state, models_only(T0, good))
    assert one.state.models == two.state.models
    orders = by_name(one.state)["orders"]
    # the failed build is the newest; the last success is kept from the older one
    assert orders.build_status is BuildStatus.ERROR and orders.last_success_at == T0
    # the older build is not the last build, but it tells when the model last built successfully
    assert two.models_updated == ("orders",)
    newest = state.merge(None, models_only(T0 + 100, model("orders", built=T0 + 100))).state
    older_failure = state.merge(newest, models_only(T0, model("orders", BuildStatus.ERROR, built=T0)))
    assert not older_failure.changed
    assert by_name(older_failure.state)["orders"].build_status is BuildStatus.SUCCESS


def test_a_replayed_build_changes_nothing() -> None:
    held = state.merge(None, models_only(T0, model("orders"))).state
    again = state.merge(held, models_only(T0, model("orders")))
    assert not again.changed


def test_a_dbt_failure_keeps_the_models() -> None:
    held = state.merge(state.initial(run(T0)), models_only(T0, model("orders"))).state
    failed = FreshnessRun(
        project="shop", target="dev", checks=(), generated_at=None, elapsed=None, success=False, error="x"
    )
    after = state.merge(held, failed).state
    assert not after.success and after.models == held.models


def test_meta_labels_of_held_models_follow_the_run() -> None:
    held = state.merge(None, models_only(T0, model("orders", meta=(("owner", "ana"),)))).state
    relabelled = state.merge(held, replace(run(T0 + 60), meta_labels=("owner",))).state
    assert by_name(relabelled)["orders"].meta_values == ("ana",)


def test_join_keeps_the_newest_build_of_each_view() -> None:
    a = state.merge(None, models_only(T0, model("orders", built=T0 + 10), model("daily"))).state
    b = state.merge(None, models_only(T0, model("orders", BuildStatus.ERROR, built=T0 + 20))).state
    joined = state.join([a, b])
    assert joined is not None
    assert {m.model: m.build_status for m in joined.models} == {
        "orders": BuildStatus.ERROR,
        "daily": BuildStatus.SUCCESS,
    }


def test_codec_round_trip_with_models() -> None:
    held = state.merge(
        state.initial(run(T0)),
        models_only(T0, model("orders", freshness_status=Status.WARN, freshness_checked_at=T0, message="m")),
    ).state
    for rows in (False, True):
        assert run_from_json(run_to_json(held, rows=rows)) == held
    models_only_state = state.initial(models_only(T0, model("orders")))
    assert run_from_json(run_to_json(models_only_state)) == models_only_state


def series(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [s for line in text.splitlines() if (s := parse_sample(line)) is not None]


def test_a_models_only_state_has_no_source_run_series() -> None:
    text = render(state.initial(models_only(T0, model("orders"))))
    names = {name for name, _l, _v in series(text)}
    assert RUN_SUCCESS not in names and RUN_TIMESTAMP not in names
    assert {BUILD_STATUS, LAST_SUCCESS, "dbt_prom_bridge_build_info"} <= names


def test_models_come_back_from_their_series() -> None:
    held = state.merge(
        state.initial(run(T0)),
        models_only(
            T0,
            model("orders", BuildStatus.ERROR, built=T0 + 5, last_success_at=T0 - 3600),
            model("daily", None, built=None, seen_at=T0, build_duration=None, error_after=7200.0),
            model("fresh", freshness_status=Status.PASS, freshness_checked_at=T0, max_loaded_at=T0 - 60),
        ),
    ).state
    back = held_from_series(series(render(held)), "shop", "dev", ())
    assert back is not None and back.sources_checked
    assert back.checks == held.checks or len(back.checks) == len(held.checks)
    # what series carry: everything but seen_at, the build message and meta beyond meta labels
    carried = [replace(m, seen_at=None, message=None, meta=()) for m in held.models]
    assert list(back.models) == carried
    models_back = held_from_series(
        series(render(state.initial(models_only(T0, model("x"))))), "shop", "dev", ()
    )
    assert models_back is not None and not models_back.sources_checked and len(models_back.models) == 1


def test_a_model_the_manifest_no_longer_declares_is_removed() -> None:
    held = state.merge(None, models_only(T0, model("orders"), model("old"))).state
    # a build with the manifest: it declares orders and daily (old was deleted from the project)
    later = replace(
        models_only(T0 + 60, model("daily", built=T0 + 60)),
        models_complete=True,
        declared_models=("daily", "orders"),
    )
    merged = state.merge(held, later)
    assert merged.models_removed == ("old",) and merged.changed
    assert sorted(by_name(merged.state)) == ["daily", "orders"]
    # without the manifest nothing is known about the others: kept
    unknown = state.merge(held, models_only(T0 + 60, model("daily", built=T0 + 60)))
    assert sorted(by_name(unknown.state)) == ["daily", "old", "orders"] and not unknown.models_removed
    assert not merged.state.models_complete and not merged.state.declared_models  # run facts, not held
