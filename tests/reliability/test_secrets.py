"""Secrets never leak: every failing path runs as a real ``dbt-prom`` subprocess (with and without
``--debug``) holding known secrets, and stdout, stderr, every file it wrote (spill files, dbt's
logs and target dir) and the metrics the gateway holds are searched for each secret in every
encoding it could take (raw, percent-encoded, base64 of ``user:password`` and of the secret)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dbt_prom_bridge.sinks.http import HttpClient
from devtools import servers
from tests.reliability.loopback import Loopback, Reply, Seen
from tests.reliability.runs import write_artifacts
from tests.reliability.support import PASSWORD, TOKEN, USER, Pki, auth

pytestmark = pytest.mark.e2e

DBT_PROM = str(Path(sys.executable).parent / "dbt-prom")
WRONG_PASSWORD = "Wr0ng-pw/with@signs:" + "x" * 8
URL_PASSWORD = "Url-S3cret/p@ss:w0rd"
QUERY_KEY = "QkEy-7d1e9b2f"
PROFILE_PASSWORD = "PgPr0file-S3cret!"
ENV_SECRET = "DbtEnvS3cret-99f"
ALL_SECRETS = (PASSWORD, TOKEN, WRONG_PASSWORD, URL_PASSWORD, QUERY_KEY, PROFILE_PASSWORD, ENV_SECRET)


def forms(secret: str) -> set[str]:
    """Every way a secret could show up in text."""
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for user in (USER, "alice", "bob"):
        out.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    out.add(base64.b64encode(secret.encode()).decode())
    return out


@dataclass
class Env:
    """What one case runs against."""

    tmp: Path
    pki: Pki
    tls_gateway: servers.Server
    loopback: Loopback
    artifacts: Path
    spill: Path
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Env], list[str]]
    env: Callable[[Env], dict[str, str]]
    expect_code: int
    expect_text: str
    #: loopback behaviour for this case
    reply: Callable[[Seen], Reply] | None = None
    before: Callable[[Env], None] | None = None


def echo(status: int) -> Callable[[Seen], Reply]:
    return lambda seen: Reply(status, f"request echoed: {seen.path}".encode(), echo=True)


def push(env: Env, url: str, *extra: str) -> list[str]:
    return [
        "push",
        "--no-run",
        "--artifacts-dir",
        str(env.artifacts),
        "--target",
        "dev",
        "--gateway",
        url,
        "--spill-dir",
        str(env.spill),
        "--retries",
        "1",
        "--timeout",
        "2s",
        *extra,
    ]


def write(path: Path, text: str) -> None:
    path.write_text(text)


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def dead_url() -> str:
    return f"http://127.0.0.1:{servers.free_port()}"


def with_creds(url: str, user: str, password: str, encode: bool = True) -> str:
    pw = urllib.parse.quote(password, safe="") if encode else password
    return url.replace("://", f"://{user}:{pw}@", 1)


def dbt_project(env: Env) -> Path:
    """A dbt project whose profile holds passwords and points at a closed port."""
    project = env.tmp / "dbt"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: secret_proj\nversion: '1.0'\nprofile: secret_proj\nconfig-version: 2\n"
    )
    (project / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    loaded_at_field: loaded_at\n"
        "    freshness: {warn_after: {count: 1, period: hour}}\n    tables: [{name: events}]\n"
    )
    port = servers.free_port()
    (project / "profiles.yml").write_text(
        "secret_proj:\n  target: dev\n  outputs:\n"
        f"    dev: {{type: postgres, host: 127.0.0.1, port: {port}, user: alice, "
        f"password: '{PROFILE_PASSWORD}', dbname: db, schema: public, threads: 1, connect_timeout: 2}}\n"
        f"    envsecret: {{type: postgres, host: 127.0.0.1, port: {port}, user: alice, "
        "password: \"{{ env_var('DBT_ENV_SECRET_PG_PASSWORD') }}\", dbname: db, schema: public, threads: 1}\n"
    )
    return project


def dbt_push(env: Env, target: str, url: str) -> list[str]:
    project = dbt_project(env)
    return [
        "push",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target",
        target,
        "--gateway",
        url,
        "--spill-dir",
        str(env.spill),
        "--retries",
        "0",
    ]


def spill_for_tls_gateway(env: Env) -> None:
    """A run spilled for the TLS gateway (pushed with a wrong password), to replay."""
    run_dbt_prom(
        push(env, env.tls_gateway.url, "--gateway-user", USER, "--gateway-ca", str(env.pki.ca)),
        {"DBT_PROM_GATEWAY_PASSWORD": WRONG_PASSWORD},
    )
    assert list(env.spill.glob("*.json"))


CASES: tuple[Case, ...] = (
    Case(
        "wrong password, TLS gateway",
        lambda e: push(e, e.tls_gateway.url, "--gateway-user", USER, "--gateway-ca", str(e.pki.ca)),
        lambda e: {"DBT_PROM_GATEWAY_PASSWORD": WRONG_PASSWORD},
        4,
        "authentication failed (HTTP 401)",
    ),
    Case(
        "right password, wrong CA",
        lambda e: push(e, e.tls_gateway.url, "--gateway-user", USER, "--gateway-ca", str(e.pki.other_ca)),
        lambda e: {"DBT_PROM_GATEWAY_PASSWORD": PASSWORD},
        4,
        "TLS handshake",
    ),
    Case(
        "URL credentials (unencoded) in the URL, wrong CA",
        lambda e: push(
            e,
            with_creds(e.tls_gateway.url, USER, URL_PASSWORD, encode=False),
            "--gateway-ca",
            str(e.pki.other_ca),
        ),
        lambda e: {},
        4,
        "TLS handshake",
    ),
    Case(
        "500 echoing the request (basic auth header) back",
        lambda e: push(e, with_creds(e.loopback.url, "bob", URL_PASSWORD)),
        lambda e: {},
        4,
        "HTTP 500",
        reply=echo(500),
    ),
    Case(
        "400 echoing the request (bearer token) back",
        lambda e: push(e, e.loopback.url),
        lambda e: {"DBT_PROM_GATEWAY_TOKEN": TOKEN},
        4,
        "HTTP 400",
        reply=echo(400),
    ),
    Case(
        "401 echoing a token read from a file",
        lambda e: push(e, e.loopback.url, "--gateway-token-file", str(e.tmp / "token")),
        lambda e: {},
        4,
        "authentication failed (HTTP 401)",
        reply=echo(401),
        before=lambda e: write(e.tmp / "token", TOKEN + "\n"),
    ),
    Case(
        "password from a file, 503 echoing it",
        lambda e: push(
            e, e.loopback.url, "--gateway-user", USER, "--gateway-password-file", str(e.tmp / "pw")
        ),
        lambda e: {},
        4,
        "HTTP 503",
        reply=echo(503),
        before=lambda e: write(e.tmp / "pw", PASSWORD),
    ),
    Case(
        "API key in the query string, 500 echoing it",
        lambda e: push(e, e.loopback.url + f"/?api_key={QUERY_KEY}"),
        lambda e: {},
        4,
        "HTTP 500",
        reply=echo(500),
    ),
    Case(
        "API key in the query string, a 500 echoing that one parameter alone",
        lambda e: push(e, e.loopback.url + f"/?region=eu&api_key={QUERY_KEY}&v=2"),
        lambda e: {},
        4,
        "HTTP 500",
        reply=lambda seen: Reply(
            500, f"unknown api key {seen.path.split('api_key=')[1].split('&')[0]}".encode()
        ),
    ),
    Case(
        "API key in the query string, a 400 echoing it JSON-escaped (& as \\u0026)",
        lambda e: push(e, e.loopback.url + f"/?region=eu&api_key={QUERY_KEY}"),
        lambda e: {},
        4,
        "HTTP 400",
        reply=lambda seen: Reply(400, json.dumps({"request": seen.path}).replace("&", "\\u0026").encode()),
    ),
    Case(
        "a token file that is not UTF-8 text",
        lambda e: push(e, e.loopback.url, "--gateway-token-file", str(e.tmp / "token")),
        lambda e: {},
        2,
        "not UTF-8",
        before=lambda e: write_bytes(e.tmp / "token", TOKEN.encode() + b"\xff\n"),
    ),
    Case(
        "dead gateway, encoded URL credentials",
        lambda e: push(e, with_creds(dead_url(), "bob", URL_PASSWORD)),
        lambda e: {},
        4,
        "cannot reach",
    ),
    Case(
        "dead gateway, unencoded URL credentials with / and @",
        lambda e: push(e, with_creds(dead_url(), "bob", URL_PASSWORD, encode=False)),
        lambda e: {},
        4,
        "cannot reach",
    ),
    Case(
        "dbt cannot connect (password in profiles.yml), dead gateway with URL credentials",
        lambda e: dbt_push(e, "dev", with_creds(dead_url(), "bob", URL_PASSWORD)),
        lambda e: {},
        3,
        "dbt could not run",
    ),
    Case(
        "dbt cannot connect (DBT_ENV_SECRET_ password), token to a 500 echo",
        lambda e: dbt_push(e, "envsecret", e.loopback.url),
        lambda e: {"DBT_ENV_SECRET_PG_PASSWORD": ENV_SECRET, "DBT_PROM_GATEWAY_TOKEN": TOKEN},
        3,
        "dbt could not run",
        reply=echo(500),
    ),
    Case(
        "replay with a wrong password",
        lambda e: [
            "replay",
            "--spill-dir",
            str(e.spill),
            "--gateway",
            e.tls_gateway.url,
            "--gateway-user",
            USER,
            "--gateway-ca",
            str(e.pki.ca),
        ],
        lambda e: {"DBT_PROM_GATEWAY_PASSWORD": WRONG_PASSWORD},
        4,
        "authentication failed (HTTP 401)",
        before=spill_for_tls_gateway,
    ),
    Case(
        "replay --list of a spill dir holding runs spilled with credentials",
        lambda e: ["replay", "--list", "--format", "json", "--spill-dir", str(e.spill)],
        lambda e: {},
        0,
        "",
        before=spill_for_tls_gateway,
    ),
    Case(
        "a token with a line break (header injection)",
        lambda e: push(e, e.loopback.url),
        lambda e: {"DBT_PROM_GATEWAY_TOKEN": f"{TOKEN}\r\nX-Injected: {TOKEN}"},
        2,
        "line break",
    ),
    Case(
        "success with URL credentials and a client certificate (metrics must not carry them)",
        lambda e: push(
            e,
            with_creds(e.tls_gateway.url, USER, PASSWORD, encode=False),
            "--gateway-ca",
            str(e.pki.ca),
            "--format",
            "json",
        ),
        lambda e: {},
        0,
        "",
    ),
)


def run_dbt_prom(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_PROM_", "DBT_"))}
    return subprocess.run(
        [DBT_PROM, *argv], env={**clean, **env}, capture_output=True, text=True, timeout=300, check=False
    )


def files_under(root: Path) -> Iterator[tuple[Path, str]]:
    for path in root.rglob("*"):
        if (
            path.is_file()
            and path.name not in ("profiles.yml", "pw", "token")
            and path.suffix not in (".pem", ".key")
        ):
            yield path, path.read_bytes().decode("utf-8", "replace")


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    with Loopback([Reply(500)]) as srv:
        yield srv


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_secret_in_any_output_or_file(
    case: Case,
    debug: bool,
    pki: Pki,
    tls_gateway: servers.Server,
    loopback: Loopback,
    tmp_path: Path,
) -> None:
    HttpClient(tls_gateway.url, auth(pki)).request("PUT", "/api/v1/admin/wipe")
    env = Env(
        tmp_path,
        pki,
        tls_gateway,
        loopback,
        write_artifacts(tmp_path / "art", time.time() - 30),
        tmp_path / "spill",
    )
    if case.reply is not None:
        loopback.play(case.reply)
    if case.before is not None:
        case.before(env)
    argv = case.argv(env)
    proc = run_dbt_prom(["--debug", *argv] if debug else argv, case.env(env))
    assert proc.returncode == case.expect_code, proc.stderr
    assert case.expect_text in proc.stderr
    if debug and case.expect_code:
        assert "Traceback" in proc.stderr  # --debug does show the traceback, scrubbed
    if not debug:
        assert "Traceback" not in proc.stderr

    seen: list[tuple[str, str]] = [("stdout", proc.stdout), ("stderr", proc.stderr)]
    seen += [(str(p.relative_to(tmp_path)), text) for p, text in files_under(tmp_path)]
    gateway_state = HttpClient(tls_gateway.url, auth(pki)).request("GET", "/metrics").body.decode()
    seen.append(("gateway /metrics", gateway_state))
    seen.append(
        (
            "gateway API",
            json.dumps(
                json.loads(HttpClient(tls_gateway.url, auth(pki)).request("GET", "/api/v1/metrics").body)
            ),
        )
    )
    leaks = [
        (where, secret)
        for where, text in seen
        for secret in ALL_SECRETS
        if any(form in text for form in forms(secret))
    ]
    assert leaks == [], f"secrets leaked into {leaks}"
    if case.name.startswith("success"):
        assert "dbt_source_freshness_run_success" in gateway_state


def test_scrub_argv_removes_url_credentials_in_every_form() -> None:
    from dbt_prom_bridge.redact import scrub_argv

    argv = [
        "dbt-prom",
        "push",
        "--gateway",
        "https://bob:pa/ss@gw:9091",
        f"--gateway=http://u:{URL_PASSWORD}@gw",
        f"http://gw/x?key={QUERY_KEY}",
        "--select",
        "source:a.b",
        "--vars",
        "{'x': 'y=z'}",
    ]
    assert scrub_argv(argv) == [
        "dbt-prom",
        "push",
        "--gateway",
        "https://gw:9091",
        "--gateway=http://gw",
        "http://gw/x",
        "--select",
        "source:a.b",
        "--vars",
        "{'x': 'y=z'}",
    ]


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_internal_error_never_prints_a_secret(
    debug: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug whose message carries the token read from a file (raw and base64) and an API key
    JSON-escaped: the internal-error line and the --debug traceback mask them all."""
    from dbt_prom_bridge import api
    from tests.fixtures_dbt import run_cli

    def buggy(run: object, delivery: object, *args: object, **kwargs: object) -> object:
        raise RuntimeError(
            f"bug: Bearer {TOKEN} ({base64.b64encode(TOKEN.encode()).decode()}) "
            f'{{"q": "a=1\\u0026api_key={QUERY_KEY}"}}'
        )

    monkeypatch.setattr(api, "deliver", buggy)
    (tmp_path / "token").write_text(TOKEN + "\n")
    art = write_artifacts(tmp_path / "art", time.time() - 30)
    url = f"http://127.0.0.1:9/?a=1&api_key={QUERY_KEY}"
    argv = ["push", "--no-run", "--artifacts-dir", str(art), "--target", "dev", "--gateway", url]
    argv += ["--gateway-token-file", str(tmp_path / "token")]
    code, out, err = run_cli(["--debug", *argv] if debug else argv, capsys)
    assert code == 70, err
    assert "internal error" in err and ("Traceback" in err) == debug
    for secret in (TOKEN, QUERY_KEY):
        assert not any(form in out + err for form in forms(secret)), err
