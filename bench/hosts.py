"""Benchmark: several hosts pushing one Pushgateway group at the same time (what can be lost).

Each "host" has its own state directory (so no shared lock and no shared cache, as on separate
machines); in every round each host pushes, at the same moment, a newer check of one source of
its own (a ``--select`` of one source). After the round the group should hold the newest check of
every source. Printed: how many of those updates the gateway did not hold right after the round
(hidden by a concurrent write of another host), and how many were still missing after each host
pushed once more (its state cache brings them back). Same host, same figures, for comparison.
Never asserted.

``BENCH_HOSTS_ROUNDS`` (default 30) sets the rounds, ``BENCH_HOSTS`` (default 4) the hosts.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

ROUNDS = int(os.environ.get("BENCH_HOSTS_ROUNDS", "30"))
HOSTS = int(os.environ.get("BENCH_HOSTS", "4"))
T0 = 1_767_000_000.0


def _rounds(url: str, work: Path, shared: bool) -> tuple[int, int, int]:
    from dbt_prom_bridge.config import GatewayConfig
    from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway

    def check(table: str, at: float) -> SourceCheck:
        return SourceCheck(
            unique_id=f"source.p.src.{table}",
            source_name="src",
            table_name=table,
            database="db",
            schema="raw",
            identifier=table,
            status=Status.PASS,
            max_loaded_at=at - 1,
            has_data=True,
            checked_at=at,
            warn_after=Threshold(1, "hour"),
            error_after=Threshold(1, "day"),
            duration=0.01,
        )

    def run(table: str, at: float) -> FreshnessRun:
        return FreshnessRun(
            project="p",
            target=f"t{int(shared)}",
            checks=(check(table, at),),
            generated_at=at,
            elapsed=1.0,
            success=True,
        )

    def sink(host: int) -> Pushgateway:
        state = work / ("shared" if shared else f"host-{host}")
        return Pushgateway(GatewayConfig(url=url, retries=2), state_dir=state)

    updates = hidden = missing = 0
    want: dict[str, float] = {}
    for round_ in range(ROUNDS):
        at = T0 + round_
        barrier = threading.Barrier(HOSTS)

        def push(host: int, at: float = at, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(30)
            sink(host).push(run(f"h{host}", at))

        threads = [threading.Thread(target=push, args=(h,)) for h in range(HOSTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for host in range(HOSTS):
            want[f"h{host}"] = at - 1
        updates += HOSTS
        held, _rev = sink(0).held(run("h0", at))
        got = {c.table_name: c.max_loaded_at for c in held.checks} if held else {}
        hidden += sum(1 for k, v in want.items() if got.get(k) != v)
    # each host pushes once more (a newer check of a source nobody else has): caches repair
    for host in range(HOSTS):
        sink(host).push(run(f"x{host}", T0 + ROUNDS + host))
    held, _rev = sink(0).held(run("h0", T0))
    got = {c.table_name: c.max_loaded_at for c in held.checks} if held else {}
    missing = sum(1 for k, v in want.items() if got.get(k) != v)
    return updates, hidden, missing


def run() -> list[tuple[str, str]]:
    from devtools import servers

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-hosts-") as tmp:
        work = Path(tmp)
        gateway = servers.start_pushgateway(work / "gateway")
        try:
            for shared in (True, False):
                updates, hidden, missing = _rounds(gateway.url, work / str(shared), shared)
                who = "one host (shared state dir)" if shared else f"{HOSTS} hosts (separate state dirs)"
                rows.append(
                    (
                        f"{HOSTS} simultaneous 1-source pushes x {ROUNDS} rounds, {who}",
                        f"{hidden} of {updates} updates hidden right after their round; "
                        f"{missing} of the {HOSTS} last ones missing after each host pushed again",
                    )
                )
        finally:
            gateway.stop()
    return rows


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<80} {figure}")
