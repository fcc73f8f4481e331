"""``dbt-prom serve``: exporter mode, for Prometheus to scrape instead of a push."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from dbt_prom_bridge.cli import EXIT_CODES_HELP, cloud_options
from dbt_prom_bridge.cli.options import (
    artifact_config,
    artifact_options,
    dbt_config,
    dbt_options,
    duration_option,
    meta_label_option,
    meta_labels,
)
from dbt_prom_bridge.config import RunOptions
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.serve import (
    DEFAULT_LISTEN,
    FRESHNESS_PATH_ENV,
    FRESHNESS_PATHS,
    Exporter,
    Refresher,
    parse_listen,
)


def log(line: str) -> None:
    click.echo(f"dbt-prom serve: {line}", err=True)


@click.command("serve", epilog=EXIT_CODES_HELP)
@dbt_options
@artifact_options
@cloud_options.cloud_options(run_flag=False)
@duration_option(
    "--interval",
    default="5m",
    envvar="DBT_PROM_INTERVAL",
    help="Run dbt source freshness (or re-read the artifacts with --no-run) this often.",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    envvar="DBT_PROM_LISTEN",
    metavar="HOST:PORT",
    help="Address to serve /metrics and /healthz on. 0.0.0.0 exposes it to the network: put "
    "authentication in front.  [env: DBT_PROM_LISTEN]",
)
@click.option(
    "--freshness-path",
    type=click.Choice(FRESHNESS_PATHS),
    default="batch",
    show_default=True,
    envvar=FRESHNESS_PATH_ENV,
    help="batch: after dbt's own first run, send dbt's freshness queries (compiled once per "
    "parse with dbt's collect_freshness macro) in one statement per refresh; sources that fail "
    "or use metadata-based freshness go through dbt's path. dbt: every refresh is a full "
    f"`dbt source freshness`.  [env: {FRESHNESS_PATH_ENV}]",
)
@meta_label_option
def command(**kw: Any) -> None:
    """Serve the freshness metrics for Prometheus to scrape.

    Runs `dbt source freshness` in-process now and every --interval, keeping dbt and the parsed
    manifest in memory between runs (or, with --no-run, re-reads the artifacts another job
    writes), and serves the same metrics as `push` on /metrics. /healthz answers 200 while the
    last refresh succeeded and is younger than 2 x --interval, else 503 with a JSON reason.
    When dbt cannot run, run_success drops to 0 and the last good per-source series stay.
    Stops cleanly on SIGTERM or Ctrl-C (after the refresh in progress).
    """
    cloud = cloud_options.cloud_config(kw)
    dbt = dbt_config(kw)
    art = artifact_config(kw)
    opts = RunOptions(meta_labels=meta_labels(kw))
    listen = parse_listen(kw["listen"])
    refresher: Callable[[], FreshnessRun] = Refresher(
        dbt, art, opts, on_event=None, freshness_path=kw["freshness_path"]
    )
    if cloud is not None:
        from dbt_prom_bridge.cloud import CloudRefresher

        refresher = CloudRefresher(cloud, dbt, art, opts, log=log)
    debug = bool((click.get_current_context().find_root().obj or {}).get("debug"))
    post = None
    if cloud is not None:

        def wake() -> None:  # the exporter exists by the time a webhook arrives
            exporter.wake.set()

        post = cloud_options.webhook_routes(cloud, refresher, wake, log)
    exporter = Exporter(refresher, kw["interval"], listen, log=log, debug=debug, post=post)
    host, port = exporter.address
    shown = f"[{host}]" if ":" in host else host
    mode = "re-reading artifacts" if art.no_run else "running dbt source freshness"
    if cloud is not None:
        mode = f"polling dbt Cloud job {cloud.job_id}"
    log(f"listening on http://{shown}:{port}/metrics ({mode} every {kw['interval']:g}s)")

    def stop(signum: int, _frame: FrameType | None) -> None:
        if exporter.stop.is_set():
            log("second signal: exiting now")
            sys.exit(128 + signum)
        log(f"{signal.Signals(signum).name}: stopping after the current refresh")
        exporter.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exporter.serve_forever()
    log("stopped")
