"""Benchmark: the bridge at 1,000 / 10,000 / 100,000 sources, the Pushgateway, remote write.

Figures (printed, never asserted), per size N, on synthetic artifacts
(:mod:`devtools.synthetic`: manifest v12 + sources v3, the shapes of real projects):

- in one process: read manifest.json (streamed), read sources.json, build the run, serialize
  the exposition (streamed to /dev/null), encode the remote-write requests (protobuf + snappy);
  that process's peak RSS;
- the same series through bare prometheus_client (``Gauge(...).labels(...).set()`` per series,
  then ``generate_latest``), from the same run in memory, and the ratio of the two
  serializations (dbt-prom's writer / prometheus_client);
- ``dbt-prom push --no-run --dry-run``: wall time and peak RSS (target: <= 300 MB at 100,000);
- ``dbt-prom push --no-run --gateway``: into an empty Pushgateway (this includes the
  already-pushed check), then again with ``--force`` (the group is replaced), then a 1,000-source
  push of another project while the gateway holds the N sources: the gateway re-checks everything
  it holds on every push, so this grows with N;
- ``dbt-prom push --no-run --remote-write`` into a real Prometheus
  (``--web.enable-remote-write-receiver``), and how many series Prometheus then holds.

Each size gets its own Pushgateway and Prometheus on loopback (stopped afterwards).
- grouping: a full push of 10,000 sources as one gateway group per project/target (what dbt-prom
  does) vs one group per dbt source (``source_name``) plus a run-level group.

``BENCH_SCALE_SIZES`` picks the sizes (default ``1000,10000``; add ``100000`` for the 100,000-source
figures of docs/performance.md: ~5 more minutes, and the Pushgateway grows to several GB);
``BENCH_SCALE_SERVERS=0`` skips the gateway and remote-write pushes; ``BENCH_GROUPING_SOURCES``
(default 10000, 0: skip) sets the size of the grouping comparison. ``python -m bench.scale`` runs it alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from bench import BIN, Measured, measure

SIZES = [int(x) for x in os.environ.get("BENCH_SCALE_SIZES", "1000,10000").split(",") if x.strip()]
SERVERS = os.environ.get("BENCH_SCALE_SERVERS", "1") != "0"
OTHER_SOURCES = 1000
GROUPING_SOURCES = int(os.environ.get("BENCH_GROUPING_SOURCES", "10000"))

_PHASES = r"""
import json, os, sys, time
from pathlib import Path
t = time.perf_counter()
from dbt_prom_bridge.artifacts import read_manifest, read_sources
from dbt_prom_bridge.config import RemoteWriteConfig
from dbt_prom_bridge.exposition import iter_text
from dbt_prom_bridge.model import RunContext, build_run
from dbt_prom_bridge.sinks.remote_write import batches, compress
out = {"import": time.perf_counter() - t}
d = Path(sys.argv[1])
def lap(name):
    global t
    now = time.perf_counter()
    out[name] = now - t
    t = now
t = time.perf_counter()
manifest = read_manifest(d / "manifest.json"); lap("manifest")
artifact = read_sources(d / "sources.json"); lap("sources")
run = build_run(artifact, manifest, RunContext(target="default")); lap("build")
del artifact, manifest
size = 0
with open(os.devnull, "w", encoding="utf-8") as sink:
    for piece in iter_text(run):
        size += len(piece.encode())
        sink.write(piece)
lap("serialize")
out["text_bytes"] = size
sent = requests = series = 0
for batch in batches(run, RemoteWriteConfig(url="http://unused"), int(time.time() * 1000)):
    sent += len(compress(batch.body)); requests += 1; series += batch.series
lap("remote_write_encode")
out.update(rw_bytes=sent, rw_requests=requests, series=series, n_sources=len(run.checks))
print(json.dumps(out))
"""

_BASELINE = r"""
import json, sys, time
from pathlib import Path
from dbt_prom_bridge.artifacts import read_manifest, read_sources
from dbt_prom_bridge.exposition import HELP, families, iter_text
from dbt_prom_bridge.model import RunContext, build_run
from prometheus_client import CollectorRegistry, Gauge, generate_latest
d = Path(sys.argv[1])
artifact, manifest = read_sources(d / "sources.json"), read_manifest(d / "manifest.json")
run = build_run(artifact, manifest, RunContext(target="default"))
t = time.perf_counter()
size = sum(len(p) for p in iter_text(run))
ours = time.perf_counter() - t
t = time.perf_counter()
registry = CollectorRegistry(auto_describe=False)
for fam in families(run):
    gauge = Gauge(fam.name, HELP[fam.name], fam.label_names, registry=registry)
    for values, value in fam.rows:
        gauge.labels(*values).set(value)
