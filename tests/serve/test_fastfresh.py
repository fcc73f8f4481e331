"""serve's batched refresh (dbt_prom_bridge.fastfresh) against real dbt and a real PostgreSQL.

Every sample case (pass, warn, error, empty table, filter, loaded_at_query, naive timestamp,
table override, runtime error) must come out of the batch exactly as a real `dbt source
freshness` reports it on the same data.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbt_prom_bridge.artifacts import epoch, parse_timestamp
from dbt_prom_bridge.errors import DbtRunError, UsageError
from dbt_prom_bridge.fastfresh import (
    BatchedFreshnessRunner,
    _Captured,
    _caused_by_capture,
    combined_sql,
)
from dbt_prom_bridge.model import FreshnessResult
from dbt_prom_bridge.runner import DbtFreshnessRunner
from tests.fixtures_dbt import EXPECTED_STATUS, DbtProjectEnv, copy_project

#: Fields that differ between two runs seconds apart (the snapshot time and what follows from it).
_MOMENT = {"snapshotted_at", "age_seconds", "execution_time"}


def key(unique_id: str) -> str:
    return unique_id.split(".", 2)[2]


def by_key(results: tuple[FreshnessResult, ...]) -> dict[str, FreshnessResult]:
    return {key(r.unique_id): r for r in results}


def same_record(a: FreshnessResult, b: FreshnessResult) -> list[str]:
    """The fields (other than the moment of the snapshot) where two records differ."""
    return [f for f in FreshnessResult.__slots__ if f not in _MOMENT and getattr(a, f) != getattr(b, f)]


# -- pure parts ------------------------------------------------------------------------------


def test_combined_sql_keeps_each_query_whole() -> None:
    sql = combined_sql(["select 1 as a, 2 as b -- trailing comment", "select 3, 4;\n"])
    assert sql.count("cross join") == 1
    # a query's trailing comment cannot swallow the closing parenthesis; semicolons go
    assert "-- trailing comment\n) as dbt_prom_q0" in sql
    assert ";" not in sql


def test_capture_is_found_through_the_adapters_wrapping() -> None:
    try:
        try:
            raise _Captured
        except _Captured as inner:
            raise RuntimeError("wrapped by the adapter") from inner
    except RuntimeError as exc:
        assert _caused_by_capture(exc)
    assert not _caused_by_capture(ValueError("a real failure"))


def test_unknown_freshness_path_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions
    from dbt_prom_bridge.serve import Refresher

    monkeypatch.setenv("DBT_PROM_SERVE_FRESHNESS", "fast")
    with pytest.raises(UsageError) as info:
        Refresher(DbtOptions(), ArtifactOptions(), RunOptions())
    assert info.value.exit_code == 2
    monkeypatch.setenv("DBT_PROM_SERVE_FRESHNESS", "dbt")
    assert Refresher(DbtOptions(), ArtifactOptions(), RunOptions()).freshness_path == "dbt"


# -- against real dbt ------------------------------------------------------------------------


@pytest.mark.dbt
@pytest.mark.e2e
def test_batch_equals_dbt_for_every_sample_case(sample_project: DbtProjectEnv) -> None:
    runner = BatchedFreshnessRunner(sample_project.options())
    first = runner.run()
    assert runner.last_path == "dbt"  # the first refresh after a parse is dbt's own run
    lines: list[str] = []
    batched = runner.run(on_event=lines.append)
    assert runner.last_path == "batch"
    plan = runner._plan
    assert plan is not None
    # every source has its compiled query; the broken one failed the combined statement, so
    # it is sent alone from now on, and its result is dbt's own (reused while the error holds)
    assert all(plan.sql.values())
    assert {key(uid) for uid in plan.solo} == {"orders.refunds"} == {key(uid) for uid in plan.errors}
    assert plan.combine
    # a new run each time: its own invocation, and sources.json written by dbt's own writer
    # (in the background: flush() waits for it), runtime errors left out as dbt does
    assert batched.artifact.invocation_id not in (None, first.artifact.invocation_id)
    assert batched.manifest_reused and batched.parse_seconds == 0.0
    runner.flush()
    written = json.loads(sample_project.sources_json.read_text())
    assert written["metadata"]["invocation_id"] == batched.artifact.invocation_id
    assert len(written["results"]) == len(EXPECTED_STATUS) - 1

    reference = DbtFreshnessRunner(sample_project.options()).run()
    ours, theirs = by_key(batched.artifact.results), by_key(reference.artifact.results)
    assert {k: r.status.value for k, r in ours.items()} == EXPECTED_STATUS
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert same_record(ours[name], theirs[name]) == [], name
    assert ours["orders.order_items"].has_data is False
    assert 'column "refunded_at_utc" does not exist' in (ours["orders.refunds"].error or "")
    assert len(lines) == len(EXPECTED_STATUS) and any("RUNTIME ERROR" in ln for ln in lines)

    # the real CLI on the same data: same statuses and max_loaded_at (it leaves runtime errors out)
    assert sample_project.dbt("source", "freshness", check=False).returncode == 1
    cli = json.loads(sample_project.sources_json.read_text())["results"]
    cli_statuses = {key(r["unique_id"]): r["status"] for r in cli}
    assert cli_statuses == {k: v for k, v in EXPECTED_STATUS.items() if v != "runtime_error"}
    runner.run()  # the reference runs above replaced dbt's adapter: dbt's path, then a new plan
    again = by_key(runner.run().artifact.results)
    assert runner.last_path == "batch"
    for entry in cli:
        mine = again[key(entry["unique_id"])]
        assert mine.status.value == entry["status"]
        assert (
            mine.warn_after is not None and mine.warn_after.count == entry["criteria"]["warn_after"]["count"]
        )
        if mine.has_data:
            assert mine.max_loaded_at == epoch(parse_timestamp(entry["max_loaded_at"], "max_loaded_at"))


@pytest.mark.dbt
@pytest.mark.e2e
def test_batch_sees_new_data_and_a_source_that_breaks_later(sample_project: DbtProjectEnv) -> None:
    runner = BatchedFreshnessRunner(sample_project.options())
    runner.run()
    assert by_key(runner.run().artifact.results)["finance.transactions"].status.value == "pass"

    sample_project.make_stale("finance.transactions", "events.page_views")
    stale = by_key(runner.run().artifact.results)
    assert runner.last_path == "batch"
    assert stale["finance.transactions"].status.value == "error"
    assert stale["events.page_views"].status.value == "error"  # the naive column, too

    conn = sample_project.connect()
    try:
        with conn, conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("alter table raw_finance.transactions rename column _loaded_at to gone")
        broken = by_key(runner.run().artifact.results)
        assert runner.last_path == "batch"
        # one bad source does not hide the others: it alone becomes dbt's runtime error
        plan = runner._plan
        assert plan is not None and "source.dbt_prom_demo.finance.transactions" in plan.solo
        assert broken["finance.transactions"].status.value == "runtime_error"
        assert '"_loaded_at" does not exist' in (broken["finance.transactions"].error or "")
        assert broken["events.page_views"].status.value == "error"
        assert broken["finance.transaction_labels"].status.value == "warn"
        reference = by_key(DbtFreshnessRunner(sample_project.options()).run().artifact.results)
        for name in broken:
            assert same_record(broken[name], reference[name]) == [], name
    finally:
        with conn, conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("alter table raw_finance.transactions rename column gone to _loaded_at")
        conn.close()  # type: ignore[attr-defined]
    # the source stays on dbt's path until the next parse, and reports pass again when repaired
    sample_project.seed()
    repaired = by_key(runner.run().artifact.results)
    assert repaired["finance.transactions"].status.value == "pass"


@pytest.mark.dbt
@pytest.mark.e2e
def test_database_down_after_the_plan_is_a_run_level_failure(sample_project: DbtProjectEnv) -> None:
    runner = BatchedFreshnessRunner(sample_project.options())
    runner.run()
    sample_project.postgres.stop()
    with pytest.raises(DbtRunError) as info:
        runner.run()
    assert info.value.exit_code == 3


@pytest.fixture
def metadata_project(sample_project: DbtProjectEnv, tmp_path: Path) -> Iterator[DbtProjectEnv]:
    """The sample project plus a source without loaded_at_field (metadata-based freshness)."""
    project = copy_project(tmp_path / "dbt_project")
    (project / "models" / "metadata_sources.yml").write_text(
        "version: 2\nsources:\n  - name: meta\n    schema: raw_orders\n"
        "    freshness: {warn_after: {count: 1, period: day}}\n    tables:\n      - name: orders\n",
        encoding="utf-8",
    )
    yield DbtProjectEnv(project, project, sample_project.env, sample_project.postgres)
    shutil.rmtree(project, ignore_errors=True)


@pytest.mark.dbt
@pytest.mark.e2e
def test_metadata_based_sources_go_through_dbts_path(metadata_project: DbtProjectEnv) -> None:
    runner = BatchedFreshnessRunner(metadata_project.options())
    runner.run()
    batched = by_key(runner.run().artifact.results)
    assert runner.last_path == "batch"
    plan = runner._plan
    assert plan is not None and plan.sql["source.dbt_prom_demo.meta.orders"] is None
    reference = by_key(DbtFreshnessRunner(metadata_project.options()).run().artifact.results)
    assert batched.keys() == reference.keys()
    for name in batched:
        assert same_record(batched[name], reference[name]) == [], name
    # PostgreSQL has no metadata-based freshness: dbt's own runtime error, whatever it says
    assert batched["meta.orders"].status.value == reference["meta.orders"].status.value


@pytest.mark.dbt
@pytest.mark.e2e
def test_dbt_path_option_runs_dbt_every_time(sample_project: DbtProjectEnv) -> None:
    runner = BatchedFreshnessRunner(sample_project.options(), path="dbt")
    runner.run()
    runner.run()
    assert runner.last_path == "dbt" and runner._plan is None


@pytest.mark.dbt
@pytest.mark.e2e
def test_project_change_rebuilds_the_plan(sample_project: DbtProjectEnv, tmp_path: Path) -> None:
    project = copy_project(tmp_path / "dbt_project")
    env = DbtProjectEnv(project, project, sample_project.env, sample_project.postgres)
    runner = BatchedFreshnessRunner(env.options())
    runner.run()
    runner.run()
    assert runner.last_path == "batch"
    sources = project / "models" / "sources.yml"
    sources.write_text(sources.read_text().replace("count: 15, period: minute", "count: 25, period: minute"))
    os.utime(sources, None)
    changed = by_key(runner.run().artifact.results)
    assert runner.last_path == "dbt"  # re-parsed: dbt's run, then a new plan
    assert changed["events.clicks"].status.value == "pass"  # 20 minutes old, warn after 25
    assert by_key(runner.run().artifact.results)["events.clicks"].status.value == "pass"
    assert runner.last_path == "batch"
