"""Every shipped ops config, checked by its real validator (promtool, amtool) or parsed and inspected."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import stack
from tests.conftest import requires

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
COMPOSE = OPS / "docker-compose.yml"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@requires("promtool")
def test_prometheus_config_is_valid() -> None:
    result = run("promtool", "check", "config", str(stack.PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_gateway_with_honor_labels() -> None:
    doc = load(stack.PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    gateway = jobs["pushgateway"]
    assert gateway["honor_labels"] is True
    assert gateway["static_configs"][0]["targets"] == [stack.COMPOSE_TARGETS["pushgateway"]]
    assert doc["rule_files"] == [stack.CONTAINER_RULES_DIR + "/*.yml"]
    am_targets = doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == [stack.COMPOSE_TARGETS["alertmanager"]]


@requires("promtool")
def test_rendered_local_config_is_valid_and_loads_the_shipped_rules(tmp_path: Path) -> None:
    ports = {"prometheus": 19090, "pushgateway": 19091, "alertmanager": 19093}
    doc = stack.render_prometheus(load(stack.PROMETHEUS_CONFIG), ports, stack.RULES_DIR, "1s", "1s")
    targets = [t for job in doc["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets and all(t.startswith("127.0.0.1:") for t in targets)
    assert doc["rule_files"] == [str(stack.RULES_DIR / "*.yml")]
    assert doc["global"]["scrape_interval"] == "1s"
    out = tmp_path / "prometheus.yml"
    stack.dump_yaml(doc, out, stack.PROMETHEUS_CONFIG)
    # promtool also checks every rule file the glob matches (the generated rules, when present).
    result = run("promtool", "check", "config", str(out))
    assert result.returncode == 0, result.stdout + result.stderr


@requires("promtool")
def test_shipped_rule_files_are_valid() -> None:
    files = sorted(stack.RULES_DIR.glob("*.yml"))
    if not files:
        pytest.skip("no generated rules in ops/prometheus/rules yet")
    result = run("promtool", "check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


@requires("amtool")
@pytest.mark.parametrize("rendered", [False, True], ids=["compose", "local"])
def test_alertmanager_config_is_valid(tmp_path: Path, rendered: bool) -> None:
    path = stack.ALERTMANAGER_CONFIG
    if rendered:
        path = tmp_path / "alertmanager.yml"
        stack.dump_yaml(
            stack.render_alertmanager(load(stack.ALERTMANAGER_CONFIG), stack.SECRETS_DIR),
            path,
            stack.ALERTMANAGER_CONFIG,
        )
        assert "/etc/alertmanager" not in path.read_text()
    result = run("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@requires("amtool")
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["team=finance", "severity=critical", "target=prod"], "oncall-webhook,finance-email-urgent"),
        (["team=finance", "severity=critical", "target=dev"], "finance-email-urgent"),
        (["team=finance", "severity=warning", "target=prod"], "finance-email"),
        (["team=platform", "severity=warning"], "platform-slack"),
        (["team=platform", "severity=critical"], "platform-slack-urgent"),
        (["team=commerce", "severity=critical"], "commerce-discord"),
        (["owner=commerce-data", "severity=warning"], "commerce-discord"),
        (["alertname=DbtFreshnessRunFailed", "severity=critical"], "data-platform"),
    ],
)
def test_alertmanager_routes_by_team_owner_and_severity(labels: list[str], receivers: str) -> None:
    result = run("amtool", "config", "routes", "test", f"--config.file={stack.ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers


def test_alertmanager_inhibits_warn_while_error_fires_for_the_same_source() -> None:
    doc = load(stack.ALERTMANAGER_CONFIG)
    rule = next(
        r for r in doc["inhibit_rules"] if r["target_matchers"] == ['alertname="DbtSourceFreshnessWarn"']
    )
    assert rule["source_matchers"] == ['alertname="DbtSourceFreshnessError"']
    assert set(rule["equal"]) == {"project", "target", "source_name", "table_name"}


def test_alertmanager_config_holds_no_secrets() -> None:
    text = stack.ALERTMANAGER_CONFIG.read_text()
    doc = load(stack.ALERTMANAGER_CONFIG)
    assert doc["global"]["smtp_auth_password_file"].startswith(stack.CONTAINER_SECRETS_DIR)
    assert doc["global"]["slack_api_url_file"].startswith(stack.CONTAINER_SECRETS_DIR)
    assert "smtp_auth_password:" not in text and "slack_api_url:" not in text
    urls = re.findall(r"https?://[^\s\"']+", text)
    assert all("example.com" in u or "REPLACE" in u for u in urls), urls
    tracked = (OPS / "alertmanager" / "secrets" / ".gitignore").read_text().split()
    assert tracked[-3:] == ["*", "!.gitignore", "!README.md"]


# --- docker compose (no Docker here: parse it and check what compose would do) -----------------

IMAGES = {
    "pushgateway": "prom/pushgateway",
    "prometheus": "prom/prometheus",
    "alertmanager": "prom/alertmanager",
    "grafana": "grafana/grafana",
}


def compose() -> dict[str, Any]:
    doc = load(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def test_compose_has_the_four_services_with_pinned_images() -> None:
    services = compose()["services"]
    assert set(services) == set(IMAGES)
    for name, repo in IMAGES.items():
        image = services[name]["image"]
        name_part, _, tag = image.partition(":")
        assert name_part == repo
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"


def test_compose_publishes_ports_on_loopback_only() -> None:
    expected = {"pushgateway": 9091, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
    for name, service in compose()["services"].items():
        ports = service["ports"]
        assert ports == [f"127.0.0.1:{expected[name]}:{expected[name]}"], name


def test_compose_mounts_the_validated_configs() -> None:
    services = compose()["services"]
    named = set(compose()["volumes"])
    mounts: dict[str, str] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            if source in named:
                continue
            host = (OPS / source).resolve()
            # The rules directory is produced by `dbt-prom rules`; every other mount is shipped.
            assert host.exists() or host == stack.RULES_DIR, f"{name}: {source} does not exist"
            assert mode == ["ro"], f"{name}: config mount {source} should be read-only"
            mounts[target] = str(host.relative_to(ROOT))
    assert mounts["/etc/prometheus/prometheus.yml"] == "ops/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/rules"] == "ops/prometheus/rules"
    assert mounts["/etc/alertmanager/alertmanager.yml"] == "ops/alertmanager/alertmanager.yml"
    assert mounts["/etc/alertmanager/secrets"] == "ops/alertmanager/secrets"
    assert mounts["/etc/grafana/provisioning"] == "ops/grafana/provisioning"
    assert mounts["/var/lib/grafana/dashboards/dbt-prom"] == "ops/grafana/dashboards"
    command = services["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command


def test_compose_grafana_provisioning() -> None:
    datasources = load(OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert [(d["type"], d["uid"], d["url"]) for d in datasources] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    providers = load(OPS / "grafana" / "provisioning" / "dashboards" / "dbt-prom.yml")["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/dbt-prom"
    home = compose()["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    dashboard = OPS / "grafana" / "dashboards" / Path(home).name
    if not dashboard.exists():
        pytest.skip("dashboard not generated yet (make dashboard)")
    doc = json.loads(dashboard.read_text())
    assert doc["uid"] and doc["panels"]
