"""Say why: what an in-process run learns about runtime errors reaches the text output, `status`
and `--no-run` (through a side file next to sources.json), against real dbt, PostgreSQL and a real
Pushgateway."""

from __future__ import annotations

import json

import pytest

from dbt_prom_bridge.artifacts import RUNTIME_ERRORS_FILE
from devtools import servers
from tests.fixtures_dbt import DbtProjectEnv, read_gateway, run_cli

pytestmark = [pytest.mark.dbt, pytest.mark.e2e]

REASON = 'column "refunded_at_utc" does not exist'


def test_runtime_errors_are_explained_everywhere(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["push", "--gateway", pushgateway.url, *sample_project.cli_args()], capsys)
    assert code == 0, err
    # the default text output says why, one line per source
    (line,) = [ln for ln in err.splitlines() if ln.startswith("orders.refunds:")]
    assert REASON in line

    # no has_data sample: dbt never found out whether refunds has data
    gateway = read_gateway(pushgateway.url)
    assert gateway.statuses()["orders.refunds"] == "runtime_error"
    assert "orders.refunds" not in gateway.per_source("dbt_source_has_data")
    assert "orders.orders" in gateway.per_source("dbt_source_has_data")

    # sources.json leaves the runtime error out; the side file of the same invocation keeps it
    side = json.loads((sample_project.target_dir / RUNTIME_ERRORS_FILE).read_text())
    written = json.loads(sample_project.sources_json.read_text())
    assert side["invocation_id"] == written["metadata"]["invocation_id"]

    code, out, err = run_cli(["status", "--format", "json", *sample_project.cli_args()], capsys)
    assert code == 0, err
    (refunds,) = [s for s in json.loads(out)["sources"] if s["table_name"] == "refunds"]
    assert refunds["status"] == "runtime_error" and REASON in refunds["error"]
    code, out, err = run_cli(["status", *sample_project.cli_args()], capsys)
    assert code == 0 and REASON in out

    code, out, err = run_cli(["push", "--no-run", "--dry-run", *sample_project.cli_args()], capsys)
    assert code == 0, err
    assert 'status="runtime_error"} 1' in "".join(
        ln for ln in out.splitlines(keepends=True) if "refunds" in ln and "freshness_status" in ln
    )

    # a sources.json of another invocation (dbt run by hand) does not pick up the side file
    written["metadata"]["invocation_id"] = "another-invocation"
    sample_project.sources_json.write_text(json.dumps(written))
    code, out, err = run_cli(["status", "--format", "json", *sample_project.cli_args()], capsys)
    assert code == 0, err
    (refunds,) = [s for s in json.loads(out)["sources"] if s["table_name"] == "refunds"]
    assert refunds["status"] == "not_run" and refunds["error"] is None
