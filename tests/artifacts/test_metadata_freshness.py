"""Metadata-based freshness (Snowflake, BigQuery, Redshift, ...: a source with thresholds and no
``loaded_at_field``, whose time dbt reads from the warehouse's table metadata) comes through as an
ordinary result. No warehouse of that kind runs here: the artifacts are built in the shape the
published sources v3 schema gives (validated against it when ../shared/corpus is present), with
each adapter's own naming (upper-case Snowflake names, BigQuery project ids) and response."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CORPUS
from tests.fixtures_dbt import run_cli

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
#: adapter -> (database, schema, adapter_response of the metadata query)
ADAPTERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "snowflake": (
        "ANALYTICS",
        "RAW_SHOP",
        {"_message": "SUCCESS 1", "code": "SUCCESS", "rows_affected": 1, "query_id": "01b2-0000-abcd"},
    ),
    "bigquery": (
        "my-gcp-project-123",
        "raw_shop",
        {
            "_message": "SELECT (1.0 rows, 0 processed)",
            "code": "SELECT",
            "rows_affected": 1,
            "bytes_processed": 0,
            "bytes_billed": 0,
            "location": "EU",
            "project_id": "my-gcp-project-123",
            "job_id": "job_abc",
            "slot_ms": 12,
        },
    ),
    "redshift": ("dev", "raw_shop", {"_message": "SUCCESS", "rows_affected": -1}),
}
#: table -> (age of LAST_ALTERED, expected status) with warn 1h / error 6h
TABLES = {"orders": (dt.timedelta(minutes=10), "pass"), "customers": (dt.timedelta(days=3), "error")}


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def sources_json(adapter: str) -> dict[str, Any]:
    _, _, response = ADAPTERS[adapter]
    results = []
    for table, (age, status) in TABLES.items():
        loaded = NOW - age
        results.append(
            {
                "unique_id": f"source.shop.raw.{table}",
                "max_loaded_at": iso(loaded),
                "snapshotted_at": iso(NOW),
                "max_loaded_at_time_ago_in_s": age.total_seconds(),
                "status": status,
                "criteria": {
                    "warn_after": {"count": 1, "period": "hour"},
                    "error_after": {"count": 6, "period": "hour"},
                    "filter": None,
                },
                "adapter_response": response,
                "timing": [
                    {"name": "compile", "started_at": iso(NOW), "completed_at": iso(NOW)},
                    {"name": "execute", "started_at": iso(NOW), "completed_at": iso(NOW)},
                ],
                "thread_id": "Thread-1 (worker)",
                "execution_time": 0.41,
            }
        )
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
            "dbt_version": "1.11.2",
            "generated_at": iso(NOW).replace("+00:00", "Z"),
            "invocation_id": f"inv-{adapter}",
            "invocation_started_at": iso(NOW).replace("+00:00", "Z"),
            "env": {},
        },
        "results": results,
        "elapsed_time": 1.3,
    }


def manifest_json(adapter: str) -> dict[str, Any]:
    database, schema, _ = ADAPTERS[adapter]
    freshness = {
        "warn_after": {"count": 1, "period": "hour"},
        "error_after": {"count": 6, "period": "hour"},
        "filter": None,
    }
    sources = {
        f"source.shop.raw.{table}": {
            "unique_id": f"source.shop.raw.{table}",
            "resource_type": "source",
            "package_name": "shop",
            "source_name": "raw",
            "name": table,
            "identifier": table.upper() if adapter == "snowflake" else table,
            "database": database,
            "schema": schema,
            # metadata-based freshness: neither a column nor a query
            "loaded_at_field": None,
            "loaded_at_query": None,
            "freshness": freshness,
            "meta": {"owner": "shop-data"},
            "source_meta": {},
            "config": {"enabled": True, "freshness": freshness, "loaded_at_field": None},
            "relation_name": f"{database}.{schema}.{table}",
        }
        for table in TABLES
    }
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.11.2",
            "generated_at": iso(NOW).replace("+00:00", "Z"),
            "invocation_id": f"inv-{adapter}",
            "project_name": "shop",
            "adapter_type": adapter,
        },
        "nodes": {},
        "sources": sources,
    }


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_metadata_based_results_are_ordinary_results(
    adapter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = sources_json(adapter)
    schema_file = CORPUS / "schemas" / "sources_v3.json"
    if schema_file.is_file():  # the published schema, in place
        import jsonschema  # type: ignore[import-untyped]

        jsonschema.validate(doc, json.loads(schema_file.read_text()))
    sources, manifest = tmp_path / "sources.json", tmp_path / "manifest.json"
    sources.write_text(json.dumps(doc))
    manifest.write_text(json.dumps(manifest_json(adapter)))

    args = ["push", "--no-run", "--dry-run", "--sources-json", str(sources), "--manifest", str(manifest)]
    code, out, err = run_cli(
        [*args, "--project-dir", str(tmp_path), "--target", "prod", "--meta-label", "owner"], capsys
    )
    assert code == 0, err
    samples = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(out) for s in f.samples]
    statuses = {
        lb["table_name"]: lb["status"]
        for n, lb, v in samples
        if n == "dbt_source_freshness_status" and v == 1
    }
    assert statuses == {table: status for table, (_, status) in TABLES.items()}
    database, schema, _ = ADAPTERS[adapter]
    loaded = {
        lb["table_name"]: (v, lb) for n, lb, v in samples if n == "dbt_source_max_loaded_at_timestamp_seconds"
    }
    for table, (age, _) in TABLES.items():
        value, labels = loaded[table]
        assert value == pytest.approx((NOW - age).timestamp())
        assert (labels["database"], labels["schema"], labels["owner"]) == (database, schema, "shop-data")
        assert labels["identifier"] == (table.upper() if adapter == "snowflake" else table)
    has_data = {lb["table_name"]: v for n, lb, v in samples if n == "dbt_source_has_data"}
    assert has_data == dict.fromkeys(TABLES, 1.0)
    assert "not_run" not in statuses.values() and "warning" not in err.lower()
