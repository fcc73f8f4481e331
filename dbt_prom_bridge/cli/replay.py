"""``dbt-prom replay``: push the runs that earlier pushes could not deliver.

A separate command rather than ``push --replay``: it takes no dbt or artifact options (it never
runs dbt nor reads artifacts), only where the spill directory is and how to reach the gateway,
and its exit code says one thing: 0 when nothing is left, 4 when something still is. ``push``
also replays by itself after each successful push (``--no-auto-replay`` turns that off), so a
cron job recovers without anyone running this.
"""

from __future__ import annotations

import json
import shlex
import urllib.parse
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from dbt_prom_bridge import api
from dbt_prom_bridge.cli import EXIT_CODES_HELP
from dbt_prom_bridge.cli.options import (
    CONNECTION_PARAMS,
    connection_config,
    env_help,
    format_option,
    gateway_connection_options,
    remote_write_config,
    remote_write_connection_options,
    spill_dir,
    spill_option,
)
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.redact import redact_url
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.spill import ReplayReport, SpilledRun


def replay_command(ctx: click.Context, directory: Path) -> str:
    """The exact ``dbt-prom replay`` command for what ``ctx``'s command spilled.

    Repeats the connection options given on the command line (never a secret: passwords and
    tokens only come from env vars or files); options from env vars are in the env already.
    """
    parts = ["dbt-prom", "replay", "--spill-dir", str(directory)]
    note = ""
    for name in CONNECTION_PARAMS:
        value = ctx.params.get(name)
        source = ctx.get_parameter_source(name)
        given = source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        if value is None or value == () or not given:
            continue
        if name in ("gateway", "remote_write"):
            if _has_credentials(str(value)):
                if source is ParameterSource.ENVIRONMENT:
                    continue
                which = "gateway" if name == "gateway" else "remote-write"
                note = f" (with the {which} credentials: they are never saved or shown)"
            value = redact_url(str(value).strip())
        elif source is ParameterSource.ENVIRONMENT:
            continue
        if name == "timeout":
            value = f"{float(value):g}s"
        parts += ["--" + name.replace("_", "-"), str(value)]
    return shlex.join(parts) + note


def _same_url(stored: str, url: str) -> bool:
    return stored.rstrip("/") == redact_url(url.strip()).rstrip("/")


