"""Generated parts of the README (run through cog: ``make docs``; checked by tests/docs).

Every block is produced from the code itself, so the README cannot drift from it:
the CLI reference from the click commands, the metrics reference from the exposition module.
"""

from __future__ import annotations

import click

from dbt_prom_bridge.cli import cli
from dbt_prom_bridge.exposition import HELP, PER_SOURCE_METRICS, RUN_METRICS

WIDTH = 100


def command_help(path: list[str]) -> str:
    """``--help`` text of ``dbt-prom <path...>`` at a fixed width."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="dbt-prom", terminal_width=WIDTH, max_content_width=WIDTH)
    for name in path:
        assert isinstance(command, click.Group)
        sub = command.get_command(ctx, name)
        assert sub is not None, name
        command = sub
        ctx = click.Context(
            command, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH
        )
    return command.get_help(ctx)


def cli_reference() -> str:
    """Markdown: the top-level help, then each command's help, in code blocks."""
    ctx = click.Context(cli, info_name="dbt-prom")
    parts = ["### `dbt-prom`\n", "```text", command_help([]), "```\n"]
    for name in cli.list_commands(ctx):
        parts += [f"### `dbt-prom {name}`\n", "```text", command_help([name]), "```\n"]
    return "\n".join(parts)


def metrics_reference() -> str:
    """Markdown table of every metric with its labels and help text."""
    rows = ["| metric | labels | meaning |", "| --- | --- | --- |"]
    per_source = "project, target, source_name, table_name, database, schema, identifier, meta labels"
    extra = {
        "dbt_source_freshness_status": per_source + ", status",
        "dbt_source_freshness_sources": "project, target, status",
        "dbt_prom_bridge_build_info": "project, target, version, dbt_version",
    }
    for name in (*PER_SOURCE_METRICS, *RUN_METRICS):
        labels = extra.get(name, per_source if name in PER_SOURCE_METRICS else "project, target")
        rows.append(f"| `{name}` | {labels} | {HELP[name]} |")
    return "\n".join(rows)


def env_reference() -> str:
    """Markdown table of every environment variable the commands read, with their flags."""
    ctx = click.Context(cli, info_name="dbt-prom")
    found: dict[str, dict[str, set[str]]] = {}
    commands: list[tuple[str, click.Command]] = [("(all)", cli)]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        commands.append((name, command))
    for name, command in commands:
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            for env in envvars:
                if not env:
                    continue
                entry = found.setdefault(env, {"flags": set(), "commands": set()})
                entry["flags"].add(max(param.opts, key=len))
                entry["commands"].add(name)
    extra = {
        "DBT_PROM_GATEWAY_PASSWORD": ("(password of --gateway-user)", "push, run, replay"),
        "DBT_PROM_GATEWAY_TOKEN": ("(bearer token)", "push, run, replay"),
        "DBT_PROM_REMOTE_WRITE_PASSWORD": ("(password of --remote-write-user)", "push, run, replay"),
        "DBT_PROM_REMOTE_WRITE_TOKEN": ("(bearer token)", "push, run, replay"),
    }
    rows = ["| variable | flag | commands |", "| --- | --- | --- |"]
    for env in sorted(set(found) | set(extra)):
        if env in found:
            flags = ", ".join(f"`{f}`" for f in sorted(found[env]["flags"]))
            where = ", ".join(sorted(found[env]["commands"]))
        else:
            flags, where = extra[env]
        rows.append(f"| `{env}` | {flags} | {where} |")
    return "\n".join(rows)
