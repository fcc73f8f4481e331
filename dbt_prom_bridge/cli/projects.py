"""``dbt-prom push --projects FILE``: the push command over several dbt projects and targets.

The work is :func:`dbt_prom_bridge.multi.run_all`; this prints what happened to each entry as it
goes (stderr), the merged exposition on ``--dry-run`` (stdout), and ends with the most serious
exit code among the entries.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from dbt_prom_bridge import multi, summary
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, DeliveryOptions, RunOptions
from dbt_prom_bridge.errors import CheckFailed, DbtPromError, DbtRunError, ExitCode, PushError, UsageError

_ERRORS: dict[ExitCode, type[DbtPromError]] = {
    ExitCode.PUSH: PushError,
    ExitCode.DBT: DbtRunError,
    ExitCode.INPUT: UsageError,
    ExitCode.FAILED_CHECK: CheckFailed,
}


def check_flags(ctx: click.Context, art: ArtifactOptions, textfile: Path | None) -> None:
    """Refuse the single-project flags that a projects file sets per entry."""
    from click.core import ParameterSource

    if ctx.get_parameter_source("project_dir") is ParameterSource.COMMANDLINE:
        raise UsageError("give either --project-dir or --projects (its entries name their project_dir)")
    for flag, value in (
        ("--artifacts-dir", art.artifacts_dir),
        ("--sources-json", art.sources_json),
        ("--manifest", art.manifest),
    ):
        if value is not None:
            raise UsageError(f"{flag} cannot be used with --projects: set it per entry in the projects file")
    if textfile is not None:
        raise UsageError("--textfile cannot be used with --projects: one textfile holds one project's run")


def _line(message: str) -> None:
    click.echo(f"dbt-prom: {message}", err=True)


def push_projects(
    path: Path,
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions,
    delivery: DeliveryOptions,
    spill_dir: Path | None,
    fmt: str,
    colour: bool,
) -> None:
    """Run every entry of the projects file; raise the most serious failure at the end."""
    specs = multi.load(path, dbt, art)
    _line(f"{len(specs)} project(s) from {path}")

    def on_event(line: str) -> None:
        if fmt != "json":
            click.echo(line, err=True)

    def on_result(result: multi.ProjectResult) -> None:
        run = result.run
        if run is not None:
            for message in run.warnings:
                _line(f"warning: {result.name}: {message}")
        if result.report is not None and run is not None:
            for done in result.report.deliveries:
                _line(summary.delivered_line(run, done, of=result.name))
        if run is not None and not run.success:
            _line(f"error: {result.name}: dbt could not run: {run.error or 'unknown error'}")
        if result.error is not None:
            _line(f"error: {result.name}: {result.error}")
        if run is not None and fmt != "json" and (run.checks or run.success):
            click.echo(summary.table(result.held, colour=colour), err=True)

    results = multi.run_all(specs, opts, delivery, spill_dir, on_event, on_result)
    runs = [r.run for r in results if r.run is not None and r.error is None]
    if delivery.dry_run:
        for piece in multi.iter_text_many(runs):
            click.echo(piece, nl=False)
    elif fmt == "json":
        held = [r.held for r in results if r.run is not None and r.error is None]
        click.echo(json.dumps([summary.as_dict(run) for run in held], indent=2))
    tripped = [(r, c) for r in results if r.run is not None for c in r.run.tripped(opts.fail_on, r.held)]
    code = multi.exit_code(results, bool(tripped))
    if code is ExitCode.OK:
        return
    failed = [r for r in results if r.error is not None or (r.run is not None and not r.run.success)]
    if code is ExitCode.FAILED_CHECK:
        names = ", ".join(
            f"{r.name}: {c.source_name}.{c.table_name} ({c.status.value})" for r, c in tripped[:5]
        )
        more = f" and {len(tripped) - 5} more" if len(tripped) > 5 else ""
        raise CheckFailed(f"--fail-on {opts.fail_on.value}: {names}{more}")
    raise _ERRORS[code](
        f"{len(failed)} of {len(results)} project(s) failed ({', '.join(r.name for r in failed)}); "
        "see the errors above"
    )
