"""Debian's packaged Pushgateway persists to /var/lib/prometheus/pushgateway.data by default: every
Pushgateway this repository starts (test fixtures, benchmarks, the demo stack, docker compose) names
its own persistence file (or none), so nothing it pushes lands in, or is restored from, the
system's file."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import yaml

from devtools import servers, stack
from tests.reliability.support import GatewayFactory

DEBIAN_DEFAULT = "/var/lib/prometheus/pushgateway.data"
ROOT = Path(__file__).resolve().parents[2]


def flags(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url + "/api/v1/status", timeout=10) as resp:
        data = json.loads(resp.read())["data"]["flags"]
    assert isinstance(data, dict)
    return data


def test_test_and_bench_gateways_keep_nothing_on_disk(gateways: GatewayFactory, tmp_path: Path) -> None:
    plain = gateways()
    assert flags(plain.url)["persistence.file"] == ""
    persisted = gateways(persistence_file=tmp_path / "gw.db")
    assert flags(persisted.url)["persistence.file"] == str(tmp_path / "gw.db")


def test_the_demo_stack_and_compose_use_their_own_file(tmp_path: Path) -> None:
    argv = stack._argv("pushgateway", tmp_path, servers.free_port())
    (persistence,) = [a for a in argv if a.startswith("--persistence.file=")]
    assert persistence == f"--persistence.file={tmp_path / 'pushgateway.db'}"
    compose = yaml.safe_load((ROOT / "ops" / "docker-compose.yml").read_text())
    command = compose["services"]["pushgateway"]["command"]
    (persistence,) = [a for a in command if a.startswith("--persistence.file=")]
    assert DEBIAN_DEFAULT not in persistence and persistence.startswith("--persistence.file=/data/")
