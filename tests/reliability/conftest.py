"""Fixtures of the reliability tests: Pushgateways a test may stop, kill and restart, and
Pushgateways behind basic auth and (mutual) TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import servers
from tests.reliability.support import GatewayFactory, Pki, make_pki, start_auth_gateway


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start Pushgateways owned by one test (``port=`` restarts one on the same address);
    all are stopped when the test ends."""
    started: list[servers.Server] = []

    def start(port: int | None = None, **kw: object) -> servers.Server:
        workdir = tmp_path / f"gateway-{len(started)}"
        server = servers.start_pushgateway(workdir, port=port, **kw)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_gateway(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """Basic auth over TLS (server certificate only)."""
    server = start_auth_gateway(tmp_path_factory.mktemp("tls-gw"), pki, mutual=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mtls_gateway(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    """Basic auth over mutual TLS (a client certificate signed by the CA is required)."""
    server = start_auth_gateway(tmp_path_factory.mktemp("mtls-gw"), pki, mutual=True)
    yield server
    server.stop()
