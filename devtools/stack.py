"""The monitoring stack without Docker: Debian's Prometheus, Pushgateway and Alertmanager on loopback.

``make stack-up`` / ``make stack-down``. The servers run with the SAME config files as
``ops/docker-compose.yml``; a small rendering step rewrites only what differs outside compose:

- Prometheus: the scrape/alerting targets (compose service names -> ``127.0.0.1:<port>``), the
  rule-file directory (``/etc/prometheus/rules`` -> ``ops/prometheus/rules`` or ``--rules-dir``)
  and, when asked (the demo), the scrape/evaluation intervals;
- Alertmanager: the secrets directory (``/etc/alertmanager/secrets`` -> ``ops/alertmanager/secrets``).

Everything binds 127.0.0.1 (never 0.0.0.0); the preferred ports are the usual 9090/9091/9093
(``--prometheus-port``... or ``STACK_*_PORT``) and a free port is taken when one is busy. State
lives in ``.run/stack``: rendered configs, data, logs, one pid file per server and
``state.json`` (ports and URLs). ``up`` is idempotent (a running stack is reused), ``down``
stops only the processes its pid files name (after checking they are still those servers)
and removes the directory.

    python -m devtools.stack up [--rules-dir DIR] [--scrape-interval 1s]
    python -m devtools.stack env        # export DBT_PROM_GATEWAY=... PROMETHEUS_URL=... ALERTMANAGER_URL=...
    python -m devtools.stack status | reload | down
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from devtools.servers import LOOPBACK, binary, free_port, port_free

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
PROMETHEUS_CONFIG = OPS / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = OPS / "alertmanager" / "alertmanager.yml"
RULES_DIR = OPS / "prometheus" / "rules"
SECRETS_DIR = OPS / "alertmanager" / "secrets"
DEFAULT_DIR = Path(".run") / "stack"

#: Paths of the compose containers that the rendering step maps to local paths.
CONTAINER_RULES_DIR = "/etc/prometheus/rules"
CONTAINER_SECRETS_DIR = "/etc/alertmanager/secrets"
#: compose host:port of each service, as written in ops/prometheus/prometheus.yml.
COMPOSE_TARGETS = {
    "prometheus": "localhost:9090",
    "pushgateway": "pushgateway:9091",
    "alertmanager": "alertmanager:9093",
}
DEFAULT_PORTS = {"prometheus": 9090, "pushgateway": 9091, "alertmanager": 9093}
#: The binary names each server may have (Debian first), used to start it and to check that a
#: pid from a pid file is still that server before signalling it.
BINARIES = {
    "prometheus": ("prometheus",),
    "pushgateway": ("prometheus-pushgateway", "pushgateway"),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
ORDER = ("pushgateway", "alertmanager", "prometheus")


class StackError(Exception):
    """A one-line reason the stack could not start or stop."""


# --- rendering (pure) -------------------------------------------------------------------------


def _map_strings(node: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, list):
        return [_map_strings(item, fn) for item in node]
    if isinstance(node, dict):
        return {key: _map_strings(value, fn) for key, value in node.items()}
    return node


def render_prometheus(
    doc: Mapping[str, Any],
    ports: Mapping[str, int],
    rules_dir: Path,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> dict[str, Any]:
    """The compose Prometheus config with loopback targets and a local rules directory."""
    targets = {COMPOSE_TARGETS[name]: f"{LOOPBACK}:{port}" for name, port in ports.items()}
    out: dict[str, Any] = json.loads(json.dumps(doc))
    for job in out.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            static["targets"] = [targets.get(t, t) for t in static.get("targets") or []]
    for am in (out.get("alerting") or {}).get("alertmanagers") or []:
        for static in am.get("static_configs") or []:
            static["targets"] = [targets.get(t, t) for t in static.get("targets") or []]
    out["rule_files"] = [
        str(rules_dir / pattern[len(CONTAINER_RULES_DIR) + 1 :])
        if pattern.startswith(CONTAINER_RULES_DIR + "/")
        else pattern
        for pattern in out.get("rule_files") or []
    ]
    glob = out.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        for job in out.get("scrape_configs") or []:
            job.pop("scrape_interval", None)
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    return out


def render_alertmanager(doc: Mapping[str, Any], secrets_dir: Path) -> dict[str, Any]:
    """The compose Alertmanager config reading its secret files from ``secrets_dir``."""
    prefix = CONTAINER_SECRETS_DIR + "/"

    def fix(value: str) -> str:
        return str(secrets_dir / value[len(prefix) :]) if value.startswith(prefix) else value

    rendered: dict[str, Any] = _map_strings(dict(doc), fix)
    return rendered


def load_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise StackError(f"{path} is not a YAML mapping")
    return doc


def dump_yaml(doc: Mapping[str, Any], path: Path, source: Path) -> None:
    header = f"# Rendered by devtools/stack.py from {source}; edit that file, not this one.\n"
    path.write_text(header + yaml.safe_dump(dict(doc), sort_keys=False), encoding="utf-8")


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """What ``state.json`` records about a running stack."""

    dir: str
    ports: dict[str, int]
    pids: dict[str, int]
    rules_dir: str

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}"

    @property
    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.ports}

    def env(self) -> dict[str, str]:
        return {
            "DBT_PROM_GATEWAY": self.url("pushgateway"),
            "PROMETHEUS_URL": self.url("prometheus"),
            "ALERTMANAGER_URL": self.url("alertmanager"),
        }


def choose_ports(preferred: Mapping[str, int]) -> dict[str, int]:
    """The preferred port of each server, or a free one when it is taken."""
    chosen: dict[str, int] = {}
    for name in ORDER:
        port = preferred[name]
        if port in chosen.values() or not port_free(port):
            port = free_port()
            while port in chosen.values():
                port = free_port()
        chosen[name] = port
    return chosen


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_our_server(name: str, pid: int, workdir: Path) -> bool:
    """True when ``pid`` is alive and is the ``name`` server started for ``workdir``."""
    argv = _cmdline(pid)
    if not argv:
        return False
    if Path(argv[0]).name not in BINARIES[name]:
        return False
    return any(str(workdir) in arg for arg in argv[1:])


def ready(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _argv(name: str, workdir: Path, port: int) -> list[str]:
    listen = f"--web.listen-address={LOOPBACK}:{port}"
    if name == "pushgateway":
        return [
            binary(*BINARIES[name]),
            listen,
            f"--persistence.file={workdir / 'pushgateway.db'}",
            "--persistence.interval=5s",
        ]
    if name == "alertmanager":
        return [
            binary(*BINARIES[name]),
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            listen,
            f"--web.external-url=http://{LOOPBACK}:{port}",
            "--cluster.listen-address=",
        ]
    return [
        binary(*BINARIES[name]),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        listen,
        f"--web.external-url=http://{LOOPBACK}:{port}",
        "--web.enable-lifecycle",
    ]


def _spawn(name: str, argv: list[str], workdir: Path) -> int:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    (workdir / f"{name}.pid").write_text(f"{proc.pid}\n", encoding="ascii")
    return proc.pid


def _log_tail(workdir: Path, name: str, lines: int = 15) -> str:
    try:
        return "\n".join((workdir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_state(workdir: Path) -> Stack | None:
    try:
        doc = json.loads((workdir / "state.json").read_text(encoding="utf-8"))
        return Stack(**doc)
    except (OSError, ValueError, TypeError):
        return None


def running(workdir: Path) -> Stack | None:
    """The stack in ``workdir`` when every server is alive and ready, else None."""
    state = read_state(workdir)
    if state is None:
        return None
    for name in ORDER:
        pid = state.pids.get(name)
        if pid is None or not is_our_server(name, pid, workdir) or not ready(state.url(name)):
            return None
    return state


def render(
    workdir: Path, ports: Mapping[str, int], rules_dir: Path, intervals: tuple[str | None, str | None]
) -> None:
    """Write the rendered configs into ``workdir`` (and check them when promtool/amtool exist)."""
    prom = render_prometheus(load_yaml(PROMETHEUS_CONFIG), ports, rules_dir, *intervals)
    dump_yaml(prom, workdir / "prometheus.yml", PROMETHEUS_CONFIG)
    am = render_alertmanager(load_yaml(ALERTMANAGER_CONFIG), SECRETS_DIR)
    dump_yaml(am, workdir / "alertmanager.yml", ALERTMANAGER_CONFIG)


def up(
    workdir: Path,
    rules_dir: Path = RULES_DIR,
    preferred: Mapping[str, int] = DEFAULT_PORTS,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    timeout: float = 60.0,
) -> tuple[Stack, bool]:
    """Start the stack (or reuse the running one). Returns (stack, started_now)."""
    workdir = workdir.resolve()
    current = running(workdir)
    if current is not None:
        return current, False
    down(workdir, remove=False)
    workdir.mkdir(parents=True, exist_ok=True)
    rules_dir = rules_dir.resolve()
    rules_dir.mkdir(parents=True, exist_ok=True)
    ports = choose_ports(preferred)
    render(workdir, ports, rules_dir, (scrape_interval, evaluation_interval))
    pids: dict[str, int] = {}
    state = Stack(str(workdir), ports, pids, str(rules_dir))
    try:
        for name in ORDER:
            pids[name] = _spawn(name, _argv(name, workdir, ports[name]), workdir)
        (workdir / "state.json").write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        deadline = time.monotonic() + timeout
        for name in ORDER:
            while not ready(state.url(name)):
                if not is_our_server(name, pids[name], workdir):
                    raise StackError(f"{name} exited while starting:\n{_log_tail(workdir, name)}")
                if time.monotonic() > deadline:
                    raise StackError(f"{name} not ready after {timeout:.0f}s:\n{_log_tail(workdir, name)}")
                time.sleep(0.1)
    except BaseException:
        down(workdir, remove=False)
        raise
    return state, True


def _stop_pid(name: str, pid: int, workdir: Path, timeout: float = 10.0) -> bool:
    if not is_our_server(name, pid, workdir):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_our_server(name, pid, workdir):
        _reap(pid)
        time.sleep(0.05)
    if is_our_server(name, pid, workdir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)
    return True


def _reap(pid: int) -> None:
    # Children of this process (started by `up` in the same interpreter) must be waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def down(workdir: Path, remove: bool = True) -> list[str]:
    """Stop the servers named by the pid files in ``workdir``; remove it when ``remove``."""
    workdir = workdir.resolve()
    stopped: list[str] = []
    for name in reversed(ORDER):
        pid_file = workdir / f"{name}.pid"
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if _stop_pid(name, pid, workdir):
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    if remove and workdir.exists():
        shutil.rmtree(workdir)
    return stopped


def reload_prometheus(state: Stack) -> None:
    """Make Prometheus re-read its config and rule files (``--web.enable-lifecycle``)."""
    req = urllib.request.Request(state.url("prometheus") + "/-/reload", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30):
            pass
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise StackError(f"Prometheus refused to reload its config: {body or exc}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise StackError(f"cannot reach Prometheus at {state.url('prometheus')}: {exc}") from None


# --- command line ------------------------------------------------------------------------------


def _env_port(name: str) -> int:
    raw = os.environ.get(f"STACK_{name.upper()}_PORT")
    return int(raw) if raw else DEFAULT_PORTS[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "reload"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default .run/stack)")
    parser.add_argument("--rules-dir", type=Path, default=RULES_DIR, help="alert rule files to load")
    parser.add_argument("--scrape-interval", help="override global.scrape_interval (e.g. 1s for the demo)")
    parser.add_argument("--evaluation-interval", help="override global.evaluation_interval")
    for name in ORDER:
        parser.add_argument(f"--{name}-port", type=int, default=_env_port(name))
    args = parser.parse_args(argv)
    workdir: Path = args.dir
    try:
        if args.command == "up":
            preferred = {name: getattr(args, f"{name}_port") for name in ORDER}
            started_state, started = up(
                workdir, args.rules_dir, preferred, args.scrape_interval, args.evaluation_interval
            )
            verb = "started" if started else "already running"
            print(f"stack {verb} (state in {started_state.dir}):", file=sys.stderr)
            for name, url in started_state.urls.items():
                print(f"  {name:<13} {url}", file=sys.stderr)
            print(f"  rules from    {started_state.rules_dir}", file=sys.stderr)
            print("  `make stack-down` stops it", file=sys.stderr)
            return 0
        if args.command == "down":
            stopped = down(workdir)
            print(f"stack stopped ({', '.join(stopped) or 'nothing was running'})", file=sys.stderr)
            return 0
        state = running(workdir.resolve())
        if state is None:
            print("stack not running (`make stack-up` starts it)", file=sys.stderr)
            return 1
        if args.command == "status":
            for name, url in state.urls.items():
                print(f"{name} {url} pid {state.pids[name]}")
        elif args.command == "env":
            for key, value in state.env().items():
                print(f"export {key}={shlex.quote(value)}")
        else:
            reload_prometheus(state)
            print("prometheus reloaded its config and rules", file=sys.stderr)
    except (StackError, FileNotFoundError) as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
