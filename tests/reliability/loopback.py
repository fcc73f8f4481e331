"""A scriptable HTTP server on 127.0.0.1 for fault tests: answers 500/400/401, hangs, drops the
connection, or forwards to a real Pushgateway, and records every request it saw.

>>> with Loopback([Reply(500), Reply(500), Forward(gw.url)]) as srv:
...     HttpClient(srv.url).request("PUT", "/metrics/job/x", body)

The script is consumed one entry per request; the last entry repeats.
"""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: Echo the request (line, headers, body) into the response body, as some proxies do.
    echo: bool = False


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the server stops)."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Drip:
    """Answer 200 one byte every ``interval`` seconds (headers included), for ``seconds`` at most:
    each read gets a byte well within any socket timeout, so only a whole-request deadline ends it."""

    interval: float = 0.2
    seconds: float = 60.0


@dataclass(frozen=True)
class Forward:
    """Pass the request on to a real server and relay its answer."""

    url: str


Action = Reply | Hang | Drop | Drip | Forward | Callable[[Seen], Reply | Forward]


@dataclass
class Loopback:
    script: Sequence[Action]
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._index = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                action = owner._next(seen)
                if callable(action) and not isinstance(action, (Reply, Hang, Drop, Drip, Forward)):
                    action = action(seen)
                if isinstance(action, Drip):
                    owner._drip(self, action)
                    self.close_connection = True
                    return
                if isinstance(action, Hang):
                    owner._stop.wait(120)
                    self.close_connection = True
                    return
                if isinstance(action, Drop):
                    self.close_connection = True
                    return
                if isinstance(action, Forward):
                    action = _forward(action.url, seen)
                assert isinstance(action, Reply)
                payload = action.body
                if action.echo:
                    lines = [f"{seen.method} {seen.path}"] + [f"{k}: {v}" for k, v in seen.headers.items()]
                    payload += ("\n".join(lines) + "\n\n").encode() + seen.body
                self.send_response(action.status)
                for key, value in action.headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _drip(self, handler: http.server.BaseHTTPRequestHandler, drip: Drip) -> None:
        payload = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + b"X-Slow: " + b"." * 100_000
        for index in range(int(drip.seconds / drip.interval)):
            if self._stop.wait(drip.interval):
                return
            try:
                handler.wfile.write(payload[index : index + 1])
                handler.wfile.flush()
            except OSError:  # the client gave up
                return

    def play(self, *script: Action) -> None:
        """Replace the script (from the next request on)."""
        with self._lock:
            self.script = script
            self._index = 0

    def _next(self, seen: Seen) -> Action:
        with self._lock:
            self.seen.append(seen)
            action = self.script[min(self._index, len(self.script) - 1)]
            self._index += 1
            return action

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Loopback:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> Loopback:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _forward(base: str, seen: Seen) -> Reply:
    headers = {k: v for k, v in seen.headers.items() if k.lower() in ("content-type", "authorization")}
    request = urllib.request.Request(
        base + seen.path, data=seen.body or None, method=seen.method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Reply(resp.status, resp.read(), (("Content-Type", resp.headers.get("Content-Type", "")),))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read())
    except OSError as exc:  # the upstream is down: answer like a reverse proxy does
        return Reply(502, f"bad gateway: {exc}".encode())
