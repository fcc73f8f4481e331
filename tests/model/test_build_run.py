"""The pure middle: thresholds, statuses, labels and how build_run joins results with the manifest."""

from __future__ import annotations

from typing import Any

import pytest

from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.errors import ArtifactError, ThresholdError, UsageError
from dbt_prom_bridge.model import (
    FailOn,
    RunContext,
    Status,
    Threshold,
    build_run,
    failed_run,
    meta_value,
    parse_status,
    split_unique_id,
    validate_grouping_key,
    validate_meta_labels,
)

SOURCES_V3 = "https://schemas.getdbt.com/dbt/sources/v3.json"
MANIFEST_V12 = "https://schemas.getdbt.com/dbt/manifest/v12.json"


def result(uid: str, status: str = "pass", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "unique_id": uid,
        "status": status,
        "max_loaded_at": "2025-01-01T10:00:00+00:00",
        "snapshotted_at": "2025-01-01T11:00:00+00:00",
        "max_loaded_at_time_ago_in_s": 3600.0,
        "criteria": {
            "warn_after": {"count": 2, "period": "hour"},
            "error_after": {"count": None, "period": None},
            "filter": None,
        },
        "execution_time": 0.25,
    }
    base.update(kw)
    return base


def sources(*results: dict[str, Any]) -> Any:
    return parse_sources(
        {
            "metadata": {
                "dbt_schema_version": SOURCES_V3,
                "dbt_version": "1.11.0",
                "generated_at": "2025-01-01T11:00:01Z",
            },
            "results": list(results),
            "elapsed_time": 1.0,
        }
    )


def node(uid: str, freshness: Any = None, **kw: Any) -> dict[str, Any]:
    _, package, src, table = uid.split(".")
    base: dict[str, Any] = {
        "package_name": package,
        "source_name": src,
        "name": table,
        "database": "warehouse",
        "schema": f"raw_{src}",
        "identifier": f"tbl_{table}",
        "freshness": freshness
        if freshness is not None
        else {"warn_after": {"count": 1, "period": "day"}, "error_after": {"count": 3, "period": "day"}},
        "source_meta": {"owner": "source-team"},
        "meta": {},
    }
    base.update(kw)
    return base


def manifest(*nodes: tuple[str, dict[str, Any]], project: str | None = "shop") -> Any:
    meta: dict[str, Any] = {"dbt_schema_version": MANIFEST_V12, "generated_at": "2025-01-01T10:00:00Z"}
    if project:
        meta["project_name"] = project
    return parse_manifest({"metadata": meta, "sources": dict(nodes)})


CTX = RunContext(target="dev")


# -- thresholds and statuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({"count": None, "period": None}, None),
        ({"count": 2, "period": "hour"}, Threshold(2, "hour")),
        ({"count": 2.0, "period": "DAY"}, Threshold(2, "day")),
        ({"count": 1, "period": " minute "}, Threshold(1, "minute")),
    ],
)
def test_threshold_parse(raw: Any, expected: Threshold | None) -> None:
    assert Threshold.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"count": 2, "period": None}, "sets only one of count and period"),
        ({"count": 0, "period": "hour"}, "must be positive"),
        ({"count": -1, "period": "hour"}, "must be positive"),
        ({"count": 1.5, "period": "hour"}, "is not a whole number"),
        ({"count": True, "period": "hour"}, "is not a whole number"),
        ({"count": "2", "period": "hour"}, "is not a whole number"),
        ({"count": 2, "period": "week"}, "is not one of minute, hour, day"),
        ("2 hours", "is not an object"),
    ],
)
def test_threshold_refusals(raw: Any, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        Threshold.parse(raw)


def test_threshold_seconds_and_text() -> None:
    assert Threshold(90, "minute").seconds == 5400 and Threshold(1, "day").human() == "1 day"
    assert Threshold(2, "hour").human() == "2 hours"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("pass", Status.PASS),
        ("Warn", Status.WARN),
        ("ERROR", Status.ERROR),
        ("runtime error", Status.RUNTIME_ERROR),
        ("RuntimeError", Status.RUNTIME_ERROR),
        (" pass ", Status.PASS),
    ],
)
def test_status_spellings(raw: str, status: Status) -> None:
    assert parse_status(raw) is status


@pytest.mark.parametrize("raw", ["stale", "", None, 1, "skipped"])
def test_unknown_status(raw: object) -> None:
    with pytest.raises(ArtifactError, match="unknown freshness status"):
        parse_status(raw)


def test_fail_on_levels() -> None:
    assert [s for s in Status if FailOn.WARN.trips(s)] == [
        Status.WARN,
        Status.ERROR,
        Status.RUNTIME_ERROR,
        Status.NOT_RUN,
    ]
    assert [s for s in Status if FailOn.ERROR.trips(s)] == [Status.ERROR, Status.RUNTIME_ERROR]
    assert not any(FailOn.NEVER.trips(s) for s in Status)


