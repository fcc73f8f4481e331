"""``make demo``: the whole loop on one machine, from a stale table to an alert held by Alertmanager.

1. start an embedded PostgreSQL (devtools/pg.py) and the local monitoring stack (devtools/stack.py:
   Prometheus, Pushgateway, Alertmanager on 127.0.0.1 with the ops/ configs, 1 s intervals);
2. seed the sample project's source tables relative to now (devtools/seed.py);
3. generate the alert rules (``dbt-prom rules``, short ``--for`` for the demo) and the Grafana
   dashboard (``dbt-prom dashboard``) from the sample project, and load the rules;
4. ``dbt-prom push`` the freshness of every source;
5. make ``finance.transactions`` stale past its error_after (``devtools.seed --stale``) and push again;
6. wait until Prometheus shows ``DbtSourceFreshnessError`` firing for it and Alertmanager holds it;
7. business calendars: ``partners.shipments`` and ``partners.invoices`` hold data of the same age
   (the seed moves their data's clock back 12 business hours, across a night or a weekend); the
   first has no calendar and fires, the second counts only US business hours and stays quiet;
8. print what happened and where to look.

Everything lives in ``.run/demo`` (``--dir``); ``make demo-down`` stops the servers and removes it.
Pieces another part of the project provides are checked first, so a missing one is reported in
one line (what is missing, what still ran) instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devtools import servers, stack

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "dbt_project"
DEFAULT_DIR = Path(".run") / "demo"
STALE = "finance.transactions"
#: Same thresholds, same data age; only the first has a business calendar (calendar_sources.yml).
CALENDAR_QUIET = "partners.invoices"
CALENDAR_LATE = "partners.shipments"
ALERT = "DbtSourceFreshnessError"
WARN_ALERT = "DbtSourceFreshnessWarn"
META = ("--meta-label", "owner", "--meta-label", "team")
BIN = Path(sys.executable).parent


class DemoError(Exception):
    """A step failed; the message says which and what to do."""


class Steps:
    """Prints numbered, timed steps."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)

    def note(self, text: str) -> None:
        print(f"          {text}", flush=True)


