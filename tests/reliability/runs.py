"""Small builders of run records and readers of what a real Pushgateway holds, for the
reliability, spill and Pushgateway tests."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

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
            if name == "dbt_prom_bridge_state_revision":  # a random number per push
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


def state_of(freshness_run: FreshnessRun) -> dict[str, dict[tuple[str, ...], float]]:
    """What :func:`held` returns once ``freshness_run`` is all a group holds."""
    from dbt_prom_bridge.exposition import families
    from dbt_prom_bridge.state import initial

    out: dict[str, dict[tuple[str, ...], float]] = {}
    for fam in families(initial(freshness_run)):
        rows: dict[tuple[str, ...], float] = {}
        for values, value in fam.rows:
            labels = dict(zip(fam.label_names, values, strict=True))
            rows[tuple(labels[k] for k in ("source_name", "table_name", "status") if k in labels)] = value
        out[fam.name] = rows
    return out


SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


def write_artifacts(
    directory: Path, at: float, only: Iterable[str] | None = None, loaded_offset: float = 300.0
) -> Path:
    """A real sample-project sources.json (+ manifest.json) re-dated to ``at``, in ``directory``.

    ``only`` keeps just those ``source.table`` results (what a ``--select`` run writes). Every
    source's newest row is ``loaded_offset`` seconds before ``at``, so values differ per run.
    """
    directory.mkdir(parents=True, exist_ok=True)
    doc = json.loads((SAMPLE / "sources.json").read_text())
    doc["metadata"]["generated_at"] = _iso(at).replace("+00:00", "Z")
    doc["metadata"]["invocation_id"] = f"inv-{at:.3f}"
    keep = set(only) if only is not None else None
    results = []
    for result in doc["results"]:
        key = ".".join(result["unique_id"].split(".")[2:])
        if keep is not None and key not in keep:
            continue
        result["snapshotted_at"] = _iso(at - 1)
        if not result["max_loaded_at"].startswith("0001"):
            result["max_loaded_at"] = _iso(at - loaded_offset)
        results.append(result)
    doc["results"] = results
    (directory / "sources.json").write_text(json.dumps(doc))
    shutil.copyfile(SAMPLE / "manifest.json", directory / "manifest.json")
    return directory
