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
