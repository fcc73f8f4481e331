"""Generated parts of the docs (run through cog: ``make docs``; checked by tests/docs).

Every block is produced from the code itself, so the docs cannot drift from it:

- docs/cli.md: what ``dbt-prom [<command>...] --help`` prints, for the group and every command
  and subcommand, through the real click objects and the real help option (``-h, --help``), on a
  terminal of :data:`COLUMNS` columns (click wraps help at 78 columns on any terminal at least
  80 wide);
- README.md: the metric contract table, from :mod:`dbt_prom_bridge.exposition`;
- docs/configuration.md: every environment variable the commands read, from the click options
  (plus the secret variables the auth options read next to their ``*-file`` flags).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click

from dbt_prom_bridge.cli import cli
from dbt_prom_bridge.exposition import HELP, PER_SOURCE_METRICS, RUN_METRICS

#: Terminal width the help is rendered at (any width >= 80 gives the same text).
COLUMNS = 100
#: Files that carry generated blocks (``make docs`` and the drift test run cog on each).
GENERATED = ("README.md", "docs/cli.md", "docs/configuration.md")
#: What the ``dbt-prom`` console script runs (pyproject.toml ``[project.scripts]``).
_ENTRY_POINT = "import sys; from dbt_prom_bridge.cli import main; sys.exit(main())"


def commands(group: click.Command = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command under ``group`` (``()`` is ``dbt-prom`` itself), depth first."""
    yield path
    if isinstance(group, click.Group):
        ctx = click.Context(group, info_name="dbt-prom")
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            assert sub is not None, name
            yield from commands(sub, (*path, name))


def command_of(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group), path
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, path
        command = sub
    return command


def help_text(path: tuple[str, ...]) -> str:
    """What ``dbt-prom <path...> --help`` prints: the console script's entry point in a fresh
    process (click's test runner would force another width), on a :data:`COLUMNS`-wide terminal."""
    env = {**os.environ, "COLUMNS": str(COLUMNS)}
    env.pop("DBT_PROM_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", _ENTRY_POINT, *path, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, (path, result.stderr)
    return result.stdout


def cli_reference() -> str:
    """Markdown: one section per command, its help in a code block."""
    parts: list[str] = []
    for path in commands():
        title = " ".join(("dbt-prom", *path))
        parts += [f"## `{title}`\n", "```text", help_text(path).rstrip("\n"), "```\n"]
    return "\n".join(parts)


def cli_index() -> str:
    """One line linking to every command's section."""
    links = []
    for path in commands():
        if path:
            title = " ".join(("dbt-prom", *path))
            links.append(f"[`{' '.join(path)}`](#{title.replace(' ', '-')})")
    return "Commands: " + " · ".join(links)


def metrics_reference() -> str:
    """Markdown table of every metric with its labels and help text."""
    rows = ["| metric | labels | meaning |", "| --- | --- | --- |"]
    extra = {
        "dbt_source_freshness_status": "source labels, status",
        "dbt_source_freshness_sources": "project, target, status",
        "dbt_prom_bridge_build_info": "project, target, version, dbt_version",
    }
    for name in (*PER_SOURCE_METRICS, *RUN_METRICS):
        labels = extra.get(name, "source labels" if name in PER_SOURCE_METRICS else "project, target")
        rows.append(f"| `{name}` | {labels} | {HELP[name]} |")
    return "\n".join(rows)


def env_variables() -> dict[str, tuple[set[str], set[str]]]:
    """``{variable: ({flag...}, {command...})}`` for every variable a command reads."""
    found: dict[str, tuple[set[str], set[str]]] = {}

    def add(env: str, flag: str, where: str) -> None:
        flags, names = found.setdefault(env, (set(), set()))
        flags.add(flag)
        names.add(where)

    for path in commands():
        where = " ".join(path) or "(all)"
        for param in command_of(path).params:
            envvars = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            flag = max(param.opts, key=len)
            for env in envvars:
                if not env:
                    continue
                add(env, f"`{flag}`", where)
                # the auth options: a secret comes from DBT_PROM_<X>_PASSWORD next to
                # --<x>-password-file (DBT_PROM_<X>_PASSWORD_FILE), and the same for tokens
                for kind, what in (("PASSWORD", "password"), ("TOKEN", "bearer token")):
                    if env.endswith(f"_{kind}_FILE"):
                        add(env.removesuffix("_FILE"), f"(the {what} itself; or `{flag}`)", where)
    return found


def env_reference() -> str:
    """Markdown table of every environment variable the commands read, with their flags."""
    rows = ["| variable | flag | commands |", "| --- | --- | --- |"]
    for env, (flags, names) in sorted(env_variables().items()):
        rows.append(f"| `{env}` | {', '.join(sorted(flags))} | {', '.join(sorted(names))} |")
    return "\n".join(rows)
