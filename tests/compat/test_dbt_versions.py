"""The installed dbt's own `dbt source freshness` (the real CLI, a subprocess) against what
`dbt-prom push` sends to a real Pushgateway, on the sample project and the embedded PostgreSQL.

`make test-compat` runs this on every supported dbt-core minor (noxfile.py). Behaviour that could
differ by version is asserted against that version's CLI output, never assumed; a source with
thresholds and no ``loaded_at_field`` (PostgreSQL has no metadata-based freshness) is a runtime
error in the CLI's log and left out of sources.json on every tested version (1.8.10 included), and
the bridge reports the same ``runtime_error``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbt_prom_bridge.artifacts import parse_timestamp
from devtools import servers
from tests.fixtures_dbt import (
    DBT_MINOR,
    EXPECTED_STATUS,
    MODERN_DBT,
    ONLY_MODERN_DBT,
    DbtProjectEnv,
    copy_project,
    read_gateway,
    run_cli,
)

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, pytest.mark.compat]

#: A source with thresholds and no loaded_at_field: on PostgreSQL dbt has nothing to query.
NO_FIELD = "metadata_only.orders"
_NO_FIELD_MODERN = """version: 2
sources:
  - name: metadata_only
    schema: raw_orders
    config:
      freshness:
        warn_after: {count: 12, period: hour}
        error_after: {count: 24, period: hour}
    tables:
      - name: orders
"""
_NO_FIELD_BEFORE_1_10 = """version: 2
sources:
  - name: metadata_only
    schema: raw_orders
    freshness:
      warn_after: {count: 12, period: hour}
      error_after: {count: 24, period: hour}
    tables:
      - name: orders
"""
#: The bridge's status name for each of dbt's (`runtime error` has a space in dbt's events).
DBT_STATUS = {"pass": "pass", "warn": "warn", "error": "error", "runtime error": "runtime_error"}


def cli_freshness(project: DbtProjectEnv) -> tuple[int, dict[str, str], dict[str, dict[str, object]]]:
    """Run the installed ``dbt source freshness`` CLI: (exit code, status per source from its
    JSON log, sources.json results by source)."""
    proc = project.dbt("source", "freshness", "--log-format", "json", check=False)
    logged: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("info", {}).get("name") == "LogFreshnessResult":
            data = event["data"]
            logged[f"{data['source_name']}.{data['table_name']}"] = DBT_STATUS[data["status"]]
    written = json.loads(project.sources_json.read_text())
    results = {r["unique_id"].split(".", 2)[2]: r for r in written["results"]}
    return proc.returncode, logged, results


@pytest.fixture
def project_with_no_field_source(sample_project: DbtProjectEnv, tmp_path: Path) -> Iterator[DbtProjectEnv]:
    """The sample project plus NO_FIELD, in the form the installed dbt reads."""
    copy = copy_project(tmp_path / "dbt_project")
    if MODERN_DBT:
        (copy / "models" / "metadata_only.yml").write_text(_NO_FIELD_MODERN)
    else:
        (copy / "models_before_1_10" / "metadata_only.yml").write_text(_NO_FIELD_BEFORE_1_10)
    yield DbtProjectEnv(
        project_dir=copy, profiles_dir=copy, env=sample_project.env, postgres=sample_project.postgres
    )
    shutil.rmtree(copy, ignore_errors=True)


def test_push_matches_the_dbt_cli_of_this_version(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, logged, results = cli_freshness(sample_project)
    assert rc == 1  # a stale error and a runtime error, on every version
    assert logged == EXPECTED_STATUS
    # sources.json leaves the runtime error out (dbt 1.8 to 1.12)
    assert {k: r["status"] for k, r in results.items()} == {
        k: v for k, v in logged.items() if v != "runtime_error"
    }
    if not MODERN_DBT:
        assert not set(ONLY_MODERN_DBT) & set(logged)

    code, _, err = run_cli(
        ["push", "--gateway", pushgateway.url, *sample_project.cli_args()],
        capsys,
    )
    assert code == 0, err
    gw = read_gateway(pushgateway.url)
    assert gw.statuses() == logged
    # The same newest load time dbt reads (the tables did not change between the two runs).
    loaded = gw.per_source("dbt_source_max_loaded_at_timestamp_seconds")
    for source, result in results.items():
        max_loaded_at = parse_timestamp(str(result["max_loaded_at"]), "max_loaded_at")
        assert max_loaded_at is not None
        if max_loaded_at.year == 1:  # dbt's "no data" sentinel: no load time, has_data 0
            assert source not in loaded
            assert gw.per_source("dbt_source_has_data")[source] == 0
        else:
            assert loaded[source] == pytest.approx(max_loaded_at.timestamp(), abs=1e-3), source
    # The thresholds dbt evaluated, in seconds.
    seconds = {"minute": 60, "hour": 3600, "day": 86400}
    error_after = gw.per_source("dbt_source_freshness_error_after_seconds")
    for source, result in results.items():
        criteria = result["criteria"]
        assert isinstance(criteria, dict)
        count, period = criteria["error_after"]["count"], criteria["error_after"]["period"]
        assert error_after[source] == count * seconds[period], source


def test_source_without_loaded_at_field_per_version(
    project_with_no_field_source: DbtProjectEnv,
    pushgateway: servers.Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = project_with_no_field_source
    rc, logged, results = cli_freshness(project)
    assert rc == 1
    assert NO_FIELD not in results  # never in sources.json
    code, _, err = run_cli(["push", "--gateway", pushgateway.url, *project.cli_args()], capsys)
    assert code == 0, err
    pushed = read_gateway(pushgateway.url).statuses()
    assert {k: v for k, v in pushed.items() if k != NO_FIELD} == {
        k: v for k, v in logged.items() if k != NO_FIELD
    }
    # What this version's CLI says, and the same from the bridge: a runtime error (dbt 1.8.10 to
    # 1.12.0 all run the source and fail it; a dbt that skipped it silently would show up here).
    assert logged[NO_FIELD] == "runtime_error", f"dbt {DBT_MINOR}: {logged.get(NO_FIELD)}"
    assert pushed[NO_FIELD] == "runtime_error"
