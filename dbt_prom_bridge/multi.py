"""Several dbt projects and targets in one command: a projects file.

``dbt-prom push --projects projects.yml`` runs (or, with ``--no-run``, reads) each entry in turn
and delivers each run to its own Pushgateway group / remote-write label set, so projects and
targets never overwrite each other. The file::

    # dbt-prom projects file: one entry per dbt project and target
    projects:
      - project_dir: finance             # relative to this file; required
        target: prod                     # dbt --target (default: the profile's, or --target)
        grouping_key: {team: finance}    # extra grouping labels (added to --grouping-key)
        meta_labels: [owner, team]       # instead of --meta-label for this project
      - project_dir: finance
        target: staging                  # the same project, another target: another group
      - project_dir: events
        profiles_dir: ../profiles        # dbt --profiles-dir
        select: ["source:kafka"]         # dbt --select (a string or a list), --exclude too
        vars: {region: eu}               # dbt --vars (a mapping or a YAML string)
        artifacts_dir: events/target     # with --no-run: where sources.json/manifest.json are
        # also: target_path, sources_json, manifest (paths relative to this file)

Flags given on the command line (``--target``, ``--profiles-dir``, ``--select``...) are defaults
for the entries that do not set them. Every entry is tried even when one fails; the command then
exits with the most serious failure (see :func:`exit_code`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dbt_prom_bridge import api, dbtproject
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, DeliveryOptions, RunOptions
from dbt_prom_bridge.errors import DbtPromError, ExitCode, UsageError
from dbt_prom_bridge.exposition import PER_SOURCE_METRICS, RUN_METRICS, iter_families, iter_render
from dbt_prom_bridge.model import FreshnessRun, validate_grouping_key, validate_meta_labels
from dbt_prom_bridge.state import initial

#: Keys an entry may have, and what each becomes.
ENTRY_KEYS: tuple[str, ...] = (
    "project_dir",
    "profiles_dir",
    "target",
    "select",
    "exclude",
    "vars",
    "target_path",
    "artifacts_dir",
    "sources_json",
    "manifest",
    "grouping_key",
    "meta_labels",
)
_PATH_KEYS = ("project_dir", "profiles_dir", "artifacts_dir", "sources_json", "manifest")


@dataclass(frozen=True)
class ProjectSpec:
    """One entry of a projects file: where the project is and how its run is labelled."""

    dbt: DbtOptions
    artifacts: ArtifactOptions
    #: Extra grouping labels of this entry (after the command's ``--grouping-key``).
    grouping_key: tuple[tuple[str, str], ...] = ()
    #: ``meta_labels`` of this entry; None: the command's ``--meta-label``.
    meta_labels: tuple[str, ...] | None = None
    #: ``projects.yml entry 2 (finance)``: for messages.
    where: str = ""

    def describe(self) -> str:
        target = f"/{self.dbt.target}" if self.dbt.target else ""
        return f"{self.dbt.project_dir}{target}"


def _fail(where: str, problem: str) -> UsageError:
    return UsageError(f"{where}: {problem}")


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(where, f"{key} must be a string or a list of strings")


def _mapping(value: object, where: str, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"{key} must be a mapping of label names to values")
    out = []
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, (Mapping, list)) or v is None:
            raise _fail(where, f"{key} must map label names to plain values (got {k!r}: {v!r})")
        out.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
    return tuple(out)


def _entry(
    raw: object, index: int, base: Path, dbt: DbtOptions, art: ArtifactOptions, name: str
) -> ProjectSpec:
    where = f"{name} entry {index + 1}"
    if not isinstance(raw, Mapping):
        raise _fail(where, "is not a mapping (project_dir: ..., target: ...)")
    unknown = sorted(str(k) for k in raw if k not in ENTRY_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(ENTRY_KEYS)}")
    if not isinstance(raw.get("project_dir"), str) or not raw["project_dir"].strip():
        raise _fail(where, "needs project_dir: the dbt project's directory")
    paths: dict[str, Path] = {}
    for key in _PATH_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise _fail(where, f"{key} must be a path")
        path = Path(value).expanduser()
        paths[key] = path if path.is_absolute() else base / path
    for key in ("target", "target_path"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(where, f"{key} must be a string")
    variables = raw.get("vars")
    if variables is not None and not isinstance(variables, (str, Mapping)):
        raise _fail(where, "vars must be a mapping or a YAML string")
    if isinstance(variables, Mapping):
        import yaml

        variables = yaml.safe_dump(dict(variables), default_flow_style=True, sort_keys=True).strip()
    options = replace(
        dbt,
        project_dir=paths["project_dir"],
        profiles_dir=paths.get("profiles_dir", dbt.profiles_dir),
        target=raw.get("target", dbt.target),
        select=_strings(raw["select"], where, "select") if "select" in raw else dbt.select,
        exclude=_strings(raw["exclude"], where, "exclude") if "exclude" in raw else dbt.exclude,
        vars=variables if variables is not None else dbt.vars,
        target_path=raw.get("target_path", dbt.target_path),
    )
    artifacts = replace(
        art,
        artifacts_dir=paths.get("artifacts_dir"),
        sources_json=paths.get("sources_json"),
        manifest=paths.get("manifest"),
    )
    grouping = _mapping(raw["grouping_key"], where, "grouping_key") if "grouping_key" in raw else ()
    try:
        validate_grouping_key(grouping, what="grouping_key")
    except UsageError as exc:
        raise _fail(where, str(exc)) from None
    meta = None
    if "meta_labels" in raw:
        try:
            meta = validate_meta_labels(_strings(raw["meta_labels"], where, "meta_labels"))
        except UsageError as exc:
            raise _fail(where, str(exc)) from None
    label = paths["project_dir"].name + (f"/{options.target}" if options.target else "")
    return ProjectSpec(options, artifacts, grouping, meta, f"{where} ({label})")


def load(
    path: Path, dbt: DbtOptions | None = None, art: ArtifactOptions = ArtifactOptions()
) -> list[ProjectSpec]:
    """Read a projects file; ``dbt``/``art`` are the defaults entries fall back to.

    Raises :class:`UsageError` (exit 2) naming the entry and the key at fault.
    """
    import yaml

    dbt = dbt if dbt is not None else DbtOptions()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the projects file {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"the projects file {path} is not valid YAML{at}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("projects"), list) or not doc["projects"]:
        raise UsageError(f"the projects file {path} needs a non-empty `projects:` list")
    extra = sorted(str(k) for k in doc if k != "projects")
    if extra:
        raise UsageError(f"the projects file {path} has unknown top-level key(s) {', '.join(extra)}")
    base = path.resolve().parent
    specs = [_entry(raw, i, base, dbt, art, path.name) for i, raw in enumerate(doc["projects"])]
    seen: dict[tuple[object, ...], str] = {}
    for spec in specs:
        key = (spec.dbt.project_dir.resolve(), spec.dbt.target, spec.dbt.profiles_dir, spec.grouping_key)
        if key in seen:
            raise UsageError(
                f"{spec.where} repeats {seen[key]}: the same project, target and grouping_key would "
                "overwrite each other's metrics; give them different targets or grouping_key"
            )
        seen[key] = spec.where
    return specs


@dataclass(frozen=True)
class ProjectResult:
    """What happened to one entry."""

    spec: ProjectSpec
    run: FreshnessRun | None = None
    report: api.DeliveryReport | None = None
    #: An input error (exit 2) or a push failure (exit 4) of this entry.
    error: DbtPromError | None = None

    @property
    def held(self) -> FreshnessRun:
        """What the (first) destination holds for this entry now (the run on an empty one)."""
        if self.report is not None:
            return self.report.run
        assert self.run is not None
        return initial(self.run)

    @property
    def name(self) -> str:
        if self.run is not None and self.run.project:
            return f"{self.run.project}/{self.run.target}"
        return self.spec.where or self.spec.describe()


def delivery_for(spec: ProjectSpec, delivery: DeliveryOptions, spill_dir: Path | None) -> DeliveryOptions:
    """The command's delivery with this entry's grouping labels and spill dir."""
    gateway, remote = delivery.gateway, delivery.remote_write
    if gateway is not None:
        gateway = replace(gateway, grouping_key=_with_entry_labels(gateway.grouping_key, spec.grouping_key))
    if remote is not None:
        remote = replace(remote, labels=_with_entry_labels(remote.labels, spec.grouping_key))
    return replace(delivery, gateway=gateway, remote_write=remote, spill_dir=spill_dir)


def _with_entry_labels(
    flags: tuple[tuple[str, str], ...], entry: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """The ``--grouping-key`` labels with the entry's ``grouping_key`` added (the entry wins)."""
    return tuple({**dict(flags), **dict(entry)}.items())


