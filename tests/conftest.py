"""Shared fixtures: real servers on loopback, started once per session, wiped between tests."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools import servers

#: postgres / dbt_project_env / sample_project: real dbt on an embedded PostgreSQL.
pytest_plugins = ["tests.fixtures_dbt"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def requires(*binaries: str) -> pytest.MarkDecorator:
    missing = [b for b in binaries if shutil.which(b) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)} (make system-deps)")


@pytest.fixture(scope="session")
def pushgateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    yield server
    server.stop()


def wipe(server: servers.Server) -> None:
    req = urllib.request.Request(server.url + "/api/v1/admin/wipe", method="PUT")
    with urllib.request.urlopen(req, timeout=10):
        pass


@pytest.fixture
def pushgateway(
    pushgateway_server: servers.Server, tmp_path_factory: pytest.TempPathFactory
) -> servers.Server:
    """The session's Pushgateway, emptied for this test, as if no host had pushed to it: the state
    caches earlier tests left in spill dirs (the sample project's target dir, the repo's) would
    give the wiped gateway their sources back (see docs/state.md)."""
    if not pushgateway_server.alive():
        pytest.fail(f"pushgateway died:\n{pushgateway_server.log_tail()}")
    wipe(pushgateway_server)
    for base in (tmp_path_factory.getbasetemp(), ROOT / "target"):
        for state in base.glob("**/dbt-prom-spill/state"):
            shutil.rmtree(state, ignore_errors=True)
    return pushgateway_server


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` of every sample at ``url`` (e.g. a Pushgateway's /metrics)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return [
        (s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples
    ]


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []


needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")
