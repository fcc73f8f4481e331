"""The CLI surface: help texts, exit codes, and that --help never imports dbt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_prom_bridge.cli import COMMANDS, cli, main


def test_help_lists_every_command_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name}" in result.output
    for code in ("0  done", "1  --fail-on", "2  usage", "3  dbt could not run", "4  push failed"):
        assert code in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help_with_exit_codes(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Exit codes:" in result.output


def test_help_and_version_do_not_import_dbt() -> None:
    code = (
        "import sys\n"
        "from dbt_prom_bridge.cli import main\n"
        "for argv in (['--help'], ['push', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m == 'dbt' or m.startswith(('dbt.', 'google.protobuf')))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "No such command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["push", "--bogus"], "dbt-prom: error: No such option '--bogus' (see 'dbt-prom push --help')"),
        (["pus"], "dbt-prom: error: No such command 'pus' (see 'dbt-prom --help')"),
        (
            ["run"],
            "dbt-prom: error: Missing argument '-- COMMAND [ARGS]...' (see 'dbt-prom run --help')",
        ),
        (
            ["rules", "--mode", "x"],
            "dbt-prom: error: Invalid value for '--mode': 'x' is not one of 'per-source', 'dynamic' "
            "(see 'dbt-prom rules --help')",
        ),
        (
            ["push", "--gatway", "x"],
            "dbt-prom: error: No such option '--gatway' (Did you mean one of: '--gateway', "
            "'--gateway-ca', '--gateway-key'?) (see 'dbt-prom push --help')",
        ),
        (
            ["push", "--retries", "x", "--gateway", "http://user:s3cret-pw@gw:9091"],
            "dbt-prom: error: Invalid value for '--retries': 'x' is not a valid integer range "
            "(see 'dbt-prom push --help')",
        ),
    ],
)
def test_click_usage_errors_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == expected + "\n" and captured.out == ""


def test_click_usage_errors_never_echo_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", "hunter22-pw")
    for value in ("http://u:s3cret-pw@gw:9091", "hunter22-pw"):
        with pytest.raises(SystemExit) as exc:
            main(["push", "--retries", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "is not a valid integer range" in err
        assert "s3cret-pw" not in err and "hunter22-pw" not in err


def test_a_bare_command_group_still_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "Commands:" in capsys.readouterr().err


def test_bad_flag_value_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["push", "--dry-run", "--no-run", "--max-artifact-age", "soon"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "not a duration" in err


def test_unexpected_exception_is_one_scrubbed_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dbt_prom_bridge.cli as cli_module

    monkeypatch.setenv("DBT_PROM_GATEWAY_PASSWORD", "hunter2-secret")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "failed talking to https://bob:pa55word@gw.example/ with hunter2-secret\nsecond line"
        )

    monkeypatch.setattr(cli_module.cli, "main", boom)
    with pytest.raises(SystemExit) as exc:
        main(["push", "--gateway", "https://bob:pa55word@gw.example/"])
    assert exc.value.code == 70
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "internal error: RuntimeError" in err and "--debug" in err
    assert "pa55word" not in err and "hunter2-secret" not in err


def test_stdout_closed_early_exits_141_quietly_not_1(tmp_path: Path) -> None:
    # `dbt-prom push --dry-run | head` exited 1, the code of a tripped --fail-on gate.
    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    argv = [str(Path(sys.executable).parent / "dbt-prom"), "push", "--no-run", "--dry-run", "--target", "dev"]
    argv += ["--sources-json", str(sample / "sources.json"), "--allow-stale-artifact"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before dbt-prom writes anything: every write finds the pipe closed
    err = proc.stderr.read().decode()
    assert proc.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_debug_is_accepted_after_the_command_but_not_inside_a_wrapped_one() -> None:
    from dbt_prom_bridge.cli import hoist_debug

    assert hoist_debug(["push", "--debug", "--dry-run"]) == (["--debug", "push", "--dry-run"], True)
    assert hoist_debug(["--debug", "push"]) == (["--debug", "push"], True)
    assert hoist_debug(["run", "--", "dbt", "--debug", "build"]) == (
        ["run", "--", "dbt", "--debug", "build"],
        False,
    )
    assert hoist_debug(["status"]) == (["status"], False)


def test_debug_after_the_command_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["status", "--debug", "--sources-json", str(tmp_path / "missing.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "dbt-prom: error:" in err
