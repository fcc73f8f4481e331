"""Which sources get rules: the plan (per project, sorted) and what had to be skipped."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace

from dbt_prom_bridge.errors import ThresholdError, UsageError
from dbt_prom_bridge.model import Manifest, SourceDef, manifest_project
from dbt_prom_bridge.rules.options import Mode, RulesOptions, parse_selector
from dbt_prom_bridge.rules_syntax import (
    check_text,
)


def _matches(source: SourceDef, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        src, table = parse_selector(pattern)
        if fnmatch.fnmatchcase(source.source_name, src) and fnmatch.fnmatchcase(source.table_name, table):
            return True
    return False


@dataclass(frozen=True)
class ProjectSources:
    """The sources of one project that get rules, sorted, with the project label to match."""

    project: str
    sources: tuple[SourceDef, ...]
    #: This project's ``--meta-label`` keys when they differ from the command's (a projects file).
    meta_labels: tuple[str, ...] | None = None

    def options(self, opts: RulesOptions) -> RulesOptions:
        """``opts`` as they apply to this project."""
        if self.meta_labels is None or self.meta_labels == opts.meta_labels:
            return opts
        return replace(opts, meta_labels=self.meta_labels)


@dataclass(frozen=True)
class Plan:
    projects: tuple[ProjectSources, ...]
    warnings: tuple[str, ...]

    @property
    def source_count(self) -> int:
        return sum(len(p.sources) for p in self.projects)


def plan(
    manifests: Sequence[Manifest],
    opts: RulesOptions,
    meta_labels: Sequence[tuple[str, ...] | None] | None = None,
) -> Plan:
    """Pick the sources that get rules, per project; collect what had to be skipped (pure).

    ``meta_labels``: per manifest, its own meta label keys (None: the command's).
    Raises :class:`ThresholdError` (exit 2) when nothing has freshness configured, or with
    ``strict`` when a threshold cannot become a rule.
    """
    if not manifests:
        raise UsageError("no manifest given")
    if opts.project is not None and len(manifests) > 1:
        raise UsageError("--project renames the project of one manifest; it cannot apply to several")
    warnings: list[str] = []
    problems: list[str] = []
    projects: list[ProjectSources] = []
    seen_projects: dict[str, str] = {}
    overrides = list(meta_labels) if meta_labels is not None else [None] * len(manifests)
    if len(overrides) != len(manifests):
        raise UsageError("one meta label override per manifest")
    for manifest, own_meta in zip(manifests, overrides, strict=True):
        project = opts.project if opts.project is not None else manifest_project(manifest)
        where = manifest.path or "the manifest"
        if not project:
            raise UsageError(f"{where} names no project; pass --project NAME (the `project` label pushed)")
        check_text(project, "project name")
        if project in seen_projects:
            raise UsageError(
                f"project {project!r} comes from both {seen_projects[project]} and {where}; "
                "give each dbt project once"
            )
        seen_projects[project] = where
        chosen: dict[tuple[str, str], SourceDef] = {}
        configured = 0
        for source in sorted(
            manifest.sources.values(), key=lambda s: (s.source_name, s.table_name, s.unique_id)
        ):
            if not source.has_freshness and not source.threshold_problems:
                continue
            if opts.select and not _matches(source, opts.select):
                continue
            if opts.exclude and _matches(source, opts.exclude):
                continue
            configured += 1
            name = f"{project}: {source.source_name}.{source.table_name}"
            for problem in source.threshold_problems:
                outcome = (
                    "the other threshold still gets its alert"
                    if source.has_freshness
                    else "no freshness alert is generated for it"
                )
                problems.append(f"{name}: {problem}; {outcome}")
            if not source.has_freshness:
                continue
            for value, what in (
                (source.source_name, "source name"),
                (source.table_name, "table name"),
                *((v, f"meta value of {k}") for k, v in source.meta),
            ):
                check_text(value, f"{name}: {what}")
            key = (source.source_name, source.table_name)
            if key in chosen:
                warnings.append(
                    f"{name}: defined twice ({chosen[key].unique_id} and {source.unique_id}); "
                    f"their metrics carry the same labels, rules follow {chosen[key].unique_id}"
                )
                continue
            warn, err = source.warn_after, source.error_after
            if warn is not None and err is not None and warn.seconds >= err.seconds:
                warnings.append(
                    f"{name}: warn_after ({warn.human()}) is not shorter than error_after "
                    f"({err.human()}), so its warning never fires alone"
                )
            chosen[key] = source
        if not configured:
            warnings.append(f"{where} (project {project}): no selected source has freshness configured")
        if chosen:
            projects.append(ProjectSources(project, tuple(chosen.values()), own_meta))
    if problems and opts.strict:
        raise ThresholdError(
            f"{problems[0]} (and {len(problems) - 1} more)" if len(problems) > 1 else problems[0]
        )
    warnings = [*problems, *warnings]
    if not projects:
        names = ", ".join(m.path or manifest_project(m) for m in manifests)
        raise ThresholdError(
            f"no source in {names} has a usable freshness threshold (warn_after/error_after)"
            f"{' among the selected ones' if opts.select or opts.exclude else ''}: there is nothing to "
            "alert on; configure `freshness:` on your sources in dbt"
        )
    if opts.mode is Mode.DYNAMIC:
        own = sum(
            1
            for p in projects
            if "runbook_url" not in p.options(opts).meta_labels
            for s in p.sources
            if s.meta_get("runbook_url")
        )
        if own:
            warnings.append(
                f"{own} source(s) set meta.runbook_url, which dynamic rules only see as a pushed label: "
                "add --meta-label runbook_url to both `dbt-prom push` and `dbt-prom rules`"
            )
    return Plan(tuple(sorted(projects, key=lambda p: p.project)), tuple(warnings))
