"""Frozen records that every output (metrics, rules, dashboards, summaries) is built from.

The readers in :mod:`dbt_prom_bridge.artifacts` and the in-process runner produce
:class:`FreshnessResult` / :class:`SourceDef` records; :func:`build_run` joins them into one
:class:`FreshnessRun`. Labels are decided here, once, so metrics, rules and dashboards agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from dbt_prom_bridge.calendar import Calendar, calendar_from_meta, deadlines, verdict_at
from dbt_prom_bridge.errors import ArtifactError, ThresholdError, UsageError

if TYPE_CHECKING:  # nodes imports this module
    from dbt_prom_bridge.nodes import ModelCheck

PERIOD_SECONDS: Mapping[str, int] = {"minute": 60, "hour": 3600, "day": 86400}

#: Labels every per-source series carries, in this order, before the ``--meta-label`` keys.
SOURCE_LABELS: tuple[str, ...] = (
    "project",
    "target",
    "source_name",
    "table_name",
    "database",
    "schema",
    "identifier",
)
#: Labels of the run-level series.
RUN_LABELS: tuple[str, ...] = ("project", "target")
#: Label names a ``--meta-label`` key may not take (they are already used, or reserved).
RESERVED_LABELS: frozenset[str] = frozenset(
    (*SOURCE_LABELS, "status", "job", "instance", "le", "quantile", "version", "dbt_version", "severity")
)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Status(str, Enum):
    """Freshness state of one source, as in the ``dbt_source_freshness_status`` state set."""

    PASS = "pass"
    WARN = "warn"
    ERROR = "error"
    RUNTIME_ERROR = "runtime_error"
    NOT_RUN = "not_run"

    def __str__(self) -> str:
        return self.value


STATUSES: tuple[Status, ...] = tuple(Status)

#: dbt's spellings (core: lowercase with a space; Fusion: capitalised) -> our state.
_STATUS_ALIASES: Mapping[str, Status] = {
    "pass": Status.PASS,
    "warn": Status.WARN,
    "error": Status.ERROR,
    "runtime error": Status.RUNTIME_ERROR,
    "runtime_error": Status.RUNTIME_ERROR,
    "runtimeerror": Status.RUNTIME_ERROR,
    "not_run": Status.NOT_RUN,
}


_E = TypeVar("_E")


def parse_alias(raw: object, aliases: Mapping[str, _E], what: str, expected: str) -> _E:
    """``raw`` as spelled by dbt core or Fusion (any case, spaces around) -> its value in
    ``aliases``; an unknown spelling is an :class:`ArtifactError` naming ``what`` was expected."""
    if isinstance(raw, str):
        found = aliases.get(raw.strip().lower())
        if found is not None:
            return found
    raise ArtifactError(f"unknown {what} {raw!r}; expected one of {expected}")


def parse_status(raw: object) -> Status:
    """Map a dbt (core or Fusion) freshness status to :class:`Status`; refuse unknown ones."""
    return parse_alias(raw, _STATUS_ALIASES, "freshness status", "pass, warn, error, runtime error")


class FailOn(str, Enum):
    """``--fail-on`` gate levels."""

    NEVER = "never"
    WARN = "warn"
    ERROR = "error"

    def trips(self, status: Status) -> bool:
        """True when a source in ``status`` should make the command exit 1."""
        if self is FailOn.NEVER:
            return False
        if self is FailOn.ERROR:
            return status in (Status.ERROR, Status.RUNTIME_ERROR)
        return status is not Status.PASS


@dataclass(frozen=True, slots=True)
class Threshold:
    """A dbt ``warn_after`` / ``error_after``: ``count`` ``period`` s."""

    count: int
    period: str

    @property
    def seconds(self) -> int:
        return self.count * PERIOD_SECONDS[self.period]

    def human(self) -> str:
        unit = self.period if self.count == 1 else f"{self.period}s"
        return f"{self.count} {unit}"

    @classmethod
    def parse(cls, raw: object) -> Threshold | None:
        """Parse dbt's ``{"count": N, "period": "hour"}``; ``None`` when unset (count/period null).

        Raises :class:`ThresholdError` for values that cannot be a threshold (count <= 0,
        non-integer count, unknown period); the caller adds which source it belongs to.
        """
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ThresholdError(f"threshold {raw!r} is not an object with count and period")
        count, period = raw.get("count"), raw.get("period")
        if count is None and period is None:
            return None
        if count is None or period is None:
            raise ThresholdError(f"threshold {dict(raw)!r} sets only one of count and period")
        if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count):
            raise ThresholdError(f"threshold count {count!r} is not a whole number")
        if int(count) <= 0:
            raise ThresholdError(f"threshold count {count!r} must be positive")
        norm = str(period).strip().lower()
        if norm not in PERIOD_SECONDS:
            raise ThresholdError(f"threshold period {period!r} is not one of minute, hour, day")
        return cls(int(count), norm)


def meta_value(value: object) -> str:
    """A dbt ``meta`` value as a label value: strings as is; a list of plain values joined with
    commas (``owner: ['@alice', '@bob']`` -> ``@alice,@bob``, which an Alertmanager regex
    matcher routes on) unless an item holds a comma itself; anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        items = [v if isinstance(v, str) else json.dumps(v) for v in value]
        if not any("," in item for item in items):
            return ",".join(items)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def meta_get(meta: Iterable[tuple[str, str]], key: str) -> str:
    """The value of ``key`` in (key, value) meta pairs, or ``""``."""
    for k, v in meta:
        if k == key:
            return v
    return ""


