"""Concurrent pushes against a real Pushgateway: different targets and projects at the same time
all land; selected runs of one group at the same time never lose each other's update; two
replays of one spill dir push each run once."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dbt_prom_bridge import api
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, DeliveryOptions, GatewayConfig, RunOptions
from dbt_prom_bridge.errors import PushError
from dbt_prom_bridge.model import FreshnessRun, SourceCheck
from devtools import servers
from tests.reliability.loopback import Forward, Loopback, Reply
from tests.reliability.runs import held, loaded_at, run_ts, state_of, write_artifacts

pytestmark = pytest.mark.e2e

DBT_PROM = str(Path(sys.executable).parent / "dbt-prom")
SOURCES = (
    "events.clicks",
    "events.app_events",
    "events.consumer_offsets",
    "events.page_views",
    "finance.transaction_labels",
    "finance.transactions",
)


def as_project(artifacts: Path, project: str) -> Path:
    """The same artifacts, as if another dbt project had produced them (same source names)."""
    for name in ("sources.json", "manifest.json"):
        path = artifacts / name
        path.write_text(path.read_text().replace("dbt_prom_demo", project))
    return artifacts


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DBT_PROM_", "DBT_"))}


def test_pushes_for_different_targets_and_projects_at_the_same_time_all_land(
    pushgateway: servers.Server, tmp_path: Path
) -> None:
    now = time.time()
    jobs = []
    for index, (project, target) in enumerate(
        [(p, t) for p in ("dbt_prom_demo", "dbt_prom_demo_b") for t in ("dev", "prod", "ci")]
    ):
        artifacts = write_artifacts(
            tmp_path / f"{project}-{target}", now - 60 - index, loaded_offset=100 + index
        )
        if project != "dbt_prom_demo":
            as_project(artifacts, project)
        argv = [DBT_PROM, "push", "--no-run", "--artifacts-dir", str(artifacts), "--target", target]
        argv += ["--gateway", pushgateway.url, "--spill-dir", str(tmp_path / "spill")]
        jobs.append((project, target, artifacts, argv))
    procs = [subprocess.Popen(argv, env=cli_env(), stderr=subprocess.PIPE, text=True) for *_, argv in jobs]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for project, target, artifacts, _ in jobs:
        run = api.load_run(
            DbtOptions(target=target), ArtifactOptions(no_run=True, artifacts_dir=artifacts), RunOptions()
        )
        assert run.project == project
        assert held(pushgateway.url, project=project, target=target) == state_of(run)


@pytest.mark.parametrize("round_", range(3))
def test_selected_runs_of_one_group_at_the_same_time_keep_every_update(
    pushgateway: servers.Server, tmp_path: Path, round_: int
) -> None:
    """Each thread pushes a --select run of one source; the read-merge-write cycles overlap. With
    the group lock (in the shared spill dir) every source ends up with its thread's value."""
    now = time.time()
    spill_dir = tmp_path / "spill"
    base = write_artifacts(tmp_path / "full", now - 600, loaded_offset=5000)
    gateway = GatewayConfig(url=pushgateway.url, retries=0)
    api.deliver(
        api.load_run(
            DbtOptions(target="dev"), ArtifactOptions(no_run=True, artifacts_dir=base), RunOptions()
        ),
        DeliveryOptions(gateway=gateway, spill_dir=spill_dir),
    )
    runs = []
    for index, source in enumerate(SOURCES):
        artifacts = write_artifacts(
            tmp_path / source, now - 60 + index, only=[source], loaded_offset=10 + index
        )
        runs.append(
            api.load_run(
                DbtOptions(target="dev", select=(source,)),
                ArtifactOptions(no_run=True, artifacts_dir=artifacts),
                RunOptions(),
            )
        )
    barrier = threading.Barrier(len(runs))
    errors: list[BaseException] = []

    def push(run: object) -> None:
        try:
            barrier.wait(10)
            api.deliver(run, DeliveryOptions(gateway=gateway, spill_dir=spill_dir))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    state = loaded_at(held(pushgateway.url, project="dbt_prom_demo", target="dev"))
    for index, source in enumerate(SOURCES):
        src, table = source.split(".")
        assert state[(src, table)] == pytest.approx(now - 60 + index - (10 + index), abs=1e-3), source
    # sources nobody selected keep the full run's values
    assert state[("orders", "orders")] == pytest.approx(now - 600 - 5000, abs=1e-3)


