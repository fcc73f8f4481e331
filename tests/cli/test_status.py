"""`dbt-prom status`: the summary of the last run's artifacts, from a real dbt run, without pushing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures_dbt import CALENDAR_VERDICT, EXPECTED_STATUS, DbtProjectEnv, run_cli


@pytest.fixture(scope="module")
def artifacts(dbt_project_env: DbtProjectEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sources.json + manifest.json of one real `dbt source freshness` of the seeded sample project."""
    dbt_project_env.seed()
    dbt_project_env.dbt("source", "freshness", check=False)
    out = tmp_path_factory.mktemp("status-artifacts")
    for name in ("sources.json", "manifest.json"):
        shutil.copy(dbt_project_env.target_dir / name, out / name)
    return out


#: sources.json leaves runtime errors out: with the manifest they show as not_run.
FROM_ARTIFACTS = {k: ("not_run" if v == "runtime_error" else v) for k, v in EXPECTED_STATUS.items()}
#: What status shows: the calendar verdict (dbt's status beside it where they differ).
VERDICTS = {**FROM_ARTIFACTS, **CALENDAR_VERDICT}


@pytest.mark.dbt
def test_table_on_stdout(artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["status", "--artifacts-dir", str(artifacts)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("last freshness run: ") and "dbt 1." in lines[0]
    assert lines[1].split() == ["SOURCE", "STATUS", "AGE", "THRESHOLD", "CALENDAR"]
    rows = {line.split()[0]: line.split()[1] for line in lines[2:-1]}
    assert rows == VERDICTS
    invoices = next(line for line in lines if line.startswith("partners.invoices"))
    assert "pass (dbt: error)" in invoices and "America/New_York" in invoices
    assert lines[-1].startswith(f"{len(EXPECTED_STATUS)} sources in dbt_prom_demo/")
    assert "\x1b[" not in out, "no colour when not a terminal"


@pytest.mark.dbt
def test_json_and_meta_labels(artifacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["status", "--artifacts-dir", str(artifacts), "--format", "json", "--meta-label", "owner"], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert {f"{s['source_name']}.{s['table_name']}": s["status"] for s in doc["sources"]} == VERDICTS
    assert {
        f"{s['source_name']}.{s['table_name']}": s["dbt_status"] for s in doc["sources"]
    } == FROM_ARTIFACTS
    owners = {s["meta"]["owner"] for s in doc["sources"]}
    assert owners == {"finance-data", "platform-data", "commerce-data", "partner-ops"}
    assert doc["counts"] == {"pass": 6, "warn": 2, "error": 3, "runtime_error": 0, "not_run": 1}
    assert doc["dbt_counts"] == {"pass": 5, "warn": 2, "error": 4, "runtime_error": 0, "not_run": 1}


@pytest.mark.dbt
@pytest.mark.parametrize(("level", "code"), [("never", 0), ("error", 1), ("warn", 1)])
def test_fail_on(artifacts: Path, capsys: pytest.CaptureFixture[str], level: str, code: int) -> None:
    got, _, err = run_cli(["status", "--artifacts-dir", str(artifacts), "--fail-on", level], capsys)
    assert got == code, err
    if code:
        assert f"--fail-on {level}:" in err


@pytest.mark.dbt
def test_old_artifact_is_shown_unless_max_age_given(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads((artifacts / "sources.json").read_text())
    doc["metadata"]["generated_at"] = "2020-01-01T00:00:00.000000Z"
    (tmp_path / "sources.json").write_text(json.dumps(doc))
    shutil.copy(artifacts / "manifest.json", tmp_path / "manifest.json")
    code, out, _ = run_cli(["status", "--artifacts-dir", str(tmp_path)], capsys)
    assert code == 0
    assert out.startswith("last freshness run: 2020-01-01 00:00:00 UTC (")
    code, out, err = run_cli(["status", "--artifacts-dir", str(tmp_path), "--max-artifact-age", "1h"], capsys)
    assert code == 2 and out == ""
    assert "older than --max-artifact-age" in err


@pytest.mark.parametrize("flag", ["--select", "--exclude", "--vars"])
def test_run_only_flags_are_not_offered(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # status reads what the last run left: a selection was silently ignored (and hid not_run sources)
    code, _, err = run_cli(["status", "--artifacts-dir", str(tmp_path), flag, "x"], capsys)
    assert code == 2 and f"No such option '{flag}'" in err


def test_missing_artifacts_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["status", "--artifacts-dir", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert "sources.json not found" in err and "Traceback" not in err


def test_status_never_pushes_or_imports_dbt(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dbt_prom_bridge.cli import main\n"
        "try:\n"
        f"    main(['status', '--artifacts-dir', {str(tmp_path)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('DBT', any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "DBT False" in result.stdout, result.stdout + result.stderr
