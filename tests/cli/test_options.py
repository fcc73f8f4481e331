"""Shared options: what a bad value's message names."""

from __future__ import annotations

import pytest

from dbt_prom_bridge.cli import main


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["rules", "--for", "soon"], "--for 'soon'"),  # the parameter is for_: was shown as --for-
        (["rules", "--keep-firing-for", "soon"], "--keep-firing-for 'soon'"),
        (["push", "--dry-run", "--timeout", "soon"], "--timeout 'soon'"),
    ],
)
def test_a_bad_duration_names_the_flag_as_typed(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert f"{named} is not a duration" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["push", "serve", "run"])
@pytest.mark.parametrize("flag", ["--manifest", "--sources-json"])
def test_artifact_files_without_no_run_are_refused_not_ignored(
    command: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A dbt run reads what it writes: a --manifest given to it was silently ignored (even one of
    # another project).
    tail = ["--", "true"] if command == "run" else []
    with pytest.raises(SystemExit) as exc:
        main([command, flag, "elsewhere.json", *tail])
    assert exc.value.code == 2
    assert f"{flag} only makes sense with --no-run" in capsys.readouterr().err
