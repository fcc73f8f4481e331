"""Benchmark: what model series cost, on a synthetic 2,000-model project.

Figures (printed, never asserted): series and exposition bytes a ``dbt build`` of N models adds
(all models built, 25 % with thresholds; then the same with a dbt Fusion ``freshness.json``
covering every model), the time to read ``run_results.json`` + ``manifest.json`` and render the
families, and a PUT of that text to a real Pushgateway (devtools.servers, loopback).

``BENCH_MODELS`` (default 2000) changes N; ``python -m bench.models`` runs it alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MODELS = int(os.environ.get("BENCH_MODELS", "2000"))


def _manifest(n: int) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for i in range(n):
        config: dict[str, Any] = {"enabled": True, "meta": {"owner": f"team{i % 7}"}}
        if i % 4 == 0:
            config["freshness"] = {"build_after": {"count": 6, "period": "hour", "updates_on": "any"}}
            config["meta"]["dbt_prom"] = {"error_after": {"count": 1, "period": "day"}}
        nodes[f"model.bench.m{i:05d}"] = {
            "name": f"m{i:05d}",
            "resource_type": "model",
            "package_name": "bench",
            "database": "analytics",
            "schema": f"mart_{i % 20}",
            "alias": f"m{i:05d}",
            "config": config,
            "meta": config["meta"],
        }
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "project_name": "bench",
            "generated_at": "2026-03-01T12:00:00Z",
        },
        "nodes": nodes,
        "sources": {},
    }


def _run_results(n: int) -> dict[str, Any]:
    results = []
    for i in range(n):
        status = "error" if i % 33 == 0 else "skipped" if i % 50 == 1 else "success"
        results.append(
            {
                "unique_id": f"model.bench.m{i:05d}",
                "status": status,
                "timing": []
                if status == "skipped"
                else [
                    {
                        "name": "execute",
                        "started_at": "2026-03-01T11:59:00Z",
                        "completed_at": "2026-03-01T11:59:30Z",
                    }
                ],
                "thread_id": "Thread-1",
                "execution_time": 30.0,
                "message": None,
                "adapter_response": {},
                "failures": None,
            }
        )
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "generated_at": "2026-03-01T12:00:00Z",
            "dbt_version": "1.11.0",
        },
        "results": results,
        "elapsed_time": 60.0,
    }


def _freshness(n: int) -> dict[str, Any]:
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/freshness/v0.json",
            "dbt_version": "2.0.5",
            "generated_at": "2026-03-01T12:00:00Z",
            "invocation_id": "bench",
        },
        "results": [
            {
                "unique_id": f"model.bench.m{i:05d}",
                "resource_type": "model",
                "max_loaded_at": "2026-03-01T10:00:00+00:00",
                "snapshotted_at": "2026-03-01T12:00:00+00:00",
                "max_loaded_at_time_ago_in_s": 7200,
                "status": "Pass",
                "criteria": {
                    "warn_after": {"count": None, "period": None},
                    "error_after": {"count": None, "period": None},
                },
            }
            for i in range(n)
        ],
        "elapsed_time": 1.0,
    }


def run() -> list[tuple[str, str]]:
    from dbt_prom_bridge.exposition import render_families
    from dbt_prom_bridge.model_artifacts import load_models
    from dbt_prom_bridge.model_metrics import model_families
    from devtools import servers

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        base = Path(tmp)
        (base / "manifest.json").write_text(json.dumps(_manifest(MODELS)))
        (base / "run_results.json").write_text(json.dumps(_run_results(MODELS)))
        (base / "freshness.json").write_text(json.dumps(_freshness(MODELS)))
        t0 = time.perf_counter()
        run = load_models(
            "prod",
            run_results=base / "run_results.json",
            manifest=base / "manifest.json",
            meta_labels=("owner",),
        )
        text = render_families(model_families(run))
        elapsed = time.perf_counter() - t0
        series = sum(len(f.rows) for f in model_families(run))
        rows.append((f"models: series of a dbt build of {MODELS} models (25% with thresholds)", f"{series}"))
        rows.append(("models: series per model", f"{series / MODELS:.2f}"))
        rows.append(("models: exposition size", f"{len(text.encode()) / 1e6:.2f} MB"))
        rows.append(("models: read run_results + manifest, render", f"{elapsed:.2f} s"))
        with_fresh = load_models(
            "prod",
            run_results=base / "run_results.json",
            manifest=base / "manifest.json",
            freshness=base / "freshness.json",
            meta_labels=("owner",),
        )
        both = sum(len(f.rows) for f in model_families(with_fresh))
        rows.append(("models: series with dbt freshness (Fusion) on every model too", f"{both}"))
        gateway = servers.start_pushgateway(base / "gw")
        try:
            req = urllib.request.Request(
                gateway.url + "/metrics/job/bench_models/project/bench/target/prod",
                data=text.encode(),
                method="PUT",
                headers={"Content-Type": "text/plain; version=0.0.4"},
            )
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=120) as resp:
                status = resp.status
            rows.append(
                (f"models: PUT to a real Pushgateway (HTTP {status})", f"{time.perf_counter() - t0:.2f} s")
            )
        finally:
            gateway.stop()

    return rows


if __name__ == "__main__":
    for name, value in run():
        print(f"{name:70} {value}")
