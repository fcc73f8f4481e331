"""`dbt-prom serve`: the exporter's state, its HTTP endpoints, and real runs of the sample project."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.errors import ArtifactError, UsageError
from dbt_prom_bridge.exposition import HAS_DATA, RUN_SUCCESS, STATUS, families
from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold
from dbt_prom_bridge.serve import (
    LAST_SUCCESS,
    REFRESHES,
    Exporter,
    ExporterState,
    Refresh,
    parse_listen,
)
from devtools import servers
from tests.conftest import requires
from tests.fixtures_dbt import EXPECTED_STATUS, DbtProjectEnv

DBT_PROM = Path(sys.executable).parent / "dbt-prom"

NOW = 1_800_000_000.0


def check(table: str, status: Status = Status.PASS) -> SourceCheck:
    return SourceCheck(
        unique_id=f"source.shop.orders.{table}",
        source_name="orders",
        table_name=table,
        database="db",
        schema="raw",
        identifier=table,
        status=status,
        max_loaded_at=NOW - 60,
        has_data=True,
        checked_at=NOW,
        warn_after=Threshold(1, "hour"),
        error_after=Threshold(1, "day"),
        duration=0.05,
    )


RUN = FreshnessRun("shop", "prod", (check("orders"), check('q"uote\\', Status.WARN)), NOW, 1.0, True)
FAILED = FreshnessRun("shop", "prod", (), None, None, False, error="connection refused")


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9918", ("127.0.0.1", 9918)),
        (":9100", ("127.0.0.1", 9100)),
        ("[::1]:9918", ("::1", 9918)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9918", "host:", "host:port", "h:70000"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--listen"):
        parse_listen(text)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_health_transitions() -> None:
    clock = Clock()
    state = ExporterState(interval=60, clock=clock)
    ok, body = state.health()
    assert (ok, body["status"]) == (False, "starting")
    state.record(Refresh(clock.now, 2.0, RUN))
    ok, body = state.health()
    assert (ok, body["status"], body["sources"]) == (True, "ok", 2)
    clock.now += 2 + 119  # the refresh finished 2 s after it started
    assert state.health()[0]
    clock.now += 2
    ok, body = state.health()
    assert (ok, body["status"]) == (False, "stale")
    assert "more than 2 x interval (120s)" in body["reason"]
    state.record(Refresh(clock.now, 1.0, FAILED))
    ok, body = state.health()
    assert (ok, body["status"]) == (False, "failing")
    assert "connection refused" in body["reason"]
    state.record(Refresh(clock.now, 0.1, None, error="sources.json not found"))
    assert "sources.json not found" in state.health()[1]["reason"]


def names(fams: list[Any]) -> dict[str, list[Any]]:
    return {f.name: f.rows for f in fams}


def test_failed_dbt_run_keeps_last_good_sources_and_drops_run_success() -> None:
    state = ExporterState(interval=60)
    state.record(Refresh(NOW, 1.0, RUN))
    state.record(Refresh(NOW + 60, 1.0, FAILED))
    fams = names(state.contract_families())
    assert fams[STATUS] == names(families(RUN))[STATUS]
    assert [v for _, v in fams[RUN_SUCCESS]] == [0.0]
    # the last good run's time stays, as on a Pushgateway
    assert (
        fams["dbt_source_freshness_run_timestamp_seconds"]
        == names(families(RUN))["dbt_source_freshness_run_timestamp_seconds"]
    )


def test_unreadable_artifacts_keep_serving_the_last_good_run() -> None:
    state = ExporterState(interval=60)
    state.record(Refresh(NOW, 1.0, RUN))
    state.record(Refresh(NOW + 60, 0.0, None, error="stale"))
    assert names(state.contract_families()) == names(families(RUN))


def test_nothing_before_the_first_refresh() -> None:
    assert ExporterState(interval=60).contract_families() == []


# --- real HTTP, in process ----------------------------------------------------------------------


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), float(s.value))
        for f in text_string_to_metric_families(text)
        for s in f.samples
    ]


@pytest.fixture
def exporter() -> Iterator[tuple[Exporter, list[Any]]]:
    runs: list[Any] = [RUN]

    def refresh() -> FreshnessRun:
        item = runs[0]
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, FreshnessRun)
        return item

    exp = Exporter(refresh, interval=60, listen=("127.0.0.1", 0))
    exp.start_http()
    try:
        yield exp, runs
    finally:
        exp.close()


def url(exp: Exporter, path: str) -> str:
    host, port = exp.address
    return f"http://{host}:{port}{path}"


def test_metrics_endpoint_serves_the_metric_contract(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, _ = exporter
    status, _, body = get(url(exp, "/healthz"))
    assert status == 503 and json.loads(body)["status"] == "starting"
    exp.refresh_once()
    status, headers, body = get(url(exp, "/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = samples(body.decode())
    expected = [
        (f.name, dict(zip(f.label_names, v, strict=True)), val) for f in families(RUN) for v, val in f.rows
    ]
    contract = [s for s in got if s[0].startswith(("dbt_source", "dbt_prom_bridge_build"))]
    assert sorted(contract, key=repr) == sorted(expected, key=repr)
    assert (f"{REFRESHES}_total", {"result": "success"}, 1.0) in got
    assert any(name == LAST_SUCCESS for name, _, _ in got)
    status, _, body = get(url(exp, "/healthz"))
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_metrics_gzip_openmetrics_and_404(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, _ = exporter
    exp.refresh_once()
    _, headers, body = get(url(exp, "/metrics"), {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b"dbt_source_freshness_status" in gzip.decompress(body)
    _, headers, body = get(url(exp, "/metrics"), {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert get(url(exp, "/nope"))[0] == 404
    assert get(url(exp, "/"))[0] == 200


def test_page_is_rebuilt_only_when_a_refresh_happened(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, runs = exporter
    exp.refresh_once()
    first = get(url(exp, "/metrics"))[2]
    assert get(url(exp, "/metrics"))[2] == first
    runs[0] = replace(RUN, checks=RUN.checks[:1])
    exp.refresh_once()
    second = get(url(exp, "/metrics"))[2]
    assert second != first and b'table_name="orders"' in second


def test_failing_refresh_gives_503_and_keeps_metrics(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, runs = exporter
    exp.refresh_once()
    runs[0] = ArtifactError("sources.json is 3h old")
    exp.refresh_once()
    status, _, body = get(url(exp, "/healthz"))
    doc = json.loads(body)
    assert status == 503 and doc["status"] == "failing" and "3h old" in doc["reason"]
    got = samples(get(url(exp, "/metrics"))[2].decode())
    assert any(name == STATUS for name, _, _ in got)
    assert (f"{REFRESHES}_total", {"result": "failure"}, 1.0) in got
    runs[0] = RuntimeError("boom")
    exp.refresh_once()
    assert "internal error: RuntimeError: boom" in json.loads(get(url(exp, "/healthz"))[2])["reason"]


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_refresh_error_shows_a_traceback_only_with_debug(debug: bool) -> None:
    lines: list[str] = []

    def refresh() -> FreshnessRun:
        raise RuntimeError("boom")

    exp = Exporter(refresh, interval=60, listen=("127.0.0.1", 0), log=lines.append, debug=debug)
    try:
        exp.refresh_once()
    finally:
        exp.close()
    logged = "\n".join(lines)
    assert ("Traceback" in logged) is debug
    assert "internal error: RuntimeError: boom" in logged
    assert ("rerun with --debug" in logged) is not debug


@requires("promtool")
def test_metrics_page_passes_promtool(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, _ = exporter
    exp.refresh_once()
    body = get(url(exp, "/metrics"))[2]
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_busy_port_is_a_usage_error(exporter: tuple[Exporter, list[Any]]) -> None:
    exp, _ = exporter
    with pytest.raises(UsageError, match="cannot listen on"):
        Exporter(lambda: RUN, 60, exp.address)


def test_serve_forever_stops_when_asked() -> None:
    stop_after_first: list[str] = []

    def log(line: str) -> None:
        stop_after_first.append(line)
        exp.stop.set()

    exp = Exporter(lambda: RUN, interval=3600, listen=("127.0.0.1", 0), log=log)
    exp.serve_forever()
    assert stop_after_first[0].startswith("refreshed 2 sources")
    assert exp.state.successes == 1, "one refresh, then the stop flag ends the loop"


# --- the real command against a real dbt run of the sample project ----------------------------


def wait_for(predicate: Callable[[], Any], timeout: float, proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"dbt-prom serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def start_serve(project: DbtProjectEnv, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = servers.free_port()
    proc = subprocess.Popen(
        [str(DBT_PROM), "serve", *project.cli_args(), "--listen", f"127.0.0.1:{port}", *args],
        env=project.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"serve did not stop on signal {sig}:\n{err}") from None
    return proc.returncode, err


def statuses(base: str) -> dict[str, str]:
    try:
        got = samples(get(base + "/metrics")[2].decode())
    except OSError:
        return {}
    return {
        f"{lb['source_name']}.{lb['table_name']}": lb["status"]
        for name, lb, v in got
        if name == STATUS and v == 1
    }


def healthy(base: str) -> bool:
    try:
        return get(base + "/healthz")[0] == 200
    except OSError:
        return False


@pytest.mark.dbt
@pytest.mark.e2e
def test_serve_runs_dbt_refreshes_and_stops_on_sigterm(sample_project: DbtProjectEnv) -> None:
    proc, base = start_serve(sample_project, "--interval", "4s", "--meta-label", "owner")
    try:
        wait_for(lambda: healthy(base), 120, proc)
        assert statuses(base) == EXPECTED_STATUS, "runtime errors come from the in-process run"
        got = samples(get(base + "/metrics")[2].decode())
        owners = {lb["source_name"]: lb["owner"] for name, lb, _ in got if name == STATUS}
        assert owners["finance"] == "finance-data"
        assert [v for name, lb, v in got if name == HAS_DATA and lb["table_name"] == "order_items"] == [0.0]
        # A source going stale shows up at the next refresh, with dbt and the manifest kept in memory.
        sample_project.make_stale("finance.transactions")
        wait_for(lambda: statuses(base).get("finance.transactions") == "error", 60, proc)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "SIGTERM: stopping" in err and "stopped" in err and "Traceback" not in err
    assert not healthy(base), "the port is closed"


@pytest.mark.dbt
@pytest.mark.e2e
def test_serve_keeps_last_good_metrics_when_the_database_goes_down(sample_project: DbtProjectEnv) -> None:
    proc, base = start_serve(sample_project, "--interval", "3s")
    try:
        wait_for(lambda: healthy(base), 120, proc)
        sample_project.postgres.stop()

        def failing() -> dict[str, Any] | None:
            status, _, body = get(base + "/healthz")
            doc = json.loads(body)
            return doc if status == 503 and doc["status"] == "failing" else None

        doc = wait_for(failing, 90, proc)
        assert doc["last_success_timestamp"] is not None
        assert statuses(base) == EXPECTED_STATUS, "per-source series stay"
        got = samples(get(base + "/metrics")[2].decode())
        assert [v for name, _, v in got if name == RUN_SUCCESS] == [0.0]
    finally:
        sample_project.postgres.start()
        code, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "password" not in err.lower() or "***" in err


@pytest.mark.dbt
def test_serve_no_run_reads_artifacts_and_notices_new_ones(
    sample_project: DbtProjectEnv, tmp_path: Path
) -> None:
    sample_project.dbt("source", "freshness", check=False)
    proc, base = start_serve(sample_project, "--no-run", "--interval", "1s")
    try:
        wait_for(lambda: healthy(base), 30, proc)
        expected = {k: ("not_run" if v == "runtime_error" else v) for k, v in EXPECTED_STATUS.items()}
        assert statuses(base) == expected, "sources.json leaves runtime errors out: not_run"
        sample_project.make_stale("events.page_views")
        sample_project.dbt("source", "freshness", check=False)
        wait_for(lambda: statuses(base).get("events.page_views") == "error", 30, proc)
    finally:
        code, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "SIGINT: stopping" in err
