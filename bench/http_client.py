"""Benchmark: the sinks' HTTP client (:mod:`dbt_prom_bridge.sinks.http`, standard library) against
urllib3 (installed with dbt), on a real Pushgateway on loopback.

Printed, never asserted: for each client, the wall time of 200 small GETs of the gateway's
``/-/healthy``, and of PUTting the exposition of a 10,000-source run into a group (the request a
push makes), best of 3, and the ratio. Both are measured in this process, one after the other.
``python -m bench.http_client`` runs it alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SMALL = 200
SOURCES = 10_000


def _best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run() -> list[tuple[str, str]]:
    import urllib3

    from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
    from dbt_prom_bridge.exposition import render_bytes
    from dbt_prom_bridge.model import RunContext, build_run
    from dbt_prom_bridge.sinks.http import HttpClient
    from dbt_prom_bridge.state import initial
    from devtools import servers, synthetic

    manifest, sources = synthetic.generate(SOURCES, seed=0)
    run_ = build_run(parse_sources(sources), parse_manifest(manifest), RunContext(target="bench"))
    body = bytes(render_bytes(initial(run_)))
    path = "/metrics/job/bench/project/p/target/t"
    headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-http-") as tmp:
        gateway = servers.start_pushgateway(Path(tmp) / "gw")
        try:
            ours = HttpClient(gateway.url, retries=0)
            pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=10, read=60))

            def ours_small() -> None:
                for _ in range(SMALL):
                    ours.request("GET", "/-/healthy")

            def theirs_small() -> None:
                for _ in range(SMALL):
                    pool.request("GET", gateway.url + "/-/healthy").release_conn()

            def ours_put() -> None:
                ours.request("PUT", path, body, headers)

            def theirs_put() -> None:
                resp = pool.request("PUT", gateway.url + path, body=body, headers=headers)
                assert resp.status < 300, resp.data[:200]

            figures = {
                "small": (_best(ours_small), _best(theirs_small)),
                "put": (_best(ours_put), _best(theirs_put)),
            }
        finally:
            gateway.stop()
    rows = []
    for what, (a, b) in figures.items():
        label = (
            f"{SMALL} GETs" if what == "small" else f"PUT of {SOURCES:,} sources ({len(body) / 1e6:.1f} MB)"
        )
        rows.append(
            (
                f"HTTP client: {label}, sinks.http (urllib) / urllib3",
                f"{a:.3f} s / {b:.3f} s = {a / b:.2f}",
            )
        )
    rows.append(
        (
            "HTTP client: median of the two ratios",
            f"{statistics.median([a / b for a, b in figures.values()]):.2f}",
        )
    )
    return rows


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<80} {figure}")
