"""Small builders of run records and readers of what a real Pushgateway holds, for the
reliability, spill and Pushgateway tests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace

from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold

T0 = 1_767_000_000.0  # a fixed clock: 2025-12-29


def check(
    source: str,
    table: str,
    status: Status = Status.PASS,
    loaded: float | None = T0 - 600,
    checked: float | None = T0,
    project: str = "shop",
    **kw: object,
) -> SourceCheck:
    base = SourceCheck(
        unique_id=f"source.{project}.{source}.{table}",
        source_name=source,
        table_name=table,
        database="db",
        schema="raw",
        identifier=table,
        status=status,
        max_loaded_at=loaded,
        has_data=loaded is not None,
        checked_at=checked,
        warn_after=Threshold(1, "hour"),
        error_after=Threshold(6, "hour"),
        duration=0.05,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def run(
    at: float = T0,
    tables: Iterable[str] = ("a", "b", "c"),
    project: str = "shop",
    target: str = "dev",
    partial: bool = False,
    loaded_offset: float = 600.0,
    **kw: object,
) -> FreshnessRun:
    """A successful run at ``at`` checking ``src.<table>`` per table, loaded ``loaded_offset`` earlier."""
    checks = tuple(
        check("src", t, loaded=at - loaded_offset, checked=at, project=project) for t in sorted(tables)
    )
    base = FreshnessRun(
        project=project,
        target=target,
        checks=checks,
        generated_at=at,
        elapsed=1.5,
        success=True,
        dbt_version="1.11.16",
        invocation_id=f"inv-{at:.0f}",
        schema_version="sources/v3",
        partial=partial,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def failed(project: str = "shop", target: str = "dev", error: str = "could not connect") -> FreshnessRun:
    return FreshnessRun(
        project=project, target=target, checks=(), generated_at=None, elapsed=None, success=False, error=error
    )


def groups(url: str) -> list[Mapping[str, object]]:
    with urllib.request.urlopen(url + "/api/v1/metrics", timeout=10) as resp:
        data = json.loads(resp.read())["data"]
    assert isinstance(data, list)
    return data


def held(
    url: str, job: str = "dbt_source_freshness", **labels: str
) -> dict[str, dict[tuple[str, ...], float]]:
    """``{family: {label values...: value}}`` of the one group matching ``labels`` (empty if none).

    Per-source keys are ``(source_name, table_name)`` (+ ``status`` for the state set); run-level
    keys are ``()`` (+ ``status`` for the counts).
    """
    want = {"job": job, **labels}
    for group in groups(url):
        have = group.get("labels")
        if not isinstance(have, dict) or {k: have.get(k) for k in want} != want:
            continue
        out: dict[str, dict[tuple[str, ...], float]] = {}
        for name, fam in group.items():
            if not isinstance(fam, dict) or "metrics" not in fam or name.startswith("push_"):
                continue
            rows: dict[tuple[str, ...], float] = {}
            for metric in fam["metrics"]:
                lb = metric["labels"]
                key = tuple(lb[k] for k in ("source_name", "table_name", "status") if k in lb)
                rows[key] = float(metric["value"])
            out[name] = rows
        return out
    return {}


def statuses(state: Mapping[str, Mapping[tuple[str, ...], float]]) -> dict[tuple[str, str], str]:
    return {(k[0], k[1]): k[2] for k, v in state.get("dbt_source_freshness_status", {}).items() if v == 1}


def loaded_at(state: Mapping[str, Mapping[tuple[str, ...], float]]) -> dict[tuple[str, ...], float]:
    return dict(state.get("dbt_source_max_loaded_at_timestamp_seconds", {}))


def run_ts(state: Mapping[str, Mapping[tuple[str, ...], float]]) -> float | None:
    values = list(state.get("dbt_source_freshness_run_timestamp_seconds", {}).values())
    return values[0] if values else None
