"""Benchmark: a `dbt-prom serve` refresh vs a CLI `dbt source freshness`, at 10, 127 and 1,000 sources.

The sample project (10 checked sources), grown with ``devtools.bulk`` to 127 and 1,000
(``BENCH_SERVE_SIZES=0,117,990``: bulk sources added). Figures (printed, never asserted;
target for the ratio: <= 0.05):

- ``dbt source freshness`` (the dbt CLI, a fresh process each time) wall time, median of N,
  interleaved with the refreshes below (CLI run, refresh, CLI run, ...) so that the machine's
  noise slows both sides of the ratio alike;
- one ``serve`` refresh after the first (dbt imported, parsed manifest kept in memory by the
  long-lived runner: :class:`dbt_prom_bridge.serve.Refresher`; the batched path of
  :mod:`dbt_prom_bridge.fastfresh` unless ``DBT_PROM_SERVE_FRESHNESS=dbt``), median of N
  (the background ``sources.json`` write is waited for between refreshes, outside the figure);
- the raw-SQL floor: the same ``max(loaded_at)`` queries, sent through the dbt adapter's own
  connection in the same process, no dbt task around them;
- the /metrics page encode time of that run (prometheus_client registry + custom collector).

Self-contained: starts its own embedded PostgreSQL and seeds a private copy of the sample
project. ``python -m bench.serve`` runs it alone; ``make bench`` collects it with the others.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

_IN_PROCESS = r"""
import json, statistics, sys, time
from pathlib import Path
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions
from dbt_prom_bridge.serve import Exporter, Refresher

project, rounds = Path(sys.argv[1]), int(sys.argv[2])
dbt = DbtOptions(project_dir=project, profiles_dir=project)
refresher = Refresher(dbt, ArtifactOptions(), RunOptions())
t0 = time.perf_counter()
first = refresher()
first_s = time.perf_counter() - t0
print(json.dumps({"ready": first_s}), flush=True)
# One refresh per line on stdin: the parent interleaves them with its CLI runs, so a noisy
# neighbour slows both sides of the ratio alike.
refreshes = []
for line in sys.stdin:
    if line.strip() != "refresh":
        break
    t = time.perf_counter()
    run = refresher()
    refreshes.append(time.perf_counter() - t)
    getattr(refresher.runner, "flush", lambda: None)()  # the background sources.json write
    print(json.dumps({"refresh": refreshes[-1]}), flush=True)
assert run.success, run.error

# The raw-SQL floor: the freshness queries dbt runs, through the adapter's own connection.
from dbt.adapters.factory import FACTORY
adapter = next(iter(FACTORY.adapters.values()))
manifest = json.loads((project / "target" / "manifest.json").read_text())
queries = []
for node in manifest["sources"].values():
    fresh = node.get("freshness") or {}
    if not any((fresh.get(k) or {}).get("count") for k in ("warn_after", "error_after")):
        continue
    if node.get("loaded_at_query"):
        queries.append(node["loaded_at_query"])
        continue
    where = f" where {fresh['filter']}" if fresh.get("filter") else ""
    queries.append(
        f"select max({node['loaded_at_field']}) as max_loaded_at, now() as snapshotted_at "
        f"from {node['relation_name']}{where}"
    )
floors = []
failed = 0
with adapter.connection_named("bench-floor"):
    for _ in range(rounds):
        t = time.perf_counter()
        failed = 0
        for sql in queries:
            try:
                adapter.execute(sql, fetch=True)
            except Exception:
                failed += 1
                adapter.connections.get_thread_connection().handle.rollback()
        floors.append(time.perf_counter() - t)

exporter = Exporter(lambda: run, interval=3600, listen=("127.0.0.1", 0))
exporter.refresh_once()
from prometheus_client.exposition import generate_latest
t = time.perf_counter()
page = generate_latest(exporter.registry)
encode_s = time.perf_counter() - t
exporter.close()
print(json.dumps({
    "sources": len(run.checks), "first": first_s, "refresh": statistics.median(refreshes),
    "floor": statistics.median(floors), "queries": len(queries), "failed_queries": failed,
    "encode_ms": encode_s * 1000, "page_bytes": len(page),
    "path": getattr(refresher.runner, "last_path", "dbt"),
}))
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stdout[-2000:]}")
    return elapsed