set_s = time.perf_counter() - t
t = time.perf_counter()
text = generate_latest(registry)
generate_s = time.perf_counter() - t
print(json.dumps({"ours": ours, "set": set_s, "generate": generate_s}))
"""


def _json_of(measured: Measured, stdout_file: Path) -> dict[str, float]:
    if measured.returncode != 0:
        raise RuntimeError(f"exit {measured.returncode}: {measured.stderr[-500:]}")
    return dict(json.loads(stdout_file.read_text().strip().splitlines()[-1]))


def _python(script: str, arg: Path, out: Path) -> tuple[Measured, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with out.open("wb") as handle:
        measured = measure([sys.executable, "-c", script, str(arg)], env=env, stdout=handle)
    return measured, _json_of(measured, out)


def _cli(*args: str) -> Measured:
    measured = measure([str(BIN / "dbt-prom"), "push", "--no-run", "--allow-stale-artifact", *args])
    if measured.returncode != 0:
        raise RuntimeError(
            f"dbt-prom push {' '.join(args[:1])} exit {measured.returncode}: {measured.stderr[-400:]}"
        )
    return measured


def _one_source(project: Path, out: Path) -> Path:
    """The project's artifacts as a `dbt source freshness --select` of its first source leaves
    them: sources.json with that one result, checked a minute later; the full manifest."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    doc = json.loads((project / "sources.json").read_text())
    doc["results"] = doc["results"][:1]
    (out / "sources.json").write_text(json.dumps(doc))
    shutil.copyfile(project / "manifest.json", out / "manifest.json")
    _bump(out)
    return out


def _bump(artifacts: Path, by: float = 60.0) -> None:
    """Move the artifact's times ``by`` seconds later (a newer check of the same sources)."""
    import datetime as dt

    def later(text: str) -> str:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) + dt.timedelta(seconds=by)
        return stamp.isoformat().replace("+00:00", "Z" if text.endswith("Z") else "+00:00")

    path = artifacts / "sources.json"
    doc = json.loads(path.read_text())
    doc["metadata"]["generated_at"] = later(doc["metadata"]["generated_at"])
    for result in doc["results"]:
        result["snapshotted_at"] = later(result["snapshotted_at"])
    path.write_text(json.dumps(doc))


def _series_held(prometheus_url: str) -> int:
    # samples carry the check time, minutes old at 100,000 sources: look back a day, not 5m
    query = urllib.parse.urlencode({"query": 'count(last_over_time({job="dbt_source_freshness"}[1d]))'})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=120) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def _servers_figures(n: int, project: Path, other: Path, work: Path) -> list[tuple[str, str]]:
    from devtools import servers

    figures: list[tuple[str, str]] = []
    spill = ["--spill-dir", str(work / "spill")]
    where = ["--project-dir", str(project), "--artifacts-dir", str(project)]
    gateway = servers.start_pushgateway(work / "gateway")
    try:
        first = _cli("--gateway", gateway.url, "--timeout", "600s", *where, *spill)
        again = _cli("--gateway", gateway.url, "--timeout", "600s", "--force", *where, *spill)
        others = ["--project-dir", str(other), "--artifacts-dir", str(other)]
        small = _cli("--gateway", gateway.url, "--timeout", "600s", *others, *spill)
        one = _one_source(project, work / "one")
        at_one = ["--project-dir", str(project), "--artifacts-dir", str(one)]
        same_host = _cli("--gateway", gateway.url, "--timeout", "600s", *at_one, *spill)
        _bump(one)
        other_host = _cli(
            "--gateway", gateway.url, "--timeout", "600s", *at_one, "--spill-dir", str(work / "host-b")
        )
        figures += [
            (
                f"{n:,} sources held: a 1-source push (dbt's own --select); same host / another host",
                f"{same_host.wall:.2f} s, {same_host.rss_mb:.0f} MB / {other_host.wall:.2f} s, "
                f"{other_host.rss_mb:.0f} MB",
            ),
            (
                f"{n:,} sources: push --gateway (empty gateway; first / replace with --force)",
                f"{first.wall:.2f} s / {again.wall:.2f} s, peak RSS {max(first.rss_mb, again.rss_mb):.0f} MB",
            ),
            (
                f"{n:,} sources: a {OTHER_SOURCES:,}-source push of another project while these are held",
                f"{small.wall:.2f} s",
            ),
        ]
    finally:
        gateway.stop()
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    prometheus = servers.start_prometheus(work / "prometheus", config, remote_write_receiver=True)
    try:
        pushed = _cli("--remote-write", prometheus.url + "/api/v1/write", "--timeout", "600s", *where, *spill)
        figures.append(
            (
                f"{n:,} sources: push --remote-write into Prometheus",
                f"{pushed.wall:.2f} s, peak RSS {pushed.rss_mb:.0f} MB; "
                f"{_series_held(prometheus.url):,} series stored",
            )
        )
    finally:
        prometheus.stop()
    return figures


