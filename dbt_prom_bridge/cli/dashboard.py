"""``dbt-prom dashboard``: a Grafana dashboard from the manifest's sources and thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dbt_prom_bridge import api, dashboard
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
from dbt_prom_bridge.config import DEFAULT_JOB, DbtOptions
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import Manifest


def load_manifest(dbt: DbtOptions, manifest: Path | None, artifacts_dir: Path | None) -> Manifest:
    """``--manifest``, else ``--artifacts-dir``/manifest.json, else parse the project in-process."""
    if manifest is not None and artifacts_dir is not None:
        raise UsageError("give either --manifest or --artifacts-dir, not both")
    if manifest is not None:
        return read_manifest(manifest)
    if artifacts_dir is not None:
        return read_manifest(artifacts_dir / "manifest.json")
    return api.project_manifest(dbt)


@click.command("dashboard", epilog=EXIT_CODES_HELP)
@dbt_parse_options
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="manifest.json to read (default: parse the dbt project in-process).",
)
@click.option(
    "--artifacts-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding manifest.json (e.g. the project's target/).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the dashboard JSON here (default: stdout).",
)
@click.option("--check", is_flag=True, help="Do not write: exit 1 and print a diff when --out would change.")
@meta_label_option
@click.option("--title", default="dbt source freshness", show_default=True, help="Dashboard title.")
@click.option("--uid", help="Dashboard uid (default: derived from the project name, stable).")
@click.option(
    "--project",
    help="The `project` label the metrics carry, when it differs from the manifest's project name.",
)
@click.option(
    "--job",
    default=DEFAULT_JOB,
    show_default=True,
    envvar="DBT_PROM_JOB",
    help="Pushgateway job of the pushes (for the push-health panels).  [env: DBT_PROM_JOB]",
)
@duration_option(
    "--stale-after",
    default="2h",
    help="Colour the last run / last push red when older than this (as `rules --stale-after`).",
)
def command(**kw: Any) -> None:
    """Generate a Grafana dashboard from the dbt manifest: per-source age with that source's
    warn_after/error_after as colour thresholds, age trends, a status table, run/push health, and
    a Models row (build status, failed and skipped models, time since the last successful build).

    Template variables: datasource, project, target, source_name and each --meta-label key
    (default: owner). Output is deterministic: commit it and gate drift with --check.
    """
    dbt = dbt_config(kw)
    labels = meta_labels(kw) or ("owner",)
    opts = dashboard.DashboardOptions(
        title=kw["title"],
        uid=kw["uid"],
        meta_labels=labels,
        job=kw["job"],
        stale_after=kw["stale_after"],
        project=kw["project"],
    )
    manifest = load_manifest(dbt, kw["manifest"], kw["artifacts_dir"])
    for warning in dashboard.threshold_warnings(manifest):
        warn(warning)
    if not dashboard.freshness_sources(manifest):
        warn(
            "no source in the manifest has freshness configured; the dashboard has only the run-level "
            "and model panels"
        )
    write_or_check([(kw["out"], dashboard.render(manifest, opts))], kw["check"], command="dbt-prom dashboard")
