"""`dbt-prom run -- COMMAND`: the post-dbt-run hook, with the real sample project and a real Pushgateway."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from dbt_prom_bridge.cli import cli
from dbt_prom_bridge.cli.run import inherited_flags, merge_dbt, runs_freshness
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.exposition import RUN_SUCCESS, STATUS
from devtools import servers
from tests.conftest import scrape
from tests.fixtures_dbt import EXPECTED_STATUS, DbtProjectEnv

DBT_PROM = Path(sys.executable).parent / "dbt-prom"
DBT = Path(sys.executable).parent / "dbt"


def test_inherited_flags_from_a_dbt_command() -> None:
    argv = [
        "/venv/bin/dbt",
        "build",
        "--project-dir",
        "p",
        "--profiles-dir=q",
        "-t",
        "prod",
        "--target-path",
        "x",
    ]
    assert inherited_flags(argv) == {
        "project_dir": "p",
        "profiles_dir": "q",
        "target": "prod",
        "target_path": "x",
    }
    assert inherited_flags(["make", "--project-dir", "p"]) == {}, "only dbt's own flags are trusted"
    assert inherited_flags(["dbt", "build", "--target"]) == {}


def test_runs_freshness() -> None:
    assert runs_freshness(["/venv/bin/dbt", "--log-level", "debug", "source", "freshness", "-s", "source:a"])
    assert not runs_freshness(["dbt", "build", "--select", "source:freshness"])
    assert not runs_freshness(["make", "source", "freshness"])


def test_own_flags_win_over_the_wrapped_command() -> None:
    command = cli.get_command(click.Context(cli), "run")
    assert command is not None
    ctx = command.make_context(
        "run", ["--target", "dev", "--", "dbt", "build", "--target", "prod", "--project-dir", "p"]
    )
    dbt = DbtOptions(project_dir=Path(), target="dev")
    merged = merge_dbt(dbt, ctx, ["dbt", "build", "--target", "prod", "--project-dir", "p"])
    assert merged.target == "dev" and merged.project_dir == Path("p")


def hook(project: DbtProjectEnv, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBT_PROM), "run", *args],
        env=project.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def gateway_statuses(gateway: servers.Server) -> dict[str, str]:
    return {
        f"{lb['source_name']}.{lb['table_name']}": lb["status"]
        for name, lb, v in scrape(gateway.url + "/metrics")
        if name == STATUS and v == 1
    }


@pytest.mark.dbt
@pytest.mark.e2e
def test_dbt_build_then_push_keeps_exit_code_and_inherits_project(
    sample_project: DbtProjectEnv, pushgateway: servers.Server
) -> None:
    result = hook(
        sample_project,
        "--gateway",
        pushgateway.url,
        "--meta-label",
        "owner",
        "--",
        str(DBT),
        "build",
        "--select",
        "staging",
        *sample_project.cli_args(),
    )
    assert result.returncode == 0, result.stderr
    assert gateway_statuses(pushgateway) == EXPECTED_STATUS
    # the build's two staging models, and the two models with thresholds no build has reached yet
    assert f"pushed {len(EXPECTED_STATUS)} sources and 4 models to" in result.stderr, result.stderr
    assert "4 models in dbt_prom_demo/dev: 2 success, 2 not_built" in result.stderr


@pytest.mark.dbt
@pytest.mark.e2e
def test_failing_command_still_pushes_and_its_exit_code_wins(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, tmp_path: Path
) -> None:
    sample_project.dbt("source", "freshness", check=False)
    textfile = tmp_path / "dbt.prom"
    result = hook(
        sample_project,
        *sample_project.cli_args(),
        "--no-run",
        "--gateway",
        pushgateway.url,
        "--textfile",
        str(textfile),
        "--fail-on",
        "error",
        "--",
        "sh",
        "-c",
        "exit 7",
    )
    assert result.returncode == 7, result.stderr
    assert "sh exited 7; pushing freshness anyway" in result.stderr
    assert gateway_statuses(pushgateway)["finance.ml_features"] == "error"
    assert "dbt_source_freshness_status" in textfile.read_text()


@pytest.mark.dbt
def test_push_failure_precedence(sample_project: DbtProjectEnv) -> None:
    sample_project.dbt("source", "freshness", check=False)
    dead = f"http://127.0.0.1:{servers.free_port()}"
    common = [*sample_project.cli_args(), "--no-run", "--gateway", dead, "--retries", "0"]
    spill = sample_project.project_dir / "spill"
    ok_then_push_fails = hook(sample_project, *common, "--spill-dir", str(spill), "--", "true")
    assert ok_then_push_fails.returncode == 4, ok_then_push_fails.stderr
    assert "Traceback" not in ok_then_push_fails.stderr
    # nothing lost: the run waits in the spill dir, and the message says how to replay it
    assert len(list(spill.glob("*.json"))) == 1
    assert "dbt-prom replay" in ok_then_push_fails.stderr
    ignored = hook(sample_project, *common, "--ignore-push-failure", "--", "true")
    assert ignored.returncode == 0 and "push failed" in ignored.stderr
    both_fail = hook(sample_project, *common, "--", "false")
    assert both_fail.returncode == 1 and "push failed" in both_fail.stderr


@pytest.mark.dbt
def test_fail_on_applies_when_the_command_succeeded(sample_project: DbtProjectEnv, tmp_path: Path) -> None:
    sample_project.dbt("source", "freshness", check=False)
    result = hook(
        sample_project,
        *sample_project.cli_args(),
        "--no-run",
        "--textfile",
        str(tmp_path / "f.prom"),
        "--fail-on",
        "error",
        "--",
        "true",
    )
    assert result.returncode == 1
    assert "--fail-on error: finance.ml_features (error)" in result.stderr


def test_nowhere_to_push_does_not_run_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = subprocess.run(
        [str(DBT_PROM), "run", "--", "touch", str(marker)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "nowhere to push" in result.stderr
    assert not marker.exists()


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DBT_PROM), "run", "--textfile", str(tmp_path / "x.prom"), "--", "no-such-command-xyz"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "command not found: 'no-such-command-xyz'" in result.stderr


def test_missing_command_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DBT_PROM), "run", "--textfile", str(tmp_path / "x.prom")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_sigterm_is_forwarded_and_nothing_is_pushed(tmp_path: Path) -> None:
    textfile = tmp_path / "x.prom"
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [
            str(DBT_PROM),
            "run",
            "--textfile",
            str(textfile),
            "--",
            "sh",
            "-c",
            f"touch {started}; exec sleep 60",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted; nothing pushed" in err
    assert not textfile.exists()


@pytest.mark.dbt
@pytest.mark.e2e
def test_dbt_unreachable_after_command_pushes_run_success_zero(
    sample_project: DbtProjectEnv, pushgateway: servers.Server
) -> None:
    sample_project.postgres.stop()
    try:
        result = hook(sample_project, *sample_project.cli_args(), "--gateway", pushgateway.url, "--", "true")
    finally:
        sample_project.postgres.start()
    assert result.returncode == 3, result.stderr
    assert [v for name, _, v in scrape(pushgateway.url + "/metrics") if name == RUN_SUCCESS] == [0.0]


@pytest.mark.dbt
@pytest.mark.e2e
def test_a_wrapped_freshness_that_could_not_run_pushes_its_failure_not_the_old_file(
    sample_project: DbtProjectEnv, pushgateway: servers.Server
) -> None:
    args = [*sample_project.cli_args(), "--no-run", "--gateway", pushgateway.url]
    freshness = ["--", str(DBT), "source", "freshness", *sample_project.cli_args()]
    first = hook(sample_project, *args, *freshness)
    assert first.returncode == 1, first.stderr  # dbt's own code: some sources are in error
    sample_project.postgres.stop()
    try:
        # dbt exits 2 and leaves the previous sources.json in place: it used to be read and
        # pushed again (or refused as already pushed, with nothing pushed at all)
        result = hook(sample_project, *args, *freshness)
    finally:
        sample_project.postgres.start()
    assert result.returncode == 2, result.stderr
    assert "exited 2 without writing a new sources.json" in result.stderr
    assert [v for name, _, v in scrape(pushgateway.url + "/metrics") if name == RUN_SUCCESS] == [0.0]
    assert gateway_statuses(pushgateway)["finance.ml_features"] == "error"  # the last good series stay
