"""Builders of model artifacts for the tests: run_results.json of every schema version and
freshness.json entries shaped as the published schema (../shared/corpus/schemas) says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dbt_prom_bridge.nodes import ModelCheck

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
#: The outcome of each model in the sample project's `dbt build` (tests/data/models/run_results.json).
SAMPLE_BUILD_STATUS: dict[str, str] = {
    "hourly_revenue": "success",
    "orders_daily": "success",
    "orders_enriched": "error",
    "orders_enriched_daily": "skipped",
    "revenue_by_currency": "success",
    "stg_orders": "success",
    "stg_transactions": "success",
}
GENERATED_AT = "2026-03-01T12:00:00.000000Z"


def run_results(version: int, results: list[Any], generated_at: str = GENERATED_AT) -> dict[str, Any]:
    return {
        "metadata": {
            "dbt_schema_version": f"https://schemas.getdbt.com/dbt/run-results/v{version}.json",
            "dbt_version": {1: "0.19.0", 2: "0.20.0", 3: "0.21.0", 4: "1.0.0", 5: "1.5.0", 6: "1.9.0"}.get(
                version, "9.9.9"
            ),
            "generated_at": generated_at,
            "invocation_id": f"inv-v{version}",
            "env": {},
        },
        "results": results,
        "elapsed_time": 3.5,
        "args": {},
    }


def build_entry(
    uid: str,
    status: str,
    completed_at: str | None = "2026-03-01T11:59:58.000000Z",
    execution_time: float = 1.25,
    version: int = 6,
) -> dict[str, Any]:
    """One results[] entry; v1 (dbt 0.19) has no ``failures``, v5+ adds compiled fields."""
    timing = (
        []
        if completed_at is None
        else [
            {"name": "compile", "started_at": "2026-03-01T11:59:50Z", "completed_at": "2026-03-01T11:59:51Z"},
            {"name": "execute", "started_at": "2026-03-01T11:59:51Z", "completed_at": completed_at},
        ]
    )
    entry: dict[str, Any] = {
        "status": status,
        "timing": timing,
        "thread_id": "Thread-1 (worker)",
        "execution_time": execution_time,
        "adapter_response": {},
        "message": "SELECT 1" if status == "success" else "boom" if status == "error" else None,
        "unique_id": uid,
    }
    if version >= 2:
        entry["failures"] = None
    if version >= 5:
        entry.update(compiled=True, compiled_code="select 1", relation_name='"db"."s"."t"')
    return entry


def freshness_entry(
    uid: str,
    status: str,
    max_loaded_at: str = "2026-03-01T10:00:00+00:00",
    warn: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    resource_type: str = "model",
) -> dict[str, Any]:
    """A ``FreshnessResultsNode`` with every field the freshness/v0 schema requires."""
    return {
        "unique_id": uid,
        "resource_type": resource_type,
        "max_loaded_at": max_loaded_at,
        "snapshotted_at": "2026-03-01T12:00:00+00:00",
        "max_loaded_at_time_ago_in_s": 7200,
        "status": status,
        "criteria": {
            "warn_after": warn or {"count": None, "period": None},
            "error_after": error or {"count": None, "period": None},
        },
        "adapter_response": {},
        "timing": [
            {"name": "execute", "started_at": "2026-03-01T12:00:00Z", "completed_at": "2026-03-01T12:00:01Z"}
        ],
        "thread_id": "Thread-1",
        "execution_time": 0.5,
    }


def freshness_doc(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/freshness/v0.json",
            "dbt_version": "2.0.5",
            "generated_at": GENERATED_AT,
            "invocation_id": "fusion-inv",
            "invocation_started_at": GENERATED_AT,
            "env": {},
        },
        "results": results,
        "elapsed_time": 1.0,
    }


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def model_check(name: str, schema: str = "s", **kw: Any) -> ModelCheck:
    """A model record of project ``shop`` (database ``db``, identifier = name); ``kw`` sets the rest."""
    return ModelCheck(
        unique_id=f"model.shop.{name}",
        model=name,
        package="shop",
        database="db",
        schema=schema,
        identifier=name,
        resource_type="model",
        **kw,
    )