def _has_credentials(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None or bool(parts.query)


def _line(message: str) -> None:
    click.echo(f"dbt-prom: {message}", err=True)


def print_report(
    report: ReplayReport, url: str | None, auto: bool = False, remote_url: str | None = None
) -> None:
    """One stderr line per entry: pushed, superseded (dropped), failed, kept.

    ``auto`` (the replay after a successful push): entries it did not try are only counted.
    """
    for entry in report.pushed:
        _line(f"replayed {entry.describe()} to {entry.destination.url}")
    for entry in report.superseded:
        _line(f"dropped {entry.describe()}: its destination already holds the same or newer checks")
    for entry, reason in report.failed:
        _line(f"kept {entry.describe()}: {reason}")
    if auto:
        left = len(report.untried) + len(report.unreadable)
        if left:
            _line(f"{left} other spilled run(s) left; `dbt-prom replay --list` shows them")
        return
    for entry in report.untried:
        _line(f"kept {entry.describe()}: {_why_untried(entry, url, remote_url)}")
    for bad in report.unreadable:
        _line(f"kept {bad.path.name}: {bad.problem}; look at it, then delete it")


def _why_untried(entry: SpilledRun, url: str | None, remote_url: str | None = None) -> str:
    if entry.destination.kind == "remote_write":
        wanted = entry.destination.url.rstrip("/")
        if remote_url is None or wanted != redact_url(remote_url.strip()).rstrip("/"):
            return f"spilled for {wanted}; pass --remote-write {wanted} to replay it"
        return "not tried: the remote-write endpoint failed earlier in this replay"
    if entry.destination.kind != "pushgateway":
        return f"a {entry.destination.kind} destination, which this command does not replay"
    if url is None or entry.destination.url.rstrip("/") != redact_url(url.strip()).rstrip("/"):
        return (
            f"spilled for {entry.destination.url}; pass --gateway {entry.destination.url} to replay it "
            "there, --to URL to push it to another gateway, or --discard to delete it"
        )
    return "not tried: the gateway failed earlier in this replay"


def _listing(entries: tuple[SpilledRun, ...], fmt: str) -> None:
    if fmt == "json":
        rows = [
            {
                "file": e.path.name,
                "kind": e.destination.kind,
                "url": e.destination.url,
                "job": e.destination.job,
                "grouping_key": dict(e.destination.grouping_key),
                "run_time": e.when,
                "success": e.run.success,
                "partial": e.run.partial,
                "sources": len(e.run.checks),
                "reason": e.reason,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for e in entries:
        click.echo(f"{e.describe()}\t{e.destination.describe()}\t{e.reason}")


@click.command("replay", epilog=EXIT_CODES_HELP)
@gateway_connection_options
@remote_write_connection_options
@spill_option
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="DBT_PROJECT_DIR",
    show_default=True,
    help=env_help("dbt project whose target dir holds the default spill dir.", "DBT_PROJECT_DIR"),
)
@click.option(
    "--target-path",
    envvar="DBT_TARGET_PATH",
    help=env_help("dbt target path (as in dbt).", "DBT_TARGET_PATH"),
)
@click.option("--list", "list_only", is_flag=True, help="List the spilled runs on stdout; push nothing.")
@click.option(
    "--to",
    "to_url",
    metavar="URL",
    help="Push every spilled Pushgateway run to this gateway, whatever URL it was spilled for (e.g. "
    "after a wrong --gateway): the runs are re-targeted to URL first. The connection flags "
    "(credentials, CA...) are sent to URL only.",
)
@click.option(
    "--discard",
    "discard_ids",
    multiple=True,
    metavar="FILE",
    help="Delete this spilled run (its file name as --list shows it, or a prefix only it has); "
    "push nothing. Repeatable.",
)
@format_option("Format of --list.")
def command(**kw: Any) -> None:
    """Push the runs earlier pushes could not deliver (kept in the spill dir), once the gateway
    is back.

    Runs go oldest first per grouping key, and never replace newer data: a run older than what
    the gateway holds only updates sources whose held values are older, and is dropped when
    nothing of it is newer. Pushed and dropped runs are deleted; the others stay (exit 4).
    Credentials come from the same flags and env vars as `push`, and are only sent to --gateway:
    runs spilled for another gateway are kept.
    """
    dbt = DbtOptions(project_dir=kw.pop("project_dir"), target_path=kw.pop("target_path"))
    directory = spill_dir(kw, dbt)
    list_only, fmt = kw.pop("list_only"), kw.pop("fmt")
    to_url, discard_ids = kw.pop("to_url"), kw.pop("discard_ids")
    if to_url is not None:
        if kw.get("gateway") and redact_url(kw["gateway"].strip()) != redact_url(to_url.strip()):
            raise UsageError("give the gateway to push to once: --to URL, or --gateway URL, not both")
        kw["gateway"] = to_url
    remote = remote_write_config(kw)
    gateway = connection_config(kw)
    if discard_ids:
        if list_only or to_url:
            raise UsageError("--discard deletes runs and pushes nothing; give it without --list or --to")
        for ident in discard_ids:
            _line(f"discarded {spill.discard(directory, ident).name}")
        return
    found = spill.scan(directory)
    if list_only:
        _listing(found.entries, fmt)
        for bad in found.unreadable:
            _line(f"cannot read {bad.path.name}: {bad.problem}")
        return
    if not found.entries and not found.unreadable:
        _line(f"nothing to replay in {directory}")
        return
    if gateway is None and remote is None:
        urls = sorted({e.destination.url for e in found.entries})
        flags = {
            "pushgateway": "--gateway URL (or DBT_PROM_GATEWAY)",
            "remote_write": "--remote-write URL (or DBT_PROM_REMOTE_WRITE_URL)",
        }
        wanted = [flags[k] for k in flags if k in {e.destination.kind for e in found.entries}]
        raise UsageError(
            f"give {' or '.join(wanted or [flags['pushgateway']])} to replay to"
            + (f"; the spilled runs were for {', '.join(urls)}" if urls else "")
        )
    if gateway is not None:
        api.check_gateway(gateway)
    if remote is not None:
        api.check_remote_write(remote)
    if to_url is not None:
        for entry in found.entries:
            if entry.destination.kind == "pushgateway" and not _same_url(entry.destination.url, to_url):
                moved = spill.retarget(entry, to_url)
                _line(
                    f"re-targeted {entry.describe()} from {entry.destination.url} to {moved.destination.url}"
                )
    report = api.replay(directory, gateway, remote_write=remote)
    print_report(report, gateway.url if gateway else None, remote_url=remote.url if remote else None)
    _line(
        f"replay: {len(report.pushed)} pushed, {len(report.superseded)} dropped as superseded, "
        f"{report.remaining} kept in {directory}"
    )
    if report.remaining:
        raise PushError(f"{report.remaining} spilled run(s) remain in {directory}; " + _what_next(report))


def _what_next(report: ReplayReport) -> str:
    """What to do about what is left: wait for a down destination, or fix (or delete) what was
    refused for good (a 4xx, failed authentication, an entry no destination can take)."""
    refused = [e for e, _ in report.failed if (e.destination.kind, e.destination.url) not in report.down]
    stuck = [*(e.path.name for e in refused), *(u.path.name for u in report.unreadable)]
    if not stuck:
        return "run this command again once the gateway accepts them"
    more = f" and {len(stuck) - 3} more" if len(stuck) > 3 else ""
    return (
        f"{', '.join(stuck[:3])}{more} cannot be delivered as they are: fix what the lines above say "
        "(e.g. credentials), or delete the file if that run is not wanted, then run this command again"
    )
