"""Model records: what dbt built (``run_results.json``) and what ``dbt freshness`` found
(dbt Fusion's ``freshness.json``), one frozen :class:`ModelCheck` per model, seed or snapshot.

Pure: the readers in :mod:`dbt_prom_bridge.model_artifacts` produce :class:`BuildResult`,
:class:`ModelFreshnessResult` and :class:`ModelDef` records; :func:`build_models` joins them
into a :class:`ModelRun`; :func:`merge_models` is the newest-wins merge of held records with a
run's. Metric names and help texts live here (no dependencies), the families that render them
in :mod:`dbt_prom_bridge.model_metrics`.

A record has two independent observations, each with its own time, so a merge can take the
newest of each: the **build** (status, duration, when it ended: ``built_at``) and the
**freshness check** (max_loaded_at and dbt's status, when it was checked). Thresholds, labels
and meta are configuration: they come from the record of the newest artifact (``seen_at``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from dbt_prom_bridge.errors import ArtifactError, ThresholdError, UsageError
from dbt_prom_bridge.model import PERIOD_SECONDS, Status, parse_alias

#: Resource types that are built and reported as models (tests, unit tests, operations are not).
MODEL_RESOURCE_TYPES: tuple[str, ...] = ("model", "seed", "snapshot")

#: Labels every per-model series carries, in this order, before the ``--meta-label`` keys.
MODEL_LABELS: tuple[str, ...] = (
    "project",
    "target",
    "model",
    "package",
    "database",
    "schema",
    "identifier",
    "resource_type",
)

LAST_SUCCESS = "dbt_model_last_success_timestamp_seconds"
BUILD_STATUS = "dbt_model_build_status"
BUILT_AT = "dbt_model_build_checked_timestamp_seconds"
BUILD_DURATION = "dbt_model_build_duration_seconds"
WARN_AFTER = "dbt_model_freshness_warn_after_seconds"
ERROR_AFTER = "dbt_model_freshness_error_after_seconds"
MAX_LOADED_AT = "dbt_model_max_loaded_at_timestamp_seconds"
FRESHNESS_STATUS = "dbt_model_freshness_status"
FRESHNESS_CHECKED_AT = "dbt_model_freshness_checked_timestamp_seconds"

#: name -> help text, in exposition order (merged into :data:`dbt_prom_bridge.exposition.HELP`).
MODEL_HELP: Mapping[str, str] = {
    LAST_SUCCESS: "When dbt last built the model successfully (end of the build, Unix seconds).",
    BUILD_STATUS: "Outcome of the model's last build: 1 for the current state, 0 for the others.",
    BUILT_AT: "When dbt last built, failed or skipped the model (end of the attempt, Unix seconds).",
    BUILD_DURATION: "Time dbt spent on the model's last build, in seconds.",
    WARN_AFTER: "Expected build cadence of the model (build_after or meta dbt_prom.warn_after), in seconds.",
    ERROR_AFTER: "Age of the last successful build that is an error (meta dbt_prom.error_after), in seconds.",
    MAX_LOADED_AT: "Newest loaded_at value dbt freshness found in the model (Unix seconds).",
    FRESHNESS_STATUS: "dbt freshness state of the model: 1 for the current state, 0 for the others.",
    FRESHNESS_CHECKED_AT: "When dbt freshness checked the model (snapshotted_at, Unix seconds).",
}
PER_MODEL_METRICS: tuple[str, ...] = tuple(MODEL_HELP)


class BuildStatus(str, Enum):
    """Outcome of one build of a model, as in the ``dbt_model_build_status`` state set."""

    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


BUILD_STATUSES: tuple[BuildStatus, ...] = tuple(BuildStatus)
#: dbt commands (``args.which`` of run_results.json) whose model results are not builds.
NON_BUILD_COMMANDS: frozenset[str] = frozenset(
    ("compile", "generate", "docs", "show", "list", "ls", "parse", "test", "clone", "run-operation", "source")
)
#: States of ``dbt_model_freshness_status`` (what ``dbt freshness`` says about a model).
FRESHNESS_STATUSES: tuple[Status, ...] = (Status.PASS, Status.WARN, Status.ERROR, Status.RUNTIME_ERROR)

#: dbt's run statuses (core lowercase, Fusion capitalised) -> build state. ``partial success``
#: (a microbatch model with failed batches) is an error: part of the data is missing. ``no-op``
#: (nothing to do) did not build: skipped.
_BUILD_ALIASES: Mapping[str, BuildStatus] = {
    "success": BuildStatus.SUCCESS,
    "error": BuildStatus.ERROR,
    "runtime error": BuildStatus.ERROR,
    "partial success": BuildStatus.ERROR,
    "partialsuccess": BuildStatus.ERROR,
    "skipped": BuildStatus.SKIPPED,
    "no-op": BuildStatus.SKIPPED,
    "noop": BuildStatus.SKIPPED,
}


def parse_build_status(raw: object) -> BuildStatus:
    """Map a dbt run status (core or Fusion spelling) to :class:`BuildStatus`; refuse unknown ones."""
    return parse_alias(raw, _BUILD_ALIASES, "build status", "success, error, skipped")


#: Longest threshold read (1,000 years): a bigger count is a typo, and would not fit a float.
MAX_THRESHOLD_SECONDS = 1000 * 365 * 86400
#: Threshold periods of models: dbt's (minute, hour, day) and Fusion's ``second``.
MODEL_PERIOD_SECONDS: Mapping[str, int] = {"second": 1, **PERIOD_SECONDS}


def threshold_seconds(raw: object) -> float | None:
    """dbt's ``{count, period}`` duration in seconds; None when unset (count and period null).

    Raises :class:`ThresholdError` for values that cannot be a threshold.
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
    if isinstance(count, float) and not math.isfinite(count):
        raise ThresholdError(f"threshold count {count!r} is not a finite number")
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count):
        raise ThresholdError(f"threshold count {count!r} is not a whole number")
    if int(count) <= 0:
        raise ThresholdError(f"threshold count {count!r} must be positive")
    unit = MODEL_PERIOD_SECONDS.get(str(period).strip().lower())
    if unit is None:
        raise ThresholdError(f"threshold period {period!r} is not one of second, minute, hour, day")
    seconds = int(count) * unit
    if seconds > MAX_THRESHOLD_SECONDS:
        raise ThresholdError(f"threshold {count} {period} is longer than 1,000 years")
    return float(seconds)


