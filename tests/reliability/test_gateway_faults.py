"""Gateway faults with a real Pushgateway (stopped, started late, killed mid-run) and a loopback
server that answers 500 / 400 / hangs. After each: exit 4 with the replay command, the run is in
the spill dir, and once the gateway is back the replay leaves the gateway holding the newest run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dbt_prom_bridge import api
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, GatewayConfig, RunOptions
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.pushgateway import Pushgateway
from devtools import servers
from tests.fixtures_dbt import EXPECTED_STATUS, DbtProjectEnv, read_gateway, run_cli
from tests.reliability.loopback import Forward, Hang, Loopback, Reply
from tests.reliability.runs import held, loaded_at, run_ts, state_of, write_artifacts
from tests.reliability.support import GatewayFactory, error_lines, replay_argv

pytestmark = pytest.mark.e2e

GROUP = {"project": "dbt_prom_demo", "target": "dev"}


def push_args(artifacts: Path, url: str, spill_dir: Path, *extra: str) -> list[str]:
    return [
        "push",
        "--no-run",
        "--artifacts-dir",
        str(artifacts),
        "--target",
        "dev",
        "--gateway",
        url,
        "--spill-dir",
        str(spill_dir),
        "--retries",
        "0",
        "--timeout",
        "3s",
        *extra,
    ]


def loaded(artifacts: Path, *select: str) -> FreshnessRun:
    """The run ``dbt-prom push --no-run`` builds from ``artifacts`` (what the gateway should hold)."""
    return api.load_run(
        DbtOptions(target="dev", select=select),
        ArtifactOptions(no_run=True, artifacts_dir=artifacts),
        RunOptions(),
    )


def spilled(directory: Path) -> list[spill.SpilledRun]:
    found = spill.scan(directory)
    assert found.unreadable == ()
    return list(found.entries)


def assert_failed_and_spilled(code: int, err: str, spill_dir: Path, expect: str) -> None:
    assert code == 4, err
    [line] = error_lines(err)
    assert expect in line, line
    assert "the run was saved to" in line and "replay it with: dbt-prom replay --spill-dir" in line
    assert "Traceback" not in err
    assert len(spilled(spill_dir)) == 1


def test_gateway_stopped_then_back(
    gateways: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = gateways()
    now = time.time()
    first, second = write_artifacts(tmp_path / "r1", now - 300), write_artifacts(tmp_path / "r2", now - 200)
    spill_dir = tmp_path / "spill"
    code, _, err = run_cli(push_args(first, gw.url, spill_dir), capsys)
    assert code == 0, err
    gw.stop()

    code, _, err = run_cli(push_args(second, gw.url, spill_dir), capsys)
    assert_failed_and_spilled(code, err, spill_dir, f"cannot reach {gw.url}")
    command = replay_argv(err)
    assert command == [
        "replay",
        "--spill-dir",
        str(spill_dir),
        "--gateway",
        gw.url,
        "--timeout",
        "3s",
        "--retries",
        "0",
    ]

    # Still down: the replay keeps the run and says so (exit 4).
    code, _, err = run_cli(command, capsys)
    assert code == 4 and len(spilled(spill_dir)) == 1, err
    assert "kept" in err and "1 spilled run(s) remain" in err

    gateways(port=gw.port)  # back, empty (no persistence)
    code, _, err = run_cli(command, capsys)
    assert code == 0, err
    assert "replay: 1 pushed, 0 dropped as superseded, 0 kept" in err
    assert spilled(spill_dir) == []
    assert held(gw.url, **GROUP) == state_of(loaded(second))


def test_gateway_started_late_retries_succeed(
    gateways: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = servers.free_port()
    artifacts = write_artifacts(tmp_path / "r1", time.time() - 60)
    starter = threading.Timer(1.5, lambda: gateways(port=port))
    starter.start()
    try:
        args = push_args(artifacts, f"http://127.0.0.1:{port}", tmp_path / "spill")
        code, _, err = run_cli([*args, "--retries", "5"], capsys)
    finally:
        starter.join()
    assert code == 0, err
    assert spilled(tmp_path / "spill") == []
    assert held(f"http://127.0.0.1:{port}", **GROUP) == state_of(loaded(artifacts))


def test_gateway_killed_mid_push_behind_a_proxy(
    gateways: GatewayFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gateway dies (kill -9) between the merge read and the write of a --select run."""
    gw = gateways(persistence_file=tmp_path / "gw.db", extra=["--persistence.interval=100ms"])
    now = time.time()
    full, part = (
        write_artifacts(tmp_path / "full", now - 300),
        write_artifacts(tmp_path / "part", now - 100, only=["finance.transactions"], loaded_offset=50),
    )
    spill_dir = tmp_path / "spill"
    code, _, err = run_cli(push_args(full, gw.url, spill_dir), capsys)
    assert code == 0, err
    time.sleep(0.5)  # persisted

    def kill_then_forward(seen: object) -> Reply:
        gw.kill()
        return Reply(502, b"bad gateway: connection refused")

    with Loopback([Forward(gw.url), Forward(gw.url), kill_then_forward]) as proxy:
        code, _, err = run_cli(
            [*push_args(part, proxy.url, spill_dir, "--select", "finance.transactions"), "--retries", "2"],
            capsys,
        )
        assert_failed_and_spilled(code, err, spill_dir, f"HTTP 502 from {proxy.url}: bad gateway")
        # already-pushed check, merge read, then the write: killed, retried twice
        assert [s.method for s in proxy.seen] == ["GET", "GET", "PUT", "PUT", "PUT"]

        restarted = gateways(port=gw.port, persistence_file=tmp_path / "gw.db")
        assert run_ts(held(restarted.url, **GROUP)) == pytest.approx(now - 300, abs=1e-3)  # the last good run
        proxy.play(Forward(restarted.url))
        code, _, err = run_cli(replay_argv(err), capsys)
        assert code == 0, err
    state = held(restarted.url, **GROUP)
    expected = state_of(loaded(full))
    assert run_ts(state) == pytest.approx(now - 100, abs=1e-3)
    assert loaded_at(state) == {
        **loaded_at(expected),
        ("finance", "transactions"): pytest.approx(now - 150, abs=1e-3),
    }
    assert spilled(spill_dir) == []


