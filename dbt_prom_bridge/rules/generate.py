"""The generated files: rules (and promtool tests) for a set of manifests, with the canonical
command line that regenerates them in their header."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.errors import ThresholdError, UsageError
from dbt_prom_bridge.model import Manifest, manifest_project
from dbt_prom_bridge.nodes import ModelDef
from dbt_prom_bridge.rules.build import groups
from dbt_prom_bridge.rules.catalogue import literal_state_rules
from dbt_prom_bridge.rules.model_rules import own_models
from dbt_prom_bridge.rules.models import ProjectModels, model_groups, model_options, model_tests
from dbt_prom_bridge.rules.options import Inputs, Outputs, RulesOptions, SplitBy
from dbt_prom_bridge.rules.rule import Group
from dbt_prom_bridge.rules.selection import ProjectSources, plan
from dbt_prom_bridge.rules.templates import HEADER, header, render_template
from dbt_prom_bridge.rules.tests import render_tests

#: The defaults of :func:`generate`: rules to stdout, the header's command without inputs.
STDOUT = Outputs()
NO_INPUTS = Inputs()


@dataclass(frozen=True)
class GeneratedFile:
    #: None: stdout.
    path: Path | None
    text: str
    kind: str  # "rules" | "tests"


@dataclass(frozen=True)
class Generated:
    files: tuple[GeneratedFile, ...]
    warnings: tuple[str, ...]
    rule_count: int
    source_count: int
    #: Models, seeds and snapshots whose project got the model rules.
    model_count: int = 0


def _arg(value: str) -> str:
    """Shell-quote one argument; control characters as bash ``$'...'`` escapes (one line)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        inner = "".join(
            c
            if 0x20 <= ord(c) != 0x7F and c not in "\\'"
            else ("\\" + c if c in "\\'" else f"\\x{ord(c):02x}")
            for c in value
        )
        return f"$'{inner}'"
    return shlex.quote(value)


def command_line(inputs: Inputs, opts: RulesOptions, outputs: Outputs) -> str:
    """The canonical ``dbt-prom rules`` command producing these files (defaults left out).

    Built from the settings, not from argv, so the same settings give the same header however
    they were spelled (flags, env vars, order). ``--profiles-dir``/``--target-path`` do not
    change the rules and are left out; so is ``--check``.
    """
    d = RulesOptions()
    args: list[str] = ["dbt-prom", "rules"]

    def add(flag: str, value: object) -> None:
        args.extend([flag, _arg(str(value))])

    explicit = inputs.manifests or inputs.artifacts_dirs or inputs.projects_file
    if not explicit and inputs.project_dir not in (None, ".", ""):
        add("--project-dir", inputs.project_dir)
    if inputs.projects_file:
        add("--projects", inputs.projects_file)
    for flag, value in (("--target", inputs.target), ("--vars", inputs.vars)):
        if value:
            add(flag, value)
    for path in inputs.manifests:
        add("--manifest", path)
    for path in inputs.artifacts_dirs:
        add("--artifacts-dir", path)
    if opts.project is not None:
        add("--project", opts.project)
    for pattern in opts.select:
        add("--select", pattern)
    for pattern in opts.exclude:
        add("--exclude", pattern)
    if opts.mode is not d.mode:
        add("--mode", opts.mode.value)
    for flag, seconds, default in (
        ("--for", opts.for_seconds, d.for_seconds),
        ("--keep-firing-for", opts.keep_firing_for, d.keep_firing_for),
        ("--stale-after", opts.stale_after, d.stale_after),
        ("--lookback", opts.lookback, d.lookback),
    ):
        if seconds != default and seconds is not None:
            add(flag, format_duration(seconds))
    for flag, text, default_text in (
        ("--group-name", opts.group_name, d.group_name),
        ("--severity-warn", opts.severity_warn, d.severity_warn),
        ("--severity-error", opts.severity_error, d.severity_error),
        ("--job", opts.job, d.job),
        ("--runbook-base-url", opts.runbook_base_url, d.runbook_base_url),
    ):
        if text != default_text:
            add(flag, text)
    if opts.dashboard_url:
        add("--dashboard-url", opts.dashboard_url)
    for key in opts.meta_labels:
        add("--meta-label", key)
    for value in opts.target_labels:
        add("--target-label", value)
    if opts.usual_factor != d.usual_factor:
        add("--usual-factor", f"{opts.usual_factor:g}")
    for flag, seconds, default in (
        ("--usual-window", opts.usual_window, d.usual_window),
        ("--usual-floor", opts.usual_floor, d.usual_floor),
    ):
        if seconds != default:
            add(flag, format_duration(seconds))
    if opts.slo is not None:
        add("--slo", f"{opts.slo:g}")
    if opts.history_interval is not None:
        add("--history-interval", format_duration(opts.history_interval))
    if opts.strict:
        args.append("--strict")
    if not opts.models:
        args.append("--no-models")
    if outputs.split_by is not SplitBy.NONE:
        add("--split-by", outputs.split_by.value)
    for flag, where in (
        ("--out", outputs.out),
        ("--out-dir", outputs.out_dir),
        ("--tests", outputs.tests),
        ("--tests-dir", outputs.tests_dir),
    ):
        if where is not None:
            add(flag, where)
    return " ".join(args)


