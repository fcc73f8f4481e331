"""Human and machine summaries of a run: the stderr table and ``--format json``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbt_prom_bridge.artifacts import human_duration
from dbt_prom_bridge.codec import check_to_json, model_to_json
from dbt_prom_bridge.model import STATUSES, FreshnessRun, SourceCheck, Status
from dbt_prom_bridge.nodes import BUILD_STATUSES, BuildStatus
from dbt_prom_bridge.redact import printable

if TYPE_CHECKING:
    from dbt_prom_bridge.sinks.base import Delivered

_COLOURS = {
    Status.PASS: "\x1b[32m",
    Status.WARN: "\x1b[33m",
    Status.ERROR: "\x1b[31m",
    Status.RUNTIME_ERROR: "\x1b[35m",
    Status.NOT_RUN: "\x1b[90m",
}
_RESET = "\x1b[0m"


def age_of(check: SourceCheck, now: float) -> float | None:
    """Age of the data now (not at check time): what the alert rules compute too."""
    if check.max_loaded_at is None:
        return None
    return now - check.max_loaded_at


def _age_text(check: SourceCheck, now: float) -> str:
    if check.has_data is False:
        return "no data"
    age = age_of(check, now)
    if age is None:
        return "-"
    text = human_duration(age)
    return f"{text} (future)" if age < 0 else text


def status_text(check: SourceCheck) -> str:
    """The calendar verdict, with dbt's own status beside it when they differ (``pass (dbt: error)``)."""
    verdict = check.verdict
    return verdict.value if verdict is check.status else f"{verdict.value} (dbt: {check.status.value})"


def verdict_counts(run: FreshnessRun) -> dict[Status, int]:
    """Sources per calendar verdict (dbt's status for sources without a calendar)."""
    out = dict.fromkeys(STATUSES, 0)
    for check in run.checks:
        out[check.verdict] += 1
    return out


def calendar_overrides(run: FreshnessRun) -> list[dict[str, str]]:
    """The sources whose calendar verdict differs from dbt's status."""
    return [
        {
            "source": f"{c.source_name}.{c.table_name}",
            "verdict": c.verdict.value,
            "dbt_status": c.status.value,
            "calendar": c.calendar.describe() if c.calendar else "",
        }
        for c in run.checks
        if c.verdict is not c.status
    ]


def _threshold_text(check: SourceCheck) -> str:
    parts = []
    if check.warn_after is not None:
        parts.append(f"warn {check.warn_after.human()}")
    if check.error_after is not None:
        parts.append(f"error {check.error_after.human()}")
    return ", ".join(parts) or "-"


#: Rows the table shows by default; beyond that only sources that do not pass are listed.
DEFAULT_ROWS = 100


def table(
    run: FreshnessRun,
    colour: bool = False,
    now: Callable[[], float] = time.time,
    limit: int | None = DEFAULT_ROWS,
) -> str:
    """A plain-text table: source, status, age, threshold; then a one-line total.

    Every source that is not ``pass`` is listed; with more than ``limit`` sources, passing ones
    beyond the limit are left out and a line says how many and how to see all (100,000 rows on
    stderr help nobody). Runtime errors are followed by dbt's reason, one line per source.
    """
    if not run.sources_checked and not run.checks:
        return "\n".join(model_lines(run))
    t = now()
    checks: tuple[SourceCheck, ...] | list[SourceCheck] = run.checks
    hidden = 0
    if limit is not None and len(checks) > limit:
        room = max(0, limit - sum(1 for c in checks if c.verdict is not Status.PASS))
        shown = [c for c in checks if c.verdict is not Status.PASS or (room := room - 1) >= 0]
        hidden = len(checks) - len(shown)
        checks = shown
    calendars = any(c.calendar is not None for c in checks)
    rows: list[tuple[str, ...]] = [
        ("SOURCE", "STATUS", "AGE", "THRESHOLD", *(("CALENDAR",) if calendars else ()))
    ]
    for check in checks:
        name = printable(f"{check.source_name}.{check.table_name}")
        row: tuple[str, ...] = (name, status_text(check), _age_text(check, t), _threshold_text(check))
        if calendars:
            row = (*row, check.calendar.describe() if check.calendar else "-")
        rows.append(row)
    columns = len(rows[0])
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(columns)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[i][: widths[i]].ljust(widths[i]) for i in range(columns)]
        if colour and index:
            status = checks[index - 1].verdict
            cells[1] = f"{_COLOURS[status]}{cells[1]}{_RESET}"
        lines.append("  ".join(cells).rstrip())
    if hidden:
        lines.append(
            f"... and {hidden} more passing sources not shown; `--format json` (or `dbt-prom status "
            "--format json`) lists all"
        )
    for check in checks:
        if check.status is Status.RUNTIME_ERROR:
            reason = printable(check.error or "") or "no message from dbt"
            lines.append(printable(f"{check.source_name}.{check.table_name}: runtime error: {reason}"))
    counts = verdict_counts(run)
    total = ", ".join(f"{counts[s]} {s.value}" for s in STATUSES if counts[s])
    where = f"{run.project}/{run.target}" if run.project else run.target
    lines.append(f"{len(run.checks)} sources in {where}: {total or 'none'}")
    return "\n".join([*lines, *model_lines(run)])


