"""Benchmarks: ``make bench`` (``python -m bench``) runs every ``bench/<name>.py`` that has
``run() -> list[tuple[str, str]]`` and prints one table of figures and ratios with the machine
they were measured on. Figures are printed, never asserted.

Shared helpers for the modules: :func:`measure` runs a command and returns its wall time and the
peak RSS of that process alone (``os.wait4``), :func:`machine` describes the machine.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Measured:
    """One process: wall time, its own peak RSS, exit code, what it wrote to stderr, and its CPU
    time (user + system; steadier than wall time when other work shares the cores)."""

    wall: float
    rss_mb: float
    returncode: int
    stderr: str
    cpu: float = float("nan")


#: Runs the measured command from a small process: Linux keeps a process's peak RSS across exec
#: (``ru_maxrss`` includes the RSS of the parent it was forked from), so a command forked from a
#: big benchmark process would report that process's size. The launcher is small (``python -S``).
_LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_pid, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"wall": wall, "rss_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status),
               "cpu": usage.ru_utime + usage.ru_stime}, f)
"""


def measure(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    timeout: float = 1800.0,
) -> Measured:
    """Run ``argv``: its wall time and its own peak RSS (see :data:`_LAUNCHER`)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        err_path = Path(tmp) / "stderr"
        with err_path.open("wb") as err:
            subprocess.run(
                [sys.executable, "-S", "-c", _LAUNCHER, str(result), *argv],
                stdout=stdout,
                stderr=err,
                env=dict(env) if env else None,
                timeout=timeout,
                check=False,
            )
        text = err_path.read_text(encoding="utf-8", errors="replace")
        if not result.exists():
            return Measured(float("nan"), float("nan"), -1, text)
        doc = json.loads(result.read_text())
    return Measured(doc["wall"], doc["rss_kb"] / 1024, doc["code"], text, doc["cpu"])


def _first_line(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    versions = ", ".join(
        f"{d} {_version(d)}" for d in ("dbt-core", "prometheus-client", "protobuf", "cramjam", "click")
    )
    servers = "; ".join(
        re.sub(r"\s*\(.*", "", _first_line(argv))
        for argv in (["prometheus", "--version"], ["prometheus-pushgateway", "--version"])
    )
    return [
        ("CPU", f"{_cpu()}, {os.cpu_count()} cores ({platform.machine()})"),
        ("memory", _memory_gb()),
        ("OS", f"{platform.system()} {platform.release()} ({platform.platform(terse=True)})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("packages", versions),
        ("servers", servers),
    ]