# -- labels ----------------------------------------------------------------------------------


def test_meta_values_become_strings() -> None:
    assert meta_value("x") == "x" and meta_value(None) == ""
    assert meta_value({"b": [1, 2], "a": True}) == '{"a":true,"b":[1,2]}'
    assert meta_value(3) == "3"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (("owner team",), "not a valid Prometheus label name"),
        (("1owner",), "not a valid"),
        (("__owner",), "not a valid"),
        (("schema",), "collides"),
        (("status",), "collides"),
        (("job",), "collides"),
    ],
)
def test_bad_meta_labels(keys: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_meta_labels(keys)


def test_meta_labels_keep_order_without_duplicates() -> None:
    assert validate_meta_labels(["team", "owner", "team"]) == ("team", "owner")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ((("a b", "c"),), "not a valid Prometheus label name"),
        ((("r\u00e9gion", "x"),), "not a valid Prometheus label name"),
        ((("__name__", "x"),), "not a valid Prometheus label name"),
        ((("target", "x"),), "is set by dbt-prom-bridge itself"),
        ((("source_name", "x"),), "is set by dbt-prom-bridge itself"),
        ((("status", "x"),), "is set by dbt-prom-bridge itself"),
        ((("owner", "x"),), "is set by dbt-prom-bridge itself"),  # a --meta-label key
        ((("region", "a"), ("region", "b")), "given twice"),
    ],
)
def test_bad_grouping_keys(pairs: tuple[tuple[str, str], ...], message: str) -> None:
    # A Pushgateway overwrites a series label with a grouping label of the same name, and a label
    # name it cannot route is sent raw in the URL path: both refused before anything is sent.
    with pytest.raises(UsageError, match=message):
        validate_grouping_key(pairs, meta_labels=("owner",))


def test_good_grouping_keys_keep_their_order_and_values() -> None:
    pairs = (("region", "eu/west"), ("instance", ""), ("tier", "\u00fc\u65e5"))
    assert validate_grouping_key(iter(pairs)) == pairs


@pytest.mark.parametrize("uid", ["source.a.b", "model.a.b.c", "source..b.c", "sample_source"])
def test_bad_unique_ids(uid: str) -> None:
    with pytest.raises(ArtifactError):
        split_unique_id(uid)


def test_table_names_may_contain_dots() -> None:
    assert split_unique_id("source.shop.raw.events.v2") == ("shop", "raw", "events.v2")


# -- build_run -------------------------------------------------------------------------------


def test_labels_come_from_the_manifest_when_it_knows_the_source() -> None:
    uid = "source.shop.orders.items"
    run = build_run(sources(result(uid)), manifest((uid, node(uid, meta={"owner": "table-team"}))), CTX)
    [check] = run.checks
    assert (check.database, check.schema, check.identifier) == ("warehouse", "raw_orders", "tbl_items")
    assert check.meta == (("owner", "table-team"),)  # the table's meta wins over the source's
    # thresholds are what dbt evaluated (the result's criteria), not the manifest's
    assert (check.warn_after, check.error_after) == (Threshold(2, "hour"), None)
    assert run.project == "shop" and run.target == "dev" and run.generated_at is not None


def test_without_a_manifest_labels_come_from_the_unique_id() -> None:
    run = build_run(sources(result("source.shop.orders.items")), None, CTX)
    [check] = run.checks
    assert (check.source_name, check.table_name, check.database, check.schema, check.identifier) == (
        "orders",
        "items",
        "",
        "",
        "items",
    )
    assert run.project == "shop"


def test_runtime_errors_take_thresholds_from_the_manifest() -> None:
    uid = "source.shop.orders.refunds"
    art = sources({"unique_id": uid, "status": "runtime error", "error": "column loaded does not exist"})
    [check] = build_run(art, manifest((uid, node(uid))), CTX).checks
    assert check.status is Status.RUNTIME_ERROR and check.error == "column loaded does not exist"
    assert (check.warn_after, check.error_after) == (Threshold(1, "day"), Threshold(3, "day"))
    assert check.max_loaded_at is None and check.has_data is None


def test_configured_sources_without_a_result_are_not_run() -> None:
    checked, missing, unfreshed = "source.shop.a.x", "source.shop.a.y", "source.shop.a.z"
    man = manifest(
        (checked, node(checked)),
        (missing, node(missing)),
        (unfreshed, node(unfreshed, freshness={"warn_after": {"count": None, "period": None}})),
    )
    run = build_run(sources(result(checked)), man, CTX)
    # the run's checks are what dbt checked; configured sources it did not are placeholders that
    # a destination keeps its held check of (whatever selected the run)
    assert {c.unique_id: c.status for c in run.checks} == {checked: Status.PASS}
    assert {c.unique_id: c.status for c in run.unchecked} == {missing: Status.NOT_RUN}
    assert run.complete
    partial = build_run(sources(result(checked)), man, RunContext(target="dev", partial=True))
    assert [c.unique_id for c in partial.checks] == [checked] and partial.partial
    assert [c.unique_id for c in partial.unchecked] == [missing]
    assert not build_run(sources(result(checked)), None, CTX).complete


