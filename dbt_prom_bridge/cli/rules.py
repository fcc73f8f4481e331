"""``dbt-prom rules``: Prometheus alert rules (and promtool tests) from dbt's freshness thresholds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from dbt_prom_bridge import api, rules
from dbt_prom_bridge.artifacts import read_manifest
from dbt_prom_bridge.cli import EXIT_CODES_HELP
from dbt_prom_bridge.cli.generated import write_or_check
from dbt_prom_bridge.cli.options import (
    dbt_config,
    dbt_parse_options,
    duration_option,
    meta_label_option,
    meta_labels,
    warn,
)
from dbt_prom_bridge.config import DEFAULT_JOB, DbtOptions, format_duration
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import Manifest, manifest_project
from dbt_prom_bridge.nodes import ModelDef


def load_manifests(
    dbt: DbtOptions, manifests: tuple[Path, ...], artifacts_dirs: tuple[Path, ...]
) -> list[Manifest]:
    """Every ``--manifest`` and ``--artifacts-dir``/manifest.json; else parse the project in-process."""
    found = [read_manifest(path) for path in manifests]
    found += [read_manifest(directory / "manifest.json") for directory in artifacts_dirs]
    if found:
        return found
    return [api.project_manifest(dbt)]


def manifest_models(manifests: list[Manifest]) -> list[list[ModelDef]]:
    """Per manifest, the models, seeds and snapshots of its manifest.json (a manifest parsed
    in-process is the one ``dbt parse`` wrote in the target directory)."""
    from dbt_prom_bridge.model_artifacts import read_manifest_models

    return [
        list(read_manifest_models(Path(m.path)).models.values()) if m.path is not None else []
        for m in manifests
    ]


@dataclass(frozen=True)
class Loaded:
    manifests: list[Manifest]
    #: Per manifest, its own meta label keys (projects file entries), None: the command's.
    meta_labels: list[tuple[str, ...] | None]
    notes: list[str]


def _thresholds(manifest: Manifest) -> dict[str, tuple[object, object]]:
    return {uid: (s.warn_after, s.error_after) for uid, s in manifest.sources.items() if s.has_freshness}


def load_projects(path: Path, dbt: DbtOptions) -> Loaded:
    """The manifests of a projects file (``push --projects``): each entry's ``manifest``,
    ``artifacts_dir``/manifest.json, or its project parsed in-process.

    Entries of the same project with other targets share its rules (rules match every target)
    when they declare the same thresholds; different thresholds per target are refused."""
    from dbt_prom_bridge import multi

    specs = multi.load(path, dbt)
    loaded = Loaded([], [], [])
    first: dict[str, tuple[str, Manifest, tuple[str, ...] | None]] = {}
    for spec in specs:
        if spec.artifacts.manifest is not None:
            manifest = read_manifest(spec.artifacts.manifest)
        elif spec.artifacts.artifacts_dir is not None:
            manifest = read_manifest(spec.artifacts.artifacts_dir / "manifest.json")
        else:
            manifest = api.project_manifest(replace(spec.dbt, select=(), exclude=()))
        name = manifest_project(manifest)
        if name in first:
            where, other, meta = first[name]
            if _thresholds(other) != _thresholds(manifest) or meta != spec.meta_labels:
                raise UsageError(
                    f"{spec.where} and {where} are both project {name!r} but declare different "
                    "thresholds or meta_labels (per target); generate their rules separately, "
                    "each with --target-label"
                )
            loaded.notes.append(f"{spec.where}: same project and thresholds as {where}, same rules")
            continue
        first[name] = (spec.where, manifest, spec.meta_labels)
        loaded.manifests.append(manifest)
        loaded.meta_labels.append(spec.meta_labels)
    return loaded


def _nonempty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty")
    return value


@click.command("rules", epilog=EXIT_CODES_HELP)
@dbt_parse_options
@click.option(
    "--select",
    "-s",
    multiple=True,
    metavar="source:NAME[.TABLE]",
    help="Only rules for these sources (shell wildcards allowed; --mode per-source). Repeatable.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="source:NAME[.TABLE]",
    help="No rules for these sources (as --select). Repeatable.",
)
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="manifest.json to read (default: parse the dbt project in-process). Repeatable: one per project.",
)
@click.option(
    "--artifacts-dir",
    "artifacts_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding a manifest.json (e.g. a project's target/). Repeatable.",
)
@click.option(
    "--projects",
    "projects_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A projects file (as `dbt-prom push --projects`): rules for each of its projects.",
)
@click.option(
    "--project",
    callback=_nonempty,
    help="The `project` label the metrics carry, when it differs from the manifest's project name.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rule file here (default: stdout).",
)
@click.option(
    "--split-by",
    type=click.Choice([s.value for s in rules.SplitBy]),
    default=rules.SplitBy.NONE.value,
    show_default=True,
    help="`project`: one rule file per project in --out-dir (<project>.yml) instead of one combined file.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --split-by project: where the per-project rule files go.",
)
@click.option(
    "--tests",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a `promtool test rules` file proving every alert (needs --out; keep it out of "
    "the directory Prometheus loads rules from).",
)
@click.option(
    "--tests-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --split-by project: where the per-project test files go (<project>.test.yml).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Do not write: exit 1 and print a unified diff when a file (rules or tests) would change.",
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in rules.Mode]),
    default=rules.Mode.PER_SOURCE.value,
    show_default=True,
    envvar="DBT_PROM_RULES_MODE",
    help="per-source: each threshold a literal in its source's rule (threshold changes show in the "
    "diff); dynamic: a constant number of rules comparing ages with the pushed *_after_seconds "
    "series (thousands of sources).  [env: DBT_PROM_RULES_MODE]",
)
@duration_option(
    "--for",
    "for_",
    default="5m",
    help="How long a condition must hold before an alert fires.",
    allow_zero=True,
)
@duration_option(
    "--keep-firing-for",
    default=None,
    allow_zero=True,
    help="Keep an alert firing this long after its condition clears (Prometheus >= 2.42).",
)
@click.option(
    "--group-name",
    default=rules.DEFAULT_GROUP,
    show_default=True,
    help="Prefix of the rule group names (<name>/<project>[/<source_name>]).",
)
@click.option("--severity-warn", default="warning", show_default=True, help="`severity` label of warnings.")
@click.option("--severity-error", default="critical", show_default=True, help="`severity` label of errors.")
@duration_option(
    "--stale-after",
    default="2h",
    help="DbtFreshnessBridgeStale fires when the last freshness run is older than this, "
    "DbtSourceFreshnessNotChecked when a source's last check is this much older than the newest run.",
)
@click.option(
    "--job",
    default=DEFAULT_JOB,
    show_default=True,
    envvar="DBT_PROM_JOB",
    help="Pushgateway job of the pushes (DbtFreshnessPushFailing).  [env: DBT_PROM_JOB]",
)
@meta_label_option
@click.option(
    "--runbook-base-url",
    default=rules.DEFAULT_RUNBOOK_BASE_URL,
    show_default=True,
    envvar="DBT_PROM_RUNBOOK_BASE_URL",
    help="runbook_url of alerts whose source sets no meta.runbook_url: <URL>#<alert name, lower-case>. "
    "Empty: none.  [env: DBT_PROM_RUNBOOK_BASE_URL]",
)
@click.option(
    "--dashboard-url",
    envvar="DBT_PROM_DASHBOARD_URL",
    help="Grafana dashboard URL for a dashboard_url annotation (with var-project, var-target, "
    "var-source_name).  [env: DBT_PROM_DASHBOARD_URL]",
)
@click.option(
    "--target-label",
    "target_labels",
    multiple=True,
    metavar="VALUE",
    help="Only alert on series with this `target` label (e.g. prod). Repeatable. Default: every target.",
)
@duration_option(
    "--lookback",
    default=None,
    help="Read every series through last_over_time(...[DURATION]): for remote write, where samples "
    "are not re-scraped. Set it above the push interval and --stale-after.",
)
@click.option(
    "--usual-factor",
    type=float,
    default=1.5,
    show_default=True,
    help="DbtSourceLaterThanUsual fires when a source's age exceeds this many times the largest age "
    "it reached in --usual-window.",
)
@duration_option(
    "--usual-window",
    default="7d",
    help="The history DbtSourceLaterThanUsual learns a source's usual age from (and needs before firing).",
)
@duration_option(
    "--usual-floor", default="15m", help="DbtSourceLaterThanUsual never fires for ages under this."
)
@duration_option(
    "--history-interval",
    default=None,
    help="Evaluate the later-than-usual and SLO rules in a group of their own at this interval (at most "
    "2m30s), e.g. 1m when Prometheus evaluates every few seconds: their windows read every sample, so "
    "their cost grows with the evaluation frequency. Default: in the project's group.",
)
@click.option(
    "--slo",
    type=float,
    default=None,
    metavar="OBJECTIVE",
    help="Freshness objective (e.g. 0.99: within error_after 99 percent of the time) of every source without "
    "meta dbt_prom.slo; adds DbtSourceFreshnessBudgetBurn. Default: only sources that declare one.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 2 on a threshold that cannot become a rule (count <= 0, unknown period) instead of "
    "warning and skipping it.",
)
@click.option(
    "--models/--no-models",
    default=True,
    show_default=True,
    help="Also the model alerts (DbtModelBuildLate, DbtModelBuildFailed, DbtModelNotBuilt; runbooks: "
    "docs/models.md) of the manifest's models, seeds and snapshots, in the same --mode "
    "(per-source: per-model), with their promtool tests.",
)
def command(**kw: Any) -> None:
    """Generate Prometheus alert rules from the freshness thresholds declared in dbt.

    Alerts: DbtSourceFreshnessWarn, DbtSourceFreshnessError, DbtSourceNoData,
    DbtSourceFreshnessRuntimeError, DbtSourceFreshnessNotRun, DbtSourceFreshnessNotChecked,
    DbtSourceLaterThanUsual, DbtSourceFreshnessBudgetBurn, DbtFreshnessRunFailed,
    DbtFreshnessBridgeStale, DbtFreshnessPushFailing (runbooks: docs/alerts.md); for the models,
    seeds and snapshots: DbtModelBuildLate, DbtModelBuildFailed, DbtModelNotBuilt (docs/models.md).
    Ages are computed in PromQL from the pushed timestamps, so alerts fire even when pushes stop.
    Push with the same --meta-label keys. Output is deterministic: commit it and gate drift with
    --check.
    """
    dbt = dbt_config(kw)
    opts = rules.RulesOptions(
        mode=rules.Mode(kw["mode"]),
        for_seconds=kw["for_"],
        keep_firing_for=kw["keep_firing_for"],
        group_name=kw["group_name"],
        severity_warn=kw["severity_warn"],
        severity_error=kw["severity_error"],
        stale_after=kw["stale_after"],
        job=kw["job"],
        meta_labels=meta_labels(kw),
        runbook_base_url=kw["runbook_base_url"],
        dashboard_url=kw["dashboard_url"] or None,
        target_labels=tuple(kw["target_labels"]),
        lookback=kw["lookback"],
        project=kw["project"],
        select=dbt.select,
        exclude=dbt.exclude,
        strict=kw["strict"],
        usual_factor=kw["usual_factor"],
        usual_window=kw["usual_window"],
        usual_floor=kw["usual_floor"],
        slo=kw["slo"],
        models=kw["models"],
        history_interval=kw["history_interval"],
    ).validated()
    outputs = rules.Outputs(
        out=kw["out"],
        out_dir=kw["out_dir"],
        tests=kw["tests"],
        tests_dir=kw["tests_dir"],
        split_by=rules.SplitBy(kw["split_by"]),
    ).validated()
    if kw["check"] and outputs.out is None and outputs.out_dir is None:
        raise UsageError("--check compares with the --out file; give --out PATH (or --out-dir)")
    projects_file: Path | None = kw["projects_file"]
    inputs = rules.Inputs(
        manifests=tuple(str(p) for p in kw["manifests"]),
        artifacts_dirs=tuple(str(p) for p in kw["artifacts_dirs"]),
        project_dir=str(dbt.project_dir),
        target=dbt.target,
        vars=dbt.vars,
        projects_file=str(projects_file) if projects_file is not None else None,
    )
    # Parse without the selection: rules apply it to the manifest themselves.
    unselected = replace(dbt, select=(), exclude=())
    if projects_file is not None:
        ctx = click.get_current_context()
        from click.core import ParameterSource

        if kw["manifests"] or kw["artifacts_dirs"]:
            raise UsageError("give either --projects or --manifest/--artifacts-dir")
        if ctx.get_parameter_source("project_dir") is ParameterSource.COMMANDLINE:
            raise UsageError("give either --project-dir or --projects (its entries name their project_dir)")
        loaded = load_projects(projects_file, unselected)
    else:
        manifests = load_manifests(unselected, tuple(kw["manifests"]), tuple(kw["artifacts_dirs"]))
        loaded = Loaded(manifests, [None] * len(manifests), [])
    for note in loaded.notes:
        click.echo(f"dbt-prom: {note}", err=True)
    models = manifest_models(loaded.manifests) if opts.models else None
    generated = rules.generate(loaded.manifests, opts, outputs, inputs, loaded.meta_labels, models)
    for warning in generated.warnings:
        warn(warning)
    write_or_check(
        [(item.path, item.text) for item in generated.files],
        kw["check"],
        command="dbt-prom rules",
        out_flags="--out PATH (or --out-dir)",
    )
    if not kw["check"] and any(f.path is not None for f in generated.files):
        models_text = f" and {generated.model_count} models" if generated.model_count else ""
        click.echo(
            f"dbt-prom: {generated.rule_count} rules for {generated.source_count} sources{models_text} "
            f"({opts.mode.value} mode, for {format_duration(opts.for_seconds)})",
            err=True,
        )
