"""Broken, foreign and unusual artifacts: each is one line on stderr and exit 2 (never a
traceback), or is accepted when it is normal (a manifest from a later invocation)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures_dbt import run_cli
from tests.reliability.runs import SAMPLE, write_artifacts

Edit = Callable[[dict[str, Any]], Any]


def dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(["push", "--no-run", "--dry-run", "--target", "dev", *args], capsys)


def assert_one_line_refusal(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dbt-prom: error: "), err
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A real sample sources.json + manifest.json from a minute ago."""
    return write_artifacts(tmp_path / "art", time.time() - 60)


def edit_json(path: Path, edit: Edit) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"  \n\t ", "is empty"),
        (b"\x80\x81 not utf-8", "not UTF-8"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"not json at all", "not valid JSON (truncated or corrupt at line 1, column 1)"),
        (
            b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json"}, '
            b'"results": [',
            "not valid JSON (truncated or corrupt",
        ),
        (b"[" * 100_000, "nested too deeply"),
        (b"[]", "found a JSON list"),
        (b"null", "found a JSON NoneType"),
        (b'"sources"', "found a JSON str"),
        (b"{}", "no metadata.dbt_schema_version (top-level keys: no keys)"),
    ],
    ids=[
        "empty",
        "blank",
        "latin1",
        "utf16-bom",
        "text",
        "cut",
        "deep",
        "list",
        "null",
        "string",
        "empty-object",
    ],
)
def test_unreadable_sources_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    path = tmp_path / "sources.json"
    path.write_bytes(content)
    code, _, err = dry_run(capsys, "--sources-json", str(path), "--allow-stale-artifact")
    assert_one_line_refusal(code, err, str(path), expected)


def test_truncated_real_file(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fresh / "sources.json"
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert_one_line_refusal(code, err, "not valid JSON (truncated or corrupt at line 1")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["metadata"].update(
                dbt_schema_version="https://schemas.getdbt.com/dbt/sources/v4.json"
            ),
            "schema sources/v4, which this version of dbt-prom-bridge does not read "
            "(it reads sources v1-v3 and freshness v0); upgrade dbt-prom-bridge",
        ),
        (
            lambda d: d["metadata"].update(
                dbt_schema_version="https://schemas.getdbt.com/dbt/sources/v0.json"
            ),
            "schema sources/v0",
        ),
        (
            lambda d: d["metadata"].update(
                dbt_schema_version="https://schemas.getdbt.com/dbt/run-results/v6.json"
            ),
            "is a run-results.json (schema run-results/v6), not a sources.json",
        ),
        (lambda d: d["metadata"].update(dbt_schema_version="https://example.com/other"), "unknown schema"),
        (lambda d: d.pop("results"), "has no 'results' list; the file is incomplete"),
        (lambda d: d.update(results={"a": 1}), "has no 'results' list"),
        (lambda d: d["results"].__setitem__(0, "x"), "results[0] is not an object"),
        (lambda d: d["results"][0].pop("unique_id"), "results[0] has no unique_id"),
        (lambda d: d["results"][0].update(status="stale"), "unknown freshness status 'stale'"),
        (
            lambda d: d["results"][0].update(max_loaded_at="yesterday"),
            "'yesterday' is not an ISO 8601 timestamp",
        ),
        (lambda d: d["results"][0].update(max_loaded_at=12), "12 is not a timestamp string"),
        (
            lambda d: d["metadata"].update(generated_at="soon"),
            "metadata.generated_at 'soon' is not an ISO 8601",
        ),
    ],
    ids=[
        "future",
        "v0",
        "run-results",
        "foreign",
        "no-results",
        "results-map",
        "entry-string",
        "no-unique-id",
        "bad-status",
        "bad-time",
        "number-time",
        "bad-generated-at",
    ],
)
def test_wrong_schema_and_malformed_entries(
    fresh: Path, capsys: pytest.CaptureFixture[str], edit: Edit, expected: str
) -> None:
    edit_json(fresh / "sources.json", edit)
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert_one_line_refusal(code, err, expected)