def test_a_run_that_checked_nothing_says_why() -> None:
    # An empty project, or a --select matching no source, used to exit 0 without a word.
    unfreshed = "source.shop.a.z"
    man = manifest((unfreshed, node(unfreshed, freshness={"warn_after": {"count": None, "period": None}})))
    whole = build_run(sources(), man, CTX)
    assert whole.checks == () and whole.success
    assert any("no source has freshness configured" in w for w in whole.warnings)
    selected = build_run(sources(), man, RunContext(target="dev", partial=True))
    assert any("--select/--exclude matched no source" in w for w in selected.warnings)
    assert not any(
        "nothing was checked" in w for w in build_run(sources(result("source.s.a.b")), None, CTX).warnings
    )


def test_no_data_sentinel() -> None:
    [check] = build_run(
        sources(result("source.s.a.b", "error", max_loaded_at="0001-01-01T00:00:00+00:00")), None, CTX
    ).checks
    assert check.has_data is False and check.max_loaded_at is None


def test_a_manifest_of_another_project_is_refused() -> None:
    with pytest.raises(ArtifactError, match="knows none of the 1 sources"):
        build_run(
            sources(result("source.shop.a.b")), manifest(("source.other.a.b", node("source.other.a.b"))), CTX
        )


def test_a_manifest_knowing_some_sources_is_accepted() -> None:
    """A later invocation's manifest may lack a removed source: the rest still join."""
    known = "source.shop.a.b"
    run = build_run(sources(result(known), result("source.shop.a.gone")), manifest((known, node(known))), CTX)
    assert [c.identifier for c in run.checks] == ["tbl_b", "gone"]


def test_project_name_precedence() -> None:
    art = sources(result("source.pkg.a.b"), result("source.shop.a.c"), result("source.shop.a.d"))
    assert build_run(art, None, CTX).project == "shop"  # the package most results belong to
    assert build_run(art, None, RunContext(target="dev", project="explicit")).project == "explicit"
    man = manifest(("source.shop.a.c", node("source.shop.a.c")), project="from_manifest")
    assert build_run(art, man, CTX).project == "from_manifest"


def test_meta_label_values_follow_the_requested_keys() -> None:
    uid = "source.shop.a.b"
    run = build_run(
        sources(result(uid)),
        manifest((uid, node(uid, meta={"team": "t1"}))),
        RunContext(target="dev", meta_labels=("team", "owner", "missing")),
    )
    assert run.checks[0].meta_values == ("t1", "source-team", "")


def test_models_in_a_fusion_freshness_file_are_left_to_the_model_reader() -> None:
    art = parse_sources(
        {
            "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/freshness/v0.json"},
            "results": [
                {**result("model.shop.orders"), "resource_type": "model"},
                {**result("source.shop.a.b", "Pass"), "resource_type": "source"},
            ],
        }
    )
    run = build_run(art, None, CTX)
    assert [c.unique_id for c in run.checks] == ["source.shop.a.b"]
    assert art.skipped_non_sources == 1 and not run.models  # api.load_run reads them as models


def test_the_root_project_wins_a_name_clash_between_packages() -> None:
    art = sources(result("source.aaa_pkg.raw.events", "error"), result("source.shop.raw.events", "warn"))
    run = build_run(art, None, RunContext(target="dev", project="shop"))
    assert [(c.unique_id, c.status) for c in run.checks] == [("source.shop.raw.events", Status.WARN)]
    assert any(
        w.startswith("source.aaa_pkg.raw.events has the same source and table name") for w in run.warnings
    )


def test_counts_and_gates() -> None:
    art = sources(result("source.s.a.p"), result("source.s.a.w", "warn"), result("source.s.a.e", "error"))
    run = build_run(art, None, CTX)
    assert run.counts() == {
        Status.PASS: 1,
        Status.WARN: 1,
        Status.ERROR: 1,
        Status.RUNTIME_ERROR: 0,
        Status.NOT_RUN: 0,
    }
    assert [c.table_name for c in run.tripped(FailOn.WARN)] == ["e", "w"]
    assert [c.table_name for c in run.tripped(FailOn.ERROR)] == ["e"]


def test_failed_run() -> None:
    run = failed_run(RunContext(target="prod"), "shop", "cannot connect", dbt_version="1.11.0")
    assert (run.success, run.checks, run.generated_at, run.error) == (False, (), None, "cannot connect")
    assert run.project == "shop" and run.target == "prod"