def _answer(child: subprocess.Popen[str], key: str, errors: Any) -> float:
    """The next line the in-process child prints: ``{key: seconds}``."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        raise RuntimeError(f"serve benchmark failed: {_tail(errors)}")
    return float(json.loads(line)[key])


def _tail(errors: Any) -> str:
    errors.seek(0)
    return str(errors.read())[-2000:]


#: Bulk sources added to the sample project's 10 checked ones (devtools.bulk): 10, 127, 1,000.
SIZES = [int(n) for n in os.environ.get("BENCH_SERVE_SIZES", "0,117,990").split(",") if n.strip()]
#: Rounds at 1,000 sources and more (a CLI run there takes 20-60 s on 2 shared cores).
BIG_ROUNDS = int(os.environ.get("BENCH_SERVE_BIG_ROUNDS", "2"))


def run() -> list[tuple[str, str]]:
    from tests.fixtures_dbt import started_postgres

    rows: list[tuple[str, str]] = []
    with started_postgres() as pg:
        for bulk in SIZES:
            rows += _measure(pg, bulk, ROUNDS if bulk < 500 else BIG_ROUNDS)
    return rows


def _measure(pg: Any, bulk: int, rounds: int) -> list[tuple[str, str]]:
    from devtools import bulk as bulk_sources
    from devtools import seed
    from tests.fixtures_dbt import DbtProjectEnv, copy_project

    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-serve-") as tmp:
        project = copy_project(Path(tmp) / "dbt_project")
        env = DbtProjectEnv(project_dir=project, profiles_dir=project, env=pg.env(), postgres=pg)
        env.seed()
        conn = seed.connect(pg.env())
        try:
            bulk_sources.add_bulk_sources(project, conn, bulk)
        finally:
            conn.close()
        proc_env = env.subprocess_env()
        dbt_argv = [str(BIN / "dbt"), "source", "freshness", *env.cli_args()]
        _timed(dbt_argv, proc_env)  # warm the partial-parse cache and the OS file cache
        errors = (Path(tmp) / "in-process.err").open("w+")  # a file: a full pipe would block it
        child = subprocess.Popen(
            [sys.executable, "-c", _IN_PROCESS, str(project), str(rounds)],
            env={**proc_env, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            first = _answer(child, "ready", errors)
            cli_times, refreshes = [], []
            for _ in range(rounds):  # interleaved: CLI run, refresh, CLI run, refresh...
                cli_times.append(_timed(dbt_argv, proc_env))
                child.stdin.write("refresh\n")
                child.stdin.flush()
                refreshes.append(_answer(child, "refresh", errors))
            child.stdin.write("done\n")
            child.stdin.close()
            figures = json.loads(child.stdout.read().strip().splitlines()[-1])
            if child.wait(timeout=1200) != 0:
                raise RuntimeError(f"serve benchmark failed: {_tail(errors)}")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            errors.close()

    cli = statistics.median(cli_times)
    refresh, floor = statistics.median(refreshes), figures["floor"]
    n = figures["sources"]
    return [
        (f"[{n} sources] dbt source freshness (CLI) wall, median of {rounds}", f"{cli:.3f} s"),
        (f"[{n} sources] serve: first refresh (import dbt + parse + dbt's run + compile)", f"{first:.3f} s"),
        (
            f"[{n} sources] serve: refresh 2+ ({figures['path']} path), median of {rounds}",
            f"{refresh * 1000:.1f} ms",
        ),
        (f"[{n} sources] serve refresh / CLI dbt source freshness (target <= 0.05)", f"{refresh / cli:.3f}"),
        (
            f"[{n} sources] raw-SQL floor: {figures['queries']} max() queries, one by one",
            f"{floor * 1000:.1f} ms ({figures['failed_queries']} failed: runtime errors)",
        ),
        (f"[{n} sources] serve refresh / raw-SQL floor", f"{refresh / floor:.1f}x"),
        (
            f"[{n} sources] /metrics page encode (registry + custom collector)",
            f"{figures['encode_ms']:.2f} ms, {figures['page_bytes']} B",
        ),
    ]


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<62} {figure}")
