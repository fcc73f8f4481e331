"""``--dbt-cloud-*`` flags of ``push`` and ``serve``: read a dbt Cloud run instead of running dbt.

The flags become one :class:`~dbt_prom_bridge.cloud.CloudConfig` (the token only from
``DBT_CLOUD_API_TOKEN``, never a flag: flags show up in process lists and shell history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dbt_prom_bridge.cli.options import env_help
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import FreshnessRun

if TYPE_CHECKING:
    from dbt_prom_bridge.cloud import CloudConfig

F = TypeVar("F", bound=Callable[..., Any])

_NAMES = ("dbt_cloud_run", "dbt_cloud_job", "dbt_cloud_account", "dbt_cloud_host")


def cloud_options(run_flag: bool = True) -> Callable[[F], F]:
    """The ``--dbt-cloud-*`` options (``serve`` polls a job, so it has no ``--dbt-cloud-run``)."""

    def decorate(fn: F) -> F:
        options = [
            click.option(
                "--dbt-cloud-job",
                type=int,
                metavar="JOB_ID",
                help="Read the latest completed run of this dbt Cloud job instead of running dbt "
                "(token from DBT_CLOUD_API_TOKEN; see docs/dbt-cloud.md).",
            ),
            click.option(
                "--dbt-cloud-account",
                type=int,
                envvar="DBT_CLOUD_ACCOUNT_ID",
                metavar="ACCOUNT_ID",
                help=env_help("dbt Cloud account of the run or job.", "DBT_CLOUD_ACCOUNT_ID"),
            ),
            click.option(
                "--dbt-cloud-host",
                envvar="DBT_CLOUD_HOST",
                metavar="HOST",
                help=env_help(
                    "dbt Cloud access URL: cloud.getdbt.com (default), an account URL such as "
                    "ab123.us1.dbt.com, emea.dbt.com, au.dbt.com, or a single-tenant host.",
                    "DBT_CLOUD_HOST",
                ),
            ),
        ]
        if run_flag:
            options.insert(
                0,
                click.option(
                    "--dbt-cloud-run",
                    type=int,
                    metavar="RUN_ID",
                    help="Read this finished dbt Cloud run's artifacts instead of running dbt.",
                ),
            )
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def cloud_config(kw: dict[str, Any]) -> CloudConfig | None:
    """Pop the ``--dbt-cloud-*`` options; a :class:`CloudConfig` when a run or job is named, else
    None. With one, ``kw["no_run"]`` becomes True: nothing runs locally, artifacts are read."""
    values = {name: kw.pop(name, None) for name in _NAMES}
    if values["dbt_cloud_run"] is None and values["dbt_cloud_job"] is None:
        given = [f"--{n.replace('_', '-')}" for n in ("dbt_cloud_account",) if _typed(n)]
        if given:
            raise UsageError(f"{given[0]} needs --dbt-cloud-run RUN_ID or --dbt-cloud-job JOB_ID")
        return None
    from dbt_prom_bridge.cloud import DEFAULT_HOST, CloudConfig, base_url, token_from_env

    for name in ("dbt_cloud_run", "dbt_cloud_job", "dbt_cloud_account"):
        if values[name] is not None and values[name] <= 0:
            raise UsageError(
                f"--{name.replace('_', '-')} {values[name]} is not a dbt Cloud id (a positive number)"
            )
    if values["dbt_cloud_run"] is not None and values["dbt_cloud_job"] is not None:
        raise UsageError("give either --dbt-cloud-run or --dbt-cloud-job, not both")
    if values["dbt_cloud_account"] is None:
        raise UsageError(
            "reading dbt Cloud needs the account: pass --dbt-cloud-account (or DBT_CLOUD_ACCOUNT_ID)"
        )
    for flag in ("sources_json", "manifest", "artifacts_dir"):
        if kw.get(flag) is not None:
            raise UsageError(
                f"--{flag.replace('_', '-')} cannot be combined with dbt Cloud: the run's own "
                "artifacts are read"
            )
    if kw.get("projects") is not None:
        raise UsageError("--projects cannot be combined with dbt Cloud; push each project's job separately")
    host = values["dbt_cloud_host"] or DEFAULT_HOST
    base_url(host)
    kw["no_run"] = True
    return CloudConfig(
        account=values["dbt_cloud_account"],
        token=token_from_env(),
        host=host,
        run_id=values["dbt_cloud_run"],
        job_id=values["dbt_cloud_job"],
    )


def _typed(name: str) -> bool:
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def collect(config: CloudConfig, dbt: DbtOptions, art: ArtifactOptions, opts: RunOptions) -> FreshnessRun:
    """Fetch and read the Cloud run; say on stderr which run it is."""
    from dbt_prom_bridge.cloud import collect as cloud_collect

    run, freshness = cloud_collect(config, dbt, art, opts)
    where = f"dbt Cloud run {run.id}" + (f" of job {run.job_id}" if run.job_id is not None else "")
    finished = f", finished {run.finished_at}" if run.finished_at else ""
    click.echo(f"dbt-prom: read {where} ({run.status_name}{finished})", err=True)
    return freshness


def webhook_routes(
    config: CloudConfig,
    refresher: Callable[[], FreshnessRun],
    wake: Callable[[], None],
    log: Callable[[str], None],
) -> dict[str, Callable[[bytes, Mapping[str, str]], tuple[int, dict[str, Any]]]] | None:
    """``POST /webhook/dbt-cloud`` when ``DBT_CLOUD_WEBHOOK_SECRET`` is set: a verified
    ``job.run.completed`` event of the job refreshes at once."""
    import os

    from dbt_prom_bridge.cloud import CloudRefresher
    from dbt_prom_bridge.cloud_webhook import WEBHOOK_PATH, WEBHOOK_SECRET_ENV, WebhookReceiver
    from dbt_prom_bridge.config import Secret

    secret = os.environ.get(WEBHOOK_SECRET_ENV, "").strip()
    if not secret or config.job_id is None or not isinstance(refresher, CloudRefresher):
        return None
    cloud_refresher = refresher

    def on_run(run_id: int) -> None:
        log(f"webhook: run {run_id} of job {config.job_id} completed; refreshing now")
        cloud_refresher.hint(run_id)
        wake()

    log(f"accepting signed dbt Cloud webhooks on POST {WEBHOOK_PATH}")
    return {WEBHOOK_PATH: WebhookReceiver(Secret(secret), config.account, config.job_id, on_run)}
