"""Benchmark: the metric contract writer against bare prometheus_client, and CLI start-up.

Figures (printed, never asserted):

- ``dbt-prom push --no-run --dry-run`` on a synthetic 10,000-source project
  (:mod:`devtools.synthetic`: manifest v12 + sources v3, ~107k series) vs the baseline:
  the same series given to prometheus_client the usual way, ``Gauge(name, help, labelnames,
  registry=...)`` per family, ``.labels(*values).set(value)`` per series, ``generate_latest`` to
  stdout. Both are whole processes (interpreter start, imports, output); the baseline starts
  from the series already extracted (a JSON list), so it does not read dbt artifacts at all,
  while ``dbt-prom`` reads the 23 MB manifest and 6 MB sources.json, joins them, renders and
  prints its summary table. Target: ratio <= 1.3. The two outputs are parsed back and
  compared (same series and values).
- The same dry run against the floor of reading its input: a bare Python process that only
  reads (``json.load``) the same ``manifest.json`` and ``sources.json`` (interpreter start included
  on both sides). Target: ratio <= 1.3, by wall time and by CPU time (user + system, steadier
  when other work shares the cores).
- ``dbt-prom --help`` and ``dbt-prom push --help`` wall time (target <= 0.3 s: dbt is imported
  only by the commands that run it).

``BENCH_CONTRACT_SOURCES`` (default 10000) and ``BENCH_ROUNDS`` (default 5; medians) change it.
``python -m bench.contract`` runs it alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import BIN, Measured, measure

SOURCES = int(os.environ.get("BENCH_CONTRACT_SOURCES", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

_BASELINE = r"""
import json, sys, time
t0 = time.perf_counter()
from prometheus_client import CollectorRegistry, Gauge, generate_latest
t1 = time.perf_counter()
doc = json.load(open(sys.argv[1]))
t2 = time.perf_counter()
registry = CollectorRegistry(auto_describe=False)
gauges = {}
for name, names, values, value in doc["series"]:
    gauge = gauges.get(name)
    if gauge is None:
        gauge = gauges[name] = Gauge(name, doc["help"][name], names, registry=registry)
    gauge.labels(*values).set(value)
t3 = time.perf_counter()
text = generate_latest(registry)
t4 = time.perf_counter()
sys.stdout.buffer.write(text)
sys.stdout.flush()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "set": t3 - t2, "generate": t4 - t3}), file=sys.stderr)
"""

_JSON_LOAD = r"""
import json, sys
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        json.load(f)
"""


def _series_file(directory: Path, out: Path) -> int:
    """The run's series, as the baseline's input; returns how many."""
    from dbt_prom_bridge.artifacts import read_manifest, read_sources
    from dbt_prom_bridge.exposition import HELP, families
    from dbt_prom_bridge.model import RunContext, build_run
    from dbt_prom_bridge.state import initial

    # what a first push holds: the checks and the manifest's not_run sources (as --dry-run prints)
    run = initial(
        build_run(
            read_sources(directory / "sources.json"),
            read_manifest(directory / "manifest.json"),
            RunContext(target="default"),
        )
    )
    series = [
        (fam.name, list(fam.label_names), list(values), value)
        for fam in families(run)
        for values, value in fam.rows
    ]
    out.write_text(json.dumps({"help": dict(HELP), "series": series}))
    return len(series)


def _parsed(path: Path) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = path.read_text(encoding="utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _median(runs: list[Measured]) -> Measured:
    ordered = sorted(runs, key=lambda m: m.wall)
    return ordered[len(ordered) // 2]


def run() -> list[tuple[str, str]]:
    from devtools import synthetic

    figures: list[tuple[str, str]] = []
    dbt_prom = str(BIN / "dbt-prom")
    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-contract-") as tmp:
        work = Path(tmp)
        written = synthetic.write(work / "project", SOURCES, seed=0)
        n_series = _series_file(work / "project", work / "series.json")
        push_argv = [dbt_prom, "push", "--no-run", "--dry-run", "--project-dir", str(work / "project")]
        push_argv += ["--artifacts-dir", str(work / "project"), "--allow-stale-artifact"]
        base_argv = [sys.executable, "-c", _BASELINE, str(work / "series.json")]
        load_argv = [sys.executable, "-c", _JSON_LOAD, str(written.manifest), str(written.sources_json)]
        # warm the OS file cache and .pyc files once, then alternate
        with (work / "push.prom").open("wb") as out:
            subprocess.run(push_argv, stdout=out, stderr=subprocess.DEVNULL, check=True, timeout=600)
        with (work / "baseline.prom").open("wb") as out:
            subprocess.run(base_argv, stdout=out, stderr=subprocess.DEVNULL, check=True, timeout=600)
        measure(load_argv)
        push_runs: list[Measured] = []
        base_runs: list[Measured] = []
        load_runs: list[Measured] = []
        for _ in range(ROUNDS):
            push_runs.append(measure(push_argv))
            load_runs.append(measure(load_argv))
            base_runs.append(measure(base_argv))
        same = _parsed(work / "push.prom") == _parsed(work / "baseline.prom")
        push, base, load = _median(push_runs), _median(base_runs), _median(load_runs)
        push_cpu = statistics.median(m.cpu for m in push_runs)
        load_cpu = statistics.median(m.cpu for m in load_runs)
        phases = json.loads(base.stderr.strip().splitlines()[-1])
        figures += [
            (
                f"synthetic project: {SOURCES:,} sources",
                f"{written.n_results:,} results; manifest {written.manifest.stat().st_size / 1e6:.0f} MB, "
                f"sources.json {written.sources_json.stat().st_size / 1e6:.0f} MB; {n_series:,} series",
            ),
            (
                f"dbt-prom push --no-run --dry-run, median of {ROUNDS}",
                f"{push.wall:.2f} s, CPU {push_cpu:.2f} s, peak RSS {push.rss_mb:.0f} MB",
            ),
            (
                f"prometheus_client Gauge().labels().set() + generate_latest, median of {ROUNDS}",
                f"{base.wall:.2f} s, peak RSS {base.rss_mb:.0f} MB (import {phases['import']:.2f} s, "
                f"load series {phases['load']:.2f} s, set {phases['set']:.2f} s, "
                f"generate_latest {phases['generate']:.2f} s)",
            ),
            ("dry-run / prometheus_client (target <= 1.3)", f"{push.wall / base.wall:.2f}"),
            (
                f"bare python json.load of manifest.json + sources.json, median of {ROUNDS}",
                f"{load.wall:.2f} s, CPU {load_cpu:.2f} s, peak RSS {load.rss_mb:.0f} MB",
            ),
            (
                "dry-run / json.load of the same two files (target <= 1.3), wall; CPU",
                f"{push.wall / load.wall:.2f} ({push.wall:.2f} s / {load.wall:.2f} s); "
                f"{push_cpu / load_cpu:.2f} ({push_cpu:.2f} s / {load_cpu:.2f} s)",
            ),
            ("both outputs parse to the same series and values", "yes" if same else "NO"),
        ]
    for argv, label in (
        ([dbt_prom, "--help"], "dbt-prom --help"),
        ([dbt_prom, "push", "--help"], "dbt-prom push --help"),
    ):
        measure(argv)
        walls = [measure(argv).wall for _ in range(max(ROUNDS, 5))]
        figures.append(
            (f"{label} wall, median of {len(walls)} (target <= 0.3 s)", f"{statistics.median(walls):.3f} s")
        )
    return figures


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<72} {figure}")
