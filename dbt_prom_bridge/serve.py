"""Exporter mode (``dbt-prom serve``): refresh freshness every interval, serve ``/metrics`` and ``/healthz``.

For teams that scrape rather than push. One long-lived
:class:`~dbt_prom_bridge.runner.DbtFreshnessRunner` keeps dbt imported and the parsed manifest
in memory, so a refresh costs the freshness queries, not a dbt start-up and parse (``--no-run``
re-reads the artifacts another job leaves instead).

- ``/metrics``: the same metric contract as ``push`` (:func:`dbt_prom_bridge.exposition.families`),
  exposed through prometheus_client with an explicit :class:`CollectorRegistry` and a custom
  collector, plus the exporter's own refresh counters. A refresh where dbt could not run keeps
  the last good per-source series and sets ``run_success`` to 0, exactly like a push. The
  encoded page is built once per refresh and reused by every scrape until the next one (a
  10,000-source page costs ~1.5 s to encode; scrapes should not).
- ``/healthz``: 200 when the last refresh succeeded and is younger than 2 x interval, else 503;
  both with a JSON body saying why.

Nothing here parses flags or prints: :mod:`dbt_prom_bridge.cli.serve` does.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from dbt_prom_bridge import api
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions
from dbt_prom_bridge.errors import DbtPromError, UsageError
from dbt_prom_bridge.exposition import Family, families
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.state import merge

if TYPE_CHECKING:
    from dbt_prom_bridge.runner import DbtFreshnessRunner

DEFAULT_PORT = 9918
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
REFRESHES = "dbt_prom_bridge_serve_refreshes"
REFRESH_DURATION = "dbt_prom_bridge_serve_refresh_duration_seconds"
LAST_SUCCESS = "dbt_prom_bridge_serve_last_success_timestamp_seconds"
#: How a refresh runs dbt's freshness queries (:mod:`dbt_prom_bridge.fastfresh`).
FRESHNESS_PATHS = ("batch", "dbt")
FRESHNESS_PATH_ENV = "DBT_PROM_SERVE_FRESHNESS"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9918`` for IPv6; ``:9918`` means 127.0.0.1) -> (host, port)."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep or not port_text.isdigit():
        raise UsageError(f"--listen {text!r} is not HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT})")
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"--listen {text!r}: port {port} is not a TCP port")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


@dataclass
class Refresh:
    """The outcome of one refresh."""

    started_at: float
    duration: float
    run: FreshnessRun | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.run is not None and self.run.success


class Refresher:
    """Produces a :class:`FreshnessRun` per call: a dbt run in-process, or the artifacts (``no_run``)."""

    def __init__(
        self,
        dbt: DbtOptions,
        art: ArtifactOptions,
        opts: RunOptions,
        runner: DbtFreshnessRunner | None = None,
        on_event: Callable[[str], None] | None = None,
        freshness_path: str | None = None,
    ) -> None:
        self.dbt, self.art, self.opts = dbt, art, opts
        #: "batch" (dbt's queries compiled once, sent in one statement) or "dbt" (every refresh
        #: a full ``dbt source freshness``); None: ``$DBT_PROM_SERVE_FRESHNESS``, else "batch".
        self.freshness_path = freshness_path or os.environ.get(FRESHNESS_PATH_ENV) or "batch"
        if self.freshness_path not in FRESHNESS_PATHS:
            raise UsageError(
                f"{FRESHNESS_PATH_ENV}={self.freshness_path!r} is not one of {', '.join(FRESHNESS_PATHS)}"
            )
        self.on_event = on_event
        self._runner = runner
        self._artifact_key: tuple[Any, ...] | None = None
        self._artifact_run: FreshnessRun | None = None

    @property
    def runner(self) -> DbtFreshnessRunner:
        if self._runner is None:
            from dbt_prom_bridge.fastfresh import BatchedFreshnessRunner

            self._runner = BatchedFreshnessRunner(self.dbt, self.freshness_path)
        return self._runner

    def __call__(self) -> FreshnessRun:
        if self.art.no_run:
            return self._from_artifacts()
        return api.runner_run(self.runner, self.dbt, self.opts, self.on_event)

    def _from_artifacts(self) -> FreshnessRun:
        """Re-read the artifacts, parsing them again only when they changed on disk."""
        from dbt_prom_bridge.artifacts import check_age

        paths = api.artifact_paths(self.dbt, self.art)
        key = tuple(_stat_key(p) for p in (paths.sources_json, paths.manifest))
        if key != self._artifact_key or self._artifact_run is None:
            run = api.load_run(self.dbt, replace(self.art, allow_stale=True), self.opts)
            self._artifact_key, self._artifact_run = key, run
        run = self._artifact_run
        if not self.art.allow_stale:
            check_age(run.generated_at, str(paths.sources_json), self.art.max_artifact_age, time.time())
        return run


def _stat_key(path: Any) -> tuple[Any, ...]:
    if path is None:
        return (None,)
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class ExporterState:
    """What the exporter knows; shared by the refresh loop and the HTTP threads."""

    interval: float
    clock: Callable[[], float] = time.time
    last: Refresh | None = None
    #: What the exporter holds: the newest check of every source over all refreshes
    #: (:func:`dbt_prom_bridge.state.merge`), with the run-level values of the newest run.
    held: FreshnessRun | None = None
    last_success_at: float | None = None
    successes: int = 0
    failures: int = 0
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, refresh: Refresh) -> None:
        with self.lock:
            self.last = refresh
            if refresh.run is not None:
                self.held = merge(self.held, refresh.run).state
            if refresh.ok:
                self.last_success_at = refresh.started_at + refresh.duration
                self.successes += 1
            else:
                self.failures += 1
            self.version += 1

    def contract_families(self) -> list[Family]:
        """The metric-contract families to expose now: what the exporter holds. A refresh that
        could not read the artifacts (missing, stale, corrupt) changes nothing; one where dbt
        could not run drops ``run_success`` to 0 and keeps every source's last values."""
        with self.lock:
            held = self.held
        return families(held) if held is not None else []

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, JSON body) for ``/healthz``."""
        now = self.clock()
        with self.lock:
            last, success_at = self.last, self.last_success_at
        body: dict[str, Any] = {
            "interval_seconds": self.interval,
            "last_success_timestamp": success_at,
            "last_refresh_timestamp": last.started_at if last else None,
        }
        if last is None:
            return False, {**body, "status": "starting", "reason": "no refresh has finished yet"}
        if not last.ok:
            reason = last.error or (last.run.error if last.run else None) or "the last refresh failed"
            return False, {**body, "status": "failing", "reason": f"last refresh failed: {reason}"}
        assert success_at is not None
        age = now - success_at
        body["last_success_age_seconds"] = round(age, 3)
        if age > 2 * self.interval:
            return False, {
                **body,
                "status": "stale",
                "reason": (
                    f"last successful refresh {age:.0f}s ago, "
                    f"more than 2 x interval ({2 * self.interval:.0f}s)"
                ),
            }
        run = last.run
        assert run is not None
        return True, {
            **body,
            "status": "ok",
            "sources": len(run.checks),
            "project": run.project,
            "target": run.target,
        }


class FreshnessCollector(Collector):
    """Turns the exporter state into prometheus_client metric families (the metric contract)."""

    def __init__(self, state: ExporterState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        for fam in self.state.contract_families():
            gauge = GaugeMetricFamily(fam.name, fam.help, labels=list(fam.label_names))
            for values, value in fam.rows:
                gauge.add_metric(list(values), value)
            yield gauge
        with self.state.lock:
            successes, failures = self.state.successes, self.state.failures
            last, success_at = self.state.last, self.state.last_success_at
        counter = CounterMetricFamily(
            REFRESHES, "Refreshes of dbt source freshness by this exporter, by result.", labels=["result"]
        )
        counter.add_metric(["success"], successes)
        counter.add_metric(["failure"], failures)
        yield counter
        if last is not None:
            yield GaugeMetricFamily(
                REFRESH_DURATION, "Wall time of the last refresh, in seconds.", value=last.duration
            )
        if success_at is not None:
            yield GaugeMetricFamily(
                LAST_SUCCESS, "When the last successful refresh finished (Unix seconds).", value=success_at
            )


class _PageCache:
    """Encoded /metrics pages, rebuilt once per state version (and encoding)."""

    def __init__(self, registry: CollectorRegistry, state: ExporterState) -> None:
        self.registry, self.state = registry, state
        self.lock = threading.Lock()
        self.pages: dict[tuple[str, bool], tuple[int, bytes]] = {}

    def get(self, accept: str, gzipped: bool) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        key = (content_type, gzipped)
        version = self.state.version
        with self.lock:
            cached = self.pages.get(key)
            if cached is not None and cached[0] == version:
                return cached[1], content_type
            body = encoder(self.registry)
            if gzipped:
                body = gzip.compress(body, compresslevel=6)
            self.pages[key] = (version, body)
            return body, content_type


INDEX = b"""<html><head><title>dbt-prom serve</title></head><body>
<h1>dbt source freshness exporter</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a></p>
</body></html>
"""


#: ``POST`` routes: path -> handler of (body, headers) returning (HTTP status, JSON body).
PostRoutes = Mapping[str, Callable[[bytes, Mapping[str, str]], tuple[int, dict[str, Any]]]]
#: Largest ``POST`` body read.
MAX_POST_BODY = 64 * 1024


def make_handler(
    cache: _PageCache, state: ExporterState, post: PostRoutes | None = None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dbt-prom-bridge"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request access log (stderr carries the refresh log)."""

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                body, content_type = cache.get(self.headers.get("Accept", ""), gzipped)
                self._send(200, body, content_type, {"Content-Encoding": "gzip"} if gzipped else None)
            elif path in ("/healthz", "/-/healthy"):
                ok, doc = state.health()
                body = (json.dumps(doc, sort_keys=True) + "\n").encode()
                self._send(200 if ok else 503, body, "application/json")
            elif path == "/":
                self._send(200, INDEX, "text/html; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

        def do_POST(self) -> None:
            route = (post or {}).get(self.path.split("?", 1)[0])
            raw_length = (self.headers.get("Content-Length") or "0").strip()
            length = int(raw_length) if raw_length.isdigit() else MAX_POST_BODY + 1
            if route is None:
                self._send(404, b"not found\n", "text/plain; charset=utf-8", {"Connection": "close"})
            elif length > MAX_POST_BODY:
                self._send(413, b"body too large\n", "text/plain; charset=utf-8", {"Connection": "close"})
            else:
                status, doc = route(self.rfile.read(length), dict(self.headers.items()))
                self._send(status, (json.dumps(doc, sort_keys=True) + "\n").encode(), "application/json")

    return Handler


class Exporter:
    """The refresh loop and the HTTP server, stoppable from a signal handler through :attr:`stop`."""

    def __init__(
        self,
        refresh: Callable[[], FreshnessRun],
        interval: float,
        listen: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT),
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        debug: bool = False,
        post: PostRoutes | None = None,
    ) -> None:
        if interval <= 0:
            raise UsageError("--interval must be positive")
        self.refresh_fn = refresh
        self.interval = interval
        self.log = log or (lambda _line: None)
        self.clock = clock
        #: Log the traceback of an unexpected refresh error (``--debug``); else its one line only.
        self.debug = debug
        self.state = ExporterState(interval, clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FreshnessCollector(self.state))
        self.stop = threading.Event()
        #: Set to refresh now instead of at the end of the interval (a webhook event).
        self.wake = threading.Event()
        handler = make_handler(_PageCache(self.registry, self.state), self.state, post)
        host, port = listen
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --listen HOST:PORT"
            ) from None
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start_http(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="dbt-prom-http", daemon=True)
        self._thread.start()

    def refresh_once(self) -> Refresh:
        started = self.clock()
        t0 = time.perf_counter()
        run: FreshnessRun | None = None
        error: str | None = None
        try:
            run = self.refresh_fn()
        except DbtPromError as exc:
            error = str(exc)
        except Exception as exc:  # the loop must survive; the reason goes to /healthz
            error = f"internal error: {type(exc).__name__}: {exc}"
            if self.debug:
                self.log(traceback.format_exc().rstrip())
            else:
                error += " (a bug: rerun with --debug for the traceback and report it)"
        refresh = Refresh(started, time.perf_counter() - t0, run, error)
        self.state.record(refresh)
        if refresh.ok and run is not None:
            counts = run.counts()
            summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
            self.log(f"refreshed {len(run.checks)} sources ({summary or 'none'}) in {refresh.duration:.2f}s")
        else:
            reason = error or (run.error if run else None) or "unknown error"
            self.log(f"refresh failed in {refresh.duration:.2f}s: {reason} (serving the last good metrics)")
        return refresh

    def serve_forever(self) -> None:
        """Refresh now and every ``interval`` until :attr:`stop` is set; then shut the server down."""
        if self._thread is None:
            self.start_http()
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                self.refresh_once()
                self._pause(t0 + self.interval)
        finally:
            self.close()

    def _pause(self, until: float) -> None:
        """Wait until ``until`` (monotonic), :attr:`stop`, or :attr:`wake`, whichever comes first."""
        while not self.stop.is_set() and not self.wake.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            self.wake.wait(min(left, 0.5))
        self.wake.clear()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(10)
            self._thread = None
        self.server.server_close()
