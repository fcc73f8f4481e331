"""Generated alerts end to end, all real: a dbt run of the sample project on PostgreSQL, `dbt-prom
push` to a Pushgateway, Prometheus evaluating the rules `dbt-prom rules` generated from the same
project, Alertmanager (with the shipped inhibition rules) delivering to a webhook receiver here.

A second Prometheus scrapes the same gateway with the dynamic-mode rules: both must fire the same
alerts. A push the gateway rejects fires DbtFreshnessPushFailing. Then nothing pushes any more,
and DbtFreshnessBridgeStale must fire.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from dbt_prom_bridge import rules
from devtools import servers
from tests.conftest import requires
from tests.fixtures_dbt import PROJECT, TARGET, DbtProjectEnv, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, requires("prometheus", "promtool")]

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ALERTMANAGER = ROOT / "ops" / "alertmanager" / "alertmanager.yml"
META = ["--meta-label", "owner", "--meta-label", "team"]
FOR = "2s"
STALE_AFTER = 45.0
T = TypeVar("T")
#: "loaded 2d 0h 6m 0s ago": the age part of a description.
AGE = re.compile(r"(?<=loaded )[^,]*? ago")


@dataclass
class Webhook:
    """An Alertmanager webhook receiver: every alert notification, as received."""

    server: ThreadingHTTPServer
    alerts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.alerts)

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        return [
            a for a in self.received() if a["status"] == "firing" and a["labels"]["alertname"] == alertname
        ]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    holder: list[Webhook] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with holder[0].lock:
                holder[0].alerts.extend(body["alerts"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((servers.LOOPBACK, 0), Handler)
    holder.append(Webhook(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


def alertmanager_config(webhook: Webhook) -> dict[str, Any]:
    shipped = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    return {
        "route": {
            "receiver": "test",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        # The shipped inhibitions: Error silences Warn of the same source, RunFailed silences NotRun.
        "inhibit_rules": shipped["inhibit_rules"],
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}],
    }


def prometheus_config(
    rule_file: Path, gateway: servers.Server, alertmanager: servers.Server | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"{servers.LOOPBACK}:{gateway.port}"]}],
            }
        ],
    }
    if alertmanager is not None:
        doc["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"{servers.LOOPBACK}:{alertmanager.port}"]}]}]
        }
    return doc


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, *logs: servers.Server) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    tails = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in logs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def firing_in(prometheus: servers.Server) -> dict[frozenset[tuple[str, str]], dict[str, str]]:
    """Prometheus's firing alerts: labels -> annotations."""
    with urllib.request.urlopen(prometheus.url + "/api/v1/alerts", timeout=10) as resp:
        alerts = json.load(resp)["data"]["alerts"]
    return {frozenset(a["labels"].items()): a["annotations"] for a in alerts if a["state"] == "firing"}


def source_of(alert: dict[str, Any]) -> str:
    labels = alert["labels"]
    return f"{labels.get('source_name')}.{labels.get('table_name')}"


