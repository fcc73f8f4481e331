"""Readers of run_results.json (v1-v6), manifest models and freshness.json model entries: the
real artifacts of a `dbt build` of the sample project, fixtures of every schema version, dbt
Fusion's files in ../shared/corpus, and the ways a file can be wrong (one line each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbt_prom_bridge.errors import ArtifactError, ExitCode
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.model_artifacts import (
    parse_manifest_models,
    parse_model_freshness,
    parse_run_results,
    read_manifest_models,
    read_model_freshness,
    read_run_results,
)
from dbt_prom_bridge.nodes import BuildStatus
from tests.conftest import CORPUS, needs_corpus
from tests.nodes.support import (
    MODELS,
    build_entry,
    freshness_doc,
    freshness_entry,
    run_results,
    write,
)

#: What `dbt build` of the sample project gives each model (dbt_project/models/health/model_health.yml).
SAMPLE_BUILDS = {
    "stg_orders": BuildStatus.SUCCESS,
    "stg_transactions": BuildStatus.SUCCESS,
    "orders_daily": BuildStatus.SUCCESS,
    "revenue_by_currency": BuildStatus.SUCCESS,
    "hourly_revenue": BuildStatus.SUCCESS,
    "orders_enriched": BuildStatus.ERROR,
    "orders_enriched_daily": BuildStatus.SKIPPED,
}


def test_real_dbt_build_run_results() -> None:
    art = read_run_results(MODELS / "run_results.json")
    by_name = {r.unique_id.split(".")[-1]: r for r in art.results}
    assert {n: r.status for n, r in by_name.items()} == SAMPLE_BUILDS
    assert art.schema_version == "run-results/v6"
    assert art.skipped_non_models == 6  # the six data tests of the sample project are not models
    assert by_name["orders_enriched_daily"].completed_at is None
    assert by_name["orders_enriched_daily"].duration is None
    assert (
        by_name["orders_enriched"].message is not None
        and "customer_segment" in by_name["orders_enriched"].message
    )
    assert art.generated_at is not None
    for result in art.results:
        if result.completed_at is not None:
            assert result.completed_at <= art.generated_at


def test_real_manifest_models_and_thresholds() -> None:
    found = read_manifest_models(MODELS / "manifest.json")
    assert found.project_name == "dbt_prom_demo"
    models = {m.model: m for m in found.models.values()}
    assert set(models) == set(SAMPLE_BUILDS)
    # build_after 1 hour is the warn threshold; meta dbt_prom.error_after adds the error one
    assert (models["hourly_revenue"].warn_after, models["hourly_revenue"].error_after) == (3600.0, 10800.0)
    assert (models["revenue_by_currency"].warn_after, models["revenue_by_currency"].error_after) == (
        86400.0,
        172800.0,
    )
    assert not models["stg_orders"].has_thresholds
    assert dict(models["orders_enriched"].meta)["owner"] == "orders-data"
    assert models["stg_orders"].schema and models["stg_orders"].database
    # the streamed reader and the whole-file reader agree
    whole = parse_manifest_models(json.loads((MODELS / "manifest.json").read_text()))
    assert whole.models == found.models


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_every_run_results_schema_version(tmp_path: Path, version: int) -> None:
    doc = run_results(
        version,
        [
            build_entry("model.shop.orders", "success", version=version),
            build_entry("seed.shop.countries", "success", version=version),
            build_entry("snapshot.shop.customers_snap", "error", version=version),
            build_entry("model.shop.daily", "skipped", completed_at=None, execution_time=0, version=version),
            build_entry("test.shop.not_null_orders_id.abc123", "fail", version=version),
            build_entry("operation.shop.shop-on-run-end-0", "success", version=version),
        ],
    )
    art = read_run_results(write(tmp_path / "run_results.json", doc))
    assert art.schema_version == f"run-results/v{version}"
    assert [(r.unique_id.split(".")[0], r.status) for r in art.results] == [
        ("model", BuildStatus.SUCCESS),
        ("seed", BuildStatus.SUCCESS),
        ("snapshot", BuildStatus.ERROR),
        ("model", BuildStatus.SKIPPED),
    ]
    assert art.skipped_non_models == 2
    assert art.results[0].completed_at == pytest.approx(1772366398.0)
    assert art.results[0].duration == 1.25


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Success", BuildStatus.SUCCESS),  # dbt Fusion capitalises
        ("partial success", BuildStatus.ERROR),  # microbatch with failed batches
        ("no-op", BuildStatus.SKIPPED),
        ("Skipped", BuildStatus.SKIPPED),
    ],
)
def test_status_spellings(raw: str, expected: BuildStatus) -> None:
    art = parse_run_results(run_results(6, [build_entry("model.p.m", raw)]))
    assert art.results[0].status is expected


def test_timing_without_execute_uses_the_last_end() -> None:
    entry = build_entry("model.p.m", "success")
    entry["timing"] = [
        {"name": "compile", "started_at": "2026-03-01T11:00:00Z", "completed_at": "2026-03-01T11:00:05Z"}
    ]
    art = parse_run_results(run_results(6, [entry]))
    assert art.results[0].completed_at == pytest.approx(1772362805.0)


def refused(doc: Any, tmp_path: Path, fragment: str) -> None:
    path = tmp_path / "run_results.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ArtifactError) as info:
        read_run_results(path)
    assert info.value.exit_code is ExitCode.INPUT
    assert "\n" not in str(info.value)
    assert fragment in str(info.value)


def test_refusals(tmp_path: Path) -> None:
    refused(run_results(7, []), tmp_path, "upgrade dbt-prom-bridge")
    refused(json.loads((MODELS / "manifest.json").read_text()), tmp_path, "expected a run_results.json")
    refused({"results": []}, tmp_path, "no metadata.dbt_schema_version")
    refused([1, 2], tmp_path, "found a JSON list")
    refused('{"metadata": ', tmp_path, "not valid JSON")
    refused("", tmp_path, "is empty")
    refused({"metadata": run_results(6, [])["metadata"]}, tmp_path, "has no 'results' list")
    refused(
        run_results(6, [build_entry("model.p.m", "exploded")]), tmp_path, "unknown build status 'exploded'"
    )
    refused(run_results(6, [{"status": "success"}]), tmp_path, "results[0] has no unique_id")
    refused(run_results(6, [build_entry("model.nodots", "success")]), tmp_path, "is not <resource type>")
    refused(run_results(6, ["x"]), tmp_path, "results[0] is not an object")
    with pytest.raises(ArtifactError, match="not found"):
        read_run_results(tmp_path / "nope.json")


def manifest(nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "project_name": "shop",
            "generated_at": "2026-03-01T12:00:00Z",
        },
        "nodes": nodes,
        "sources": {},
    }


def node(name: str, resource_type: str = "model", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "resource_type": resource_type,
        "package_name": "shop",
        "database": "db",
        "schema": "analytics",
        "alias": name,
        "config": {"enabled": True, "meta": {}},
        "meta": {},
    }
    base.update(extra)
    return base


def test_manifest_model_shapes() -> None:
    doc = manifest(
        {
            "model.shop.dim_customers.v2": node("dim_customers", version=2, alias="dim_customers_v2"),
            "model.shop.renamed": node("renamed", alias="tbl_renamed"),
            "model.shop.off": node("off", config={"enabled": False}),
            "seed.shop.countries": node("countries", "seed"),
            "snapshot.shop.snap": node("snap", "snapshot"),
            "test.shop.t1": node("t1", "test"),
            "model.shop.bad": node(
                "bad",
                config={
                    "meta": {"dbt_prom": {"warn_after": {"count": 2, "period": "fortnight"}}},
                    "freshness": {"build_after": {"count": 6, "period": "hour", "updates_on": "all"}},
                },
            ),
            "model.shop.old_style": node("old_style", freshness=None, meta={"dbt_prom": "soon"}),
        }
    )
    models = {m.model: m for m in parse_manifest_models(doc).models.values()}
    assert set(models) == {"dim_customers.v2", "renamed", "countries", "snap", "bad", "old_style"}
    assert models["dim_customers.v2"].identifier == "dim_customers_v2"
    assert models["renamed"].identifier == "tbl_renamed"
    assert models["countries"].resource_type == "seed"
    # a meta threshold that cannot be read is a warning, and build_after still applies
    assert models["bad"].warn_after == 21600.0
    assert any("fortnight" in p for p in models["bad"].threshold_problems)
    assert models["old_style"].threshold_problems and not models["old_style"].has_thresholds


# --- dbt Fusion freshness.json ---------------------------------------------------------------


def test_freshness_models_from_the_published_schema(tmp_path: Path) -> None:
    doc = freshness_doc(
        [
            freshness_entry("model.shop.orders", "Pass", warn={"count": 90, "period": "second"}),
            freshness_entry(
                "model.shop.daily",
                "Warn",
                warn={"count": 1, "period": "hour"},
                error={"count": 1, "period": "day"},
            ),
            freshness_entry("model.shop.empty", "Error", max_loaded_at="0001-01-01T00:00:00+00:00"),
            freshness_entry("source.shop.raw.orders", "Pass", resource_type="source"),
        ]
    )
    schema_path = CORPUS / "schemas" / "freshness_v0.json"
    if schema_path.exists():
        import jsonschema  # type: ignore[import-untyped]

        jsonschema.validate(doc, json.loads(schema_path.read_text()))
    art = read_model_freshness(write(tmp_path / "freshness.json", doc))
    by = {r.unique_id: r for r in art.results}
    assert set(by) == {"model.shop.orders", "model.shop.daily", "model.shop.empty"}
    assert by["model.shop.orders"].status is Status.PASS and by["model.shop.orders"].warn_after == 90.0
    assert (by["model.shop.daily"].warn_after, by["model.shop.daily"].error_after) == (3600.0, 86400.0)
    assert by["model.shop.empty"].max_loaded_at is None  # the year-1 "no data" sentinel
    assert by["model.shop.daily"].snapshotted_at == pytest.approx(1772366400.0)


def test_freshness_refusals() -> None:
    with pytest.raises(ArtifactError, match=r"expected a freshness\.json"):
        parse_model_freshness(run_results(6, []))
    with pytest.raises(ArtifactError, match="unknown freshness status"):
        parse_model_freshness(freshness_doc([freshness_entry("model.p.m", "Stale")]))
    doc = freshness_doc([])
    doc["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/freshness/v1.json"
    with pytest.raises(ArtifactError, match="upgrade dbt-prom-bridge"):
        parse_model_freshness(doc)


FUSION = ("054-", "056-", "F001-", "F002-")


@needs_corpus
def test_every_fusion_artifact_of_the_corpus() -> None:
    """dbt Fusion's files (INDEX.tsv: dbt_version 2.x): the model side reads each; only the
    freshness.json fixture (F001) reports a model."""
    files = [
        p for p in [*CORPUS.glob("*.json"), *CORPUS.glob("fixtures/*.json")] if p.name.startswith(FUSION)
    ]
    assert len(files) == len(FUSION)
    models = {}
    for path in files:
        art = read_model_freshness(path)
        assert art.dbt_version is not None and art.dbt_version.startswith("2.")
        models[path.name[:4]] = art.results
    assert [r.unique_id for r in models["F001"]] == ["model.jaffle_shop.stg_orders"]
    stg = models["F001"][0]
    assert stg.status is Status.PASS and stg.warn_after == 86400.0 and stg.error_after == 172800.0
    assert stg.max_loaded_at == pytest.approx(1787868000.0)
    assert all(not results for name, results in models.items() if name != "F001")


def test_compile_results_are_not_builds() -> None:
    """`dbt compile` (and `dbt docs generate`, the last step of many dbt Cloud jobs) writes a
    run_results.json where every model "succeeded": nothing was built, so nothing is reported."""
    art = read_run_results(MODELS / "run_results_compile.json")
    assert art.command == "compile" and not art.builds
    assert art.results == () and art.skipped_non_models > 0
    from dbt_prom_bridge.nodes import build_models

    run = build_models("dev", art)
    assert run.checks == () and any("dbt compile" in w for w in run.warnings)
    assert read_run_results(MODELS / "run_results.json").command == "build"


def test_load_models_in_a_directory(tmp_path: Path) -> None:
    from dbt_prom_bridge.model_artifacts import load_models_in

    assert load_models_in(tmp_path, "dev") is None  # no run_results.json / freshness.json
    for name in ("run_results.json", "manifest.json"):
        (tmp_path / name).write_bytes((MODELS / name).read_bytes())
    run = load_models_in(tmp_path, "dev", meta_labels=("owner",))
    assert run is not None and run.project == "dbt_prom_demo" and len(run.checks) == 7
