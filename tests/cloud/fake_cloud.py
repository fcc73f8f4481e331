"""A local dbt Cloud Administrative API v2 on 127.0.0.1: exactly the endpoints dbt-prom-bridge
calls, with the documented envelope (``{"status": {...}, "data": ..., "extra": ...}``), the runs
listing's pagination (``limit``/``offset``, ``extra.pagination.count``/``total_count``), token
checks (401 unknown token, 403 token without permission), and scripted faults (429 with
``Retry-After``, 5xx, redirects) per path. Artifacts are served as the files themselves.

Endpoints:
    GET /api/v2/accounts/{account}/runs/{run}/
    GET /api/v2/accounts/{account}/runs/?job_definition_id=&order_by=-id&limit=&offset=
    GET /api/v2/accounts/{account}/jobs/{job}/
    GET /api/v2/accounts/{account}/runs/{run}/artifacts/{path}
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

TOKEN = "dbtc_s3cr3t-token-for-tests"
READ_ONLY_WITHOUT_JOBS = "dbtc_metadata-only-token"
ACCOUNT = 4242


@dataclass(frozen=True)
class Fault:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class Run:
    id: int
    job: int
    status: int = 10
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def data(self, account: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": account,
            "job_definition_id": self.job,
            "status": self.status,
            "status_humanized": {1: "Queued", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}[
                self.status
            ],
            "is_complete": self.status in (10, 20, 30),
            "is_success": self.status == 10,
            "is_error": self.status == 20,
            "is_cancelled": self.status == 30,
            "in_progress": self.status in (1, 2, 3),
            "finished_at": "2026-03-01 12:00:00.000000+00:00" if self.status >= 10 else None,
            "href": f"https://cloud.example/deploy/{account}/projects/1/runs/{self.id}/",
        }


def envelope(
    data: Any, code: int = 200, extra: Mapping[str, Any] | None = None, message: str = "Success!"
) -> bytes:
    doc: dict[str, Any] = {
        "status": {
            "code": code,
            "is_success": 200 <= code < 300,
            "user_message": message,
            "developer_message": "",
        },
        "data": data,
    }
    if extra is not None:
        doc["extra"] = extra
    return json.dumps(doc).encode()


@dataclass
class FakeCloud:
    """The state the fake API serves; tests edit it between requests."""

    account: int = ACCOUNT
    runs: dict[int, Run] = field(default_factory=dict)
    jobs: dict[int, str] = field(default_factory=dict)  # job id -> target_name
    #: path prefix (after the host) -> faults answered in order before the real answer
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    max_limit: int = 100

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                status, headers, body = owner.answer(self.path, self.headers.get("Authorization", ""))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> FakeCloud:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_run(self, run: Run) -> Run:
        self.runs[run.id] = run
        return run

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def answer(self, raw_path: str, auth: str) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        with self._lock:
            self.requests.append((raw_path, auth))
            for prefix, queue in self.faults.items():
                if raw_path.startswith(prefix) and queue:
                    fault = queue.pop(0)
                    return fault.status, fault.headers, fault.body
        json_type = (("Content-Type", "application/json"),)
        if auth == f"Token {READ_ONLY_WITHOUT_JOBS}":
            return 403, json_type, envelope(None, 403, message="This token lacks the job viewer permission.")
        if auth != f"Token {TOKEN}":
            # dbt Cloud echoes nothing secret; a careless proxy might: the client must scrub it
            token = auth.rsplit(" ", maxsplit=1)[-1]
            return 401, json_type, envelope(None, 401, message=f"Invalid token {token}.")
        parts = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        prefix = f"/api/v2/accounts/{self.account}/"
        if not parts.path.startswith(prefix):
            return 404, json_type, envelope(None, 404, message="Not found.")
        rest = parts.path[len(prefix) :]
        if m := re.fullmatch(r"runs/(\d+)/artifacts/(.+)", rest):
            run = self.runs.get(int(m.group(1)))
            if run is None or m.group(2) not in run.artifacts:
                return 404, json_type, envelope(None, 404, message="The requested artifact was not found.")
            return 200, json_type, run.artifacts[m.group(2)]
        if m := re.fullmatch(r"runs/(\d+)/", rest):
            run = self.runs.get(int(m.group(1)))
            if run is None:
                return 404, json_type, envelope(None, 404, message="Run not found.")
            return 200, json_type, envelope(run.data(self.account))
        if rest == "runs/":
            job = int(query.get("job_definition_id", "0"))
            limit = min(int(query.get("limit", "100")), self.max_limit)
            offset = int(query.get("offset", "0"))
            ordered = sorted((r for r in self.runs.values() if r.job == job), key=lambda r: -r.id)
            if query.get("order_by") != "-id":
                ordered.reverse()
            page = ordered[offset : offset + limit]
            extra = {
                "filters": {"limit": limit, "offset": offset, "job_definition_id": job},
                "order_by": query.get("order_by"),
                "pagination": {"count": len(page), "total_count": len(ordered)},
            }
            return 200, json_type, envelope([r.data(self.account) for r in page], extra=extra)
        if m := re.fullmatch(r"jobs/(\d+)/", rest):
            target = self.jobs.get(int(m.group(1)))
            if target is None:
                return 404, json_type, envelope(None, 404, message="Job not found.")
            return (
                200,
                json_type,
                envelope({"id": int(m.group(1)), "settings": {"threads": 4, "target_name": target}}),
            )
        return 404, json_type, envelope(None, 404, message="Not found.")


SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
MODELS = Path(__file__).resolve().parent.parent / "data" / "models"


def sample_artifacts(sources: bool = True) -> dict[str, bytes]:
    """The sample project's real artifacts (tests/data), as a run of it would have them."""
    out = {
        "manifest.json": (SAMPLE / "manifest.json").read_bytes(),
        "run_results.json": (MODELS / "run_results.json").read_bytes(),
    }
    if sources:
        out["sources.json"] = (SAMPLE / "sources.json").read_bytes()
    return out
