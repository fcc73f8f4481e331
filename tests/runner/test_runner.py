"""The in-process runner against the real sample project and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.errors import DbtConfigError, DbtRunError
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.runner import DbtFreshnessRunner, parse_project
from tests.fixtures_dbt import (
    DBT_PROM,
    EXPECTED_STATUS,
    MODERN_DBT,
    NO_FRESHNESS,
    PROJECT,
    SOURCES_YML,
    TARGET,
    DbtProjectEnv,
    copy_project,
)

pytestmark = [pytest.mark.dbt, pytest.mark.e2e, pytest.mark.compat]


def key(unique_id: str) -> str:
    return unique_id.split(".", 2)[2]


def test_run_returns_every_source_including_runtime_errors(sample_project: DbtProjectEnv) -> None:
    outcome = DbtFreshnessRunner(sample_project.options()).run()

    statuses = {key(r.unique_id): r.status.value for r in outcome.artifact.results}
    assert statuses == EXPECTED_STATUS
    assert not set(NO_FRESHNESS) & set(statuses)
    (refunds,) = [r for r in outcome.artifact.results if key(r.unique_id) == "orders.refunds"]
    assert refunds.error is not None and 'column "refunded_at_utc" does not exist' in refunds.error
    assert "\n" not in refunds.error
    (items,) = [r for r in outcome.artifact.results if key(r.unique_id) == "orders.order_items"]
    assert items.has_data is False and items.max_loaded_at is None
    assert (outcome.project, outcome.target) == (PROJECT, TARGET)

    # dbt wrote this invocation's sources.json, which (dbt 1.8-1.12) leaves the runtime error out.
    assert outcome.sources_json == sample_project.sources_json
    written = json.loads(sample_project.sources_json.read_text())
    assert written["metadata"]["invocation_id"] == outcome.artifact.invocation_id
    assert "source.dbt_prom_demo.orders.refunds" not in {r["unique_id"] for r in written["results"]}
    assert len(written["results"]) == len(EXPECTED_STATUS) - 1
    # The freshness invocation skips dbt's manifest rewrite; the parse before it wrote one.
    assert (sample_project.sources_json.parent / "manifest.json").is_file()

    assert outcome.manifest is not None
    assert set(map(key, outcome.manifest.sources)) == set(EXPECTED_STATUS) | set(NO_FRESHNESS)


def test_progress_is_one_line_per_source(sample_project: DbtProjectEnv) -> None:
    lines: list[str] = []
    DbtFreshnessRunner(sample_project.options()).run(on_event=lines.append)
    assert len(lines) == len(EXPECTED_STATUS)
    words = {"pass": "PASS", "warn": "WARN", "error": "ERROR STALE", "runtime_error": "RUNTIME ERROR"}
    for source, status in EXPECTED_STATUS.items():
        (line,) = [ln for ln in lines if f" {source} (" in ln]
        assert f"/{len(EXPECTED_STATUS)}] {words[status]} " in line


def test_selection_runs_only_the_selected_source(sample_project: DbtProjectEnv) -> None:
    outcome = DbtFreshnessRunner(sample_project.options(select=("source:finance.transactions",))).run()
    assert [key(r.unique_id) for r in outcome.artifact.results] == ["finance.transactions"]


def test_second_run_reuses_the_parsed_manifest(sample_project: DbtProjectEnv) -> None:
    runner = DbtFreshnessRunner(sample_project.options())
    first = runner.run()
    second = runner.run()
    assert not first.manifest_reused and first.parse_seconds > 0
    assert second.manifest_reused and second.parse_seconds == 0
    assert second.manifest is first.manifest
    assert second.artifact.invocation_id != first.artifact.invocation_id
    assert (second.artifact.generated_at or 0) > (first.artifact.generated_at or 0)
    assert {r.unique_id: r.status for r in second.artifact.results} == {
        r.unique_id: r.status for r in first.artifact.results
    }
    # A change to the project's files makes the next run parse again.
    schema = sample_project.project_dir / "models" / "schema.yml"
    os.utime(schema)
    third = runner.run()
    assert not third.manifest_reused


def test_runner_sees_data_change_between_runs(sample_project: DbtProjectEnv) -> None:
    runner = DbtFreshnessRunner(sample_project.options(select=("source:events.clicks",)))
    assert [r.status for r in runner.run().artifact.results] == [Status.WARN]
    sample_project.make_stale("events.clicks")
    assert [r.status for r in runner.run().artifact.results] == [Status.ERROR]


def test_dbt_console_output_stays_off_stdout(
    sample_project: DbtProjectEnv, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    DbtFreshnessRunner(sample_project.options()).run(on_event=lambda line: None)
    out, _err = capfd.readouterr()
    assert out == ""
    # dbt's file log is still written, as dbt does by default
    log = sample_project.project_dir / "logs" / "dbt.log"
    assert "Running with dbt=" in log.read_text()


def test_push_dry_run_stdout_is_only_exposition(sample_project: DbtProjectEnv) -> None:
    """The real console script: dbt's logs, progress and summary on stderr; stdout parses as metrics."""
    proc = subprocess.run(
        [str(DBT_PROM), "push", "--dry-run", *sample_project.cli_args()],
        env=sample_project.subprocess_env(DBT_LOG_LEVEL="info"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    families = list(text_string_to_metric_families(proc.stdout))
    assert {f.name for f in families} >= {"dbt_source_freshness_status", "dbt_source_freshness_run_success"}
    assert all(ln.startswith(("dbt_", "# HELP dbt_", "# TYPE dbt_")) for ln in proc.stdout.splitlines())
    # dbt logged at info (DBT_LOG_LEVEL is dbt's own variable): to stderr, with our progress lines.
    assert "Running with dbt=" in proc.stderr
    assert "RUNTIME ERROR orders.refunds" in proc.stderr


def test_unreachable_database_raises_without_reading_the_old_artifact(
    sample_project: DbtProjectEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = DbtFreshnessRunner(sample_project.options())
    runner.run()
    before = sample_project.sources_json.read_bytes()
    monkeypatch.setenv("DBT_PROM_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DBT_PROM_PG_PORT", "1")
    monkeypatch.setenv("DBT_PROM_PG_PASSWORD", "pw-never-shown")
    with pytest.raises(DbtRunError) as info:
        runner.run()
    message = str(info.value)
    assert "connection" in message.lower() and "port 1" in message
    assert "reachable" in message
    assert "pw-never-shown" not in message and "\n" not in message
    assert sample_project.sources_json.read_bytes() == before


def test_unknown_target_is_a_config_error_not_an_outage(sample_project: DbtProjectEnv) -> None:
    with pytest.raises(DbtConfigError, match="nope") as exc:
        DbtFreshnessRunner(sample_project.options(target="nope")).run()
    assert exc.value.exit_code == 2 and not isinstance(exc.value, DbtRunError)


def test_a_malformed_selector_is_a_config_error(sample_project: DbtProjectEnv) -> None:
    with pytest.raises(DbtConfigError, match="sourc"):
        DbtFreshnessRunner(sample_project.options(select=("sourc:orders",))).run()


def test_an_unreachable_database_stays_an_outage(
    sample_project: DbtProjectEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_PROM_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DBT_PROM_PG_PORT", "1")
    with pytest.raises(DbtRunError) as exc:
        DbtFreshnessRunner(sample_project.options()).run()
    assert exc.value.exit_code == 3 and not isinstance(exc.value, DbtConfigError)


def test_an_invalid_dbt_project_yml_stays_a_dbt_error(sample_project: DbtProjectEnv, tmp_path: Path) -> None:
    """A project that does not validate is broken, not mistyped: its own group gets run_success 0."""
    project = copy_project(tmp_path / "proj")
    text = (project / "dbt_project.yml").read_text()
    (project / "dbt_project.yml").write_text(text + "\nversion: [not, a, version]\n")
    with pytest.raises(DbtRunError) as exc:
        DbtFreshnessRunner(
            sample_project.options(project_dir=project, profiles_dir=sample_project.profiles_dir)
        ).run()
    assert not isinstance(exc.value, DbtConfigError)


def test_parse_project_reads_thresholds_meta_and_relations(sample_project: DbtProjectEnv) -> None:
    manifest = parse_project(sample_project.options())
    assert manifest.project_name == PROJECT
    sources = {key(uid): s for uid, s in manifest.sources.items()}
    clicks = sources["events.clicks"]
    assert clicks.warn_after is not None and clicks.warn_after.seconds == 15 * 60
    assert clicks.error_after is not None and clicks.error_after.seconds == 30 * 60
    labels = sources["finance.transaction_labels"]
    assert labels.warn_after is not None and labels.warn_after.seconds == 2 * 86400
    assert labels.error_after is not None and labels.error_after.seconds == 5 * 86400
    features = sources["finance.ml_features"]
    assert (features.database, features.schema, features.identifier) == (
        "dbt_prom_demo",
        "raw_finance",
        "ml_feature_store",
    )
    assert features.meta_get("owner") == "finance-data"
    assert features.meta_get("runbook_url") == "https://runbooks.example.com/feature-store"
    if MODERN_DBT:
        assert (
            sources["events.consumer_offsets"].loaded_at_query == "select max(committed_at) from {{ this }}"
        )
    else:  # dbt < 1.10 has no loaded_at_query: the project leaves that source out
        assert "events.consumer_offsets" not in sources
    assert sources["events.app_events"].filter == "event_type <> 'heartbeat'"
    assert not sources["orders.customers_archive"].has_freshness


def test_parse_project_refuses_a_broken_project(tmp_path: Path, dbt_project_env: DbtProjectEnv) -> None:
    project = copy_project(tmp_path / "broken")
    sources = project / SOURCES_YML
    sources.write_text(sources.read_text() + "\n  - name: [unclosed\n")
    with pytest.raises(DbtRunError, match="dbt parse failed") as info:
        parse_project(dbt_project_env.options(project_dir=project, profiles_dir=project))
    assert "\n" not in str(info.value)
    shutil.rmtree(project)
