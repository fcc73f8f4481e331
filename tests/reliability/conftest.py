"""Fixtures of the reliability tests: Pushgateways a test may stop, kill and restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools import servers

GatewayFactory = Callable[..., servers.Server]


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
