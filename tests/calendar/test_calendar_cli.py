"""Calendars through the CLI, from artifacts on disk (no dbt run): verdicts, gates, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.calendar.test_calendar import BUSINESS
from tests.calendar.test_calendar_run import CHECKED, CRITERIA, HOLIDAY_UID, LOADED, PLAIN_UID
from tests.fixtures_dbt import run_cli
from tests.model.test_build_run import MANIFEST_V12, SOURCES_V3, node, result


def write_artifacts(tmp_path: Path, calendar: Any) -> Path:
    sources = {
        "metadata": {"dbt_schema_version": SOURCES_V3, "dbt_version": "1.11.0", "generated_at": CHECKED},
        "results": [
            result(uid, "error", max_loaded_at=LOADED, snapshotted_at=CHECKED, criteria=CRITERIA)
            for uid in (HOLIDAY_UID, PLAIN_UID)
        ],
        "elapsed_time": 1.0,
    }
    manifest = {
        "metadata": {"dbt_schema_version": MANIFEST_V12, "project_name": "shop"},
        "sources": {
            HOLIDAY_UID: node(HOLIDAY_UID, source_meta={"dbt_prom": {"calendar": calendar}}),
            PLAIN_UID: node(PLAIN_UID),
        },
    }
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_status_shows_calendar_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = write_artifacts(tmp_path, BUSINESS)
    code, out, err = run_cli(["status", "--artifacts-dir", str(art), "--fail-on", "warn"], capsys)
    assert code == 1, err
    assert "pass (dbt: error)" in out
    assert "crm.contacts (error)" in err and "crm.accounts" not in err


def test_push_dry_run_has_deadlines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = write_artifacts(tmp_path, BUSINESS)
    args = ["push", "--no-run", "--artifacts-dir", str(art), "--allow-stale-artifact", "--dry-run"]
    code, out, err = run_cli([*args, "--fail-on", "error"], capsys)
    assert code == 1, err  # crm.contacts is error by dbt and by its (absent) calendar
    assert 'dbt_source_freshness_warn_deadline_timestamp_seconds{project="shop"' in out


@pytest.mark.parametrize(
    "command",
    [
        ["push", "--no-run", "--allow-stale-artifact", "--dry-run"],
        ["status"],
    ],
)
def test_wrong_calendar_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    art = write_artifacts(tmp_path, {**BUSINESS, "timezone": "America/Nowhere"})
    code, _, err = run_cli([*command, "--artifacts-dir", str(art)], capsys)
    assert code == 2
    assert "crm.accounts" in err and "timezone" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
