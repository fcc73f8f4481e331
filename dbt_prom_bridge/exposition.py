"""The metric contract: one definition of every series, rendered as Prometheus text.

:func:`families` turns a :class:`~dbt_prom_bridge.model.FreshnessRun` into metric families (the
only place that knows metric names, help texts and labels). :func:`render` writes them in the
Prometheus text format 0.0.4 with its escaping rules; it is a plain writer because
prometheus_client's ``generate_latest`` costs ~10x more at 10k sources (see the README's
performance section), and its output is checked with ``promtool check metrics`` and parsed back
with ``prometheus_client.parser`` in the tests. :func:`checks_from_families` is the inverse
used to merge a partial run with what a Pushgateway already holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from dbt_prom_bridge import __version__
from dbt_prom_bridge.model import (
    PERIOD_SECONDS,
    RUN_LABELS,
    SOURCE_LABELS,
    STATUSES,
    FreshnessRun,
    SourceCheck,
    Status,
    Threshold,
)
from dbt_prom_bridge.nodes import MODEL_HELP

STATUS = "dbt_source_freshness_status"
MAX_LOADED_AT = "dbt_source_max_loaded_at_timestamp_seconds"
HAS_DATA = "dbt_source_has_data"
CHECKED_AT = "dbt_source_freshness_checked_timestamp_seconds"
WARN_AFTER = "dbt_source_freshness_warn_after_seconds"
ERROR_AFTER = "dbt_source_freshness_error_after_seconds"
CHECK_DURATION = "dbt_source_freshness_check_duration_seconds"
WARN_DEADLINE = "dbt_source_freshness_warn_deadline_timestamp_seconds"
ERROR_DEADLINE = "dbt_source_freshness_error_deadline_timestamp_seconds"
RUN_TIMESTAMP = "dbt_source_freshness_run_timestamp_seconds"
RUN_DURATION = "dbt_source_freshness_run_duration_seconds"
RUN_SUCCESS = "dbt_source_freshness_run_success"
SOURCES = "dbt_source_freshness_sources"
BUILD_INFO = "dbt_prom_bridge_build_info"
#: Written by the Pushgateway sink only: identifies the state a push wrote to its group.
STATE_REVISION = "dbt_prom_bridge_state_revision"

#: name -> help text, in exposition order. Rules, dashboards and docs import these names.
HELP: Mapping[str, str] = {
    STATUS: "Freshness state of a dbt source: 1 for the current state, 0 for the others.",
    MAX_LOADED_AT: (
        "Newest loaded_at value dbt found in the source (Unix seconds); absent when it has no data."
    ),
    HAS_DATA: "0 when dbt found no rows in the source (empty table or filter matching nothing), else 1.",
    CHECKED_AT: "When dbt checked the source's freshness (dbt's snapshotted_at, Unix seconds).",
    WARN_AFTER: "Effective dbt warn_after threshold of the source, in seconds.",
    ERROR_AFTER: "Effective dbt error_after threshold of the source, in seconds.",
    CHECK_DURATION: "Time dbt spent checking the source's freshness, in seconds.",
    WARN_DEADLINE: (
        "When the source becomes warn if no newer data lands (Unix seconds): max_loaded_at plus "
        "warn_after, counted on its business calendar when it has one."
    ),
    ERROR_DEADLINE: (
        "When the source becomes error if no newer data lands (Unix seconds): max_loaded_at plus "
        "error_after, counted on its business calendar when it has one."
    ),
    RUN_TIMESTAMP: "When dbt produced the freshness result (the artifact's generated_at, Unix seconds).",
    RUN_DURATION: "Wall time of the dbt source freshness run, in seconds.",
    RUN_SUCCESS: "1 when dbt source freshness ran and produced results, 0 when dbt could not run.",
    SOURCES: "Number of sources in each freshness state in the last run.",
    BUILD_INFO: "dbt-prom-bridge and dbt versions that produced these metrics (always 1).",
    STATE_REVISION: (
        "Identifies the state dbt-prom-bridge last wrote to this Pushgateway group "
        "(a random number that changes with every push; not a measurement)."
    ),
    **MODEL_HELP,
}
PER_SOURCE_METRICS: tuple[str, ...] = (
    STATUS,
    MAX_LOADED_AT,
    HAS_DATA,
    CHECKED_AT,
    WARN_AFTER,
    ERROR_AFTER,
    CHECK_DURATION,
    WARN_DEADLINE,
    ERROR_DEADLINE,
)
RUN_METRICS: tuple[str, ...] = (RUN_TIMESTAMP, RUN_DURATION, RUN_SUCCESS, SOURCES, BUILD_INFO)
#: Families pushed when dbt could not run: they replace only themselves (HTTP POST).
FAILURE_METRICS: tuple[str, ...] = (RUN_SUCCESS, BUILD_INFO)


@dataclass(slots=True)
class Family:
    """One metric family: a gauge with fixed label names and rows of (label values, value)."""

    name: str
    label_names: tuple[str, ...]
    rows: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    @property
    def help(self) -> str:
        return HELP[self.name]


def source_label_names(meta_labels: Sequence[str]) -> tuple[str, ...]:
    return (*SOURCE_LABELS, *meta_labels)


def source_label_values(run: FreshnessRun, check: SourceCheck) -> tuple[str, ...]:
    return (
        run.project,
        run.target,
        check.source_name,
        check.table_name,
        check.database,
        check.schema,
        check.identifier,
        *check.meta_values,
    )


def families(run: FreshnessRun, only: Iterable[str] | None = None) -> list[Family]:
    """All metric families of ``run`` (the metric contract), in a fixed order.

    Families without rows are left out. ``only`` limits the output to those names.
    """
    return list(iter_families(run, only, chunk=max(1, len(run.checks))))


#: Sources per piece in :func:`iter_families` (bounds memory at 100,000 sources).
CHUNK_SOURCES = 2000


def iter_families(
    run: FreshnessRun, only: Iterable[str] | None = None, chunk: int = CHUNK_SOURCES
) -> Iterator[Family]:
    """:func:`families` in pieces of at most ``chunk`` sources, for streaming big runs.

    Consecutive :class:`Family` objects with the same name are pieces of one family (the
    renderer writes its ``# HELP``/``# TYPE`` once); concatenating their rows gives
    :func:`families` exactly.
    """
    wanted = set(only) if only is not None else None
    names = source_label_names(run.meta_labels)
    checks = run.checks
    values = [source_label_values(run, check) for check in checks]
    for name in PER_SOURCE_METRICS:
        if wanted is not None and name not in wanted:
            continue
        label_names = (*names, "status") if name == STATUS else names
        for start in range(0, len(checks), chunk):
            rows = _rows(name, checks[start : start + chunk], values[start : start + chunk])
            if rows:
                yield Family(name, label_names, rows)
    del values
    if run.models:
        from dbt_prom_bridge.model_metrics import families_of_models  # imports this module

        yield from families_of_models(run.project, run.target, run.meta_labels, run.models, wanted)
    for fam in _run_families(run):
        if wanted is None or fam.name in wanted:
            yield fam


Row = tuple[tuple[str, ...], float]


def _rows(name: str, checks: Sequence[SourceCheck], values: Sequence[tuple[str, ...]]) -> list[Row]:
    """The rows of per-source family ``name`` for ``checks`` (``values``: their label values)."""
    pairs = zip(checks, values, strict=True)
    if name == STATUS:
        rows: list[Row] = []
        for check, vals in pairs:
            current = check.status
            for status in STATUSES:
                rows.append(((*vals, status.value), 1.0 if status is current else 0.0))
        return rows
    if name == MAX_LOADED_AT:
        return [(v, c.max_loaded_at) for c, v in pairs if c.max_loaded_at is not None]
    if name == HAS_DATA:
        # Unknown (not_run, runtime error: dbt never found out) is no sample, not 1.
        return [(v, 1.0 if c.has_data else 0.0) for c, v in pairs if c.has_data is not None]
    if name == CHECKED_AT:
        return [(v, c.checked_at) for c, v in pairs if c.checked_at is not None]
    if name == WARN_AFTER:
        return [(v, float(c.warn_after.seconds)) for c, v in pairs if c.warn_after is not None]
    if name == ERROR_AFTER:
        return [(v, float(c.error_after.seconds)) for c, v in pairs if c.error_after is not None]
    if name == CHECK_DURATION:
        return [(v, c.duration) for c, v in pairs if c.duration is not None]
    if name == WARN_DEADLINE:
        return [(v, c.warn_deadline) for c, v in pairs if c.warn_deadline is not None]
    if name == ERROR_DEADLINE:
        return [(v, c.error_deadline) for c, v in pairs if c.error_deadline is not None]
    raise ValueError(f"{name} is not a per-source metric")


def _run_families(run: FreshnessRun) -> list[Family]:
    """The run-level families (``run_*``, ``sources``, ``build_info``) that have a value.

    After a failed run (``run_success`` 0) a destination keeps the last good run's time and
    duration, and the counts of the sources it holds.
    """
    run_values = (run.project, run.target)
    fams: list[Family] = []
    if not run.sources_checked:
        # Only model results so far: no source freshness run to report on.
        return [_build_info(run)]
    if run.generated_at is not None:
        fams.append(Family(RUN_TIMESTAMP, RUN_LABELS, [(run_values, run.generated_at)]))
    if run.elapsed is not None:
        fams.append(Family(RUN_DURATION, RUN_LABELS, [(run_values, run.elapsed)]))
    fams.append(Family(RUN_SUCCESS, RUN_LABELS, [(run_values, 1.0 if run.success else 0.0)]))
    if run.success or run.checks:
        counts = run.counts()
        fams.append(
            Family(
                SOURCES,
                (*RUN_LABELS, "status"),
                [((*run_values, s.value), float(counts[s])) for s in STATUSES],
            )
        )
    fams.append(_build_info(run))
    return fams


def _build_info(run: FreshnessRun) -> Family:
    return Family(
        BUILD_INFO,
        (*RUN_LABELS, "version", "dbt_version"),
        [((run.project, run.target, __version__, run.dbt_version or ""), 1.0)],
    )


def escape_label_value(value: str) -> str:
    """Exposition-format escaping of a label value: backslash, double quote, newline."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Shortest text that parses back to the same float (Go's ParseFloat and Python's float())."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


def render_families(fams: Iterable[Family], timestamp_ms: int | None = None) -> str:
    """Serialize families as Prometheus text format 0.0.4 (``# HELP``, ``# TYPE gauge``, samples)."""
    return "".join(iter_render(fams, timestamp_ms))


def iter_render(fams: Iterable[Family], timestamp_ms: int | None = None) -> Iterator[str]:
    """:func:`render_families` as one text piece per family (or per piece of a family, see
    :func:`iter_families`), so a big run is written out without holding all of its text."""
    suffix = f" {timestamp_ms}\n" if timestamp_ms is not None else "\n"
    # Per-source label sets repeat across families: escape each set once per label-name tuple.
    caches: dict[tuple[str, ...], dict[tuple[str, ...], str]] = {}
    previous: str | None = None
    for fam in fams:
        out: list[str] = []
        if fam.name != previous:
            out.append(f"# HELP {fam.name} {escape_help(fam.help)}\n# TYPE {fam.name} gauge\n")
        previous = fam.name
        names = fam.label_names
        split = len(names) - 1 if names and names[-1] == "status" else len(names)
        base_names = names[:split]
        cache = caches.setdefault(base_names, {})
        prefix = fam.name + "{"
        for values, value in fam.rows:
            base = values[:split]
            labels = cache.get(base)
            if labels is None:
                labels = cache[base] = _label_text(base_names, base)
            if split < len(names):
                labels = f'{labels},status="{escape_label_value(values[split])}"'
            out.append(f"{prefix}{labels}}} {format_value(value)}{suffix}")
        yield "".join(out)


def render(run: FreshnessRun, only: Iterable[str] | None = None) -> str:
    """The exposition text of ``run`` (what ``push --dry-run`` prints and the gateway receives)."""
    return "".join(iter_text(run, only))


def render_bytes(run: FreshnessRun, only: Iterable[str] | None = None) -> bytearray:
    """:func:`render` as UTF-8, built piece by piece: one copy of the text in memory (a request
    body), not the text plus its encoding (2 x 220 MB at 100,000 sources)."""
    out = bytearray()
    for piece in iter_text(run, only):
        out += piece.encode()
    return out


def iter_text(run: FreshnessRun, only: Iterable[str] | None = None) -> Iterator[str]:
    """:func:`render` in pieces (bounded memory for big runs); the pieces join to the same text."""
    return iter_render(iter_families(run, only))


def threshold_from_seconds(seconds: float) -> Threshold | None:
    """Invert :attr:`Threshold.seconds`, choosing the largest period that divides it."""
    if seconds <= 0 or not float(seconds).is_integer():
        return None
    whole = int(seconds)
    for period in ("day", "hour", "minute"):
        unit = PERIOD_SECONDS[period]
        if whole % unit == 0:
            return Threshold(whole // unit, period)
    return None


@dataclass(slots=True)
class _Held:
    labels: Mapping[str, str]
    status: str = ""
    values: dict[str, float] = field(default_factory=dict)


def checks_from_series(
    series: Iterable[tuple[str, Mapping[str, str], float]], meta_labels: Sequence[str]
) -> dict[tuple[str, str, str, str], SourceCheck]:
    """Rebuild per-source records from exposition series (e.g. what a Pushgateway holds).

    Keyed by (project, target, source_name, table_name). Used to carry the sources a partial
    (``--select``) run did not check over into the next push, so they are not erased.
    """
    found: dict[tuple[str, str, str, str], _Held] = {}
    for name, labels, value in series:
        if name not in PER_SOURCE_METRICS:
            continue
        key = (
            labels.get("project", ""),
            labels.get("target", ""),
            labels.get("source_name", ""),
            labels.get("table_name", ""),
        )
        held = found.setdefault(key, _Held(labels))
        if name != STATUS:
            held.values[name] = value
        elif value == 1.0:
            held.status = labels.get("status", "")
    out: dict[tuple[str, str, str, str], SourceCheck] = {}
    for key, held in found.items():
        try:
            status = Status(held.status)
        except ValueError:
            continue
        labels, values = held.labels, held.values
        warn, err = values.get(WARN_AFTER), values.get(ERROR_AFTER)
        has_data = values.get(HAS_DATA)
        out[key] = SourceCheck(
            unique_id=f"source.{key[0]}.{key[2]}.{key[3]}",
            source_name=key[2],
            table_name=key[3],
            database=labels.get("database", ""),
            schema=labels.get("schema", ""),
            identifier=labels.get("identifier", ""),
            status=status,
            max_loaded_at=values.get(MAX_LOADED_AT),
            has_data=None if has_data is None else bool(has_data),
            checked_at=values.get(CHECKED_AT),
            warn_after=None if warn is None else threshold_from_seconds(warn),
            error_after=None if err is None else threshold_from_seconds(err),
            duration=values.get(CHECK_DURATION),
            meta_values=tuple(labels.get(k, "") for k in meta_labels),
            warn_deadline=values.get(WARN_DEADLINE),
            error_deadline=values.get(ERROR_DEADLINE),
        )
    return out


def held_from_series(
    series: Sequence[tuple[str, Mapping[str, str], float]],
    project: str,
    target: str,
    meta_labels: Sequence[str],
) -> FreshnessRun | None:
    """What a destination holds for ``project``/``target``, rebuilt from its series (the
    inverse of :func:`families`, as far as series carry it); None when it holds nothing."""
    from dbt_prom_bridge.model_metrics import models_from_series  # imports this module

    mine = [s for s in series if s[1].get("project", "") == project and s[1].get("target", "") == target]
    models = models_from_series(mine, meta_labels)
    if not models and not any(name in PER_SOURCE_METRICS or name in _RUN_LEVEL for name, _l, _v in mine):
        return None
    checks = checks_from_series(mine, meta_labels)
    run_level: dict[str, float] = {}
    dbt_version = None
    for name, labels, value in mine:
        if name in _RUN_LEVEL:
            run_level[name] = value
            if name == BUILD_INFO:
                dbt_version = labels.get("dbt_version") or None
    return FreshnessRun(
        project=project,
        target=target,
        checks=tuple(sorted(checks.values(), key=lambda c: (c.source_name, c.table_name, c.unique_id))),
        generated_at=run_level.get(RUN_TIMESTAMP),
        elapsed=run_level.get(RUN_DURATION),
        success=run_level.get(RUN_SUCCESS, 1.0) == 1.0,
        dbt_version=dbt_version,
        meta_labels=tuple(meta_labels),
        models=models,
        sources_checked=RUN_SUCCESS in run_level or bool(checks),
    )


_RUN_LEVEL: tuple[str, ...] = (RUN_TIMESTAMP, RUN_DURATION, RUN_SUCCESS, BUILD_INFO)
