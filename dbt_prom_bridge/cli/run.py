"""``dbt-prom run [OPTIONS] -- COMMAND...``: the post-dbt-run hook.

Runs any command (typically ``dbt build --select ...``) as a subprocess, then pushes source
freshness exactly like ``dbt-prom push`` (an in-process ``dbt source freshness`` by default, or
the artifacts with ``--no-run``), with the model builds of the ``run_results.json`` the command
wrote, and exits with the wrapped command's exit code.

Exit code precedence (first that applies):

1. the wrapped command failed (exit != 0): its exit code; freshness is still pushed, and a push
   failure is only reported, because the scheduler must see the dbt failure first;
2. the wrapped command was interrupted (SIGINT/SIGTERM): 128 + signal, nothing pushed;
3. the push failed: 4 (0 with ``--ignore-push-failure``, reported on stderr);
4. dbt could not run freshness: 3 (``run_success=0`` was pushed);
5. ``--fail-on`` tripped: 1;
6. otherwise 0.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dbt_prom_bridge import api
from dbt_prom_bridge.cli import EXIT_CODES_HELP
from dbt_prom_bridge.cli.options import (
    artifact_config,
    artifact_options,
    dbt_config,
    dbt_options,
    delivery_options,
    fail_on_option,
    gateway_config,
    gateway_options,
    meta_label_option,
    meta_labels,
    remote_write_config,
    remote_write_options,
    warn,
)
from dbt_prom_bridge.cli.push import deliver, delivery_config, gate, on_event, report
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, DeliveryOptions, RunOptions
from dbt_prom_bridge.errors import DbtPromError, PushError, UsageError
from dbt_prom_bridge.model import FailOn

#: dbt flags of the wrapped command that also tell dbt-prom where the project is.
_INHERITED = {
    "--project-dir": "project_dir",
    "--profiles-dir": "profiles_dir",
    "--target": "target",
    "-t": "target",
    "--target-path": "target_path",
}

RUN_EPILOG = (
    EXIT_CODES_HELP
    + """

\b
Exit code of `run`: the wrapped command's when it failed (freshness is still pushed);
128+N when it was killed by signal N (nothing pushed); else 4 if the push failed, 3 if dbt
could not run freshness, 1 if --fail-on tripped, else 0."""
)


def inherited_flags(command: list[str]) -> dict[str, str]:
    """``--project-dir``/``--profiles-dir``/``--target``/``--target-path`` of a wrapped dbt command."""
    if not command or Path(command[0]).name not in ("dbt", "dbt.exe"):
        return {}
    found: dict[str, str] = {}
    for index, arg in enumerate(command[1:], start=1):
        name, eq, value = arg.partition("=")
        if name in _INHERITED:
            if not eq:
                if index + 1 >= len(command):
                    continue
                value = command[index + 1]
            found[_INHERITED[name]] = value
    return found


def runs_freshness(command: list[str]) -> bool:
    """Whether the wrapped command is ``dbt source freshness`` (the one that writes sources.json)."""
    if not command or Path(command[0]).name not in ("dbt", "dbt.exe"):
        return False
    words = [a for a in command[1:] if not a.startswith("-")]
    return any(words[i : i + 2] == ["source", "freshness"] for i in range(len(words) - 1))


def merge_dbt(dbt: DbtOptions, ctx: click.Context, command: list[str]) -> DbtOptions:
    """dbt-prom's own flags win; the wrapped dbt command fills in the ones not given."""
    updates: dict[str, Any] = {}
    for attr, value in inherited_flags(command).items():
        source = ctx.get_parameter_source(attr)
        if source in (None, click.core.ParameterSource.DEFAULT):
            updates[attr] = Path(value) if attr in ("project_dir", "profiles_dir") else value
    if not updates:
        return dbt
    return replace(dbt, **updates)


def run_wrapped(command: list[str]) -> int:
    """Run ``command`` with inherited stdio, forwarding SIGTERM/SIGINT; its exit code (128+N if killed)."""
    try:
        proc = subprocess.Popen(command)
    except FileNotFoundError:
        raise UsageError(
            f"command not found: {command[0]!r}; give it after `--`, e.g. -- dbt build"
        ) from None
    except PermissionError:
        raise UsageError(f"cannot execute {command[0]!r}: permission denied") from None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


