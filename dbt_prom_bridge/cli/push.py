"""``dbt-prom push``: run (or read) dbt source freshness and push the metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dbt_prom_bridge import api, summary
from dbt_prom_bridge.cli import EXIT_CODES_HELP, cloud_options
from dbt_prom_bridge.cli.options import (
    artifact_config,
    artifact_options,
    dbt_config,
    dbt_options,
    delivery_options,
    fail_on_option,
    format_option,
    gateway_config,
    gateway_options,
    meta_label_option,
    meta_labels,
    remote_write_config,
    remote_write_options,
    run_results_option,
    spill_dir,
    wants_colour,
    warn,
)
from dbt_prom_bridge.cli.replay import print_report, replay_command
from dbt_prom_bridge.config import (
    ArtifactOptions,
    DbtOptions,
    DeliveryOptions,
    GatewayConfig,
    RemoteWriteConfig,
    RunOptions,
)
from dbt_prom_bridge.errors import CheckFailed, DbtRunError, PushError, UsageError
from dbt_prom_bridge.exposition import iter_text
from dbt_prom_bridge.model import FailOn, FreshnessRun
from dbt_prom_bridge.sinks import textfile
from dbt_prom_bridge.sinks.spill import RunSpilled
from dbt_prom_bridge.state import initial


def report(run: FreshnessRun, fmt: str) -> None:
    """The summary: a table on stderr, or JSON on stdout with ``--format json``."""
    if fmt == "json":
        click.echo(summary.as_json(run))
    elif run.checks or run.success:
        click.echo(summary.table(run, colour=wants_colour(sys.stderr)), err=True)


def gate(run: FreshnessRun, held: FreshnessRun | None, fail_on: FailOn) -> None:
    """Exit 3 when dbt could not run; exit 1 when a source this run checked (or one no run has
    ever checked, ``not_run``) reached ``--fail-on``."""
    if not run.success:
        raise DbtRunError(f"dbt could not run: {run.error or 'unknown error'}")
    tripped = run.tripped(fail_on, held)
    if tripped:
        names = ", ".join(f"{c.source_name}.{c.table_name} ({summary.status_text(c)})" for c in tripped[:5])
        more = f" and {len(tripped) - 5} more" if len(tripped) > 5 else ""
        raise CheckFailed(f"--fail-on {fail_on.value}: {names}{more}")


def on_event(line: str) -> None:
    click.echo(line, err=True)


def delivery_config(
    kw: dict[str, Any],
    dbt: DbtOptions,
    gateway: GatewayConfig | None,
    remote: RemoteWriteConfig | None,
    dry_run: bool = False,
) -> DeliveryOptions:
    """Where the run goes (pops --textfile, --spill-dir, --auto-replay); refuses 'nowhere'."""
    textfile_path = kw.pop("textfile")
    if dry_run:
        textfile_path = None
    if textfile_path is not None:
        textfile.check_path(textfile_path)
    delivery = DeliveryOptions(
        gateway=None if dry_run else gateway,
        textfile=textfile_path,
        remote_write=None if dry_run else remote,
        dry_run=dry_run,
        spill_dir=spill_dir(kw, dbt),
        auto_replay=kw.pop("auto_replay"),
    )
    if delivery.gateway is not None:
        api.check_gateway(delivery.gateway)
    if delivery.remote_write is not None:
        api.check_remote_write(delivery.remote_write)
    if (
        not dry_run
        and delivery.gateway is None
        and delivery.textfile is None
        and delivery.remote_write is None
    ):
        raise UsageError(
            "nowhere to push: give --gateway URL (or DBT_PROM_GATEWAY), --remote-write URL, --textfile PATH, "
            "or --dry-run"
        )
    return delivery


def deliver(run: FreshnessRun, delivery: DeliveryOptions, art: ArtifactOptions, fmt: str) -> FreshnessRun:
    """Deliver ``run`` and say where it went; returns what the (first) destination holds now.

    A spilled run becomes a :class:`PushError` (exit 4) naming the replay command, or, when dbt
    could not run, a warning before the exit-3 gate."""
    try:
        result = api.deliver(run, delivery, force=art.force)
    except RunSpilled as exc:
        report(initial(run), fmt)
        message = f"{exc}; replay it with: {replay_command(click.get_current_context(), exc.directory)}"
        if delivery.auto_replay:
            message += " (the next successful push replays it too)"
        if not run.success:
            warn(message)
            gate(run, initial(run), FailOn.NEVER)
        raise PushError(message, status=exc.status) from None
    for url, replayed in result.replayed.items():
        print_report(replayed, url, auto=True)
    for done in result.deliveries:
        click.echo(f"dbt-prom: {summary.delivered_line(run, done)}", err=True)
    return result.run


@click.command("push", epilog=EXIT_CODES_HELP)
@dbt_options
@artifact_options
@run_results_option
@cloud_options.cloud_options()
@gateway_options
@remote_write_options
@click.option(
    "--force",
    is_flag=True,
    help="Let this run's checks replace what the destinations hold even when theirs are newer "
    "(e.g. to undo a bad push); with --no-run, also push an artifact older than --max-artifact-age.",
)
@delivery_options
@click.option(
    "--projects",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DBT_PROM_PROJECTS",
    metavar="FILE",
    help="Push several dbt projects/targets: a YAML file listing them (project_dir, target, "
    "grouping_key...); the other flags are their defaults.  [env: DBT_PROM_PROJECTS]",
)
@click.option("--dry-run", is_flag=True, help="Print the exposition text to stdout; push nothing.")
@fail_on_option()
@meta_label_option
@format_option("Summary format: a table on stderr, or JSON on stdout.")
def command(**kw: Any) -> None:
    """Run `dbt source freshness` in-process (or read its artifacts with --no-run) and push the
    per-source and run-level metrics to a Pushgateway.

    Each source keeps the values of its newest check: a run (whatever selected its sources)
    updates only the sources it checked, and only where its check is newer than what the gateway
    holds. When dbt cannot run, run_success=0 is pushed and every source keeps its last values
    (exit 3).
    """
    cloud = cloud_options.cloud_config(kw)
    dbt = dbt_config(kw)
    art = artifact_config(kw)
    remote = remote_write_config(kw)
    gateway = gateway_config(kw)
    opts = RunOptions(meta_labels=meta_labels(kw), fail_on=FailOn(kw.pop("fail_on")))
    dry_run, fmt = kw.pop("dry_run"), kw.pop("fmt")
    if dry_run and fmt == "json":
        raise UsageError(
            "--dry-run prints the exposition on stdout; it cannot be combined with --format json"
        )
    projects_file = kw.pop("projects")
    explicit_spill = kw.get("spill_dir")
    if projects_file is not None:
        from dbt_prom_bridge.cli import projects

        projects.check_flags(click.get_current_context(), art, kw.get("textfile"))
    delivery = delivery_config(kw, dbt, gateway, remote, dry_run=dry_run)
    if projects_file is not None:
        from dbt_prom_bridge.cli import projects

        colour = wants_colour(sys.stderr)
        projects.push_projects(projects_file, dbt, art, opts, delivery, explicit_spill, fmt, colour)
        return

    if cloud is not None:
        run = cloud_options.collect(cloud, dbt, art, opts)
    else:
        run = api.collect(dbt, art, opts, on_event=None if fmt == "json" else on_event)
    for message in run.warnings:
        warn(message)
    if dry_run:
        held = initial(run)
        for piece in iter_text(held):
            click.echo(piece, nl=False)
        report(held, fmt)
        gate(run, held, opts.fail_on)
        return
    held = deliver(run, delivery, art, fmt)
    report(held, fmt)
    gate(run, held, opts.fail_on)