@pytest.mark.parametrize(
    ("script", "extra", "expect", "attempts"),
    [
        (
            [Reply(500, b"internal error: disk full")],
            ["--retries", "2"],
            "HTTP 500 from {url}: internal error: disk full after 3 attempts",
            3,
        ),
        ([Reply(503)], ["--retries", "1"], "HTTP 503 from {url} after 2 attempts", 2),
        (
            [Reply(429, b"slow down")],
            ["--retries", "1"],
            "HTTP 429 from {url}: slow down after 2 attempts",
            2,
        ),
        (
            [
                Reply(
                    400,
                    b"pushed metrics are invalid or inconsistent with existing metrics: "
                    b'collected metric "x" has help "a" but should have "b"',
                )
            ],
            ["--retries", "3"],
            "HTTP 400 from {url}: pushed metrics are invalid or inconsistent with existing metrics: "
            'collected metric "x" has help "a" but should have "b"',
            1,
        ),
        ([Reply(401)], ["--retries", "3"], "authentication failed (HTTP 401) at {url}", 1),
        (
            [Hang()],
            ["--retries", "1", "--timeout", "0.5s"],
            "{url} did not answer within 0.5s after 2 attempts",
            2,
        ),
    ],
    ids=["500", "503", "429", "400", "401", "hang"],
)
def test_loopback_faults_spill_and_replay(
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    script: list[Reply | Hang],
    extra: list[str],
    expect: str,
    attempts: int,
) -> None:
    artifacts = write_artifacts(tmp_path / "r1", time.time() - 60)
    spill_dir = tmp_path / "spill"
    with Loopback(script) as srv:
        code, _, err = run_cli([*push_args(artifacts, srv.url, spill_dir), *extra], capsys)
        assert_failed_and_spilled(code, err, spill_dir, expect.format(url=srv.url))
        # the push's first request (reading the group's state revision) meets the fault
        assert len(srv.seen) == attempts
        assert held(pushgateway.url, **GROUP) == {}

        srv.play(Forward(pushgateway.url))
        code, _, err = run_cli(replay_argv(err), capsys)
        assert code == 0, err
    assert spilled(spill_dir) == []
    assert held(pushgateway.url, **GROUP) == state_of(loaded(artifacts))