def split_node_id(unique_id: str) -> tuple[str, str, str]:
    """``model.<package>.<name>[.v<N>]`` -> (resource type, package, model label).

    The model label is everything after the package: the name, plus ``.v2`` for a versioned
    model (two versions of one model are two relations and two sets of series).
    """
    parts = unique_id.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise ArtifactError(f"unique_id {unique_id!r} is not <resource type>.<package>.<name>")
    return parts[0], parts[1], parts[2]


def validate_model_meta_labels(keys: Sequence[str]) -> tuple[str, ...]:
    """``--meta-label`` keys usable on model series too (none may be a model label)."""
    for key in keys:
        if key in MODEL_LABELS:
            raise UsageError(f"--meta-label {key!r} collides with a label of the model series")
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A model/seed/snapshot as the manifest declares it."""

    unique_id: str
    model: str
    package: str
    database: str
    schema: str
    identifier: str
    resource_type: str
    #: Seconds; from ``meta.dbt_prom.warn_after``, else ``freshness.build_after`` (dbt >= 1.10).
    warn_after: float | None = None
    #: Seconds; from ``meta.dbt_prom.error_after``.
    error_after: float | None = None
    meta: tuple[tuple[str, str], ...] = ()
    threshold_problems: tuple[str, ...] = ()

    @property
    def has_thresholds(self) -> bool:
        return self.warn_after is not None or self.error_after is not None


@dataclass(frozen=True, slots=True)
class BuildResult:
    """One model/seed/snapshot entry of ``run_results.json``."""

    unique_id: str
    status: BuildStatus
    #: When the build ended (the ``execute`` timing's ``completed_at``), Unix seconds; None for a skip.
    completed_at: float | None = None
    duration: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RunResultsArtifact:
    """A ``run_results.json`` as records (models, seeds and snapshots only)."""

    schema_version: str
    dbt_version: str | None
    generated_at: float | None
    invocation_id: str | None
    elapsed_time: float | None
    results: tuple[BuildResult, ...]
    path: str | None = None
    #: Entries that are not models (tests, unit tests, operations...), or not builds.
    skipped_non_models: int = 0
    #: The dbt command that wrote the file (``args.which``: build, run, compile...), when known.
    command: str | None = None

    @property
    def builds(self) -> bool:
        """False for a command that does not build (``dbt compile``, ``dbt docs generate``...):
        its results say "success" for models it only compiled."""
        return self.command is None or self.command not in NON_BUILD_COMMANDS


@dataclass(frozen=True, slots=True)
class ModelFreshnessResult:
    """One model entry of dbt Fusion's ``freshness.json`` (``dbt freshness``)."""

    unique_id: str
    resource_type: str
    status: Status
    max_loaded_at: float | None
    snapshotted_at: float | None
    warn_after: float | None = None
    error_after: float | None = None
    threshold_problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelFreshnessArtifact:
    schema_version: str
    dbt_version: str | None
    generated_at: float | None
    invocation_id: str | None
    results: tuple[ModelFreshnessResult, ...]
    path: str | None = None


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """One model in one run (or held state): labels, the last build, the last freshness check."""

    unique_id: str
    model: str
    package: str
    database: str
    schema: str
    identifier: str
    resource_type: str
    #: When the artifact this record comes from was written: configuration (labels, thresholds,
    #: meta) of the newest one wins in a merge.
    seen_at: float | None = None
    build_status: BuildStatus | None = None
    #: When the last build attempt (success, error or skip) ended: the build's check time.
    built_at: float | None = None
    last_success_at: float | None = None
    build_duration: float | None = None
    message: str | None = None
    freshness_status: Status | None = None
    freshness_checked_at: float | None = None
    max_loaded_at: float | None = None
    warn_after: float | None = None
    error_after: float | None = None
    #: Values of the ``--meta-label`` keys, in the run's ``meta_labels`` order.
    meta_values: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """What tells two models of a project/target apart in the series (the ``model`` label)."""
        return self.model