def _grouping_figures(n: int, work: Path) -> list[tuple[str, str]]:
    """One Pushgateway group per project/target (what dbt-prom does) vs one group per dbt source
    (``source_name``) plus a run-level group: the gateway re-checks everything it holds on every
    push, so many small groups cost one full check each."""
    import time
    from dataclasses import replace
    from itertools import groupby

    from dbt_prom_bridge.artifacts import read_manifest, read_sources
    from dbt_prom_bridge.config import GatewayConfig
    from dbt_prom_bridge.exposition import PER_SOURCE_METRICS, RUN_METRICS, render_bytes
    from dbt_prom_bridge.model import RunContext, build_run
    from dbt_prom_bridge.sinks.http import HttpClient
    from dbt_prom_bridge.sinks.pushgateway import CONTENT_TYPE, Pushgateway, group_path
    from devtools import servers, synthetic

    written = synthetic.write(work / "grouping", n, seed=0)
    run = build_run(
        read_sources(written.sources_json), read_manifest(written.manifest), RunContext("default")
    )
    groups = [(name, tuple(checks)) for name, checks in groupby(run.checks, key=lambda c: c.source_name)]
    key = (("project", run.project), ("target", run.target))
    headers = {"Content-Type": CONTENT_TYPE}
    gateway = servers.start_pushgateway(work / "grouping-gateway")
    try:
        client = HttpClient(gateway.url, timeout=600, retries=0)
        one = Pushgateway(GatewayConfig(url=gateway.url, timeout=600, retries=0), client)
        one.push(run)
        start = time.perf_counter()
        one.push(run)
        single = time.perf_counter() - start
        one.delete(run)
        rounds = []
        for _ in range(2):  # the first round fills an empty gateway; the second is the steady state
            start = time.perf_counter()
            for name, checks in groups:
                body = render_bytes(replace(run, checks=checks), PER_SOURCE_METRICS)
                client.request(
                    "PUT", group_path("dbt_source_freshness", (*key, ("source_name", name))), body, headers
                )
            client.request(
                "PUT", group_path("dbt_source_freshness", key), render_bytes(run, RUN_METRICS), headers
            )
            rounds.append(time.perf_counter() - start)
    finally:
        gateway.stop()
    return [
        (
            f"grouping, {n:,} sources: one group per project/target vs one per source_name "
            f"({len(groups)} + 1 groups)",
            f"{single:.2f} s vs {rounds[1]:.1f} s per full push ({rounds[1] / single:.0f}x; "
            f"{rounds[0]:.1f} s into an empty gateway)",
        )
    ]


def run() -> list[tuple[str, str]]:
    from devtools import synthetic

    figures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-scale-") as tmp:
        work = Path(tmp)
        other = synthetic.write(
            work / "other", OTHER_SOURCES, seed=99, project="other_project"
        ).manifest.parent
        for n in SIZES:
            print(f"bench.scale: {n:,} sources", file=sys.stderr, flush=True)
            size_dir = work / f"n{n}"
            written = synthetic.write(size_dir / "project", n, seed=0)
            project = written.manifest.parent
            measured, ph = _python(_PHASES, project, size_dir / "phases.json")
            _, base = _python(_BASELINE, project, size_dir / "baseline.json")
            dry = _cli("--dry-run", "--project-dir", str(project), "--artifacts-dir", str(project))
            figures += [
                (
                    f"{n:,} sources: artifacts",
                    f"manifest {written.manifest.stat().st_size / 1e6:.1f} MB, sources.json "
                    f"{written.sources_json.stat().st_size / 1e6:.1f} MB; {ph['series']:,.0f} series, "
                    f"exposition {ph['text_bytes'] / 1e6:.1f} MB, remote write {ph['rw_bytes'] / 1e6:.1f} MB "
                    f"snappy in {ph['rw_requests']:.0f} requests",
                ),
                (
                    f"{n:,} sources: read manifest / read sources.json / build run",
                    f"{ph['manifest']:.2f} s / {ph['sources']:.2f} s / {ph['build']:.2f} s",
                ),
                (
                    f"{n:,} sources: serialize exposition / encode remote write",
                    f"{ph['serialize']:.2f} s / {ph['remote_write_encode']:.2f} s; "
                    f"peak RSS of all these phases {measured.rss_mb:.0f} MB",
                ),
                (
                    f"{n:,} sources: prometheus_client set / generate_latest",
                    f"{base['set']:.2f} s / {base['generate']:.2f} s",
                ),
                (
                    f"{n:,} sources: serialization, dbt-prom writer / prometheus_client",
                    f"{base['ours']:.2f} s / {base['set'] + base['generate']:.2f} s = "
                    f"{base['ours'] / (base['set'] + base['generate']):.2f}",
                ),
                (
                    f"{n:,} sources: push --no-run --dry-run"
                    + (" (target <= 300 MB)" if n >= 100_000 else ""),
                    f"{dry.wall:.2f} s, peak RSS {dry.rss_mb:.0f} MB",
                ),
            ]
            if SERVERS:
                figures += _servers_figures(n, project, other, size_dir)
        if SERVERS and GROUPING_SOURCES:
            figures += _grouping_figures(GROUPING_SOURCES, work)
    return figures


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<80} {figure}")
