"""Model records: joining builds, freshness and the manifest (pure), and the newest-wins merge
(hypothesis: any order of runs gives the same held state; a run never touches models it did
not carry; the last success never goes back in time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.model_artifacts import load_models, parse_model_freshness, parse_run_results
from dbt_prom_bridge.nodes import (
    BuildStatus,
    ModelCheck,
    ModelDef,
    build_models,
    merge_models,
    validate_model_meta_labels,
)
from tests.nodes.support import MODELS, build_entry, freshness_doc, freshness_entry, model_check, run_results


def sample(**kw: object) -> dict[str, ModelCheck]:
    run = load_models(
        "dev",
        run_results=MODELS / "run_results.json",
        manifest=MODELS / "manifest.json",
        meta_labels=("owner",),
        **kw,  # type: ignore[arg-type]
    )
    assert run.project == "dbt_prom_demo"
    return {c.model: c for c in run.checks}


def test_sample_build() -> None:
    by = sample()
    assert by["orders_enriched"].build_status is BuildStatus.ERROR
    assert by["orders_enriched"].last_success_at is None
    assert by["orders_enriched_daily"].build_status is BuildStatus.SKIPPED
    # a skip has no timing: the build time is the artifact's
    assert by["orders_enriched_daily"].built_at == by["orders_enriched_daily"].seen_at
    ok = by["hourly_revenue"]
    assert ok.last_success_at == ok.built_at and ok.built_at is not None and ok.seen_at is not None
    assert ok.built_at <= ok.seen_at
    assert (ok.warn_after, ok.error_after) == (3600.0, 10800.0)
    assert ok.meta_values == ("finance-data",)
    assert by["stg_orders"].meta_values == ("",)


def test_configured_models_not_built_get_their_thresholds() -> None:
    results = parse_run_results(run_results(6, [build_entry("model.shop.a", "success")]))
    defs = {
        "model.shop.a": ModelDef("model.shop.a", "a", "shop", "db", "s", "a", "model"),
        "model.shop.b": ModelDef("model.shop.b", "b", "shop", "db", "s", "b", "model", warn_after=60.0),
        "model.shop.c": ModelDef("model.shop.c", "c", "shop", "db", "s", "c", "model"),
    }
    run = build_models("dev", results, None, defs)
    by = {c.model: c for c in run.checks}
    assert set(by) == {"a", "b"}  # c: neither built nor configured
    assert by["b"].build_status is None and by["b"].warn_after == 60.0
    assert {c.model for c in build_models("dev", results, None, defs, configured=False).checks} == {"a"}


def test_freshness_joins_builds_and_falls_back_to_its_criteria() -> None:
    results = parse_run_results(run_results(6, [build_entry("model.shop.a", "success")]))
    fresh = parse_model_freshness(
        freshness_doc(
            [
                freshness_entry("model.shop.a", "Warn", warn={"count": 1, "period": "hour"}),
                freshness_entry("model.shop.z", "Error", error={"count": 2, "period": "hour"}),
            ]
        )
    )
    defs = {"model.shop.a": ModelDef("model.shop.a", "a", "shop", "db", "s", "a", "model", warn_after=60.0)}
    by = {c.model: c for c in build_models("dev", results, fresh, defs).checks}
    assert by["a"].build_status is BuildStatus.SUCCESS and by["a"].freshness_status is Status.WARN
    assert by["a"].warn_after == 60.0  # the manifest's threshold wins over the criteria
    assert by["z"].error_after == 7200.0 and by["z"].identifier == "z" and by["z"].database == ""


def test_same_name_in_two_packages_keeps_the_root_project() -> None:
    results = parse_run_results(
        run_results(
            6, [build_entry("model.dep.orders", "success"), build_entry("model.shop.orders", "error")]
        )
    )
    run = build_models("dev", results, project="shop")
    assert [c.unique_id for c in run.checks] == ["model.shop.orders"]
    assert any("same name" in w for w in run.warnings)


def test_meta_label_may_not_be_a_model_label() -> None:
    with pytest.raises(UsageError):
        validate_model_meta_labels(("owner", "resource_type"))
    assert validate_model_meta_labels(("owner",)) == ("owner",)


# --- newest wins -------------------------------------------------------------------------------

MODELS_NAMES = ("a", "b", "c")


def check(
    name: str, seen: float, built: float | None, status: BuildStatus | None, fresh: float | None
) -> ModelCheck:
    return model_check(
        name,
        seen_at=seen,
        build_status=status,
        built_at=built,
        last_success_at=built if status is BuildStatus.SUCCESS else None,
        build_duration=None if built is None else built % 7,
        freshness_status=None if fresh is None else Status.PASS,
        freshness_checked_at=fresh,
        max_loaded_at=None if fresh is None else fresh - 60,
        warn_after=seen,  # configuration that tells which artifact it came from
    )


# Every time is unique across the whole example, so "newest" is never a tie.
_times = st.lists(st.integers(1, 10**6), min_size=60, max_size=60, unique=True)


@st.composite
def runs(draw: st.DrawFn) -> list[list[ModelCheck]]:
    times = iter(draw(_times))
    out = []
    for _ in range(draw(st.integers(1, 5))):
        names = draw(st.lists(st.sampled_from(MODELS_NAMES), unique=True, max_size=3))
        seen = float(next(times))
        run = []
        for name in names:
            built = draw(st.booleans())
            fresh = draw(st.booleans())
            run.append(
                check(
                    name,
                    seen,
                    float(next(times)) if built else None,
                    draw(st.sampled_from(list(BuildStatus))) if built else None,
                    float(next(times)) if fresh else None,
                )
            )
        out.append(run)
    return out


def fold(order: list[list[ModelCheck]]) -> tuple[ModelCheck, ...]:
    held: tuple[ModelCheck, ...] = ()
    for run in order:
        held = merge_models(held, run)
    return held


@settings(max_examples=200, deadline=None)
@given(runs(), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_held_state(all_runs: list[list[ModelCheck]], rnd: object) -> None:
    shuffled = list(all_runs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(all_runs) == fold(shuffled)


@settings(max_examples=200, deadline=None)
@given(runs())
def test_newest_observation_of_each_model_is_held(all_runs: list[list[ModelCheck]]) -> None:
    held = {c.model: c for c in fold(all_runs)}
    every = [c for run in all_runs for c in run]
    for name, record in held.items():
        mine = [c for c in every if c.model == name]
        builds = [c for c in mine if c.built_at is not None]
        if builds:
            newest = max(builds, key=lambda c: c.built_at or 0)
            assert (record.built_at, record.build_status) == (newest.built_at, newest.build_status)
        successes = [c.last_success_at for c in mine if c.last_success_at is not None]
        assert record.last_success_at == (max(successes) if successes else None)
        checks = [c.freshness_checked_at for c in mine if c.freshness_checked_at is not None]
        assert record.freshness_checked_at == (max(checks) if checks else None)
        assert record.warn_after == max(c.seen_at or 0 for c in mine)  # newest configuration


def test_a_run_never_changes_models_it_did_not_carry() -> None:
    held = merge_models(
        (), [check("a", 10, 10, BuildStatus.SUCCESS, None), check("b", 10, 11, BuildStatus.ERROR, 12)]
    )
    after = merge_models(held, [check("a", 20, 21, BuildStatus.ERROR, None)])
    assert [c for c in after if c.model == "b"] == [c for c in held if c.model == "b"]
    a = next(c for c in after if c.model == "a")
    assert a.build_status is BuildStatus.ERROR and a.last_success_at == 10
    # an older run replayed later changes nothing
    assert merge_models(after, [check("a", 5, 5, BuildStatus.SUCCESS, None)]) == after


def test_threshold_only_record_keeps_the_build() -> None:
    held = merge_models((), [check("a", 10, 10, BuildStatus.SUCCESS, None)])
    config_only = replace(check("a", 30, None, None, None), warn_after=99.0)
    (merged,) = merge_models(held, [config_only])
    assert merged.build_status is BuildStatus.SUCCESS and merged.built_at == 10 and merged.warn_after == 99.0


def test_sample_loads_with_an_explicit_project(tmp_path: Path) -> None:
    run = load_models("prod", run_results=MODELS / "run_results.json", project="renamed")
    assert run.project == "renamed" and run.target == "prod" and run.counts()[BuildStatus.SKIPPED] == 1


@pytest.mark.parametrize("count", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_threshold_count_is_refused_not_a_crash(count: float) -> None:
    from dbt_prom_bridge.errors import ThresholdError
    from dbt_prom_bridge.nodes import threshold_seconds

    with pytest.raises(ThresholdError, match="finite"):
        threshold_seconds({"count": count, "period": "hour"})