def validate_meta_labels(keys: Iterable[str]) -> tuple[str, ...]:
    """Check ``--meta-label`` keys are usable label names; keep order, drop duplicates."""
    out: list[str] = []
    for key in keys:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise UsageError(
                f"--meta-label {key!r} is not a valid Prometheus label name "
                "(letters, digits and _, not starting with a digit or __)"
            )
        if key in RESERVED_LABELS:
            raise UsageError(f"--meta-label {key!r} collides with a label dbt-prom-bridge already sets")
        if key not in out:
            out.append(key)
    return tuple(out)


#: Label names a ``--grouping-key`` may not take: the metrics already carry them (a Pushgateway
#: silently overwrites a series label with a grouping label of the same name).
GROUPING_RESERVED: frozenset[str] = frozenset((*SOURCE_LABELS, "status", "job", "version", "dbt_version"))


def validate_grouping_key(
    pairs: Iterable[tuple[str, str]], meta_labels: Iterable[str] = (), what: str = "--grouping-key"
) -> tuple[tuple[str, str], ...]:
    """Check extra grouping-key labels: valid label names, none the metrics carry, each once."""
    items = tuple(pairs)
    taken = GROUPING_RESERVED | set(meta_labels)
    seen: set[str] = set()
    for key, _value in items:
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise UsageError(
                f"{what} {key!r} is not a valid Prometheus label name "
                "(letters, digits and _, not starting with a digit or __)"
            )
        if key in taken:
            raise UsageError(
                f"{what} {key} is set by dbt-prom-bridge itself (a label of the metrics); pick another label"
            )
        if key in seen:
            raise UsageError(f"{what} {key} is given twice; give each label once")
        seen.add(key)
    return items


