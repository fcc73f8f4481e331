"""Shared options: what a bad value's message names."""

from __future__ import annotations

from pathlib import Path

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


def test_no_run_only_flags_without_no_run_are_named_as_ignored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stops at "nowhere to push" (exit 2) before dbt runs: the warning comes first.
    with pytest.raises(SystemExit) as exc:
        main(["push", "--allow-stale-artifact", "--max-artifact-age", "2h", "--force"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "warning: --max-artifact-age, --allow-stale-artifact, --force only apply with --no-run" in err
    assert "nowhere to push" in err

    # The same settings from the environment (shared by jobs with and without --no-run): quiet.
    monkeypatch.setenv("DBT_PROM_MAX_ARTIFACT_AGE", "2h")
    with pytest.raises(SystemExit):
        main(["push"])
    assert "warning" not in capsys.readouterr().err

    # With --no-run they are used, not warned about.
    with pytest.raises(SystemExit):
        main(["push", "--no-run", "--allow-stale-artifact"])
    assert "only apply with --no-run" not in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["gateway", "remote-write"])
def test_gateway_and_remote_write_auth_flags_are_read_alike(
    flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (
        ["--gateway", "http://gw:9091"] if flag == "gateway" else ["--remote-write", "http://rw/api/v1/write"]
    )
    key = tmp_path / "client.key"
    key.write_text("k")
    with pytest.raises(SystemExit) as exc:
        main(["push", "--no-run", *url, f"--{flag}-key", str(key)])
    assert exc.value.code == 2 and f"--{flag}-key needs --{flag}-cert" in capsys.readouterr().err

    env = "DBT_PROM_" + flag.replace("-", "_").upper() + "_PASSWORD"
    monkeypatch.setenv(env, "from-env")
    with pytest.raises(SystemExit) as exc:
        main(["push", "--no-run", *url, f"--{flag}-user", "u", f"--{flag}-password-file", str(key)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"give the {flag} password either directly or as a file" in err
    assert "from-env" not in err
