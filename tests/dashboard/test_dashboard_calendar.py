"""The dashboard and business calendars: deadline columns, calendar stats evaluated by promtool,
and exit 2 on a wrong calendar."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import dashboard
from dbt_prom_bridge.errors import CalendarError, ExitCode
from tests.conftest import requires
from tests.dashboard.test_dashboard import panels
from tests.fixtures_dbt import run_cli
from tests.rules.rulestools import manifest_of, source
from tests.rules.test_calendar_rules import calendar_manifest, calendar_meta


def stat(doc: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in panels(doc) if p["type"] == "stat" and p["title"] == title)


def test_sources_table_has_time_until_deadlines() -> None:
    doc = dashboard.build(calendar_manifest())
    table = next(p for p in panels(doc) if p["type"] == "table")
    exprs = [t["expr"] for t in table["targets"]]
    assert any(e.startswith("dbt_source_freshness_warn_deadline_timestamp_seconds{") for e in exprs)
    assert any(e.startswith("dbt_source_freshness_error_deadline_timestamp_seconds{") for e in exprs)
    renamed = table["transformations"][1]["options"]["renameByName"]
    assert {"until warn", "until error"} <= set(renamed.values())


def test_plain_source_stat_is_unchanged() -> None:
    doc = dashboard.build(calendar_manifest())
    assert stat(doc, "events")["targets"][0]["expr"].startswith("time() - dbt_source_max_loaded_at")
    assert "America/New_York" in stat(doc, "accounts")["description"]


@requires("promtool")
@pytest.mark.parametrize(
    ("warn", "error", "state"),
    [(600.0, 900.0, 0), (60.0, 900.0, 1), (60.0, 120.0, 3)],
)
def test_calendar_stat_follows_the_deadlines(warn: float, error: float, state: int, tmp_path: Path) -> None:
    """Evaluated at 5m: deadlines in the future are on time (0), a past warn deadline is 1, both 3."""
    doc = dashboard.build(calendar_manifest())
    expr = stat(doc, "accounts")["targets"][0]["expr"].replace("$target", ".*")
    labels = 'project="shop",target="prod",source_name="crm",table_name="accounts"'
    series = [
        {
            "series": f"dbt_source_freshness_warn_deadline_timestamp_seconds{{{labels}}}",
            "values": f"{warn}x10",
        },
        {
            "series": f"dbt_source_freshness_error_deadline_timestamp_seconds{{{labels}}}",
            "values": f"{error}x10",
        },
    ]
    case = {
        "expr": expr,
        "eval_time": "5m",
        "exp_samples": [{"labels": "{" + labels + "}", "value": state}],
    }
    (tmp_path / "empty.yml").write_text("groups: []\n")
    spec = {
        "rule_files": [str(tmp_path / "empty.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [case]}],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_calendar_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = manifest_of(
        "shop", source("crm", "accounts", meta=calendar_meta({"days": "mon-fri", "hours": "9-5"}))
    )
    with pytest.raises(CalendarError) as info:
        dashboard.build(bad)
    assert info.value.exit_code == ExitCode.INPUT
    manifest = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "project_name": "shop",
        },
        "sources": {
            "source.shop.crm.accounts": {
                "package_name": "shop",
                "source_name": "crm",
                "name": "accounts",
                "freshness": {"warn_after": {"count": 1, "period": "hour"}},
                "meta": {"dbt_prom": {"calendar": {"timezone": "Atlantis/Capital"}}},
            }
        },
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    code, _, err = run_cli(["dashboard", "--manifest", str(path)], capsys)
    assert code == 2
    assert "crm.accounts" in err and "timezone" in err


def test_rules_cli_wrong_calendar_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "project_name": "shop",
        },
        "sources": {
            "source.shop.crm.accounts": {
                "package_name": "shop",
                "source_name": "crm",
                "name": "accounts",
                "freshness": {"warn_after": {"count": 1, "period": "hour"}},
                "meta": {"dbt_prom": {"calendar": {"holidays": "Narnia"}}},
            }
        },
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    code, _, err = run_cli(["rules", "--manifest", str(path)], capsys)
    assert code == 2
    assert "crm.accounts" in err and "holidays" in err and len(err.strip().splitlines()) == 1