def render_rules(
    project_groups: Sequence[Group],
    opts: RulesOptions,
    command: str,
    projects: Sequence[ProjectSources],
    models: int = 0,
) -> str:
    sources = sum(len(p.sources) for p in projects)
    names = ", ".join(p.project for p in projects)
    rule_count = sum(len(g.rules) for g in project_groups)
    counted = f"{sources} source(s), {models} model(s)" if models else f"{sources} source(s)"
    head = [
        HEADER[2:],
        f"Regenerate with: {command}",
        "",
        f"Prometheus alert rules ({opts.mode.value} mode) from the freshness thresholds declared in dbt: "
        f"project {names}, {counted}, {rule_count} rule(s).",
        "Runbooks: docs/alerts.md of dbt-prom-bridge (each alert's runbook_url annotation)"
        + ("; the model alerts': docs/models.md." if models else "."),
    ]
    return render_template("rules.yml.j2", header=header(head), groups=project_groups)


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _file_name(project: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in project)
    return safe.strip(".") or "project"


def project_models(
    manifests: Sequence[Manifest],
    models: Sequence[Sequence[ModelDef]],
    opts: RulesOptions,
    meta_labels: Sequence[tuple[str, ...] | None] | None = None,
) -> dict[str, ProjectModels]:
    """Per project label, the models its manifest declares (projects without any left out)."""
    overrides = list(meta_labels) if meta_labels is not None else [None] * len(manifests)
    out: dict[str, ProjectModels] = {}
    for manifest, declared, own_meta in zip(manifests, models, overrides, strict=True):
        if declared:
            package = manifest_project(manifest)
            project = opts.project if opts.project is not None else package
            out[project] = ProjectModels(project, package, tuple(declared), own_meta)
    return out


def _model_warnings(found: Mapping[str, ProjectModels], opts: RulesOptions) -> list[str]:
    problems = [
        f"{project.project}: model {mdef.model}: {problem}"
        for project in found.values()
        for mdef in own_models(project.models, model_options(project, opts))
        for problem in mdef.threshold_problems
    ]
    if problems and opts.strict:
        raise ThresholdError(
            f"{problems[0]} (and {len(problems) - 1} more)" if len(problems) > 1 else problems[0]
        )
    return problems


def generate(
    manifests: Sequence[Manifest],
    opts: RulesOptions,
    outputs: Outputs = STDOUT,
    inputs: Inputs = NO_INPUTS,
    meta_labels: Sequence[tuple[str, ...] | None] | None = None,
    models: Sequence[Sequence[ModelDef]] | None = None,
) -> Generated:
    """Rules (and promtool tests) for ``manifests``, as texts keyed by where they go (pure).

    ``meta_labels``: per manifest, its own ``--meta-label`` keys (a projects file's entries).
    ``models``: per manifest, its models, seeds and snapshots (``read_manifest_models``): with
    ``opts.models``, their alerts join each project's rules (not in a --select/--exclude file).
    """
    opts = opts.validated()
    outputs = outputs.validated()
    the_plan = plan(manifests, opts, meta_labels)
    command = command_line(inputs, opts, outputs)
    warnings = list(the_plan.warnings)
    found: dict[str, ProjectModels] = {}
    if opts.models and models is not None:
        if len(models) != len(manifests):
            raise UsageError("one list of models per manifest")
        found = project_models(manifests, models, opts, meta_labels)
    if literal_state_rules(opts):
        warnings.append(
            "later-than-usual and SLO rules cover a whole project, so a --select/--exclude file leaves "
            "them out: generate them in the project's file without a selection"
        )
        if found:
            warnings.append(
                "model rules cover a whole project, so a --select/--exclude file leaves them out: "
                "generate them in the project's file without a selection"
            )
            found = {}
    warnings.extend(_model_warnings(found, opts))
    files: list[GeneratedFile] = []
    rule_count = 0

    batches: list[tuple[Path | None, Path | None, tuple[ProjectSources, ...]]] = []
    if outputs.split_by is SplitBy.PROJECT:
        assert outputs.out_dir is not None
        used: dict[str, str] = {}
        for project in the_plan.projects:
            name = _file_name(project.project)
            if name in used:
                raise UsageError(
                    f"projects {used[name]!r} and {project.project!r} would both be written to {name}.yml"
                )
            used[name] = project.project
            tests = outputs.tests_dir / f"{name}.test.yml" if outputs.tests_dir is not None else None
            batches.append((outputs.out_dir / f"{name}.yml", tests, (project,)))
    else:
        batches.append((outputs.out, outputs.tests, the_plan.projects))

    model_count = 0
    for rules_path, tests_path, projects in batches:
        mine = [found[p.project] for p in projects if p.project in found]
        project_groups = [
            *(g for p in projects for g in groups(p, opts)),
            *(g for m in mine for g in model_groups(m, opts)),
        ]
        rule_count += sum(len(g.rules) for g in project_groups)
        models_here = sum(len(m.models) for m in mine)
        model_count += models_here
        files.append(
            GeneratedFile(
                rules_path, render_rules(project_groups, opts, command, projects, models_here), "rules"
            )
        )
        if tests_path is not None:
            assert rules_path is not None
            if tests_path.resolve().parent == rules_path.resolve().parent:
                warnings.append(
                    f"{tests_path} is in the directory of {rules_path}: if Prometheus loads that directory "
                    "with a glob, it will try to load the test file as rules; keep tests in a subdirectory"
                )
            text = render_tests(
                projects,
                opts,
                _relative(rules_path, tests_path.parent),
                command,
                rules_path.name,
                {m.project: model_tests(m, opts) for m in mine},
            )
            files.append(GeneratedFile(tests_path, text, "tests"))
    return Generated(tuple(files), tuple(warnings), rule_count, the_plan.source_count, model_count)
