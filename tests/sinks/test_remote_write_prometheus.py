"""Remote write into a real Prometheus (``--web.enable-remote-write-receiver`` on loopback), read back
through its HTTP API: labels and values exactly, hostile values included; out-of-order refusals,
spill and replay; basic auth."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge import api
from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.config import HttpAuth, RemoteWriteConfig, Secret
from dbt_prom_bridge.errors import PushError
from dbt_prom_bridge.exposition import RUN_SUCCESS, render
from dbt_prom_bridge.model import FreshnessRun, RunContext, build_run
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.remote_write import RemoteWrite, too_old
from dbt_prom_bridge.state import initial
from devtools import servers, synthetic
from tests.conftest import requires, scrape

pytestmark = [pytest.mark.e2e, requires("prometheus")]

Series = tuple[str, tuple[tuple[str, str], ...], float]
PASSWORD = "s3cret-rw-password"
DBT_PROM = str(Path(sys.executable).parent / "dbt-prom")


def prometheus_at(workdir: Path, web_config: Path | None = None) -> servers.Server:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n")
    extra = [f"--web.config.file={web_config}"] if web_config else []
    return servers.start_prometheus(workdir, config, remote_write_receiver=True, extra=extra)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = prometheus_at(tmp_path_factory.mktemp("prom-rw"))
    yield server
    server.stop()


def write_url(server: servers.Server) -> str:
    return server.url + "/api/v1/write"


def query(server: servers.Server, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
    with urllib.request.urlopen(
        f"{server.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=30
    ) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def stored(server: servers.Server, job: str, at: float) -> list[Series]:
    out: list[Series] = []
    for item in query(server, f'{{job="{job}"}}', at):
        labels = dict(item["metric"])
        name = labels.pop("__name__")
        out.append((name, tuple(sorted(labels.items())), float(item["value"][1])))
    return out


def expected(run: FreshnessRun, extra: dict[str, str]) -> list[Series]:
    out: list[Series] = []
    for fam in text_string_to_metric_families(render(initial(run))):
        for sample in fam.samples:
            labels = {k: v for k, v in {**sample.labels, **extra}.items() if v != ""}
            out.append((sample.name, tuple(sorted(labels.items())), sample.value))
    return out


def synthetic_run(n: int, seed: int, now: float, hostile: bool = True) -> FreshnessRun:
    manifest, sources = synthetic.generate(
        n, seed=seed, now=now, hostile=hostile, runtime_errors_in_artifact=True
    )
    return build_run(
        parse_sources(sources),
        parse_manifest(manifest),
        RunContext(target="prod", meta_labels=("owner", "team")),
    )


def test_series_read_back_equal_the_exposition(prometheus: servers.Server) -> None:
    now = time.time()
    run = synthetic_run(600, seed=31, now=now)
    config = RemoteWriteConfig(
        url=write_url(prometheus), job="rw_exact", labels=(("region", "eu/west 1"),), batch=900
    )
    delivered = RemoteWrite(config).push(run)
    assert delivered.pushed and len(delivered.merged.updated) == len(initial(run).checks)
    got = stored(prometheus, "rw_exact", now)
    want = expected(run, {"job": "rw_exact", "region": "eu/west 1"})
    assert Counter(got) == Counter(want)
    values = {v for _n, labels, _v in got for _k, v in labels}
    assert (
        any("\n" in v for v in values)
        and any('"' in v for v in values)
        and any("日本語" in v for v in values)
    )
    # each source's samples carry the time of its check; run-level ones the run's time
    checked = {c.checked_at for c in run.checks}
    ranges = query(prometheus, '{job="rw_exact"}[10m]', now)
    assert len(ranges) == len(want)
    for item in ranges:
        [(t, _v)] = item["values"]
        name = item["metric"]["__name__"]
        if name.startswith("dbt_source_freshness_run_") or name.startswith("dbt_prom_bridge"):
            assert float(t) == pytest.approx(run.generated_at)
        elif name != "dbt_source_freshness_sources":
            stamps = {round(c, 3) for c in checked if c is not None} | {round(run.generated_at or 0.0, 3)}
            assert round(float(t), 3) in stamps


def test_older_checks_are_not_sent_and_refusals_are_lost_not_superseded(
    prometheus: servers.Server, tmp_path: Path
) -> None:
    now = time.time()
    state_dir = tmp_path / "state"
    newer = synthetic_run(40, seed=32, now=now, hostile=False)
    config = RemoteWriteConfig(url=write_url(prometheus), job="rw_order", batch=100)
    assert RemoteWrite(config, state_dir=state_dir).push(newer).pushed
    # an older run of the same sources: this host knows it sent newer checks, so nothing is sent
    older = synthetic_run(40, seed=32, now=now - 600, hostile=False)
    again = RemoteWrite(config, state_dir=state_dir).push(older)
    assert not again.pushed and len(again.merged.not_newer) == len(older.checks)

    # the same through a spill entry and replay: superseded (this host sent newer checks)
    spill_dir = state_dir
    sink = RemoteWrite(config, state_dir=spill_dir)
    spill.spill_run(spill_dir, older, sink.destination(older), "test", now=lambda: now - 60)
    report = api.replay(spill_dir, remote_write=config)
    assert [e.run.generated_at for e in report.superseded] == [older.generated_at] and not report.pushed
    assert spill.scan(spill_dir).entries == ()
    held = query(prometheus, 'dbt_source_freshness_run_timestamp_seconds{job="rw_order"}', now)
    assert [float(h["value"][1]) for h in held] == [pytest.approx(newer.generated_at)]

    # another host (no shared state) sends the older checks: the receiver refuses them, and
    # that is reported as lost with its reason, never as superseded
    with pytest.raises(PushError) as refused:
        RemoteWrite(config, state_dir=tmp_path / "other-host").push(older)
    assert refused.value.status == 400 and too_old(refused.value)
    assert "lost" in str(refused.value)


def test_cli_push_spills_when_down_and_replays_before_the_next_push(
    prometheus: servers.Server, tmp_path: Path
) -> None:
    synthetic.write(tmp_path / "a", 200, seed=33, now=time.time() - 5)
    spill_dir = tmp_path / "spill"
    dead = f"http://127.0.0.1:{servers.free_port()}/api/v1/write"
    common = [
        "--no-run",
        "--job",
        "rw_cli",
        "--spill-dir",
        str(spill_dir),
        "--retries",
        "0",
        "--meta-label",
        "owner",
    ]

    def push(directory: Path, url: str) -> subprocess.CompletedProcess[str]:
        argv = [DBT_PROM, "push", "--project-dir", str(directory), "--artifacts-dir", str(directory)]
        return subprocess.run(
            [*argv, "--remote-write", url, *common], capture_output=True, text=True, timeout=120, check=False
        )

    down = push(tmp_path / "a", dead)
    assert down.returncode == 4, down.stderr
    assert "cannot reach" in down.stderr and "saved to" in down.stderr and "Traceback" not in down.stderr
    assert f"dbt-prom replay --spill-dir {spill_dir} --remote-write {dead}" in down.stderr
    entries = spill.scan(spill_dir).entries
    assert [e.destination.kind for e in entries] == ["remote_write"]
    assert entries[0].destination.url == dead

    # the endpoint comes back (another URL here: the test Prometheus): the next push replays what
    # was spilled for that URL first; an entry for another URL is left alone
    moved = replace(entries[0].destination, url=write_url(prometheus))
    spill.spill_run(spill_dir, entries[0].run, moved, "moved", now=lambda: time.time() - 2)
    second_at = float(int(time.time()))
    synthetic.write(tmp_path / "b", 200, seed=34, now=second_at)
    ok = push(tmp_path / "b", write_url(prometheus))
    assert ok.returncode == 0, ok.stderr
    assert "dbt-prom: pushed " in ok.stderr and write_url(prometheus) in ok.stderr
    assert "replayed" in ok.stderr
    assert [e.destination.url for e in spill.scan(spill_dir).entries] == [dead]
    samples = query(prometheus, f'count_over_time({RUN_SUCCESS}{{job="rw_cli"}}[5m])')
    assert [float(s["value"][1]) for s in samples] == [2.0]  # the replayed run, then the new one
    held = query(prometheus, 'dbt_source_freshness_run_timestamp_seconds{job="rw_cli"}')
    assert [float(s["value"][1]) for s in held] == [second_at]


def test_basic_auth(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  writer: {hashed}\n")
    server = prometheus_at(tmp_path / "prom-auth", web)
    try:
        run = synthetic_run(20, seed=34, now=time.time(), hostile=False)
        url = write_url(server)
        bad = RemoteWriteConfig(
            url=url, auth=HttpAuth(username="writer", password=Secret("wrong")), retries=0
        )
        with pytest.raises(PushError, match="authentication failed") as failed:
            RemoteWrite(bad).push(run)
        assert "wrong" not in str(failed.value)
        good = replace(bad, auth=HttpAuth(username="writer", password=Secret(PASSWORD)))
        assert RemoteWrite(good).push(run).pushed
        with_url_credentials = RemoteWriteConfig(url=url.replace("http://", f"http://writer:{PASSWORD}@"))
        later = synthetic_run(20, seed=34, now=time.time() + 1, hostile=False)
        assert RemoteWrite(with_url_credentials).push(later).pushed
    finally:
        server.stop()


def test_replay_command_sends_spilled_runs_to_the_remote_write_endpoint(
    prometheus: servers.Server, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    now = time.time()
    run = synthetic_run(30, seed=35, now=now - 30, hostile=False)
    config = RemoteWriteConfig(url=write_url(prometheus), job="rw_replay")
    other = RemoteWriteConfig(url="http://127.0.0.1:9/api/v1/write", job="rw_replay")
    spill.spill_run(spill_dir, run, RemoteWrite(config).destination(run), "down", now=lambda: now - 20)
    spill.spill_run(spill_dir, run, RemoteWrite(other).destination(run), "down", now=lambda: now - 20)

    argv = [DBT_PROM, "replay", "--spill-dir", str(spill_dir), "--remote-write", write_url(prometheus)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stderr  # the entry for the other endpoint stays
    assert "replayed " in done.stderr and "pass --remote-write http://127.0.0.1:9/api/v1/write" in done.stderr
    assert [e.destination.url for e in spill.scan(spill_dir).entries] == [other.url]
    held = query(prometheus, 'dbt_source_freshness_run_timestamp_seconds{job="rw_replay"}', now)
    assert [float(h["value"][1]) for h in held] == [pytest.approx(now - 30)]
    ranges = query(prometheus, 'dbt_source_freshness_run_success{job="rw_replay"}[5m]', now)
    assert [float(t) for t, _v in ranges[0]["values"]] == [pytest.approx(now - 30, abs=1e-3)]


@requires("prometheus-pushgateway")
def test_gateway_and_remote_write_in_one_push(
    prometheus: servers.Server, pushgateway: servers.Server, tmp_path: Path
) -> None:
    """Both destinations get the run; when one is down the other still does, the run is spilled
    for the one that failed, and the command exits 4."""
    project = synthetic.write(tmp_path / "p", 60, seed=36, now=time.time()).manifest.parent
    spill_dir = tmp_path / "spill"
    base = [DBT_PROM, "push", "--no-run", "--project-dir", str(project), "--artifacts-dir", str(project)]
    base += ["--spill-dir", str(spill_dir), "--retries", "0"]

    both = subprocess.run(
        [*base, "--job", "rw_both", "--gateway", pushgateway.url, "--remote-write", write_url(prometheus)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert both.returncode == 0, both.stderr
    assert both.stderr.count("dbt-prom: pushed ") == 2
    held = [s for s in scrape(pushgateway.url + "/metrics") if s[0] == "dbt_source_has_data"]
    assert len(held) > 30
    stored_count = query(prometheus, 'count(dbt_source_has_data{job="rw_both"})')[0]["value"][1]
    assert int(stored_count) == len(held)

    dead = f"http://127.0.0.1:{servers.free_port()}"
    half = subprocess.run(
        [*base, "--force", "--job", "rw_half", "--gateway", dead, "--remote-write", write_url(prometheus)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert half.returncode == 4, half.stderr
    assert f"(delivered to {write_url(prometheus)} all the same)" in half.stderr
    assert "cannot reach" in half.stderr and "dbt-prom replay" in half.stderr
    assert query(prometheus, 'count(dbt_source_has_data{job="rw_half"})')[0]["value"][1] == str(len(held))
    assert [e.destination.kind for e in spill.scan(spill_dir).entries] == ["pushgateway"]
