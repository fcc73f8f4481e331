"""dbt Cloud webhooks in `serve --dbt-cloud-job`: the HMAC-SHA256 signature is checked before
anything is parsed or fetched; a signed `job.run.completed` of the job refreshes at once."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dbt_prom_bridge.cloud_webhook import WEBHOOK_PATH, WebhookReceiver, webhook_signature_ok
from dbt_prom_bridge.config import Secret
from dbt_prom_bridge.exposition import RUN_TIMESTAMP
from devtools.servers import free_port
from tests.cloud.fake_cloud import ACCOUNT, TOKEN, FakeCloud, Run, sample_artifacts

SECRET = "whsec-for-tests-0123456789"
JOB = 77


def event(
    run_id: int = 501, job: str = "77", kind: str = "job.run.completed", account: int = ACCOUNT
) -> bytes:
    """A payload shaped as dbt's documented example (ids as strings)."""
    return json.dumps(
        {
            "accountId": account,
            "eventId": "wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD",
            "timestamp": "2026-03-01T12:00:05.789265936Z",
            "eventType": kind,
            "webhookName": "dbt-prom",
            "data": {
                "jobId": job,
                "jobName": "Freshness",
                "runId": str(run_id),
                "environmentId": "1234",
                "runStatus": "Success",
                "runStatusMessage": "None",
                "runFinishedAt": "2026-03-01T12:00:00Z",
            },
        }
    ).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature() -> None:
    body = event()
    assert webhook_signature_ok(Secret(SECRET), body, sign(body))
    assert webhook_signature_ok(Secret(SECRET), body, sign(body).upper())
    assert not webhook_signature_ok(Secret(SECRET), body, sign(body, "other"))
    assert not webhook_signature_ok(Secret(SECRET), body + b" ", sign(body))
    assert not webhook_signature_ok(Secret(SECRET), body, None)
    assert not webhook_signature_ok(Secret(SECRET), body, "")


def test_receiver() -> None:
    seen: list[int] = []
    receiver = WebhookReceiver(Secret(SECRET), ACCOUNT, JOB, seen.append)
    body = event()
    assert receiver(body, {"Authorization": "nope"})[0] == 401
    assert receiver(b"not json", {"authorization": sign(b"not json")})[0] == 400
    for other in (event(kind="job.run.started"), event(job="78"), event(account=1)):
        status, doc = receiver(other, {"Authorization": sign(other)})
        assert status == 202 and "ignored" in doc
    assert seen == []
    assert receiver(body, {"Authorization": sign(body)}) == (202, {"accepted": 501})
    assert seen == [501]


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()}


def metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def run_timestamp(text: str) -> str | None:
    return next(
        (ln.rsplit(" ", 1)[1] for ln in text.splitlines() if ln.startswith(RUN_TIMESTAMP + "{")), None
    )


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_serve_refreshes_on_a_signed_event_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newer = json.loads(sample_artifacts()["sources.json"])
    newer["metadata"]["generated_at"] = "2026-11-24T12:00:00.000000Z"  # after the sample run
    with FakeCloud(jobs={JOB: "prod"}) as api:
        api.add_run(Run(500, JOB, 10, sample_artifacts()))
        port = free_port()
        env = {**os.environ, "DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_WEBHOOK_SECRET": SECRET}
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dbt-prom"),
                "serve",
                "--project-dir",
                str(tmp_path),
                "--dbt-cloud-job",
                str(JOB),
                "--dbt-cloud-account",
                str(ACCOUNT),
                "--dbt-cloud-host",
                api.url,
                "--allow-stale-artifact",
                "--listen",
                f"127.0.0.1:{port}",
                "--interval",
                "1h",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: run_timestamp(metrics(port)) is not None, "the first refresh")
            first = run_timestamp(metrics(port))
            api.add_run(Run(501, JOB, 10, {**sample_artifacts(), "sources.json": json.dumps(newer).encode()}))
            asked = len(api.requests)
            url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
            body = event(501)
            # forged: refused before anything is read or fetched
            assert post(url, body, {"Authorization": sign(body, "guess")})[0] == 401
            assert post(url, body, {})[0] == 401
            assert len(api.requests) == asked
            assert run_timestamp(metrics(port)) == first
            status, doc = post(url, body, {"Authorization": sign(body), "Content-Type": "application/json"})
            assert (status, doc) == (202, {"accepted": 501})
            wait_for(lambda: run_timestamp(metrics(port)) != first, "the refresh the webhook asked for")
            assert f"/api/v2/accounts/{ACCOUNT}/runs/501/" in api.paths()
            assert post(url, b"x" * (65 * 1024), {"Authorization": "x"})[0] == 413
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert "webhook: run 501 of job 77 completed" in err
    assert SECRET not in err and TOKEN not in err