def test_several_failures_then_the_next_push_recovers_by_itself(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cron job: four pushes fail (full, partial, dbt down, full), the fifth (partial) works and
    replays the others first. Nothing is lost and the newest value of every source wins."""
    now = time.time()
    spill_dir = tmp_path / "spill"
    r1 = write_artifacts(tmp_path / "r1", now - 500, loaded_offset=500)
    r2 = write_artifacts(tmp_path / "r2", now - 400, only=["finance.transactions"], loaded_offset=10)
    r4 = write_artifacts(tmp_path / "r4", now - 300, loaded_offset=300)
    r5 = write_artifacts(
        tmp_path / "r5", now - 100, only=["events.clicks", "events.page_views"], loaded_offset=20
    )
    with Loopback([Reply(503, b"maintenance")]) as srv:
        for artifacts, select in ((r1, ()), (r2, ("finance.transactions",)), (r4, ())):
            sel = [a for s in select for a in ("--select", s)]
            code, _, err = run_cli([*push_args(artifacts, srv.url, spill_dir), *sel], capsys)
            assert code == 4, err
        dbt_down = FreshnessRun(
            project="dbt_prom_demo",
            target="dev",
            checks=(),
            generated_at=None,
            elapsed=None,
            success=False,
            error="x",
        )
        spill.spill_run(
            spill_dir,
            dbt_down,
            Pushgateway(GatewayConfig(url=srv.url)).destination(dbt_down),
            "x",
            now=lambda: now - 350,
        )
        assert len(spilled(spill_dir)) == 4

        srv.play(Forward(pushgateway.url))
        args = push_args(r5, srv.url, spill_dir, "--select", "events.clicks", "--select", "events.page_views")
        code, _, err = run_cli(args, capsys)
    assert code == 0, err
    # The dbt failure came after r2 and before r4: it is replayed in its place (run_success 0
    # for a moment), then r4 and r5 land on top.
    assert err.count("dbt-prom: replayed ") == 4 and "dropped" not in err, err
    assert err.index("replayed") < err.index("dbt-prom: pushed 2 sources")
    assert spilled(spill_dir) == []
    state = held(pushgateway.url, **GROUP)
    expected: dict[tuple[str, ...], object] = dict(loaded_at(state_of(loaded(r4))))
    expected[("events", "clicks")] = expected[("events", "page_views")] = pytest.approx(now - 120, abs=1e-3)
    assert loaded_at(state) == expected
    assert run_ts(state) == pytest.approx(now - 100, abs=1e-3)
    assert state["dbt_source_freshness_run_success"] == {(): 1.0}


def test_push_while_the_gateway_is_still_down_spills_without_a_second_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spill_dir = tmp_path / "spill"
    with Loopback([Reply(503)]) as srv:
        for index, at in enumerate((time.time() - 200, time.time() - 100)):
            artifacts = write_artifacts(tmp_path / f"r{index}", at)
            code, _, err = run_cli([*push_args(artifacts, srv.url, spill_dir), "--retries", "1"], capsys)
            assert code == 4, err
        # The first push tries twice to read the group's state; the second push's replay found
        # the gateway down (2 attempts) and spilled its own run without a second round of retries.
        assert len(srv.seen) == 4
    assert len(spilled(spill_dir)) == 2


@pytest.mark.dbt
def test_gateway_killed_while_dbt_runs_then_the_next_cron_push_recovers(
    sample_project: DbtProjectEnv,
    gateways: GatewayFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real `dbt source freshness` in-process; the gateway is killed (-9) as dbt reports its
    first source. The run is spilled; the next push (gateway back) replays it, then lands."""
    from dbt_prom_bridge.cli import push as push_cli

    gw = gateways()
    spill_dir = tmp_path / "spill"
    args = [
        "push",
        "--gateway",
        gw.url,
        "--spill-dir",
        str(spill_dir),
        "--retries",
        "1",
        *sample_project.cli_args(),
    ]
    killed: list[str] = []

    def kill_on_first_event(line: str) -> None:
        if not killed:
            gw.kill()
            killed.append(line)

    monkeypatch.setattr(push_cli, "on_event", kill_on_first_event)
    code, _, err = run_cli(args, capsys)
    assert killed and code == 4, err
    [entry] = spilled(spill_dir)
    assert entry.run.success and len(entry.run.checks) == len(EXPECTED_STATUS)
    monkeypatch.undo()

    gateways(port=gw.port)  # back, empty
    sample_project.make_stale("events.clicks")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert f"replayed {entry.path.name}" in err
    assert spilled(spill_dir) == []
    view = read_gateway(gw.url)
    assert view.statuses() == {**EXPECTED_STATUS, "events.clicks": "error"}
    assert (view.run_value("dbt_source_freshness_run_timestamp_seconds") or 0) > entry.when


@pytest.mark.parametrize(
    "metrics",
    [
        b'dbt_source_freshness_run_timestamp_seconds{job="dbt_source_freshness",project="dbt_prom_demo" 1\n',
        b'dbt_source_freshness_run_timestamp_seconds{job="x"} not-a-number\n',
        b"dbt_source_freshness_run_timestamp_seconds{\xff\xfe} 1e999999\n",
        b'dbt_source_freshness_run_timestamp_seconds{job="dbt_source_freshness",le="\\q"} 1 2 3\n',
    ],
    ids=["unclosed", "bad value", "binary", "bad escape"],
)
def test_malformed_lines_in_the_gateways_own_metrics_are_not_an_internal_error(
    metrics: bytes, pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A push reads the group back from the gateway's /metrics: a line it cannot parse is skipped."""
    art = write_artifacts(tmp_path / "art", time.time() - 30)

    script = [lambda seen: Reply(200, metrics) if seen.path == "/metrics" else Forward(pushgateway.url)]
    args = [
        "push",
        "--no-run",
        "--artifacts-dir",
        str(art),
        "--target",
        "dev",
        "--spill-dir",
        str(tmp_path / "s"),
    ]
    with Loopback(script) as proxy:
        code, _, err = run_cli([*args, "--gateway", proxy.url], capsys)
    assert code == 0, err
    assert "internal error" not in err
    assert run_ts(held(pushgateway.url, project="dbt_prom_demo", target="dev")) is not None