def dbt_prom(
    args: Sequence[str], env: Mapping[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dbt-prom`` console script (as a user would)."""
    result = subprocess.run(
        [str(BIN / "dbt-prom"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if check and result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise DemoError(f"`dbt-prom {' '.join(args[:1])}` exited {result.returncode}:\n{tail}")
    return result


def available_commands() -> set[str]:
    from dbt_prom_bridge.cli import COMMANDS

    return set(COMMANDS)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    return servers.wait_for(what, probe, timeout, error=DemoError)


def firing_in_prometheus(
    prometheus: str, source: str, table: str, alertname: str = ALERT
) -> dict[str, Any] | None:
    wanted = (alertname, source, table)
    for alert in get_json(prometheus + "/api/v1/alerts")["data"]["alerts"]:
        labels = alert["labels"]
        found = (labels.get("alertname"), labels.get("source_name"), labels.get("table_name"))
        if found == wanted and alert["state"] == "firing":
            return dict(alert)
    return None


def held_by_alertmanager(
    alertmanager: str, source: str, table: str, alertname: str = ALERT
) -> dict[str, Any] | None:
    query = urllib.parse.urlencode(
        {"filter": [f'alertname="{alertname}"', f'source_name="{source}"', f'table_name="{table}"']},
        doseq=True,
    )
    alerts = get_json(f"{alertmanager}/api/v2/alerts?{query}")
    return dict(alerts[0]) if alerts else None


def inhibited_warning(alertmanager: str, source: str, table: str) -> bool:
    """True once Alertmanager holds the source's warn_after alert as suppressed (inhibited)."""
    warn = held_by_alertmanager(alertmanager, source, table, WARN_ALERT)
    return bool(warn and warn["status"]["state"] == "suppressed")


def demo(workdir: Path, timeout: float, project: Path = PROJECT) -> int:
    steps = Steps()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    commands = available_commands()
    missing: list[str] = []

    steps.say("starting an embedded PostgreSQL")
    try:
        from devtools import pg, seed
    except ImportError as exc:
        raise DemoError(f"the sample database helpers are missing ({exc}); nothing to demo yet") from None
    postgres = pg.up(workdir / "pg")
    env = {**os.environ, **postgres.env()}
    env.pop("DBT_PROM_GATEWAY", None)
    steps.note(f"socket {postgres.socket_dir}, 127.0.0.1:{postgres.port}")

    steps.say("starting Prometheus, Pushgateway and Alertmanager on 127.0.0.1 (ops/ configs)")
    rules_dir = workdir / "rules"
    state, _ = stack.up(workdir / "stack", rules_dir, stack.DEFAULT_PORTS, "1s", "1s")
    urls = state.urls
    for name, url in urls.items():
        steps.note(f"{name:<13} {url}")

    steps.say("seeding the sample project's source tables relative to now")
    conn = seed.connect(postgres.env())
    try:
        seed.seed(conn)
    finally:
        conn.close()

    project_args = ["--project-dir", str(project), "--profiles-dir", str(project)]
    rules_file = rules_dir / "dbt_freshness.yml"
    if "rules" in commands:
        steps.say("generating alert rules from the dbt thresholds (dbt-prom rules) and loading them")
        dbt_prom(["rules", *project_args, *META, "--for", "5s", "--out", str(rules_file)], env)
        stack.reload_prometheus(state)
        groups = get_json(urls["prometheus"] + "/api/v1/rules")["data"]["groups"]
        count = sum(len(g["rules"]) for g in groups)
        steps.note(f"{rules_file} ({count} rules loaded by Prometheus)")
    else:
        missing.append("`dbt-prom rules` (alert rules) is not in this build yet: no alert can fire")
        steps.say("SKIPPED alert rules: `dbt-prom rules` is not available in this build yet")

    steps.say("generating the Grafana dashboard (dbt-prom dashboard)")
    dashboard = workdir / "dbt-freshness.json"
    dbt_prom(["dashboard", *project_args, *META, "--out", str(dashboard)], env)
    steps.note(f"{dashboard} (import it in Grafana, or `cd ops && docker compose up`)")

    push = ["push", *project_args, *META, "--gateway", urls["pushgateway"]]
    steps.say("dbt-prom push: dbt source freshness in-process, metrics to the Pushgateway")
    result = dbt_prom(push, env)
    steps.note(result.stderr.strip().splitlines()[-1])

    source, table = STALE.split(".")
    steps.say(f"making {STALE} stale past its error_after (5 days), then pushing again")
    conn = seed.connect(postgres.env())
    try:
        seed.make_stale(conn, [STALE])
    finally:
        conn.close()
    result = dbt_prom([*push, "--fail-on", "error"], env, check=False)
    if result.returncode not in (0, 1):
        raise DemoError(f"the second push failed (exit {result.returncode}): {result.stderr.strip()[-300:]}")
    line = next((ln for ln in result.stderr.splitlines() if ln.startswith(STALE)), "")
    steps.note(f"dbt now says: {' '.join(line.split())}")

    if "rules" in commands:
        steps.say(f"waiting for Prometheus to fire {ALERT} for {STALE}")
        alert = wait_for(
            "the alert in Prometheus",
            lambda: firing_in_prometheus(urls["prometheus"], source, table),
            timeout,
        )
        steps.say("waiting for Alertmanager to hold it")
        held = wait_for(
            "the alert in Alertmanager",
            lambda: held_by_alertmanager(urls["alertmanager"], source, table),
            timeout,
        )
        try:
            wait_for("the inhibition", lambda: inhibited_warning(urls["alertmanager"], source, table), 30)
            inhibition = f"{WARN_ALERT} for the same source is suppressed (inhibit_rules)"
        except DemoError:
            inhibition = f"{WARN_ALERT} for the same source not seen as suppressed within 30s"
        quiet, late = calendar_step(steps, urls["prometheus"], timeout)
        labels = held["labels"]
        receivers = ", ".join(r["name"] for r in held.get("receivers", []))
        print()
        print(f"Done in {steps.elapsed():.0f}s. What happened:")
        print(f"  source    {STALE} (owner {labels.get('owner', '?')}, team {labels.get('team', '?')})")
        print(
            f"  alert     {ALERT}, severity {labels.get('severity', '?')}, active since {alert['activeAt']}"
        )
        print(f"  summary   {held['annotations'].get('summary', '')}")
        if held["annotations"].get("runbook_url"):
            print(f"  runbook   {held['annotations']['runbook_url']}")
        print(f"  routed to {receivers or '?'} (ops/alertmanager/alertmanager.yml; placeholder receivers)")
        print(f"  inhibits  {inhibition}")
        print(f"  calendar  {late}")
        print(f"            {quiet}")
    else:
        print()
        print(f"Done in {steps.elapsed():.0f}s, without the alert step:")
        for reason in missing:
            print(f"  - {reason}")
    print()
    print("Look at:")
    print(f"  Prometheus alerts  {urls['prometheus']}/alerts")
    print(
        f"  Prometheus graph   {urls['prometheus']}/graph?g0.expr="
        + urllib.parse.quote("time() - dbt_source_max_loaded_at_timestamp_seconds")
    )
    print(f"  Pushgateway        {urls['pushgateway']}")
    print(f"  Alertmanager       {urls['alertmanager']}/#/alerts")
    print(f"  The table again    dbt-prom status --project-dir {project} --profiles-dir {project}")
    print("Stop everything with `make demo-down`.")
    return 0 if not missing else 3


def pushed(prometheus: str, metric: str, key: str) -> float | None:
    """The value Prometheus holds for ``metric`` of source ``key`` (``source.table``)."""
    source, table = key.split(".")
    query = urllib.parse.urlencode({"query": f'{metric}{{source_name="{source}",table_name="{table}"}}'})
    result = get_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def calendar_step(steps: Steps, prometheus: str, timeout: float) -> tuple[str, str]:
    """The same stale data with and without a business calendar: one alert, one quiet source."""
    from dbt_prom_bridge.calendar import parse_calendar
    from devtools.seed import PARTNER_CALENDAR

    calendar = parse_calendar(PARTNER_CALENDAR, CALENDAR_QUIET)
    source, table = CALENDAR_LATE.split(".")
    steps.say(f"business calendar: waiting for {ALERT} on {CALENDAR_LATE} (no calendar)")
    wait_for("the alert in Prometheus", lambda: firing_in_prometheus(prometheus, source, table), timeout)
    source, table = CALENDAR_QUIET.split(".")
    for alertname in (WARN_ALERT, ALERT):
        if firing_in_prometheus(prometheus, source, table, alertname):
            raise DemoError(
                f"{alertname} fired for {CALENDAR_QUIET} although its business calendar is on time"
            )
    loaded = pushed(prometheus, "dbt_source_max_loaded_at_timestamp_seconds", CALENDAR_QUIET) or 0.0
    warn = pushed(prometheus, "dbt_source_freshness_warn_deadline_timestamp_seconds", CALENDAR_QUIET)
    error = pushed(prometheus, "dbt_source_freshness_error_deadline_timestamp_seconds", CALENDAR_QUIET)
    age = (time.time() - loaded) / 3600
    late = f"{CALENDAR_LATE:<19} no calendar, data {age:.0f}h old: {ALERT} firing"
    when = [calendar.local_text(value) if value else "?" for value in (warn, error)]
    quiet = (
        f"{CALENDAR_QUIET:<19} same data, calendar {calendar.describe()}: quiet; "
        f"warn at {when[0]}, error at {when[1]}"
    )
    steps.note(late)
    steps.note(quiet)
    return quiet, late


def down(workdir: Path) -> None:
    workdir = workdir.resolve()
    stopped = stack.down(workdir / "stack")
    print(f"demo: stack stopped ({', '.join(stopped) or 'was not running'})", file=sys.stderr)
    pg_dir = workdir / "pg"
    if (pg_dir / "state.json").exists():
        from devtools import pg

        pg.instance(pg_dir).stop()
        print("demo: PostgreSQL stopped", file=sys.stderr)
    if workdir.exists():
        shutil.rmtree(workdir)
    print(f"demo: removed {workdir}", file=sys.stderr)


def _helper_errors() -> tuple[type[Exception], ...]:
    """The one-line errors of the database helpers (when they are installed)."""
    try:
        from devtools.pg import PgError
        from devtools.seed import SeedError
    except ImportError:
        return ()
    return (PgError, SeedError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="demo state (default .run/demo)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each alert step")
    parser.add_argument("--project", type=Path, default=PROJECT, help="dbt project (default: dbt_project/)")
    args = parser.parse_args(argv)
    if args.action == "down":
        down(args.dir)
        return 0
    expected: tuple[type[Exception], ...] = (DemoError, stack.StackError, *_helper_errors())
    try:
        return demo(args.dir, args.timeout, args.project.resolve())
    except expected as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        print("demo: `make demo-down` cleans up what was started", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