@dataclass(frozen=True, slots=True)
class ModelRun:
    """The models one artifact set (run_results.json, freshness.json, manifest) reports."""

    project: str
    target: str
    checks: tuple[ModelCheck, ...]
    generated_at: float | None
    dbt_version: str | None = None
    invocation_id: str | None = None
    meta_labels: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[BuildStatus, int]:
        out = dict.fromkeys(BUILD_STATUSES, 0)
        for check in self.checks:
            if check.build_status is not None:
                out[check.build_status] += 1
        return out


def _project(
    explicit: str | None,
    manifest_project: str | None,
    ids: Iterable[str],
) -> str:
    if explicit:
        return explicit
    if manifest_project:
        return manifest_project
    counts: dict[str, int] = {}
    for uid in ids:
        parts = uid.split(".", 2)
        if len(parts) == 3:
            counts[parts[1]] = counts.get(parts[1], 0) + 1
    return max(sorted(counts), key=lambda p: counts[p]) if counts else ""


def _identity(uid: str, mdef: ModelDef | None) -> ModelCheck:
    if mdef is not None:
        return ModelCheck(
            unique_id=uid,
            model=mdef.model,
            package=mdef.package,
            database=mdef.database,
            schema=mdef.schema,
            identifier=mdef.identifier,
            resource_type=mdef.resource_type,
            warn_after=mdef.warn_after,
            error_after=mdef.error_after,
            meta=mdef.meta,
        )
    resource_type, package, name = split_node_id(uid)
    return ModelCheck(
        unique_id=uid,
        model=name,
        package=package,
        database="",
        schema="",
        identifier=name.replace(".v", "_v") if ".v" in name else name,
        resource_type=resource_type,
    )


