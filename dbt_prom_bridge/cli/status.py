"""``dbt-prom status``: the summary of the last freshness run, read from its artifacts, no push."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from dbt_prom_bridge import api, summary
from dbt_prom_bridge.artifacts import human_duration
from dbt_prom_bridge.cli import EXIT_CODES_HELP
from dbt_prom_bridge.cli.options import (
    dbt_artifact_options,
    dbt_config,
    duration_option,
    fail_on_option,
    format_option,
    meta_label_option,
    meta_labels,
    wants_colour,
    warn,
)
from dbt_prom_bridge.cli.push import gate
from dbt_prom_bridge.config import ArtifactOptions, RunOptions
from dbt_prom_bridge.model import FailOn, FreshnessRun
from dbt_prom_bridge.state import initial


def header(run: FreshnessRun, now: float) -> str:
    when = "unknown time"
    if run.generated_at is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.generated_at))
        when = f"{stamp} ({human_duration(now - run.generated_at)} ago)"
    version = f", dbt {run.dbt_version}" if run.dbt_version else ""
    return f"last freshness run: {when}{version}"


@click.command("status", epilog=EXIT_CODES_HELP)
@dbt_artifact_options
@click.option(
    "--artifacts-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DBT_PROM_ARTIFACTS_DIR",
    help="Where sources.json/manifest.json are (default: the project's target dir).  "
    "[env: DBT_PROM_ARTIFACTS_DIR]",
)
@click.option("--sources-json", type=click.Path(dir_okay=False, path_type=Path), help="sources.json to read.")
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="manifest.json to read (default: next to sources.json); needed to list not_run sources.",
)
@duration_option(
    "--max-artifact-age",
    default=None,
    help="Refuse (exit 2) a sources.json older than this (default: show it with its age).",
)
@fail_on_option()
@meta_label_option
@format_option("A table, or the same as JSON.")
def command(**kw: Any) -> None:
    """Print the freshness of every source as the last `dbt source freshness` left it in
    target/sources.json (joined with manifest.json): status, data age now, thresholds.

    Nothing is run or pushed. The table goes to stdout (coloured on a terminal, NO_COLOR
    respected); --fail-on makes it a gate for scripts.
    """
    dbt = dbt_config(kw)
    max_age = kw["max_artifact_age"]
    art = ArtifactOptions(
        no_run=True,
        artifacts_dir=kw["artifacts_dir"],
        sources_json=kw["sources_json"],
        manifest=kw["manifest"],
        max_artifact_age=max_age if max_age is not None else 0.0,
        allow_stale=max_age is None,
    )
    opts = RunOptions(meta_labels=meta_labels(kw), fail_on=FailOn(kw["fail_on"]))
    now = time.time()
    run = api.load_run(dbt, art, opts, now=lambda: now)
    for message in run.warnings:
        warn(message)
    shown = initial(run)
    if kw["fmt"] == "json":
        click.echo(summary.as_json(shown, now=lambda: now))
    else:
        click.echo(header(run, now))
        click.echo(summary.table(shown, colour=wants_colour(sys.stdout), now=lambda: now))
    gate(run, None, opts.fail_on)