def test_generated_rules_fire_through_prometheus_and_alertmanager(
    sample_project: DbtProjectEnv,
    pushgateway: servers.Server,
    webhook: Webhook,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project_args = sample_project.cli_args()
    # 1. Rules from the project itself (parsed in-process), both modes.
    files = {}
    for mode in rules.Mode:
        files[mode] = tmp_path / "rules" / mode.value / "dbt_freshness.yml"
        code, _, err = run_cli(
            [
                "rules",
                *project_args,
                *META,
                "--mode",
                mode.value,
                "--for",
                FOR,
                "--stale-after",
                "45s",
                "--out",
                str(files[mode]),
            ],
            capsys,
        )
        assert code == 0, err

    alertmanager = servers.start_alertmanager(
        tmp_path / "am", write_yaml(tmp_path / "am" / "alertmanager.yml", alertmanager_config(webhook))
    )
    started = [alertmanager]
    try:
        per_source = servers.start_prometheus(
            tmp_path / "prom-per-source",
            write_yaml(
                tmp_path / "prom-per-source" / "prometheus.yml",
                prometheus_config(files[rules.Mode.PER_SOURCE], pushgateway, alertmanager),
            ),
        )
        started.append(per_source)
        dynamic = servers.start_prometheus(
            tmp_path / "prom-dynamic",
            write_yaml(
                tmp_path / "prom-dynamic" / "prometheus.yml",
                prometheus_config(files[rules.Mode.DYNAMIC], pushgateway, None),
            ),
        )
        started.append(dynamic)
        logs = (per_source, dynamic, alertmanager)

        # 2. A real dbt source freshness run, pushed once. Seeded: finance.ml_features is 6 days
        # old (past its error_after of 5 days), finance.transactions is fresh, orders.order_items
        # is empty, orders.refunds fails (missing column).
        code, _, err = run_cli(["push", "--gateway", pushgateway.url, *META, *project_args], capsys)
        pushed_at = time.time()
        assert code == 0, err

        # 3. Alertmanager delivers the source alerts to the webhook.
        wanted = {
            (rules.ERROR, "finance.ml_features"),
            (rules.NO_DATA, "orders.order_items"),
            (rules.RUNTIME_ERROR, "orders.refunds"),
            (rules.WARN, "finance.transaction_labels"),
            (rules.WARN, "events.clicks"),
        }

        def delivered() -> bool:
            got = {
                (a["labels"]["alertname"], source_of(a))
                for a in webhook.received()
                if a["status"] == "firing"
            }
            return wanted <= got

        wait_for("the source alerts at the webhook", delivered, 60, *logs)
        delivered_at = time.time()

        error = next(a for a in webhook.firing(rules.ERROR) if source_of(a) == "finance.ml_features")
        assert error["labels"]["severity"] == "critical"
        assert error["labels"]["owner"] == "finance-data" and error["labels"]["team"] == "finance"
        assert error["labels"]["project"] == PROJECT and error["labels"]["target"] == TARGET
        assert error["annotations"]["runbook_url"] == "https://runbooks.example.com/feature-store"
        assert (
            error["annotations"]["summary"] == "dbt source finance.ml_features is older than its error_after"
        )
        assert "more than its dbt error_after of 5d 0h 0m 0s" in error["annotations"]["description"]
        assert "was loaded 6d " in error["annotations"]["description"]

        no_data = next(a for a in webhook.firing(rules.NO_DATA) if source_of(a) == "orders.order_items")
        assert no_data["labels"]["severity"] == "critical"
        assert no_data["labels"]["owner"] == "commerce-data"
        runtime = next(a for a in webhook.firing(rules.RUNTIME_ERROR) if source_of(a) == "orders.refunds")
        assert runtime["labels"]["severity"] == "critical" and runtime["labels"]["status"] == "runtime_error"
        warn = next(a for a in webhook.firing(rules.WARN) if source_of(a) == "events.clicks")
        assert warn["labels"]["severity"] == "warning"
        assert warn["annotations"]["runbook_url"] == "https://runbooks.example.com/event-pipeline"

        # 4. Both modes fire the same alerts (labels, summaries, descriptions) on the same data.
        def same_alerts() -> dict[frozenset[tuple[str, str]], dict[str, str]] | None:
            a, b = firing_in(per_source), firing_in(dynamic)
            return a if a and a.keys() == b.keys() else None

        agreed = wait_for("per-source and dynamic Prometheus to agree", same_alerts, 30, *logs)
        in_dynamic = firing_in(dynamic)
        for labels, notes in agreed.items():
            if labels in in_dynamic:
                # the two servers evaluate a moment apart: the age in the text may differ by a second
                for key in ("summary", "description"):
                    assert AGE.sub("<age>", notes[key]) == AGE.sub("<age>", in_dynamic[labels][key]), dict(
                        labels
                    )
        names = {dict(labels)["alertname"] for labels in agreed}
        assert {rules.ERROR, rules.WARN, rules.NO_DATA, rules.RUNTIME_ERROR} <= names

        # 5. A push the gateway rejects (a metric whose type differs from the same name in another
        # group) leaves our group's metrics in place and sets its push_failure_time_seconds.
        def post(url: str, kind: str) -> int:
            body = f"# TYPE dbt_prom_conflict {kind}\ndbt_prom_conflict 1\n".encode()
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, data=body, method="POST"), timeout=10
                ) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(f"{pushgateway.url}/metrics/job/conflicting_pusher", "counter") == 200
        ours = f"{pushgateway.url}/metrics/job/dbt_source_freshness/project/{PROJECT}/target/{TARGET}"
        assert post(ours, "gauge") == 400
        failing = wait_for(
            "DbtFreshnessPushFailing at the webhook", lambda: webhook.firing(rules.PUSH_FAILING), 60, *logs
        )[0]
        assert (
            failing["labels"]["severity"] == "warning" and failing["labels"]["job"] == "dbt_source_freshness"
        )
        assert (failing["labels"]["project"], failing["labels"]["target"]) == (PROJECT, TARGET)

        # 6. Pushes have stopped: the bridge goes stale after --stale-after, and not before.
        assert not webhook.firing(rules.BRIDGE_STALE), "the run is younger than --stale-after"
        assert delivered_at - pushed_at < STALE_AFTER
        stale = wait_for(
            "DbtFreshnessBridgeStale at the webhook", lambda: webhook.firing(rules.BRIDGE_STALE), 120, *logs
        )[0]
        assert stale["labels"]["severity"] == "critical" and stale["labels"]["project"] == PROJECT
        assert stale["labels"]["target"] == TARGET
        assert "more than --stale-after 45s" in stale["annotations"]["description"]

        # The fresh source never fired; the warning of a source past error_after was inhibited.
        received = webhook.received()
        assert not [a for a in received if source_of(a) == "finance.transactions"]
        assert not [a for a in received if source_of(a) in ("orders.orders", "events.page_views")]
        assert not [
            a
            for a in received
            if a["labels"]["alertname"] == rules.WARN and source_of(a) == "finance.ml_features"
        ], "Alertmanager inhibits the warning while the error fires"
        assert any(
            dict(labels)["alertname"] == rules.WARN and dict(labels)["table_name"] == "ml_features"
            for labels in firing_in(per_source)
        ), "Prometheus fires both; only the notification is inhibited"
    finally:
        for server in reversed(started):
            server.stop()