def build_models(
    target: str,
    run_results: RunResultsArtifact | None = None,
    freshness: ModelFreshnessArtifact | None = None,
    defs: Mapping[str, ModelDef] | None = None,
    *,
    project: str | None = None,
    manifest_project: str | None = None,
    meta_labels: Sequence[str] = (),
    configured: bool = True,
) -> ModelRun:
    """Join build results, model freshness results and the manifest into a :class:`ModelRun` (pure).

    - Labels and meta come from the manifest when it knows the model, else from the unique_id.
    - A build's time is when it ended (``completed_at``), else the artifact's ``generated_at``
      (a skipped model has no timing); ``last_success_at`` is set by successful builds only.
    - Thresholds come from the manifest (``meta.dbt_prom`` or ``freshness.build_after``), else
      from the freshness result's criteria.
    - ``configured``: manifest models with a threshold that this run did not build also get a
      record (thresholds only, no observation), so a model that is never built can be alerted on.
    """
    defs = defs or {}
    warnings: list[str] = []
    seen = max(
        (t for t in (run_results and run_results.generated_at, freshness and freshness.generated_at) if t),
        default=None,
    )
    records: dict[str, ModelCheck] = {}
    if run_results is not None:
        for result in run_results.results:
            base = records.get(result.unique_id) or _identity(result.unique_id, defs.get(result.unique_id))
            built_at = result.completed_at if result.completed_at is not None else run_results.generated_at
            records[result.unique_id] = replace(
                base,
                seen_at=seen,
                build_status=result.status,
                built_at=built_at,
                last_success_at=built_at if result.status is BuildStatus.SUCCESS else None,
                build_duration=result.duration,
                message=result.message,
            )
    if freshness is not None:
        for fresh in freshness.results:
            mdef = defs.get(fresh.unique_id)
            base = records.get(fresh.unique_id) or _identity(fresh.unique_id, mdef)
            if mdef is None or not mdef.has_thresholds:
                base = replace(base, warn_after=fresh.warn_after, error_after=fresh.error_after)
            warnings.extend(f"{base.model}: {p}" for p in fresh.threshold_problems)
            records[fresh.unique_id] = replace(
                base,
                seen_at=seen,
                freshness_status=fresh.status,
                freshness_checked_at=fresh.snapshotted_at,
                max_loaded_at=fresh.max_loaded_at,
            )
    for uid, mdef in defs.items():
        warnings.extend(f"{mdef.model}: {p}" for p in mdef.threshold_problems)
        if configured and uid not in records and mdef.has_thresholds:
            records[uid] = replace(_identity(uid, mdef), seen_at=seen)
    if run_results is not None and not run_results.builds:
        warnings.append(
            f"{run_results.path or 'run_results.json'} was written by `dbt {run_results.command}`, "
            "which builds nothing: no model build is reported from it"
        )
    if run_results is not None and run_results.generated_at is None:
        warnings.append(f"{run_results.path or 'run_results.json'} has no metadata.generated_at")
    name = _project(project, manifest_project, records)
    keys = tuple(meta_labels)
    with_meta = [
        replace(c, meta_values=tuple(dict(c.meta).get(k, "") for k in keys)) for c in records.values()
    ]
    first = run_results or freshness
    return ModelRun(
        project=name,
        target=target,
        checks=_one_per_model(with_meta, name, warnings),
        generated_at=seen,
        dbt_version=first.dbt_version if first is not None else None,
        invocation_id=first.invocation_id if first is not None else None,
        meta_labels=keys,
        warnings=tuple(warnings),
    )


def _one_per_model(checks: Iterable[ModelCheck], project: str, warnings: list[str]) -> tuple[ModelCheck, ...]:
    """One record per ``model`` label, sorted: a root-project model wins over a package's model
    of the same name (their series would carry the same labels)."""
    kept: dict[str, ModelCheck] = {}
    for check in sorted(checks, key=lambda c: (c.package != project, c.unique_id)):
        first = kept.get(check.key)
        if first is None:
            kept[check.key] = check
        else:
            warnings.append(
                f"{check.unique_id} has the same name as {first.unique_id}; only the latter is reported "
                "(metric labels cannot tell them apart)"
            )
    return tuple(sorted(kept.values(), key=lambda c: (c.model, c.unique_id)))


def _newer(new: float | None, held: float | None) -> bool:
    """True when an observation made at ``new`` replaces one made at ``held`` (ties: the new one)."""
    if new is None:
        return False
    return held is None or new >= held


def merge_model(held: ModelCheck, new: ModelCheck) -> ModelCheck:
    """The newest of each observation of one model (pure): build by ``built_at``, freshness
    check by ``freshness_checked_at``, configuration by ``seen_at``; the latest success is kept
    whichever build is newer."""
    config = new if _newer(new.seen_at, held.seen_at) or held.seen_at is None else held
    out = replace(
        config, seen_at=max((t for t in (held.seen_at, new.seen_at) if t is not None), default=None)
    )
    build = new if _newer(new.built_at, held.built_at) else held
    fresh = new if _newer(new.freshness_checked_at, held.freshness_checked_at) else held
    successes = [t for t in (held.last_success_at, new.last_success_at) if t is not None]
    return replace(
        out,
        build_status=build.build_status,
        built_at=build.built_at,
        build_duration=build.build_duration,
        message=build.message,
        last_success_at=max(successes) if successes else None,
        freshness_status=fresh.freshness_status,
        freshness_checked_at=fresh.freshness_checked_at,
        max_loaded_at=fresh.max_loaded_at,
    )


def merge_models(held: Iterable[ModelCheck], run: Iterable[ModelCheck]) -> tuple[ModelCheck, ...]:
    """Held records of one project and target updated with a run's (pure, per ``model`` label;
    the caller keeps one held set per grouping key): a record the run does not
    carry is kept as is; for the others, each observation keeps its newest value. Order-free:
    merging runs in any order gives the same result."""
    out = {c.key: c for c in held}
    for check in run:
        previous = out.get(check.key)
        out[check.key] = check if previous is None else merge_model(previous, check)
    return tuple(sorted(out.values(), key=lambda c: (c.model, c.unique_id)))
