"""Authentication and TLS against a real Pushgateway started with ``--web.config.file``:
bcrypt basic auth, TLS with a CA this test creates (trustme), mutual TLS with a client
certificate, credentials in the URL; bearer tokens against a loopback server (the Pushgateway's
web config, exporter-toolkit, has no bearer-token authentication)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dbt_prom_bridge.sinks.http import HttpClient
from devtools import servers
from tests.conftest import requires
from tests.fixtures_dbt import run_cli
from tests.reliability.loopback import Loopback, Reply, Seen
from tests.reliability.runs import write_artifacts
from tests.reliability.support import PASSWORD, TOKEN, USER, Pki, auth, error_lines

pytestmark = [pytest.mark.e2e, requires("promtool", "prometheus-pushgateway")]


def group_labels(server: servers.Server, pki: Pki) -> list[dict[str, str]]:
    client = HttpClient(server.url, auth(pki))
    data = json.loads(client.request("GET", "/api/v1/metrics").body)["data"]
    return [g["labels"] for g in data]


def wipe(server: servers.Server, pki: Pki) -> None:
    client = HttpClient(server.url, auth(pki))
    client.request("PUT", "/api/v1/admin/wipe")


def push_args(artifacts: Path, url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "push",
        "--no-run",
        "--artifacts-dir",
        str(artifacts),
        "--target",
        "dev",
        "--gateway",
        url,
        "--spill-dir",
        str(tmp_path / "spill"),
        "--retries",
        "0",
        *extra,
    ]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return write_artifacts(tmp_path / "art", time.time() - 30)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DBT_PROM_GATEWAY_PASSWORD", "DBT_PROM_GATEWAY_TOKEN", "DBT_PROM_GATEWAY_USER"):
        monkeypatch.delenv(name, raising=False)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text


def spill_texts(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in (tmp_path / "spill").glob("*.json")]


# -- basic auth + TLS ------------------------------------------------------------------------


def test_basic_auth_over_tls_with_a_custom_ca(
    tls_gateway: servers.Server,
    pki: Pki,
    artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert tls_gateway.url.startswith("https://")
    wipe(tls_gateway, pki)
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", PASSWORD)
    args = push_args(
        artifacts, tls_gateway.url, tmp_path, "--gateway-user", USER, "--gateway-ca", str(pki.ca)
    )
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert {"job": "dbt_source_freshness", "project": "dbt_prom_demo", "target": "dev"} in group_labels(
        tls_gateway, pki
    )
    assert_no_secret(out, err)


def test_password_from_a_file(
    tls_gateway: servers.Server, pki: Pki, artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wipe(tls_gateway, pki)
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n")
    args = push_args(
        artifacts,
        tls_gateway.url,
        tmp_path,
        "--gateway-user",
        USER,
        "--gateway-password-file",
        str(secret_file),
        "--gateway-ca",
        str(pki.ca),
    )
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert len(group_labels(tls_gateway, pki)) == 1
    assert_no_secret(out, err)


def test_credentials_in_the_url(
    tls_gateway: servers.Server, pki: Pki, artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wipe(tls_gateway, pki)
    url = tls_gateway.url.replace("https://", f"https://{USER}:{PASSWORD}@")  # deliberately not encoded
    code, out, err = run_cli(push_args(artifacts, url, tmp_path, "--gateway-ca", str(pki.ca)), capsys)
    assert code == 0, err
    assert f"to {tls_gateway.url}/metrics/job/" in err
    assert_no_secret(out, err)


def test_wrong_password_is_an_auth_failure_without_the_secret(
    tls_gateway: servers.Server,
    pki: Pki,
    artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = PASSWORD[::-1]
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", wrong)
    args = push_args(
        artifacts,
        tls_gateway.url,
        tmp_path,
        "--gateway-user",
        USER,
        "--gateway-ca",
        str(pki.ca),
        "--retries",
        "3",
    )
    code, out, err = run_cli(args, capsys)
    assert code == 4
    [line] = error_lines(err)
    assert (
        f"authentication failed (HTTP 401) at {tls_gateway.url}; check the user name, password or token"
        in line
    )
    assert f"--gateway-user {USER} --gateway-ca {pki.ca}" in line  # the replay command repeats them
    for text in (out, err, *spill_texts(tmp_path)):
        assert wrong not in text and PASSWORD not in text
    assert len(spill_texts(tmp_path)) == 1


def test_missing_password_is_an_auth_failure(
    tls_gateway: servers.Server, pki: Pki, artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        push_args(artifacts, tls_gateway.url, tmp_path, "--gateway-ca", str(pki.ca)), capsys
    )
    assert code == 4 and "authentication failed (HTTP 401)" in err


@pytest.mark.parametrize("ca", ["other", "system"])
def test_an_untrusted_server_certificate_is_refused(
    tls_gateway: servers.Server,
    pki: Pki,
    artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ca: str,
) -> None:
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", PASSWORD)
    extra = ["--gateway-ca", str(pki.other_ca)] if ca == "other" else []
    args = push_args(artifacts, tls_gateway.url, tmp_path, "--gateway-user", USER, "--retries", "3", *extra)
    code, out, err = run_cli(args, capsys)
    assert code == 4
    [line] = error_lines(err)
    assert f"TLS handshake with {tls_gateway.url} failed" in line and "CERTIFICATE_VERIFY_FAILED" in line
    assert "check --gateway-ca" in line
    assert_no_secret(out, err, *spill_texts(tmp_path))


def test_plain_http_to_a_tls_gateway_fails_clearly(
    tls_gateway: servers.Server, artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = tls_gateway.url.replace("https://", "http://")
    code, _, err = run_cli(push_args(artifacts, url, tmp_path), capsys)
    assert code == 4
    [line] = error_lines(err)
    # Go answers "Client sent an HTTP request to an HTTPS server." and resets the connection,
    # so the body is usually lost: the message adds the likely fix.
    assert f"HTTP 400 from {url}" in line
    assert "give an https:// URL" in line or "HTTPS server" in line


# -- mutual TLS ------------------------------------------------------------------------------


def test_client_certificate(
    mtls_gateway: servers.Server,
    pki: Pki,
    artifacts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wipe(mtls_gateway, pki)
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", PASSWORD)
    tls = ["--gateway-user", USER, "--gateway-ca", str(pki.ca)]
    client = ["--gateway-cert", str(pki.client_cert), "--gateway-key", str(pki.client_key)]
    code, _, err = run_cli(push_args(artifacts, mtls_gateway.url, tmp_path, *tls, *client), capsys)
    assert code == 0, err
    assert len(group_labels(mtls_gateway, pki)) == 1

    code, out, err = run_cli(push_args(artifacts, mtls_gateway.url, tmp_path, *tls, "--force"), capsys)
    assert code == 4
    [line] = error_lines(err)
    assert f"{mtls_gateway.url}" in line and ("TLS" in line or "connection" in line), line
    assert_no_secret(out, err)


def test_a_key_without_a_certificate_is_a_usage_error(
    pki: Pki, artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        push_args(artifacts, "https://127.0.0.1:9", tmp_path, "--gateway-key", str(pki.client_key)), capsys
    )
    assert code == 2 and "--gateway-key needs --gateway-cert" in err


def test_an_unreadable_ca_is_refused_before_anything_runs(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("not a certificate")
    code, _, err = run_cli(
        push_args(artifacts, "https://127.0.0.1:9", tmp_path, "--gateway-ca", str(bad)), capsys
    )
    assert code == 2 and "cannot load the TLS CA/client certificate" in err
    assert not (tmp_path / "spill").exists()


# -- bearer token (loopback server: the Pushgateway has no bearer auth) -------------------------


def bearer_only(seen: Seen) -> Reply:
    if seen.headers.get("Authorization") == f"Bearer {TOKEN}":
        return Reply(202 if seen.method in ("PUT", "POST") else 200, b'{"status":"success","data":[]}')
    return Reply(401, b"Unauthorized\n" + seen.headers.get("Authorization", "").encode())


def test_bearer_token_from_env_and_from_file(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    with Loopback([bearer_only]) as srv:
        monkeypatch.setenv("DBT_PROM_GATEWAY_TOKEN", TOKEN)
        code, out, err = run_cli(push_args(artifacts, srv.url, tmp_path), capsys)
        assert code == 0, err
        monkeypatch.delenv("DBT_PROM_GATEWAY_TOKEN")
        code, out2, err2 = run_cli(
            push_args(artifacts, srv.url, tmp_path, "--gateway-token-file", str(token_file), "--force"),
            capsys,
        )
        assert code == 0, err2
        assert {s.headers["Authorization"] for s in srv.seen} == {f"Bearer {TOKEN}"}
        assert [s.method for s in srv.seen].count("PUT") == 2
    assert_no_secret(out, err, out2, err2)


def test_wrong_bearer_token(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = TOKEN.upper()
    monkeypatch.setenv("DBT_PROM_GATEWAY_TOKEN", wrong)
    with Loopback([bearer_only]) as srv:
        code, out, err = run_cli(push_args(artifacts, srv.url, tmp_path, "--retries", "2"), capsys)
    assert code == 4
    assert len(srv.seen) == 1  # the first request is refused, never retried
    assert "authentication failed (HTTP 401)" in err
    for text in (out, err, *spill_texts(tmp_path)):
        assert wrong not in text


def test_token_and_basic_auth_together_are_refused(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_PROM_GATEWAY_TOKEN", TOKEN)
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", PASSWORD)
    code, out, err = run_cli(
        push_args(artifacts, "http://127.0.0.1:9", tmp_path, "--gateway-user", USER), capsys
    )
    assert code == 2 and "not both" in err
    assert_no_secret(out, err)
