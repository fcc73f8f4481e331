"""dbt Cloud webhooks for ``serve --dbt-cloud-job``: ``job.run.completed`` wakes the refresh.

dbt Cloud signs each delivery: the ``Authorization`` header is the hex HMAC-SHA256 of the raw
body keyed with the webhook's secret (docs/dbt-cloud.md). Nothing of a request whose signature
does not verify is parsed, fetched or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from dbt_prom_bridge.config import Secret

WEBHOOK_SECRET_ENV = "DBT_CLOUD_WEBHOOK_SECRET"
WEBHOOK_PATH = "/webhook/dbt-cloud"


def webhook_signature_ok(secret: Secret, body: bytes, authorization: str | None) -> bool:
    """dbt Cloud's signature: the ``Authorization`` header is the hex HMAC-SHA256 of the raw
    body keyed with the webhook's secret (compared in constant time)."""
    if not authorization:
        return False
    expected = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), authorization.strip().lower().encode())


def _id(raw: object) -> int | None:
    """dbt Cloud's webhook ids are strings of digits ("123") or numbers."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return None


class WebhookReceiver:
    """``POST /webhook/dbt-cloud`` of ``serve --dbt-cloud-job``: a ``job.run.completed`` event of
    the served job wakes the refresh loop at once (with the run id as a hint), instead of at the
    next ``--interval``. Nothing is parsed, fetched or logged from a request whose signature does
    not verify."""

    def __init__(self, secret: Secret, account: int, job_id: int, on_run: Callable[[int], None]) -> None:
        self.secret, self.account, self.job_id, self.on_run = secret, account, job_id, on_run

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if not webhook_signature_ok(self.secret, body, auth):
            return 401, {"error": "signature does not match the webhook secret"}
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "body is not JSON"}
        if not isinstance(event, Mapping) or not isinstance(event.get("data"), Mapping):
            return 400, {"error": "not a dbt Cloud webhook event"}
        data = event["data"]
        kind = event.get("eventType")
        if kind != "job.run.completed":
            return 202, {"ignored": f"event {kind!r} (only job.run.completed triggers a refresh)"}
        if _id(event.get("accountId")) != self.account or _id(data.get("jobId")) != self.job_id:
            return 202, {"ignored": "another account or job"}
        run_id = _id(data.get("runId"))
        if run_id is None:
            return 400, {"error": "event without a runId"}
        self.on_run(run_id)
        return 202, {"accepted": run_id}
