"""``dbt-prom forget``: remove a project/target's group from the Pushgateway, and this host's
state cache of it, so no later push brings its series back."""

from __future__ import annotations

from typing import Any

import click

from dbt_prom_bridge.cli import EXIT_CODES_HELP
from dbt_prom_bridge.cli.options import (
    dbt_artifact_options,
    dbt_config,
    gateway_config,
    gateway_options,
    spill_dir,
    spill_option,
)
from dbt_prom_bridge.errors import UsageError


@click.command("forget", epilog=EXIT_CODES_HELP)
@dbt_artifact_options
@click.option(
    "--project",
    "project_name",
    metavar="NAME",
    help="The dbt project whose group to remove (default: the name in --project-dir's dbt_project.yml).",
)
@gateway_options
@spill_option
def command(**kw: Any) -> None:
    """Remove every series of one project/target (job, --grouping-key) from the Pushgateway.

    A push never removes a source's series by itself (only a newer run whose manifest no longer
    declares the source does). This is the explicit way: the group is deleted on the gateway and
    this host's state cache of it (in --spill-dir) is removed, so the next push of another
    selection does not bring the old sources back. Other hosts that push the same group keep
    their own cache: run it there too.
    """
    from dbt_prom_bridge import dbtproject
    from dbt_prom_bridge.model import FreshnessRun
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway

    dbt = dbt_config(kw)
    name = kw.pop("project_name") or dbtproject.project_info(dbt).name
    state = spill_dir(kw, dbt)
    gateway = gateway_config(kw)
    if gateway is None:
        raise UsageError("give --gateway URL (or DBT_PROM_GATEWAY): the Pushgateway to remove the group from")
    if not name:
        raise UsageError(f"no dbt_project.yml in {dbt.project_dir}: give --project NAME or --project-dir")
    target = dbtproject.target_name(dbt)
    run = FreshnessRun(project=name, target=target, checks=(), generated_at=None, elapsed=None, success=True)
    sink = Pushgateway(gateway, state_dir=state)
    sink.delete(run)
    labels = ", ".join(f"{k}={v}" for k, v in sink.labels(run))
    click.echo(f"dbt-prom: removed job={gateway.job}, {labels} from {sink.client.display_url}", err=True)