def model_lines(run: FreshnessRun) -> list[str]:
    """The models of ``run`` for the table: those whose last build did not succeed, one line
    each, then a one-line total (nothing when the run carries no models)."""
    if not run.models:
        return []
    lines = []
    for m in run.models:
        if m.build_status is not None and m.build_status is not BuildStatus.SUCCESS:
            reason = f": {printable(m.message)}" if m.message else ""
            lines.append(printable(f"{m.resource_type} {m.model}: {m.build_status.value}") + reason)
    counts = model_counts(run)
    total = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    where = f"{run.project}/{run.target}" if run.project else run.target
    lines.append(f"{len(run.models)} models in {where}: {total or 'none built yet'}")
    return lines


def model_counts(run: FreshnessRun) -> dict[str, int]:
    """Models by the outcome of their last build (``not_built``: configured, never seen built)."""
    out = {s.value: 0 for s in BUILD_STATUSES}
    out["not_built"] = 0
    for m in run.models:
        out[m.build_status.value if m.build_status is not None else "not_built"] += 1
    return out


def as_dict(run: FreshnessRun, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The same information as :func:`table`, as JSON-ready data (``--format json``)."""
    t = now()
    return {
        "project": run.project,
        "target": run.target,
        "success": run.success,
        "partial": run.partial,
        "generated_at": run.generated_at,
        "elapsed": run.elapsed,
        "dbt_version": run.dbt_version,
        "invocation_id": run.invocation_id,
        "counts": {s.value: n for s, n in verdict_counts(run).items()},
        "dbt_counts": {s.value: n for s, n in run.counts().items()},
        "error": run.error,
        "warnings": list(run.warnings),
        "sources": [_source(c, run, t) for c in run.checks],
        "sources_checked": run.sources_checked,
        "model_counts": model_counts(run),
        "models": [model_to_json(m) for m in run.models],
    }


def _source(check: SourceCheck, run: FreshnessRun, now: float) -> dict[str, Any]:
    """One source as JSON: the record's own encoding (:mod:`dbt_prom_bridge.codec`), with its age
    now, thresholds in seconds, and its meta as an object."""
    out = check_to_json(check)
    out.pop("meta_values")
    out["meta"] = (
        dict(check.meta) if check.meta else dict(zip(run.meta_labels, check.meta_values, strict=True))
    )
    out["age_seconds"] = age_of(check, now)
    # the calendar verdict, with dbt's own beside it
    out["status"], out["dbt_status"] = check.verdict.value, check.status.value
    out["warn_after_seconds"] = check.warn_after.seconds if check.warn_after else None
    out["error_after_seconds"] = check.error_after.seconds if check.error_after else None
    return out


def as_json(run: FreshnessRun, now: Callable[[], float] = time.time) -> str:
    return json.dumps(as_dict(run, now), indent=2, sort_keys=True)


def delivered_line(run: FreshnessRun, done: Delivered, of: str = "") -> str:
    """One line on what a destination did with the run (``of``: whose run, when there are several)."""
    whose = f" of {of}" if of else ""
    if not run.success:
        return (
            f"pushed run_success 0 (dbt could not run){whose} to {done.url}; "
            "every source keeps its last values"
        )
    merged = done.merged
    if not done.pushed:
        what = [f"{len(merged.not_newer)} sources"] if run.sources_checked else []
        what += [f"{len(run.models)} models"] if run.models else []
        return (
            f"nothing{whose} to push to {done.url}: it already holds the same or newer checks of all "
            f"{' and '.join(what) or '0 sources'} of this run"
        )
    parts = []
    if merged.not_newer:
        parts.append(f"{len(merged.not_newer)} not newer than held")
    if merged.kept:
        parts.append(f"{merged.kept} not in this run kept")
    if merged.removed:
        parts.append(f"{len(merged.removed)} no longer in the project dropped")
    if merged.models_removed:
        parts.append(f"{len(merged.models_removed)} models no longer in the project dropped")
    more = f" ({', '.join(parts)})" if parts else ""
    models = f" and {len(merged.models_updated)} models" if merged.models_updated else ""
    return f"pushed {len(merged.updated)} sources{models}{whose} to {done.url}{more}"