def test_two_replays_of_one_spill_dir_push_each_run_once(pushgateway: servers.Server, tmp_path: Path) -> None:
    now = time.time()
    spill_dir = tmp_path / "spill"
    with Loopback([Reply(503)]) as proxy:
        gateway = GatewayConfig(url=proxy.url, retries=0)
        for index in range(5):
            artifacts = write_artifacts(
                tmp_path / f"r{index}", now - 500 + 100 * index, loaded_offset=7 + index
            )
            run = api.load_run(
                DbtOptions(target="dev"), ArtifactOptions(no_run=True, artifacts_dir=artifacts), RunOptions()
            )
            with pytest.raises(PushError):
                api.deliver(run, DeliveryOptions(gateway=gateway, spill_dir=spill_dir, auto_replay=False))
        assert len(list(spill_dir.glob("*.json"))) == 5
        proxy.play(Forward(pushgateway.url))
        proxy.seen.clear()
        argv = [DBT_PROM, "replay", "--spill-dir", str(spill_dir), "--gateway", proxy.url]
        procs = [subprocess.Popen(argv, env=cli_env(), stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = []
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            outputs.append(err)
            assert proc.returncode == 0, err
    assert sum(err.count("dbt-prom: replayed ") for err in outputs) == 5
    assert [s.method for s in proxy.seen].count("PUT") == 5
    assert list(spill_dir.glob("*.json")) == []
    newest = api.load_run(
        DbtOptions(target="dev"), ArtifactOptions(no_run=True, artifacts_dir=tmp_path / "r4"), RunOptions()
    )
    state = held(pushgateway.url, project="dbt_prom_demo", target="dev")
    assert state == state_of(newest) and run_ts(state) == newest.generated_at


def newest_per_source(runs: list[FreshnessRun]) -> dict[tuple[str, str], float]:
    """For every source, max_loaded_at of its newest check over ``runs`` (no-data checks: NaN)."""
    best: dict[tuple[str, str], SourceCheck] = {}
    for one in runs:
        for c in one.checks:
            mine = best.get(c.key)
            if mine is None or (c.checked_at or 0) > (mine.checked_at or 0):
                best[c.key] = c
    return {k: c.max_loaded_at for k, c in best.items() if c.max_loaded_at is not None}


ALL_SOURCES = (*SOURCES, "orders.orders", "orders.order_items")


@pytest.mark.parametrize("round_", range(4))
def test_random_simultaneous_full_and_partial_pushes_end_with_the_newest_check_of_each_source(
    pushgateway: servers.Server, tmp_path: Path, round_: int
) -> None:
    """8 `dbt-prom push --no-run` processes at once, each a full run or a selection made by dbt
    (the artifact only has some sources), at random times and in random start order: the gateway
    ends holding the newest check of every source, every process exits 0."""
    rng = random.Random(round_)
    now = time.time()
    spill_dir = tmp_path / "spill"
    jobs = []
    for index in range(8):
        at = now - rng.uniform(10, 900)
        only = None if rng.random() < 0.3 else rng.sample(ALL_SOURCES, rng.randint(1, 4))
        artifacts = write_artifacts(tmp_path / f"r{index}", at, only=only, loaded_offset=rng.uniform(1, 5000))
        argv = [DBT_PROM, "push", "--no-run", "--artifacts-dir", str(artifacts), "--target", "dev"]
        argv += ["--gateway", pushgateway.url, "--spill-dir", str(spill_dir), "--max-artifact-age", "1h"]
        jobs.append((artifacts, argv))
    rng.shuffle(jobs)
    procs = [subprocess.Popen(argv, env=cli_env(), stderr=subprocess.PIPE, text=True) for _a, argv in jobs]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    runs = [
        api.load_run(
            DbtOptions(target="dev"),
            ArtifactOptions(no_run=True, artifacts_dir=artifacts, allow_stale=True),
            RunOptions(),
        )
        for artifacts, _argv in jobs
    ]
    state = held(pushgateway.url, project="dbt_prom_demo", target="dev")
    assert loaded_at(state) == pytest.approx(newest_per_source(runs))
    newest_run = max(r.generated_at or 0 for r in runs)
    assert run_ts(state) == pytest.approx(newest_run)


def test_two_hosts_pushing_one_group_converge(pushgateway: servers.Server, tmp_path: Path) -> None:
    """Two hosts (separate state dirs, so no shared lock or cache) take turns on one group: each
    reads what the other wrote, nothing is lost."""
    now = time.time()
    runs = []
    for index, source in enumerate(ALL_SOURCES):
        artifacts = write_artifacts(
            tmp_path / f"r{index}", now - 100 + index, only=[source], loaded_offset=index
        )
        runs.append(
            api.load_run(
                DbtOptions(target="dev"), ArtifactOptions(no_run=True, artifacts_dir=artifacts), RunOptions()
            )
        )
    gateway = GatewayConfig(url=pushgateway.url, retries=0)
    for index, one in enumerate(runs):
        host = tmp_path / ("host-a" if index % 2 else "host-b")
        api.deliver(one, DeliveryOptions(gateway=gateway, spill_dir=host))
    state = held(pushgateway.url, project="dbt_prom_demo", target="dev")
    assert loaded_at(state) == pytest.approx(newest_per_source(runs))