@click.command(
    "run",
    epilog=RUN_EPILOG,
    context_settings={"allow_interspersed_args": False},
)
@dbt_options
@artifact_options
@gateway_options
@remote_write_options
@delivery_options
@click.option(
    "--force",
    is_flag=True,
    help="With --no-run, push even if the gateway already holds this run or a newer one.",
)
@fail_on_option(" (if the wrapped command succeeded)")
@click.option(
    "--ignore-push-failure",
    is_flag=True,
    help="Exit 0 instead of 4 when the wrapped command succeeded but the push failed.",
)
@click.option(
    "--models/--no-models",
    default=True,
    show_default=True,
    help="Also push the model, seed and snapshot builds of the run_results.json COMMAND writes "
    "(dbt build/run/seed/snapshot).",
)
@meta_label_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")
def command(**kw: Any) -> None:
    """Run COMMAND (e.g. `dbt build --select finance+`), then push source freshness and the
    model builds COMMAND reported, keeping COMMAND's exit code. Use it as the post-run hook of any
    scheduler:

    \b
        dbt-prom run --gateway http://pushgateway:9091 -- dbt build --select finance+

    Freshness is checked in-process after COMMAND (or read from the artifacts with --no-run,
    e.g. after `-- dbt source freshness`). When COMMAND is dbt, its --project-dir,
    --profiles-dir, --target and --target-path are used unless given to dbt-prom itself.
    """
    ctx = click.get_current_context()
    wrapped = list(kw.pop("command"))
    dbt = merge_dbt(dbt_config(kw), ctx, wrapped)
    art = artifact_config(kw)
    remote = remote_write_config(kw)
    gateway = gateway_config(kw)
    opts = RunOptions(meta_labels=meta_labels(kw), fail_on=FailOn(kw.pop("fail_on")))
    delivery = delivery_config(kw, dbt, gateway, remote)
    ignore_push_failure = kw.pop("ignore_push_failure")
    results_path = api.run_results_path(dbt, art) if kw.pop("models") else None

    writes_sources = art.no_run and runs_freshness(wrapped)
    before = api.sources_json_stamp(dbt, art) if writes_sources else None
    results_before = api.file_stamp(results_path) if results_path is not None else None
    code = run_wrapped(wrapped)
    if results_path is not None and api.file_stamp(results_path) in (None, results_before):
        results_path = None  # COMMAND wrote no run_results.json (or could not run): no model news
    with tempfile.TemporaryDirectory(prefix="dbt-prom-run-") as keep:
        if results_path is not None:
            # The in-process freshness run that follows may write the target dir again.
            results_path = Path(shutil.copy2(results_path, Path(keep) / "run_results.json"))
        _push_after(
            code,
            wrapped,
            dbt,
            replace(art, run_results=results_path, run_results_found=True),
            opts,
            delivery,
            writes_sources,
            before,
            ignore_push_failure,
        )


def _push_after(
    code: int,
    wrapped: list[str],
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions,
    delivery: DeliveryOptions,
    writes_sources: bool,
    before: tuple[int, int, int] | None,
    ignore_push_failure: bool,
) -> None:
    if code > 128 and code - 128 in (signal.SIGINT, signal.SIGTERM):
        click.echo(f"dbt-prom: {wrapped[0]} was interrupted; nothing pushed", err=True)
        sys.exit(code)
    if code != 0:
        click.echo(f"dbt-prom: {wrapped[0]} exited {code}; pushing freshness anyway", err=True)
    try:
        if writes_sources and code != 0 and api.sources_json_stamp(dbt, art) == before:
            # dbt could not run (exit 2 leaves the previous sources.json in place): push that
            # failure, never the previous run's file as this run's result.
            run = api.failed_freshness_run(
                dbt, opts, f"{wrapped[0]} exited {code} without writing a new sources.json"
            )
        else:
            run = api.collect(dbt, art, opts, on_event=on_event)
        for message in run.warnings:
            warn(message)
        held = deliver(run, delivery, art, "text")
        report(held, "text")
        if code == 0:
            gate(run, held, opts.fail_on)
        elif not run.success:
            warn(f"dbt could not run: {run.error or 'unknown error'}")
    except PushError as exc:
        if code != 0 or ignore_push_failure:
            warn(f"push failed: {exc}")
        else:
            raise
    except DbtPromError as exc:
        if code == 0:
            raise
        warn(str(exc))
    if code != 0:
        sys.exit(code)