def test_manifest_passed_as_sources_json(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dry_run(capsys, "--sources-json", str(fresh / "manifest.json"), "--allow-stale-artifact")
    assert_one_line_refusal(code, err, "is a manifest.json (schema manifest/v12), not a sources.json")


def test_sources_json_passed_as_manifest(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dry_run(
        capsys, "--sources-json", str(fresh / "sources.json"), "--manifest", str(fresh / "sources.json")
    )
    assert_one_line_refusal(code, err, "has schema sources/v3; expected a manifest.json")


def test_future_manifest(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_json(
        fresh / "manifest.json",
        lambda d: d["metadata"].update(dbt_schema_version="https://schemas.getdbt.com/dbt/manifest/v13.json"),
    )
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert_one_line_refusal(code, err, "manifest/v13", "upgrade dbt-prom-bridge")


def test_manifest_of_another_project(fresh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other-manifest.json"
    other.write_text((SAMPLE / "manifest.json").read_text().replace("dbt_prom_demo", "someone_else"))
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh), "--manifest", str(other))
    assert_one_line_refusal(
        code,
        err,
        "(project someone_else) knows none of the 9 sources in the sources.json (project dbt_prom_demo)",
    )


def test_manifest_from_a_later_invocation_of_the_same_project_is_accepted(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dbt source freshness` then `dbt build`: the manifest is newer, from another invocation,
    and may even declare a source added since."""

    def later(doc: dict[str, Any]) -> None:
        doc["metadata"].update(invocation_id="later-build", generated_at="2099-01-01T00:00:00Z")
        added = dict(doc["sources"]["source.dbt_prom_demo.orders.orders"])
        added.update(unique_id="source.dbt_prom_demo.orders.returns", name="returns", identifier="returns")
        doc["sources"]["source.dbt_prom_demo.orders.returns"] = added

    edit_json(fresh / "manifest.json", later)
    code, out, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert code == 0, err
    assert 'table_name="returns"' in out and 'status="not_run"} 1' in out


def test_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dry_run(capsys, "--artifacts-dir", str(tmp_path))
    assert_one_line_refusal(
        code, err, f"sources.json not found at {tmp_path / 'sources.json'}", "dbt source freshness"
    )
    (tmp_path / "sources.json").mkdir()
    code, _, err = dry_run(capsys, "--artifacts-dir", str(tmp_path))
    assert_one_line_refusal(code, err, "is a directory, not a file")


def test_named_manifest_must_exist(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh), "--manifest", str(fresh / "nope.json"))
    assert_one_line_refusal(code, err, "manifest.json not found at")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fresh / "sources.json").chmod(0)
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert_one_line_refusal(code, err, "cannot read sources.json")


def test_stale_artifact_is_refused_with_how_to_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_artifacts(tmp_path / "old", time.time() - 7200)
    code, _, err = dry_run(capsys, "--artifacts-dir", str(old))
    assert_one_line_refusal(
        code, err, "was generated 2h00m ago, older than --max-artifact-age 1h00m", "--allow-stale-artifact"
    )
    code, _, err = dry_run(capsys, "--artifacts-dir", str(old), "--max-artifact-age", "3h")
    assert code == 0, err


def test_artifact_without_generated_at(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_json(fresh / "sources.json", lambda d: d["metadata"].pop("generated_at"))
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert_one_line_refusal(code, err, "has no metadata.generated_at, so its age is unknown")
    code, out, err = dry_run(capsys, "--artifacts-dir", str(fresh), "--allow-stale-artifact")
    assert code == 0 and "dbt_source_freshness_run_timestamp_seconds" not in out


def test_bad_thresholds_are_warnings_not_failures(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def bad(doc: dict[str, Any]) -> None:
        doc["results"][0]["criteria"]["warn_after"] = {"count": -3, "period": "hour"}
        doc["results"][1]["criteria"]["error_after"] = {"count": 1, "period": "fortnight"}

    edit_json(fresh / "sources.json", bad)
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert code == 0, err
    assert "warn_after skipped: threshold count -3 must be positive" in err
    assert "error_after skipped: threshold period 'fortnight' is not one of minute, hour, day" in err


def test_same_source_name_in_two_packages(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A package declaring the same source and table name as the project would give duplicate
    series (rejected by a Pushgateway): the project's own source is reported, with a warning."""

    def twin(doc: dict[str, Any]) -> None:
        first = dict(doc["results"][0])
        doc["results"].insert(
            0, {**first, "unique_id": first["unique_id"].replace("dbt_prom_demo", "a_pkg"), "status": "error"}
        )

    edit_json(fresh / "sources.json", twin)
    code, out, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert code == 0, err
    assert (
        "source.a_pkg.events.clicks has the same source and table name as source.dbt_prom_demo.events.clicks"
        in err
    )
    states = {
        s.labels["status"]: s.value
        for fam in text_string_to_metric_families(out)
        for s in fam.samples
        if s.name == "dbt_source_freshness_status" and s.labels["table_name"] == "clicks"
    }
    assert len(states) == 5 and states["warn"] == 1 and states["error"] == 0


def test_nan_and_huge_numbers(fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def odd(doc: dict[str, Any]) -> str:
        doc["results"][0]["execution_time"] = 1e308
        doc["results"][0]["max_loaded_at_time_ago_in_s"] = -1
        return json.dumps(doc).replace('"elapsed_time": ', '"elapsed_time": NaN, "x": ')

    path = fresh / "sources.json"
    path.write_text(odd(json.loads(path.read_text())))
    code, out, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert code == 0, err
    assert "dbt_source_freshness_check_duration_seconds{" in out and "1e+308" in out
    # NaN (or Infinity, or an integer no float holds) is no duration: the series is left out
    assert "dbt_source_freshness_run_duration_seconds" not in out


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("dbt-prom: warning:")]


def test_a_duplicate_unique_id_warns_naming_the_one_kept(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edited or concatenated sources.json holding one source twice: the newest check is kept."""

    def duplicate(doc: dict[str, Any]) -> None:
        first = next(r for r in doc["results"] if r["unique_id"].endswith("events.clicks"))
        older = {**first, "status": "error", "snapshotted_at": "2000-01-01T00:00:00Z"}
        doc["results"] = [older, *doc["results"]]

    edit_json(fresh / "sources.json", duplicate)
    code, out, err = dry_run(capsys, "--artifacts-dir", str(fresh), "--format", "text")
    assert code == 0, err
    (warning,) = [w for w in _warnings(err) if "appears 2 times" in w]
    assert "source.dbt_prom_demo.events.clicks" in warning and "kept the newest (warn" in warning
    clicks = [
        s
        for fam in text_string_to_metric_families(out)
        for s in fam.samples
        if fam.name == "dbt_source_freshness_status" and s.labels["table_name"] == "clicks" and s.value == 1
    ]
    assert [s.labels["status"] for s in clicks] == ["warn"]


def test_a_manifest_lacking_some_sources_warns_naming_them(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest of another version of the same project: the sources it lacks are named."""

    def drop(doc: dict[str, Any]) -> None:
        for uid in list(doc["sources"]):
            if uid.endswith(("events.clicks", "orders.orders")):
                del doc["sources"][uid]

    edit_json(fresh / "manifest.json", drop)
    code, _, err = dry_run(capsys, "--artifacts-dir", str(fresh))
    assert code == 0, err
    (warning,) = [w for w in _warnings(err) if "not in the manifest" in w]
    assert "events.clicks" in warning and "orders.orders" in warning
