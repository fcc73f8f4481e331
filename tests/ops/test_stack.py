"""`make stack-up` / `make stack-down` for real: Debian's servers on loopback with the ops configs."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from devtools import servers, stack
from tests.conftest import requires

pytestmark = [pytest.mark.e2e, requires("prometheus", "prometheus-pushgateway", "prometheus-alertmanager")]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def post_json(url: str, body: Any) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


@pytest.fixture
def running_stack(tmp_path: Path):
    workdir = tmp_path / "stack"
    rules = tmp_path / "rules"
    preferred = {name: servers.free_port() for name in stack.ORDER}
    state, started = stack.up(workdir, rules, preferred, scrape_interval="1s", evaluation_interval="1s")
    assert started
    try:
        yield state
    finally:
        stack.down(workdir)


def test_up_is_idempotent_and_binds_loopback_only(running_stack: stack.Stack) -> None:
    workdir = Path(running_stack.dir)
    again, started = stack.up(workdir, Path(running_stack.rules_dir))
    assert not started
    assert again.pids == running_stack.pids and again.ports == running_stack.ports
    for name, pid in running_stack.pids.items():
        assert (workdir / f"{name}.pid").read_text().strip() == str(pid)
        listening = [
            c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == "LISTEN"
        ]
        assert listening, name
        assert all(addr.ip == "127.0.0.1" for addr in listening), (name, listening)
    rendered = (workdir / "prometheus.yml").read_text()
    assert "Rendered by devtools/stack.py from" in rendered


def test_pushed_metrics_reach_prometheus_with_pushed_labels(running_stack: stack.Stack) -> None:
    body = (
        b"# TYPE dbt_source_freshness_run_success gauge\n"
        b'dbt_source_freshness_run_success{project="p",target="t"} 1\n'
    )
    req = urllib.request.Request(
        running_stack.url("pushgateway") + "/metrics/job/dbt_source_freshness/project/p/target/t",
        data=body,
        method="PUT",
    )
    with urllib.request.urlopen(req, timeout=10):
        pass
    query = urllib.parse.quote("dbt_source_freshness_run_success")
    result = wait_for(
        lambda: get_json(f"{running_stack.url('prometheus')}/api/v1/query?query={query}")["data"]["result"]
    )
    labels = result[0]["metric"]
    # honor_labels: the pushed job label wins over the scrape job's name.
    assert labels["job"] == "dbt_source_freshness" and labels["project"] == "p"
    targets = get_json(running_stack.url("prometheus") + "/api/v1/alertmanagers")["data"][
        "activeAlertmanagers"
    ]
    assert [t["url"].split("/api")[0] for t in targets] == [running_stack.url("alertmanager")]


def test_alertmanager_inhibits_warn_while_error_fires(running_stack: stack.Stack) -> None:
    labels = {
        "project": "p",
        "target": "prod",
        "source_name": "finance",
        "table_name": "ml_features",
        "team": "finance",
    }
    other = {**labels, "table_name": "transactions"}
    post_json(
        running_stack.url("alertmanager") + "/api/v2/alerts",
        [
            {"labels": {**labels, "alertname": "DbtSourceFreshnessError", "severity": "critical"}},
            {"labels": {**labels, "alertname": "DbtSourceFreshnessWarn", "severity": "warning"}},
            {"labels": {**other, "alertname": "DbtSourceFreshnessWarn", "severity": "warning"}},
        ],
    )

    def states() -> dict[tuple[str, str], str] | None:
        # Alertmanager may list a new alert as active for a moment before its inhibition is
        # computed: wait until the warning of the erroring source has settled (or time out).
        alerts = get_json(running_stack.url("alertmanager") + "/api/v2/alerts")
        found = {(a["labels"]["alertname"], a["labels"]["table_name"]): a["status"]["state"] for a in alerts}
        settled = found.get(("DbtSourceFreshnessWarn", "ml_features")) == "suppressed"
        return found if len(found) == 3 and "unprocessed" not in found.values() and settled else None

    found = wait_for(states)
    assert found[("DbtSourceFreshnessError", "ml_features")] == "active"
    assert found[("DbtSourceFreshnessWarn", "ml_features")] == "suppressed"
    assert found[("DbtSourceFreshnessWarn", "transactions")] == "active", "other sources are not inhibited"


def test_reload_picks_up_new_rules(running_stack: stack.Stack) -> None:
    rules = Path(running_stack.rules_dir) / "extra.yml"
    rules.write_text("groups:\n  - name: extra\n    rules:\n      - record: x:one\n        expr: vector(1)\n")
    stack.reload_prometheus(running_stack)
    groups = get_json(running_stack.url("prometheus") + "/api/v1/rules")["data"]["groups"]
    assert [g["name"] for g in groups] == ["extra"]


def test_down_stops_everything_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    preferred = {name: servers.free_port() for name in stack.ORDER}
    state, _ = stack.up(workdir, tmp_path / "rules", preferred)
    pids = list(state.pids.values())
    stopped = stack.down(workdir)
    assert sorted(stopped) == sorted(stack.ORDER)
    assert not workdir.exists()
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids
    )
    assert stack.down(workdir) == [], "down is idempotent"


def test_busy_preferred_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        preferred = {
            "prometheus": taken,
            "pushgateway": servers.free_port(),
            "alertmanager": servers.free_port(),
        }
        ports = stack.choose_ports(preferred)
    assert ports["prometheus"] != taken
    assert ports["pushgateway"] == preferred["pushgateway"]


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    workdir.mkdir()
    import os

    # Our own pid is alive but is not a pushgateway started for this directory: never signalled.
    (workdir / "pushgateway.pid").write_text(f"{os.getpid()}\n")
    assert stack.down(workdir) == []
