"""A second adapter: dbt-duckdb (a file, no server) through `push` (a real Pushgateway), `serve`
and `rules` (promtool), with the sample cases of the PostgreSQL project. Nothing in the bridge may
depend on PostgreSQL: the same statuses, labels, load times and thresholds come out."""

from __future__ import annotations

import importlib.metadata
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbt_prom_bridge.serve import REFRESHES
from devtools import servers
from tests.conftest import requires
from tests.duckdb import warehouse
from tests.fixtures_dbt import DBT_PROM, read_gateway, run_cli, status_counts
from tests.rules.rulestools import assert_check_rules, assert_test_rules
from tests.serve.test_serve import get, healthy, samples, statuses, stop, wait_for


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = [
    pytest.mark.dbt,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not _installed("dbt-duckdb"),
        reason="dbt-duckdb not installed (pip install 'dbt-prom-bridge[duckdb]')",
    ),
]


@dataclass
class DuckProject:
    project_dir: Path
    path: Path
    newest: dict[str, float]

    def cli_args(self) -> list[str]:
        return ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.project_dir)]

    def seed(self, *stale: str) -> None:
        self.newest = warehouse.seed(self.path, stale)


@pytest.fixture
def duck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuckProject]:
    project = warehouse.copy_project(tmp_path / "project")
    path = tmp_path / f"{warehouse.DATABASE}.duckdb"
    monkeypatch.setenv("DBT_PROM_DUCKDB_PATH", str(path))
    yield DuckProject(project, path, warehouse.seed(path))


def test_push_reports_every_case_like_on_postgres(
    duck: DuckProject, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["push", "--gateway", pushgateway.url, "--meta-label", "owner", *duck.cli_args()]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert out == "" and f"pushed {len(warehouse.EXPECTED_STATUS)} sources" in err
    gw = read_gateway(pushgateway.url)

    assert gw.statuses() == warehouse.EXPECTED_STATUS
    assert gw.counts() == status_counts(warehouse.EXPECTED_STATUS)
    for source in warehouse.EXPECTED_STATUS:
        source_name, table_name = source.split(".")
        assert gw.labels(source) == {
            "project": warehouse.PROJECT,
            "target": warehouse.TARGET,
            "source_name": source_name,
            "table_name": table_name,
            "database": warehouse.DATABASE,
            "schema": f"raw_{source_name}",
            "identifier": warehouse.IDENTIFIERS.get(source, table_name),
            "owner": warehouse.OWNERS[source_name],
        }
    # newest load times: what was written (the naive column read as UTC, the filter applied,
    # the loaded_at_query's result); none for the empty table or the failed query
    loaded = gw.per_source("dbt_source_max_loaded_at_timestamp_seconds")
    assert set(loaded) == set(duck.newest)
    for source, value in duck.newest.items():
        assert loaded[source] == pytest.approx(value, abs=1e-3), source
    # the runtime error has none: dbt never found out whether the table has rows
    assert gw.per_source("dbt_source_has_data") == {
        s: (0.0 if s == "orders.order_items" else 1.0)
        for s in warehouse.EXPECTED_STATUS
        if s != "orders.refunds"
    }
    assert gw.per_source("dbt_source_freshness_warn_after_seconds") == {
        s: w for s, (w, _) in warehouse.THRESHOLDS.items()
    }
    assert gw.per_source("dbt_source_freshness_error_after_seconds") == {
        s: e for s, (_, e) in warehouse.THRESHOLDS.items()
    }
    assert set(gw.per_source("dbt_source_freshness_checked_timestamp_seconds")) == set(
        warehouse.EXPECTED_STATUS
    )
    assert "orders.refunds" in err

    # a source going stale (the heartbeats stay fresh; the filter ignores them)
    duck.seed("shop.payments", "events.app_events")
    code, _, err = run_cli([*args, "--fail-on", "error"], capsys)
    assert code == 1, err
    assert read_gateway(pushgateway.url).statuses() == {
        **warehouse.EXPECTED_STATUS,
        "shop.payments": "error",
        "events.app_events": "error",
    }


def loaded(duck: DuckProject, *stale: str) -> bool:
    """Re-seed as a loader would; False while a refresh holds DuckDB's file lock."""
    import duckdb

    try:
        duck.seed(*stale)
    except duckdb.IOException:
        return False
    return True


def test_serve_refreshes_from_the_duckdb_file(duck: DuckProject) -> None:
    port = servers.free_port()
    proc = subprocess.Popen(
        [str(DBT_PROM), "serve", *duck.cli_args(), "--listen", f"127.0.0.1:{port}", "--interval", "2s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(base), 120, proc)
        assert statuses(base) == warehouse.EXPECTED_STATUS

        def refreshes() -> float:
            got = samples(get(base + "/metrics")[2].decode())
            return sum(
                v for name, lb, v in got if name == f"{REFRESHES}_total" and lb.get("result") == "success"
            )

        # later refreshes reuse the process's dbt; the file is closed between them (keep_open:
        # false), so a loader can write to it and the next refresh sees the change
        wait_for(lambda: refreshes() >= 3, 120, proc)
        assert healthy(base)
        assert statuses(base) == warehouse.EXPECTED_STATUS
        wait_for(lambda: loaded(duck, "shop.payments"), 60, proc)
        wait_for(lambda: statuses(base).get("shop.payments") == "error", 60, proc)
    finally:
        code, err = stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err


@requires("promtool")
def test_rules_from_the_duckdb_project_pass_promtool(
    duck: DuckProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules.test.yml"
    args = ["rules", *duck.cli_args(), "--meta-label", "owner", "--out", str(out), "--tests", str(tests)]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert_check_rules(out)
    assert_test_rules(tests)
    text = out.read_text()
    assert f'project="{warehouse.PROJECT}"' in text
    assert "postgres" not in text.lower()
    code, _, err = run_cli([*args, "--check"], capsys)
    assert code == 0, err
