"""The write-or-check behaviour `rules` and `dashboard` share (cli/generated.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbt_prom_bridge.cli.generated import write_or_check
from dbt_prom_bridge.errors import ArtifactError, CheckFailed, DbtPromError, ExitCode, UsageError


def test_stdout_without_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    write_or_check([(None, "text\n")], False, command="dbt-prom x")
    assert capsys.readouterr().out == "text\n"
    with pytest.raises(UsageError, match="give --out"):
        write_or_check([(None, "text\n")], True, command="dbt-prom x")


def test_write_then_unchanged_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "out" / "a.yml", tmp_path / "out" / "b.yml"
    write_or_check([(a, "A\n"), (b, "B\n")], False, command="dbt-prom x")
    assert (a.read_text(), b.read_text()) == ("A\n", "B\n")
    assert capsys.readouterr().err.count("wrote") == 2
    before = a.stat().st_ino
    write_or_check([(a, "A\n"), (b, "B\n")], False, command="dbt-prom x")
    assert "unchanged" in capsys.readouterr().err and a.stat().st_ino == before
    write_or_check([(a, "A\n"), (b, "B\n")], True, command="dbt-prom x")
    captured = capsys.readouterr()
    assert captured.out == "" and "up to date" in captured.err


def test_check_reports_every_drifted_file_with_a_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text("same\n")
    b.write_text("old\n")
    with pytest.raises(CheckFailed) as failed:
        write_or_check([(a, "same\n"), (b, "new\n"), (c, "C\n")], True, command="dbt-prom x")
    assert failed.value.exit_code == ExitCode.FAILED_CHECK
    assert "dbt-prom x" in str(failed.value)
    out = capsys.readouterr().out
    assert "-old" in out and "+new" in out and "+C" in out
    assert b.read_text() == "old\n" and not c.exists()


def test_a_file_that_cannot_be_read_or_written_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ArtifactError, match="cannot read"):
        write_or_check([(bad, "x")], True, command="dbt-prom x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DbtPromError) as failed:
        write_or_check([(blocker / "out.json", "x")], False, command="dbt-prom x")
    assert failed.value.exit_code == ExitCode.INPUT and "out.json" in str(failed.value)


def test_the_written_file_replaces_the_old_one_atomically(tmp_path: Path) -> None:
    out = tmp_path / "dash.json"
    out.write_text("{}\n")
    out.chmod(0o644)
    reader = tmp_path / "open-by-grafana"
    os.link(out, reader)
    write_or_check([(out, '{"new": 1}\n')], False, command="dbt-prom x")
    assert reader.read_text() == "{}\n" and out.read_text() == '{"new": 1}\n'
    assert out.stat().st_mode & 0o777 == 0o644