@dataclass(frozen=True, slots=True)
class FreshnessResult:
    """One entry of ``sources.json`` (or of an in-process run), version differences removed."""

    unique_id: str
    status: Status
    #: Unix seconds of the newest row; ``None`` when the table has no data or it is unknown.
    max_loaded_at: float | None = None
    #: False for dbt's year-1 "no data" sentinel, None when unknown (runtime error).
    has_data: bool | None = None
    snapshotted_at: float | None = None
    age_seconds: float | None = None
    warn_after: Threshold | None = None
    error_after: Threshold | None = None
    filter: str | None = None
    execution_time: float | None = None
    error: str | None = None
    #: False when the artifact carried no ``criteria`` (runtime errors): take thresholds from the manifest.
    has_criteria: bool = False
    threshold_problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourcesArtifact:
    """A ``sources.json`` (or an in-process run) as records."""

    schema_version: str | None
    dbt_version: str | None
    #: When dbt produced the result (``metadata.generated_at``), Unix seconds.
    generated_at: float | None
    invocation_id: str | None
    elapsed_time: float | None
    results: tuple[FreshnessResult, ...]
    path: str | None = None
    #: Entries skipped because they are not sources (Fusion freshness.json covers models too:
    #: :func:`dbt_prom_bridge.api.load_run` reads them as models).
    skipped_non_sources: int = 0
    #: What the reader noticed and the user should hear (e.g. a duplicate unique_id).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDef:
    """A source table as the manifest declares it, with thresholds already inherited."""

    unique_id: str
    package: str
    source_name: str
    table_name: str
    database: str
    schema: str
    identifier: str
    warn_after: Threshold | None
    error_after: Threshold | None
    filter: str | None
    loaded_at_field: str | None
    loaded_at_query: str | None
    #: ``source_meta`` overlaid with the table's ``meta`` (the table wins), values as strings.
    meta: tuple[tuple[str, str], ...]
    threshold_problems: tuple[str, ...] = ()

    @property
    def has_freshness(self) -> bool:
        return self.warn_after is not None or self.error_after is not None

    def meta_get(self, key: str) -> str:
        return meta_get(self.meta, key)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parts of ``manifest.json`` this tool uses."""

    project_name: str | None
    schema_version: str | None
    dbt_version: str | None
    generated_at: float | None
    invocation_id: str | None
    sources: Mapping[str, SourceDef]
    path: str | None = None


def manifest_project(manifest: Manifest) -> str:
    """The project a manifest describes: its ``project_name``, else its first source package."""
    if manifest.project_name:
        return manifest.project_name
    packages = sorted({s.package for s in manifest.sources.values()})
    return packages[0] if packages else ""


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """One source in one run: labels, state, times and effective thresholds."""

    unique_id: str
    source_name: str
    table_name: str
    database: str
    schema: str
    identifier: str
    status: Status
    max_loaded_at: float | None
    has_data: bool | None
    checked_at: float | None
    warn_after: Threshold | None
    error_after: Threshold | None
    duration: float | None
    #: Values of the ``--meta-label`` keys, in the run's ``meta_labels`` order.
    meta_values: tuple[str, ...] = ()
    #: All meta of the source (for runbook URLs and summaries), sorted by key.
    meta: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    age_seconds: float | None = None
    #: The business calendar from meta ``dbt_prom.calendar``; None: the clock always runs.
    calendar: Calendar | None = None
    #: When it becomes warn / error if no newer data lands (Unix seconds; see :mod:`.calendar`).
    warn_deadline: float | None = None
    error_deadline: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source_name, self.table_name)

    @property
    def verdict(self) -> Status:
        """The calendar verdict at check time; dbt's own status for sources without a calendar
        (and for no data, runtime errors and not_run, where there is no clock to read)."""
        if self.calendar is None or self.checked_at is None or self.has_data is False:
            return self.status
        if self.status not in (Status.PASS, Status.WARN, Status.ERROR) or self.max_loaded_at is None:
            return self.status
        return Status(verdict_at(self.checked_at, self.warn_deadline, self.error_deadline))

    def meta_get(self, key: str) -> str:
        return meta_get(self.meta, key)


@dataclass(frozen=True, slots=True)
class FreshnessRun:
    """Everything one push/serve/status is about."""

    project: str
    target: str
    checks: tuple[SourceCheck, ...]
    #: When dbt produced the result (artifact ``generated_at``), never the push time.
    generated_at: float | None
    elapsed: float | None
    #: False when dbt could not run at all (then ``checks`` is empty).
    success: bool
    dbt_version: str | None = None
    invocation_id: str | None = None
    schema_version: str | None = None
    meta_labels: tuple[str, ...] = ()
    #: True for a ``--select``/``--exclude`` run of dbt-prom's own (informational: every run,
    #: whatever selected it, changes only the sources it checked; see :mod:`dbt_prom_bridge.state`).
    partial: bool = False
    warnings: tuple[str, ...] = ()
    error: str | None = None
    #: Sources the manifest declares with freshness that this run did not check, as ``not_run``
    #: placeholders (labels and thresholds from the manifest). A destination that holds a check of
    #: one keeps it; one no run has checked becomes ``not_run``.
    unchecked: tuple[SourceCheck, ...] = ()
    #: True when the run knows every source the project declares (it had the manifest): held
    #: sources it neither checked nor declares were removed from the project.
    complete: bool = False
    #: Models, seeds and snapshots the run reports (``run_results.json``, ``freshness.json``):
    #: the same newest-wins record per model (:func:`dbt_prom_bridge.nodes.merge_models`).
    models: tuple[ModelCheck, ...] = ()
    #: False for a run that checked no source freshness at all (only model results, e.g. the
    #: artifacts of a ``dbt build``): the source run-level series are left as they were.
    sources_checked: bool = True
    #: True when the run had the manifest, so :attr:`declared_models` lists every model the project
    #: declares now: held models not in it were removed from the project.
    models_complete: bool = False
    #: The ``model`` labels of every model, seed and snapshot the manifest declares.
    declared_models: tuple[str, ...] = ()

    def counts(self) -> dict[Status, int]:
        out = dict.fromkeys(STATUSES, 0)
        for check in self.checks:
            out[check.status] += 1
        return out

    def tripped(self, fail_on: FailOn, held: FreshnessRun | None = None) -> list[SourceCheck]:
        """The sources that make ``--fail-on`` exit 1 (by their calendar verdict): those this run
        checked, and those no run has checked (``not_run`` where the run landed, ``held``; else
        this run's unchecked)."""
        never = [c for c in held.checks if c.status is Status.NOT_RUN] if held is not None else self.unchecked
        return [c for c in (*self.checks, *never) if fail_on.trips(c.verdict)]


def split_unique_id(unique_id: str) -> tuple[str, str, str]:
    """``source.<package>.<source>.<table>`` -> (package, source, table)."""
    parts = unique_id.split(".", 3)
    if len(parts) != 4 or parts[0] != "source" or not all(parts[1:]):
        raise ArtifactError(f"result unique_id {unique_id!r} is not source.<project>.<source>.<table>")
    return parts[1], parts[2], parts[3]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run needs besides the artifacts: where it ran and which labels to add."""

    target: str
    project: str | None = None
    meta_labels: tuple[str, ...] = ()
    partial: bool = False
    extra_warnings: tuple[str, ...] = field(default=())


def _project_of(artifact: SourcesArtifact, manifest: Manifest | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    if manifest is not None and manifest.project_name:
        return manifest.project_name
    packages: dict[str, int] = {}
    for result in artifact.results:
        pkg = result.unique_id.split(".", 2)[1] if result.unique_id.count(".") >= 2 else ""
        packages[pkg] = packages.get(pkg, 0) + 1
    if packages:
        return max(sorted(packages), key=lambda p: packages[p])
    if manifest is not None:
        pkgs = sorted({s.package for s in manifest.sources.values()})
        if pkgs:
            return pkgs[0]
    return ""


def check_same_project(artifact: SourcesArtifact, manifest: Manifest) -> None:
    """Refuse a manifest that describes another project than the sources.json."""
    if not artifact.results or not manifest.sources:
        return
    if any(r.unique_id in manifest.sources for r in artifact.results):
        return
    found = sorted({r.unique_id.split(".")[1] for r in artifact.results if r.unique_id.count(".") >= 2})
    raise ArtifactError(
        f"manifest {manifest.path or ''} (project {manifest.project_name or '?'}) knows none of the "
        f"{len(artifact.results)} sources in the sources.json (project {', '.join(found) or '?'}); "
        "pass the manifest.json of the same project with --manifest"
    )


def build_run(
    artifact: SourcesArtifact,
    manifest: Manifest | None,
    context: RunContext,
) -> FreshnessRun:
    """Join freshness results with the manifest into a :class:`FreshnessRun` (pure).

    - Labels and meta come from the manifest when it knows the source, else from the unique_id
      (``identifier`` then defaults to the table name, ``database``/``schema`` stay empty).
    - Thresholds come from the result's criteria (what dbt evaluated); runtime errors carry
      none, so theirs come from the manifest.
    - Every manifest source with freshness configured and no result goes to ``unchecked`` as a
      ``not_run`` placeholder, whatever selected the run (dbt-prom's flags, dbt's own
      ``--select``): a destination keeps its held check of such a source
      (:func:`dbt_prom_bridge.state.merge`). A check without ``snapshotted_at`` is dated by the
      artifact's ``generated_at``.
    """
    if manifest is not None:
        check_same_project(artifact, manifest)
    project = _project_of(artifact, manifest, context.project)
    warnings: list[str] = [*context.extra_warnings, *artifact.warnings]
    checks: dict[str, SourceCheck] = {}
    defs = manifest.sources if manifest is not None else {}
    meta_keys = context.meta_labels

    for result in artifact.results:
        sdef = defs.get(result.unique_id)
        if sdef is None:
            _, source_name, table_name = split_unique_id(result.unique_id)
            database = schema = ""
            identifier = table_name
            meta: tuple[tuple[str, str], ...] = ()
        else:
            source_name, table_name = sdef.source_name, sdef.table_name
            database, schema, identifier = sdef.database, sdef.schema, sdef.identifier
            meta = sdef.meta
        warn_after, error_after = result.warn_after, result.error_after
        if not result.has_criteria and sdef is not None:
            warn_after, error_after = sdef.warn_after, sdef.error_after
        warnings.extend(f"{source_name}.{table_name}: {p}" for p in result.threshold_problems)
        meta_map = dict(meta)
        calendar = calendar_from_meta(meta, f"{source_name}.{table_name}")
        warn_deadline, error_deadline = deadlines(
            calendar, result.max_loaded_at, _seconds(warn_after), _seconds(error_after)
        )
        checks[result.unique_id] = SourceCheck(
            unique_id=result.unique_id,
            source_name=source_name,
            table_name=table_name,
            database=database,
            schema=schema,
            identifier=identifier,
            status=result.status,
            max_loaded_at=result.max_loaded_at,
            has_data=result.has_data,
            checked_at=result.snapshotted_at if result.snapshotted_at is not None else artifact.generated_at,
            warn_after=warn_after,
            error_after=error_after,
            duration=result.execution_time,
            meta_values=tuple(meta_map.get(k, "") for k in meta_keys),
            meta=meta,
            error=result.error,
            age_seconds=result.age_seconds,
            calendar=calendar,
            warn_deadline=warn_deadline,
            error_deadline=error_deadline,
        )

    unchecked: dict[str, SourceCheck] = {}
    for uid, sdef in defs.items():
        if uid in checks or not sdef.has_freshness:
            continue
        meta_map = dict(sdef.meta)
        unchecked[uid] = SourceCheck(
            unique_id=uid,
            source_name=sdef.source_name,
            table_name=sdef.table_name,
            database=sdef.database,
            schema=sdef.schema,
            identifier=sdef.identifier,
            status=Status.NOT_RUN,
            max_loaded_at=None,
            has_data=None,
            checked_at=None,
            warn_after=sdef.warn_after,
            error_after=sdef.error_after,
            duration=None,
            meta_values=tuple(meta_map.get(k, "") for k in meta_keys),
            meta=sdef.meta,
            calendar=calendar_from_meta(sdef.meta, f"{sdef.source_name}.{sdef.table_name}"),
        )
    ordered = _one_per_name(checks.values(), project, warnings)
    checked = {c.key for c in ordered}
    placeholders = tuple(
        c for c in _one_per_name(unchecked.values(), project, warnings) if c.key not in checked
    )
    if not ordered:
        warnings.append(
            "--select/--exclude matched no source with freshness configured: nothing was checked "
            "(select sources as source:NAME or source:NAME.TABLE)"
            if context.partial
            else "no source has freshness configured (warn_after/error_after): nothing was checked; "
            "configure `freshness:` on your sources in dbt"
        )
    return FreshnessRun(
        project=project,
        target=context.target,
        checks=ordered,
        generated_at=artifact.generated_at,
        elapsed=artifact.elapsed_time,
        success=True,
        dbt_version=artifact.dbt_version,
        invocation_id=artifact.invocation_id,
        schema_version=artifact.schema_version,
        meta_labels=meta_keys,
        partial=context.partial,
        warnings=tuple(warnings),
        unchecked=placeholders,
        complete=manifest is not None,
    )


def _seconds(threshold: Threshold | None) -> float | None:
    return None if threshold is None else float(threshold.seconds)


def _one_per_name(
    checks: Iterable[SourceCheck], project: str, warnings: list[str]
) -> tuple[SourceCheck, ...]:
    """One check per (source_name, table_name), sorted.

    Two packages may declare the same source and table names (``source.pkg_a.raw.events`` and
    ``source.pkg_b.raw.events``). Their series would carry identical labels (duplicate samples
    that a Pushgateway rejects), and merges, rules and dashboards key on these names, so the
    root project's source is kept (else the first unique_id) and the other is named in a warning.
    """
    kept: dict[tuple[str, str], SourceCheck] = {}
    ranked = sorted(checks, key=lambda c: (c.unique_id.split(".")[1:2] != [project], c.unique_id))
    for check in ranked:
        first = kept.get(check.key)
        if first is None:
            kept[check.key] = check
        else:
            warnings.append(
                f"{check.unique_id} has the same source and table name as {first.unique_id}; only the "
                "latter is reported (metric labels cannot tell them apart)"
            )
    return tuple(sorted(kept.values(), key=lambda c: (c.source_name, c.table_name, c.unique_id)))


def failed_run(context: RunContext, project: str, error: str, dbt_version: str | None = None) -> FreshnessRun:
    """The run-level record pushed when dbt could not run (exit 3): no per-source checks."""
    return FreshnessRun(
        project=project,
        target=context.target,
        checks=(),
        generated_at=None,
        elapsed=None,
        success=False,
        dbt_version=dbt_version,
        meta_labels=context.meta_labels,
        partial=context.partial,
        error=error,
        warnings=context.extra_warnings,
    )
