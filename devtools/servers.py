"""Start and stop the real servers (Pushgateway, Prometheus, Alertmanager) on loopback.

Used by the test fixtures and by ``make stack-up``/``make demo`` (devtools.stack). Every server
binds 127.0.0.1 on a free port, keeps its state in a work directory, runs in its own process
group, and is stopped (TERM, then KILL) by :meth:`Server.stop` or at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
_LIVE: list[Server] = []


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 right now (a listener there makes it busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def binary(*names: str) -> str:
    """The first of ``names`` found on PATH (Debian names the servers prometheus-*)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        f"none of {', '.join(names)} is installed; run `make system-deps` (Debian packages)"
    )


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path
    scheme: str = "http"
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        if self in _LIVE:
            _LIVE.remove(self)

    def kill(self) -> None:
        """Kill -9 (a crash, not a shutdown)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self in _LIVE:
            _LIVE.remove(self)


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float, error: type[Exception] = TimeoutError
) -> Any:
    """Call ``probe`` every 0.5 s until it returns something truthy (returned), at least once;
    raise ``error`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def wait_ready(server: Server, path: str, timeout: float = 30.0, context: object | None = None) -> None:
    """Poll ``path`` until it answers 200 (or any HTTP answer for TLS/auth setups)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}):\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2, context=context) as resp:  # type: ignore[arg-type]
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                return
            last = str(exc)
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout}s ({last}):\n{server.log_tail()}")


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    ready_path: str,
    scheme: str = "http",
    timeout: float = 30.0,
    ready_context: object | None = None,
) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    server = Server(name, proc, port, workdir, log, scheme, list(argv))
    _LIVE.append(server)
    if ready_path:
        wait_ready(server, ready_path, timeout, ready_context)
    return server


def start_pushgateway(
    workdir: Path,
    port: int | None = None,
    web_config: Path | None = None,
    persistence_file: Path | None = None,
    extra: Sequence[str] = (),
    wait: bool = True,
) -> Server:
    """A real Pushgateway with its admin API (tests wipe it between cases)."""
    port = port or free_port()
    argv = [
        binary("prometheus-pushgateway", "pushgateway"),
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--persistence.file={persistence_file or ''}",
        "--web.enable-admin-api",
        *extra,
    ]
    if web_config is not None:
        argv.append(f"--web.config.file={web_config}")
    scheme = "https" if web_config is not None and "tls_server_config" in web_config.read_text() else "http"
    import ssl

    ctx = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323 - readiness probe only
    return start("pushgateway", argv, port, workdir, "/-/ready" if wait else "", scheme, ready_context=ctx)


def start_prometheus(
    workdir: Path,
    config: Path,
    port: int | None = None,
    remote_write_receiver: bool = False,
    extra: Sequence[str] = (),
) -> Server:
    port = port or free_port()
    argv = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--web.enable-lifecycle",
        *extra,
    ]
    if remote_write_receiver:
        argv.append("--web.enable-remote-write-receiver")
    return start("prometheus", argv, port, workdir, "/-/ready", timeout=60)


def start_alertmanager(
    workdir: Path, config: Path, port: int | None = None, extra: Sequence[str] = ()
) -> Server:
    port = port or free_port()
    argv = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",
        *extra,
    ]
    return start("alertmanager", argv, port, workdir, "/-/ready", timeout=60)