def default_spill_dir(spec: ProjectSpec) -> Path:
    from dbt_prom_bridge.sinks.spill import DEFAULT_DIR_NAME

    return dbtproject.artifacts_dir(spec.dbt) / DEFAULT_DIR_NAME


def run_all(
    specs: Sequence[ProjectSpec],
    opts: RunOptions,
    delivery: DeliveryOptions,
    spill_dir: Path | None = None,
    on_event: Callable[[str], None] | None = None,
    on_result: Callable[[ProjectResult], None] | None = None,
) -> list[ProjectResult]:
    """Collect and deliver every entry in order; one entry's failure does not stop the others.

    ``spill_dir``: one spill directory for all (``--spill-dir``); None: each project's own
    default. With ``delivery.dry_run`` nothing is delivered (the caller prints the runs).
    """
    results: list[ProjectResult] = []
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
    for spec in specs:
        result = _one(spec, opts, delivery, spill_dir, on_event, groups)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _one(
    spec: ProjectSpec,
    opts: RunOptions,
    delivery: DeliveryOptions,
    spill_dir: Path | None,
    on_event: Callable[[str], None] | None,
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], str],
) -> ProjectResult:
    run_opts = replace(opts, meta_labels=spec.meta_labels) if spec.meta_labels is not None else opts
    try:
        run = api.collect(spec.dbt, spec.artifacts, run_opts, on_event)
    except DbtPromError as exc:
        return ProjectResult(spec, error=exc)
    key = (run.project, run.target, spec.grouping_key)
    if key in groups:
        return ProjectResult(
            spec,
            run,
            error=UsageError(
                f"{spec.where} is project {run.project}, target {run.target} again (as {groups[key]}); "
                "its metrics would replace the other's: give it another grouping_key"
            ),
        )
    groups[key] = spec.where
    if delivery.dry_run:
        return ProjectResult(spec, run)
    mine = delivery_for(spec, delivery, spill_dir if spill_dir is not None else default_spill_dir(spec))
    try:
        report = api.deliver(run, mine, force=spec.artifacts.force)
    except DbtPromError as exc:
        return ProjectResult(spec, run, error=exc)
    return ProjectResult(spec, run, report)


def iter_text_many(runs: Sequence[FreshnessRun]) -> Iterator[str]:
    """One exposition for several runs: each family once, with the rows of every run (printing
    the runs one after the other would repeat ``# HELP``/``# TYPE``, which is invalid)."""

    held = [initial(run) for run in runs]

    def pieces() -> Iterator[Any]:
        for name in (*PER_SOURCE_METRICS, *RUN_METRICS):
            for run in held:
                yield from iter_families(run, (name,))

    return iter_render(pieces())


def exit_code(results: Sequence[ProjectResult], fail_on_tripped: bool) -> ExitCode:
    """The most serious outcome: a push failed (4), then dbt could not run (3), then an input
    error of one entry (2), then ``--fail-on`` (1)."""
    codes = {r.error.exit_code for r in results if r.error is not None}
    codes |= {ExitCode.DBT for r in results if r.run is not None and not r.run.success}
    for code in (ExitCode.PUSH, ExitCode.DBT, ExitCode.INPUT):
        if code in codes:
            return code
    return ExitCode.FAILED_CHECK if fail_on_tripped else ExitCode.OK
