"""The ``dbt-prom`` command: a thin click layer over :mod:`dbt_prom_bridge.api`.

Each command lives in its own module and is imported only when it runs, so ``dbt-prom --help``
stays fast. Every :class:`~dbt_prom_bridge.errors.DbtPromError` becomes a one-line message on
stderr and its exit code; ``--debug`` (or ``DBT_PROM_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from dbt_prom_bridge import __version__
from dbt_prom_bridge.config import env_flag
from dbt_prom_bridge.errors import DbtPromError, ExitCode

EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  --fail-on tripped (push/status), or --check found drift (rules/dashboard)
  2  usage or input error (bad flag, missing/corrupt/stale/unsupported artifact)
  3  dbt could not run (connection, profile or project error)
  4  push failed (gateway or remote write down, rejected, auth failure); the run was
     spilled and can be replayed
  70 internal error (a bug: rerun with --debug and report it)
  141 stdout closed before the output ended (e.g. piped into head), as for SIGPIPE"""

#: Exit code when stdout is closed early: a SIGPIPE death's (128 + 13).
EXIT_BROKEN_PIPE = 141

#: command name -> (module, short help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "dashboard": (
        "dbt_prom_bridge.cli.dashboard",
        "Generate a Grafana dashboard from the manifest's sources and thresholds.",
    ),
    "run": (
        "dbt_prom_bridge.cli.run",
        "Run a dbt command (e.g. dbt build), then push freshness; keeps dbt's exit code.",
    ),
    "serve": (
        "dbt_prom_bridge.cli.serve",
        "Exporter mode: run freshness every --interval and serve /metrics and /healthz.",
    ),
    "status": (
        "dbt_prom_bridge.cli.status",
        "Print the freshness summary of the last run's artifacts (no push).",
    ),
    "push": (
        "dbt_prom_bridge.cli.push",
        "Run dbt source freshness (or read its artifacts) and push the metrics.",
    ),
    "rules": (
        "dbt_prom_bridge.cli.rules",
        "Generate Prometheus alert rules (and promtool tests) from dbt's freshness thresholds.",
    ),
    "forget": (
        "dbt_prom_bridge.cli.forget",
        "Remove a project/target's group from the Pushgateway and this host's state of it.",
    ),
    "replay": (
        "dbt_prom_bridge.cli.replay",
        "Push the runs earlier failed pushes kept in the spill dir, never over newer data.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = module.command
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader of stdout went away (`| head`). click would exit 1, which means "--fail-on
            # tripped" here: exit as a process killed by SIGPIPE would (128 + 13), quietly, with
            # stdout pointed at /dev/null so the final flush cannot fail again.
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbt-prom")
@click.option(
    "--debug",
    is_flag=True,
    envvar="DBT_PROM_DEBUG",
    help="Show tracebacks for errors (secrets are still redacted).  [env: DBT_PROM_DEBUG]",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """dbt source freshness as Prometheus metrics, alert rules and dashboards.

    Reads or runs `dbt source freshness`, turns each source's freshness into metrics, pushes
    them to a Pushgateway (or a textfile, remote write, or serves them), and generates alert
    rules and a Grafana dashboard from the same thresholds declared in dbt.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def hoist_debug(args: list[str]) -> tuple[list[str], bool]:
    """Accept ``--debug`` anywhere before ``--`` (``dbt-prom push --debug``), as a group option.

    What follows ``--`` (the command ``dbt-prom run`` wraps) is left alone.
    """
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args, False
    head = [a for a in args[:end] if a != "--debug"]
    return ["--debug", *head, *args[end:]], True


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    args, debug = hoist_debug(list(sys.argv[1:] if argv is None else argv))
    debug = debug or env_flag("DBT_PROM_DEBUG")
    try:
        return cli.main(args=args, prog_name="dbt-prom", standalone_mode=False)
    except DbtPromError as exc:
        if debug:
            _print_traceback(args)
        click.echo(f"dbt-prom: error: {_scrubbed(str(exc), args)}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("dbt-prom: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: a bare group shows its help
            exc.show()
        else:
            click.echo(f"dbt-prom: error: {click_error_line(exc, args)}", err=True)
        sys.exit(int(ExitCode.INPUT) if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not a user error: one scrubbed line, traceback with --debug
        if debug:
            _print_traceback(args)
        click.echo(
            f"dbt-prom: internal error: {_scrubbed(f'{type(exc).__name__}: {exc}', args)}; "
            "rerun with --debug for the traceback and please report it",
            err=True,
        )
        sys.exit(int(ExitCode.INTERNAL))


def click_error_line(exc: click.ClickException, argv: list[str] | None) -> str:
    """A click error as one scrubbed line: what was wrong, and where the usage is
    (click's own three lines put the cause last, after a usage line)."""
    message = _scrubbed(exc.format_message(), argv).replace(". (", " (").rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _print_traceback(argv: list[str] | None) -> None:
    """``--debug``: the current traceback on stderr, scrubbed like every other line."""
    click.echo(_scrubbed(traceback.format_exc(), argv, one_line=False), err=True, nl=False)


def _scrubbed(text: str, argv: list[str] | None, one_line: bool = True) -> str:
    """``text`` without the secrets this process knows: URL credentials and query parameters in
    argv, secret env vars, every secret read from a flag, env var or file (:func:`known_secrets`),
    and without terminal control sequences."""
    import os
    import re

    from dbt_prom_bridge.config import known_secrets
    from dbt_prom_bridge.redact import Scrubber, printable, url_secrets

    secrets = [v for k, v in os.environ.items() if re.search(r"PASSWORD|TOKEN|SECRET", k) and len(v) >= 3]
    secrets += known_secrets()
    for arg in argv if argv is not None else sys.argv[1:]:
        value = arg.partition("=")[2] if arg.startswith("-") else arg
        if "://" in value:
            secrets += url_secrets(value)
    scrub = Scrubber(secrets)
    if one_line:
        return scrub(printable(text))
    return "\n".join(scrub(printable(line)) for line in text.split("\n"))
