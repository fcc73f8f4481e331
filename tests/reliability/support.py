"""Helpers of the reliability tests: known secrets, a PKI and web configs for TLS/auth
Pushgateways, and reading what ``dbt-prom`` printed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import trustme

from dbt_prom_bridge.config import HttpAuth, Secret
from dbt_prom_bridge.errors import PushError
from dbt_prom_bridge.sinks.http import HttpClient
from devtools import servers

GatewayFactory = Callable[..., servers.Server]

USER = "dbt-prom"
#: Known secrets: every test greps for them (and their encodings) in everything it can see.
PASSWORD = "c0rrect-H0rse:battery/staple@9"
TOKEN = "tok_4f9c2a7e1b3d"


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(base: Path) -> Pki:
    """A CA (plus an unrelated one), a server certificate for 127.0.0.1 and a client certificate."""
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("dbt-prom-client@example.org")
    out = Pki(
        ca=base / "ca.pem",
        other_ca=base / "other-ca.pem",
        server_cert=base / "server.pem",
        server_key=base / "server.key",
        client_cert=base / "client.pem",
        client_key=base / "client.key",
    )
    ca.cert_pem.write_to_path(str(out.ca))
    other.cert_pem.write_to_path(str(out.other_ca))
    server.cert_chain_pems[0].write_to_path(str(out.server_cert))
    server.private_key_pem.write_to_path(str(out.server_key))
    client.cert_chain_pems[0].write_to_path(str(out.client_cert))
    client.private_key_pem.write_to_path(str(out.client_key))
    return out


def web_config(path: Path, pki: Pki, mutual: bool) -> Path:
    """An exporter-toolkit web config (JSON is YAML), checked with ``promtool check web-config``."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    tls: dict[str, str] = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    if mutual:
        tls.update(client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca))
    path.write_text(json.dumps({"tls_server_config": tls, "basic_auth_users": {USER: hashed}}, indent=2))
    check = subprocess.run(["promtool", "check", "web-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return path


def auth(pki: Pki) -> HttpAuth:
    """Everything the mTLS gateway wants: basic auth, the CA and a client certificate."""
    return HttpAuth(
        username=USER,
        password=Secret(PASSWORD),
        ca_file=pki.ca,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
    )


def start_auth_gateway(base: Path, pki: Pki, mutual: bool) -> servers.Server:
    """A Pushgateway with basic auth over TLS (``mutual``: a client certificate is required)."""
    server = servers.start_pushgateway(base, web_config=web_config(base / "web.yml", pki, mutual), wait=False)
    # devtools' readiness probe has no client certificate: probe with everything here.
    client = HttpClient(server.url, auth(pki), retries=0, timeout=2)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.request("GET", "/-/ready")
            return server
        except PushError:
            if time.monotonic() > deadline or not server.alive():
                server.stop()
                raise
            time.sleep(0.1)


_REPLAY = re.compile(r"replay it with: (dbt-prom replay .*?)(?: \(|$)", re.MULTILINE)


def replay_argv(stderr: str) -> list[str]:
    """The ``dbt-prom replay ...`` command a failed push printed, as argv without ``dbt-prom``."""
    found = _REPLAY.search(stderr)
    assert found, f"no replay command in:\n{stderr}"
    return shlex.split(found.group(1))[1:]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dbt-prom: error:")]
