"""Every real sources.json in ../shared/corpus (and its hand-written fixtures) is read, or refused
with one line naming what was found; read ones render an exposition that promtool accepts and
that says what the artifact says."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CORPUS, needs_corpus
from tests.fixtures_dbt import run_cli

FILES = (
    sorted([*CORPUS.glob("*.json"), *CORPUS.glob("fixtures/*.json")], key=lambda p: p.name)
    if CORPUS.is_dir()
    else []
)
#: Files refused on purpose, and what the one-line message must say.
REFUSED = {
    "002-prasidan__dbt-learn-pnewman.json": "dbt 0.18-era layout (sources v0",
    "F005-lugonesnicolas__retail-data-platform.json": "no metadata.dbt_schema_version",
    # hand-sanitised: unique_id "sample_source" names no project, source or table
    "034-TicketSwap__tap-dbt-artifacts.json": "is not source.<project>.<source>.<table>",
}
STATES = {"pass", "warn", "error", "runtime_error", "not_run"}

pytestmark = needs_corpus


def _epoch(raw: str | None) -> float | None:
    if not raw:
        return None
    value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.year < 1900:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_is_read_or_refused_in_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        ["push", "--no-run", "--sources-json", str(path), "--allow-stale-artifact", "--dry-run"], capsys
    )
    assert "Traceback" not in err
    if path.name in REFUSED:
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("dbt-prom: error: "), err
        assert REFUSED[path.name] in err
        return
    assert code == 0, err
    doc = json.loads(path.read_text())
    samples = [
        (s.name, s.labels, s.value) for fam in text_string_to_metric_families(out) for s in fam.samples
    ]
    for result in doc["results"]:
        if result.get("resource_type", "source") != "source":
            continue
        _, _, source, table = result["unique_id"].split(".", 3)
        mine = [
            (n, lb, v)
            for n, lb, v in samples
            if (lb.get("source_name"), lb.get("table_name")) == (source, table)
        ]
        state = {lb["status"]: v for n, lb, v in mine if n == "dbt_source_freshness_status"}
        assert set(state) == STATES
        want = str(result["status"]).lower().replace(" ", "_")
        assert [k for k, v in state.items() if v == 1] == [want]
        loaded = [v for n, _, v in mine if n == "dbt_source_max_loaded_at_timestamp_seconds"]
        expected = _epoch(result.get("max_loaded_at"))
        assert loaded == ([] if expected is None else [pytest.approx(expected, abs=1e-3)])
        has_data = [v for n, _, v in mine if n == "dbt_source_has_data"]
        if str(result.get("max_loaded_at", "")).startswith("0001"):
            assert has_data == [0.0]


def test_every_read_exposition_passes_promtool(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps)")
    checked = 0
    for path in FILES:
        if path.name in REFUSED:
            continue
        code, out, err = run_cli(
            ["push", "--no-run", "--sources-json", str(path), "--allow-stale-artifact", "--dry-run"], capsys
        )
        assert code == 0, err
        lint = subprocess.run([promtool, "check", "metrics"], input=out, capture_output=True, text=True)
        assert lint.returncode == 0, f"{path.name}: {lint.stdout}{lint.stderr}"
        checked += 1
    assert checked == len(FILES) - len(REFUSED)


def test_shared_contract_checker() -> None:
    """../shared/tools/check-contract finds no problem except two it cannot judge:
    - the hand-sanitised 034 (either way: accepted, its unique_id does not split into 4 parts);
    - 004, whose every result is a runtime error: dbt never found out whether those tables have
      rows, so no ``dbt_source_has_data`` sample is written (1 would claim data, 0 no data), while
      the checker expects the family whenever there are results."""
    checker = CORPUS.parent / "tools" / "check-contract"
    if not checker.exists():
        pytest.skip(f"{checker} not found")
    exe = Path(sys.executable).parent / "dbt-prom"
    proc = subprocess.run(
        [sys.executable, str(checker), "--dbt-prom", str(exe)], capture_output=True, text=True, timeout=600
    )
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("2 problems in"), proc.stdout
    assert lines[0] == "004-santhoshjx__new1.json: dbt_source_has_data: missing", lines[0]
    assert lines[1].startswith("034-TicketSwap__tap-dbt-artifacts.json: exit 2: dbt-prom: error: "), lines[1]
