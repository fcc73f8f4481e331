"""Benchmark: what running dbt through dbt-prom costs over running dbt itself (sample project).

Figures (printed, never asserted; target for the ratio: <= 1.05):

- ``dbt source freshness`` (the dbt CLI) wall time vs ``dbt-prom push --gateway URL`` wall time,
  both as fresh processes on the same seeded project with a warm partial-parse cache, runs
  interleaved, median of N;
- in one process, the first vs the second run of one ``DbtFreshnessRunner`` (the ``serve``
  loop reuses the parsed manifest);
- building our Manifest record from dbt's in-memory manifest vs reading target/manifest.json.

Self-contained: starts its own embedded PostgreSQL and Pushgateway on loopback and stops them.
``python -m bench.push_vs_dbt`` runs it alone; ``make bench`` collects it with the others.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools import servers

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

_IN_PROCESS = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.runner import DbtFreshnessRunner, manifest_from_dbt
from dbt_prom_bridge.artifacts import read_manifest
project = Path(sys.argv[1])
runner = DbtFreshnessRunner(DbtOptions(project_dir=project, profiles_dir=project))
first = runner.run()
t1 = time.perf_counter()
second = runner.run()
t2 = time.perf_counter()
third = runner.run()
t3 = time.perf_counter()
n = 20
a = time.perf_counter()
for _ in range(n):
    manifest_from_dbt(runner._cache.dbt_manifest)
b = time.perf_counter()
for _ in range(n):
    read_manifest(project / "target" / "manifest.json")
c = time.perf_counter()
print(json.dumps({
    "first": t1 - t0, "second": t2 - t1, "third": t3 - t2,
    "first_parse": first.parse_seconds, "first_freshness": first.freshness_seconds,
    "second_reused": second.manifest_reused, "second_freshness": second.freshness_seconds,
    "memory_manifest_ms": (b - a) / n * 1000, "file_manifest_ms": (c - b) / n * 1000,
    "sources": len(first.artifact.results),
}))
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed


def run() -> list[tuple[str, str]]:
    from tests.fixtures_dbt import DbtProjectEnv, copy_project, started_postgres

    with (
        started_postgres() as pg,
        tempfile.TemporaryDirectory(prefix="dbt-prom-bench-") as tmp,
    ):
        gateway = servers.start_pushgateway(Path(tmp) / "pushgateway")
        try:
            project = copy_project(Path(tmp) / "dbt_project")
            env = DbtProjectEnv(project_dir=project, profiles_dir=project, env=pg.env(), postgres=pg)
            env.seed()
            proc_env = env.subprocess_env()
            dbt_argv = [str(BIN / "dbt"), "source", "freshness", *env.cli_args()]
            push_argv = [str(BIN / "dbt-prom"), "push", "--gateway", gateway.url, *env.cli_args()]
            _timed(dbt_argv, proc_env)  # warm the partial-parse cache and the OS file cache
            _timed(push_argv, proc_env)
            dbt_times: list[float] = []
            push_times: list[float] = []
            for _ in range(ROUNDS):
                dbt_times.append(_timed(dbt_argv, proc_env))
                push_times.append(_timed(push_argv, proc_env))
            in_process = subprocess.run(
                [sys.executable, "-c", _IN_PROCESS, str(project)],
                env={**proc_env, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            figures = json.loads(in_process.stdout.strip().splitlines()[-1])
        finally:
            gateway.stop()

    dbt_med, push_med = statistics.median(dbt_times), statistics.median(push_times)
    return [
        ("sample project sources checked", str(figures["sources"])),
        (f"dbt source freshness (CLI) wall, median of {ROUNDS}", f"{dbt_med:.2f} s"),
        (f"dbt-prom push --gateway wall, median of {ROUNDS}", f"{push_med:.2f} s"),
        ("dbt-prom push / dbt source freshness (target <= 1.05)", f"{push_med / dbt_med:.3f}"),
        (
            "in-process first run (import + parse + freshness)",
            f"{figures['first']:.2f} s (parse {figures['first_parse']:.2f} s, "
            f"freshness {figures['first_freshness']:.2f} s)",
        ),
        (
            "in-process second run (manifest reused)",
            f"{figures['second']:.2f} s (reused: {figures['second_reused']})",
        ),
        ("in-process first / second run", f"{figures['first'] / figures['second']:.1f}x"),
        (
            "Manifest record: from dbt's memory vs reading manifest.json",
            f"{figures['memory_manifest_ms']:.2f} ms vs {figures['file_manifest_ms']:.2f} ms",
        ),
    ]


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<62} {figure}")
