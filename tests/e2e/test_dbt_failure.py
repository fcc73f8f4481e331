"""When dbt cannot run (database down, exit 2 in dbt), `dbt-prom push` exits 3, pushes
run_success 0, keeps the last good per-source series, and never re-pushes the old sources.json."""

from __future__ import annotations

import json
import subprocess

import pytest

from devtools import servers
from tests.fixtures_dbt import DBT_PROM, EXPECTED_STATUS, DbtProjectEnv, read_gateway, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, pytest.mark.compat]

RUN_TIMESTAMP = "dbt_source_freshness_run_timestamp_seconds"
RUN_SUCCESS = "dbt_source_freshness_run_success"


def test_database_down_keeps_the_last_good_run(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["push", "--gateway", pushgateway.url, *sample_project.cli_args()]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    good = read_gateway(pushgateway.url)
    good_timestamp = good.run_value(RUN_TIMESTAMP)
    old_artifact = sample_project.sources_json.read_bytes()

    sample_project.postgres.stop()
    try:
        code, out, err = run_cli(args, capsys)
    finally:
        sample_project.postgres.start()

    assert code == 3
    assert out == ""
    (message,) = [ln for ln in err.splitlines() if ln.startswith("dbt-prom: error:")]
    assert "dbt could not run" in message and "reachable" in message
    assert "Traceback" not in err

    after = read_gateway(pushgateway.url)
    assert after.run_value(RUN_SUCCESS) == 0
    # the last good run's per-source series and run time are still there, untouched
    assert after.statuses() == EXPECTED_STATUS
    assert after.run_value(RUN_TIMESTAMP) == good_timestamp
    for family in (
        "dbt_source_max_loaded_at_timestamp_seconds",
        "dbt_source_freshness_checked_timestamp_seconds",
        "dbt_source_freshness_error_after_seconds",
    ):
        assert after.per_source(family) == good.per_source(family), family
    assert after.counts() == good.counts()
    # dbt left the previous sources.json in place; it was not read as this run's result
    assert sample_project.sources_json.read_bytes() == old_artifact

    # once the database is back, the next push is a good run again
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    recovered = read_gateway(pushgateway.url)
    assert recovered.run_value(RUN_SUCCESS) == 1
    assert (recovered.run_value(RUN_TIMESTAMP) or 0) > (good_timestamp or 0)
    new_artifact = json.loads(sample_project.sources_json.read_text())
    assert new_artifact["metadata"]["invocation_id"] != json.loads(old_artifact)["metadata"]["invocation_id"]


def test_dead_port_exits_3_from_the_console_script(
    sample_project: DbtProjectEnv, pushgateway: servers.Server
) -> None:
    """The real `dbt-prom` process: exit 3, one line on stderr, no password, run_success 0 pushed."""
    proc = subprocess.run(
        [str(DBT_PROM), "push", "--gateway", pushgateway.url, *sample_project.cli_args()],
        env=sample_project.subprocess_env(
            DBT_PROM_PG_HOST="127.0.0.1", DBT_PROM_PG_PORT="1", DBT_PROM_PG_PASSWORD="pw-never-printed"
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    *_, last = proc.stderr.splitlines()
    assert last.startswith("dbt-prom: error: dbt could not run: "), proc.stderr
    assert proc.stderr.count("dbt-prom: error:") == 1
    assert "port 1" in last and "Traceback" not in proc.stderr
    assert "pw-never-printed" not in proc.stderr
    gw = read_gateway(pushgateway.url)
    assert gw.run_value(RUN_SUCCESS) == 0
    assert gw.run_value(RUN_TIMESTAMP) is None
    assert gw.statuses() == {}
