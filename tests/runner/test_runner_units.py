"""Pure parts of the runner: argv mapping, messages, secret scrubbing, progress lines (no dbt run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from dbt_prom_bridge import runner
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.errors import DbtRunError, ExitCode
from dbt_prom_bridge.model import Status


def test_dbt_args_use_dbts_flag_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_LOG_LEVEL", raising=False)
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    opts = DbtOptions(
        project_dir=Path("proj"),
        profiles_dir=Path("profiles"),
        target="prod",
        select=("source:finance", "source:events.clicks"),
        exclude=("source:orders.refunds",),
        vars="{day: 1}",
        target_path="out",
    )
    args = runner.dbt_args(opts, ["source", "freshness"]) + runner.selection_args(opts)
    assert args == [
        "source",
        "freshness",
        "--project-dir",
        "proj",
        "--profiles-dir",
        "profiles",
        "--target",
        "prod",
        "--vars",
        "{day: 1}",
        "--target-path",
        "out",
        "--log-level",
        "none",
        "--log-level-file",
        "debug",
        "--select",
        "source:finance",
        "--select",
        "source:events.clicks",
        "--exclude",
        "source:orders.refunds",
    ]


def test_dbt_args_leave_optional_flags_to_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unset options are not passed, so dbt's own env vars (DBT_PROFILES_DIR, DBT_TARGET...) apply.
    monkeypatch.setenv("DBT_LOG_LEVEL", "info")
    assert runner.dbt_args(DbtOptions(), ["parse"]) == ["parse", "--project-dir", "."]


def test_one_line_drops_the_sql_caret_diagram() -> None:
    message = (
        "Database Error in source refunds (models/sources.yml)\n"
        '  column "refunded_at_utc" does not exist\n'
        "  LINE 3:       max(refunded_at_utc) as max_loaded_at,\n"
        "                    ^"
    )
    assert runner.one_line(message) == (
        'Database Error in source refunds (models/sources.yml): column "refunded_at_utc" does not exist'
    )
    assert runner.one_line("\n  \n") == ""
    assert runner.one_line("The valid targets are:\n- dev\n- prod") == "The valid targets are: - dev; - prod"
    assert runner.one_line("x" * 1000, limit=50) == "x" * 49 + "…"


def test_scrub_removes_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROM_PG_PASSWORD", "hunter2-pw")
    monkeypatch.setenv("DBT_ENV_SECRET_TOKEN_X", "tok-abcdef")
    text = (
        "could not connect: postgresql://alice:s3cr3t@db:5432/x password=topsecret "
        "user hunter2-pw token tok-abcdef"
    )
    scrubbed = runner.scrub(text)
    for secret in ("s3cr3t", "topsecret", "hunter2-pw", "tok-abcdef"):
        assert secret not in scrubbed
    assert "postgresql://alice:***@db:5432/x" in scrubbed
    assert "password=***" in scrubbed


def test_describe_exception_names_the_cause_and_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROM_PG_PASSWORD", "pw-in-message")

    class DbtProfileError(Exception):
        pass

    exc = DbtProfileError("Runtime Error\n  Could not find profile named 'nope' (password pw-in-message)")
    message = runner.describe_exception(exc)
    assert message == (
        "dbt source freshness failed: Runtime Error: Could not find profile named 'nope' "
        "(password ***); check profiles.yml (--profiles-dir, --target)"
    )
    assert "\n" not in message


def test_progress_line_from_a_freshness_event() -> None:
    data = SimpleNamespace(
        status="runtime error",
        source_name="orders",
        table_name="refunds",
        index=3,
        total=10,
        execution_time=0.5,
    )
    assert runner.progress_line(data) == "[ 3/10] RUNTIME ERROR orders.refunds (0.50s)"


def test_result_entry_keeps_runtime_errors() -> None:
    node = SimpleNamespace(unique_id="source.p.orders.refunds", freshness=None)
    partial = SimpleNamespace(
        node=node,
        status="runtime error",
        message="Database Error\n  boom",
        execution_time=0.1,
        thread_id="T1",
    )
    sentinel = SimpleNamespace(
        node=SimpleNamespace(
            unique_id="source.p.orders.order_items",
            freshness=SimpleNamespace(
                warn_after=SimpleNamespace(count=12, period=SimpleNamespace(value="hour")),
                error_after=SimpleNamespace(count=None, period=None),
                filter=None,
            ),
        ),
        status="error",
        max_loaded_at=dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
        snapshotted_at=dt.datetime(2024, 5, 1, 12, 0),
        age=63_000_000_000.0,
        execution_time=0.2,
        thread_id="T2",
    )
    meta = SimpleNamespace(
        dbt_schema_version=None,
        dbt_version="1.8.0",
        generated_at=dt.datetime(2024, 5, 1, 12, 0, 1),
        invocation_id="inv-1",
    )
    artifact = runner.artifact_from_result(
        SimpleNamespace(metadata=meta, results=[partial, sentinel], elapsed_time=1.5)
    )
    assert artifact.invocation_id == "inv-1"
    assert artifact.generated_at == dt.datetime(2024, 5, 1, 12, 0, 1, tzinfo=dt.timezone.utc).timestamp()
    refunds, items = artifact.results
    assert refunds.status is Status.RUNTIME_ERROR
    assert refunds.error == "Database Error: boom"
    assert items.status is Status.ERROR
    assert items.has_data is False and items.max_loaded_at is None
    assert items.warn_after is not None and items.warn_after.seconds == 12 * 3600
    assert items.error_after is None


def test_written_by_matches_the_invocation_id(tmp_path: Path) -> None:
    path = tmp_path / "sources.json"
    path.write_text('{"metadata": {"dbt_schema_version": "x", "invocation_id": "abc-1"}, "results": []}')
    assert runner.written_by(path, "abc-1")
    assert not runner.written_by(path, "abc-2")
    assert not runner.written_by(path, None)
    assert not runner.written_by(tmp_path / "missing.json", "abc-1")


def test_no_dbt_installed_is_a_dbt_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "installed_dbt_version", lambda: None)
    with pytest.raises(DbtRunError, match="dbt-core is not installed") as info:
        runner.DbtFreshnessRunner(DbtOptions()).run()
    assert info.value.exit_code is ExitCode.DBT
    assert "pip install" in str(info.value)


def test_dbt_without_dbtrunner_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "installed_dbt_version", lambda: "1.4.9")
    with pytest.raises(DbtRunError, match=r"dbt-core 1\.4\.9 has no in-process runner"):
        runner.parse_project(DbtOptions())


def test_fingerprint_changes_with_project_files_only(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    (tmp_path / "models" / "a.sql").write_text("select 1\n")
    first = runner.project_fingerprint(tmp_path)
    (tmp_path / "target" / "sources.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not part of the project")
    (tmp_path / ".user.yml").write_text("id: 1\n")  # dbt's user id, written by the first run
    assert runner.project_fingerprint(tmp_path) == first
    (tmp_path / "models" / "a.sql").write_text("select 2 as changed\n")
    assert runner.project_fingerprint(tmp_path) != first


def test_profile_secrets_are_the_literal_ones(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      password: lit3ral-pw\n"
        "      user: bob\n    prod:\n      pass: \"{{ env_var('PW') }}\"\n      token: tk-123456\n"
    )
    found = runner.profile_secrets(DbtOptions(profiles_dir=tmp_path))
    assert sorted(found) == ["lit3ral-pw", "tk-123456"]
    assert runner.profile_secrets(DbtOptions(profiles_dir=tmp_path / "missing")) == []


def test_secrets_are_scrubbed_before_truncation() -> None:
    secret = "abcdefghijklmnop"
    exc = RuntimeError("x" * 390 + secret)
    message = runner.describe_exception(exc, secrets=[secret])
    assert "abcdef" not in message


def test_freshness_speedups_leave_flags_the_user_set_to_dbt() -> None:
    assert runner.freshness_speedups({}) == ["--no-write-json", "--no-populate-cache"]
    assert runner.freshness_speedups({"DBT_WRITE_JSON": "true"}) == ["--no-populate-cache"]
    assert runner.freshness_speedups({"DBT_POPULATE_CACHE": "1", "DBT_WRITE_JSON": "0"}) == []


def test_write_sources_json_uses_dbts_writer_and_survives_a_readonly_dir(tmp_path: Path) -> None:
    written: list[str] = []

    def write(path: str) -> None:
        written.append(path)
        Path(path).write_text("{}")

    result = SimpleNamespace(write=write)
    target = tmp_path / "target" / "sources.json"
    runner.write_sources_json(result, target)
    assert written == [str(target)] and target.read_text() == "{}"

    def refuse(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    runner.write_sources_json(SimpleNamespace(write=refuse), target)  # no exception: best effort
    runner.write_sources_json(object(), target)  # a result without write(): nothing to do


def test_a_result_without_a_source_is_a_run_level_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt 1.8 on a parsed manifest reports an unreachable database as a result with no node."""
    monkeypatch.setenv("DBT_PROM_PG_PASSWORD", "pw-never-shown")
    source = SimpleNamespace(node=SimpleNamespace(unique_id="source.p.s.t"), message="boom")
    assert runner.run_level_failure(SimpleNamespace(results=[source])) is None
    orphan = SimpleNamespace(
        node=None,
        message='on-run-start failed, error: connection to server at "127.0.0.1", port 1 failed: '
        "Connection refused\n  password pw-never-shown",
    )
    message = runner.run_level_failure(SimpleNamespace(results=[source, orphan]))
    assert message is not None
    assert message.startswith("dbt source freshness failed: on-run-start failed, error: connection to server")
    assert "reachable" in message and "\n" not in message and "pw-never-shown" not in message
