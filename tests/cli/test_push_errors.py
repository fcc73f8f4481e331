"""`dbt-prom push` / `dbt-prom replay` failure paths: exit codes, one-line messages, where runs
are spilled, the printed replay command, and stale or already-pushed artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbt_prom_bridge.sinks import spill
from devtools import servers
from tests.fixtures_dbt import DbtProjectEnv, read_gateway, run_cli
from tests.reliability.loopback import Forward, Loopback, Reply
from tests.reliability.runs import write_artifacts
from tests.reliability.support import error_lines, replay_argv

DBT_PROM = str(Path(sys.executable).parent / "dbt-prom")


def no_run(artifacts: Path, *extra: str) -> list[str]:
    return [
        "push",
        "--no-run",
        "--artifacts-dir",
        str(artifacts),
        "--target",
        "dev",
        "--retries",
        "0",
        *extra,
    ]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return write_artifacts(tmp_path / "art", time.time() - 30)


@pytest.fixture
def dead() -> str:
    return f"http://127.0.0.1:{servers.free_port()}"


# -- usage errors come before any work ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["push", "--no-run"], "nowhere to push: give --gateway URL"),
        (["push", "--dry-run", "--format", "json"], "cannot be combined with --format json"),
        (["push", "--gateway", "ftp://gw"], "must start with http:// or https://"),
        (["push", "--gateway", "http://gw:port"], "is not a valid URL (check its host and port)"),
        (["push", "--gateway", "http://gw", "--job", ""], "--job must not be empty"),
        (
            ["push", "--gateway", "http://gw", "--grouping-key", "target=x"],
            "is set by dbt-prom-bridge itself",
        ),
        (["push", "--gateway", "http://gw", "--grouping-key", "novalue"], "is not KEY=VALUE"),
        # a label name the gateway cannot take (was: exit 70, or a spilled run blocking every push)
        (
            ["push", "--gateway", "http://gw", "--grouping-key", "r\u00e9gion=x"],
            "not a valid Prometheus label",
        ),
        (["push", "--gateway", "http://gw", "--grouping-key", "a b=c"], "not a valid Prometheus label"),
        # a label of the metrics (the gateway would overwrite it on every series)
        (["push", "--gateway", "http://gw", "--grouping-key", "source_name=x"], "is set by dbt-prom-bridge"),
        (["push", "--gateway", "http://gw", "--grouping-key", "a=1", "--grouping-key", "a=2"], "given twice"),
        (["push", "--gateway", "http://gw", "--retries", "99"], "--retries"),
        (["push", "--gateway", "http://gw", "--timeout", "soon"], "not a duration"),
    ],
)
def test_usage_errors_exit_2_without_running_dbt(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([*args, "--project-dir", str(tmp_path)], capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_a_bad_gateway_url_fails_before_dbt_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from dbt_prom_bridge.cli import main\n"
        "try:\n"
        f"    main(['push', '--project-dir', {str(tmp_path)!r}, '--gateway', 'gw:9091'])\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        "print('DBT', any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "EXIT 2" in out and "DBT False" in out


# -- push failures: spill, message, replay -----------------------------------------------------


def test_push_failure_is_one_line_with_the_exact_replay_command(
    artifacts: Path,
    dead: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pushgateway: servers.Server,
) -> None:
    spill_dir = tmp_path / "my spill"
    code, out, err = run_cli(
        [*no_run(artifacts, "--gateway", dead, "--spill-dir", str(spill_dir)), "--job", "nightly"], capsys
    )
    assert code == 4 and out == ""
    [line] = error_lines(err)
    assert line == (
        f"dbt-prom: error: cannot reach {dead}: [Errno 111] Connection refused; the run was saved to "
        f"{next(spill_dir.glob('*.json'))}; replay it with: dbt-prom replay --spill-dir '{spill_dir}' "
        f"--gateway {dead} --retries 0 (the next successful push replays it too)"
    )
    # the summary table still shows what dbt found
    assert "SOURCE" in err and "sources in dbt_prom_demo/dev" in err
    [entry] = spill.scan(spill_dir).entries
    assert entry.destination.job == "nightly"

    # Another gateway: the run was spilled for this one, so it is kept (credentials only go to --gateway).
    with Loopback([Forward(pushgateway.url)]) as proxy:
        code, _, err2 = run_cli(["replay", "--spill-dir", str(spill_dir), "--gateway", proxy.url], capsys)
        assert not proxy.seen
    assert code == 4, err2
    assert f"spilled for {dead}; pass --gateway {dead} to replay it" in err2
    assert len(spill.scan(spill_dir).entries) == 1

    # The gateway comes back on its address: the printed command, as printed, delivers the run.
    server = servers.start_pushgateway(tmp_path / "gw", port=int(dead.rsplit(":", 1)[1]))
    try:
        code, _, err3 = run_cli(replay_argv(err), capsys)
        assert code == 0, err3
        assert read_gateway(server.url, job="nightly").statuses()
    finally:
        server.stop()
    assert spill.scan(spill_dir).entries == ()


def test_default_spill_dir_is_in_the_projects_target_dir(
    artifacts: Path,
    dead: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: dbt_prom_demo\nprofile: p\ntarget-path: build\n")
    monkeypatch.delenv("DBT_PROM_SPILL_DIR", raising=False)
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    code, _, err = run_cli([*no_run(artifacts, "--gateway", dead), "--project-dir", str(project)], capsys)
    assert code == 4
    assert len(list((project / "build" / "dbt-prom-spill").glob("*.json"))) == 1
    monkeypatch.setenv("DBT_PROM_SPILL_DIR", str(tmp_path / "from-env"))
    code, _, err = run_cli([*no_run(artifacts, "--gateway", dead), "--project-dir", str(project)], capsys)
    assert code == 4 and len(list((tmp_path / "from-env").glob("*.json"))) == 1
    assert f"replay it with: dbt-prom replay --spill-dir {tmp_path / 'from-env'}" in err


def test_no_auto_replay(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pushgateway: servers.Server
) -> None:
    spill_dir = tmp_path / "spill"
    with Loopback([Reply(503)]) as proxy:
        code, _, err = run_cli(
            no_run(artifacts, "--gateway", proxy.url, "--spill-dir", str(spill_dir)), capsys
        )
        assert code == 4 and "(the next successful push replays it too)" in err
        proxy.play(Forward(pushgateway.url))
        newer = write_artifacts(tmp_path / "newer", time.time() - 5)
        args = no_run(newer, "--gateway", proxy.url, "--spill-dir", str(spill_dir), "--no-auto-replay")
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
        assert "replayed" not in err and len(spill.scan(spill_dir).entries) == 1
        # replayed later: older than what the gateway holds now, so nothing of it is newer
        code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir), "--gateway", proxy.url], capsys)
    assert code == 0, err
    assert "dropped" in err and "already holds the same or newer checks" in err
    assert spill.scan(spill_dir).entries == ()


@pytest.mark.dbt
def test_a_project_dbt_cannot_read_pushes_no_nameless_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # run_success 0 used to go to a new project="" target="default" group: no project's own.
    # A directory that is not a dbt project is a mistake to fix (exit 2), not an outage.
    with Loopback([Reply(200)]) as gateway:
        code, out, err = run_cli(
            ["push", "--project-dir", str(tmp_path / "missing"), "--gateway", gateway.url], capsys
        )
    assert code == 2 and gateway.seen == [] and out == ""
    (line,) = error_lines(err)
    assert "does not exist" in line


def test_replay_without_anything_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["replay", "--spill-dir", str(tmp_path / "none")], capsys)
    assert code == 0 and f"nothing to replay in {tmp_path / 'none'}" in err


def test_replay_needs_a_gateway_and_names_the_spilled_ones(
    artifacts: Path,
    dead: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DBT_PROM_GATEWAY", raising=False)
    spill_dir = tmp_path / "spill"
    run_cli(no_run(artifacts, "--gateway", dead, "--spill-dir", str(spill_dir)), capsys)
    code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir)], capsys)
    assert code == 2
    [line] = error_lines(err)
    assert line == (
        "dbt-prom: error: give --gateway URL (or DBT_PROM_GATEWAY) to replay to; "
        f"the spilled runs were for {dead}"
    )


def test_replay_list(artifacts: Path, dead: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spill_dir = tmp_path / "spill"
    run_cli(no_run(artifacts, "--gateway", dead, "--spill-dir", str(spill_dir)), capsys)
    (spill_dir / "broken.json").write_text("{")
    code, out, err = run_cli(["replay", "--list", "--spill-dir", str(spill_dir)], capsys)
    assert code == 0
    assert "(run of dbt_prom_demo/dev at " in out and f"pushgateway {dead} job=dbt_source_freshness" in out
    assert "cannot read broken.json: not valid JSON" in err
    code, out, _ = run_cli(["replay", "--list", "--format", "json", "--spill-dir", str(spill_dir)], capsys)
    [row] = json.loads(out)
    assert row["url"] == dead and row["grouping_key"] == {"project": "dbt_prom_demo", "target": "dev"}
    assert row["sources"] == 9 and row["success"] is True and "Connection refused" in row["reason"]


def test_unreadable_spill_files_are_kept_and_make_replay_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    (spill_dir / "x.json").write_text('{"format": "dbt-prom-spill/v7"}')
    code, _, err = run_cli(
        ["replay", "--spill-dir", str(spill_dir), "--gateway", "http://127.0.0.1:9"], capsys
    )
    assert code == 4
    assert "kept x.json: format dbt-prom-spill/v7 was written by a newer dbt-prom-bridge" in err
    assert "1 spilled run(s) remain" in err and (spill_dir / "x.json").exists()


def test_replay_says_which_runs_a_gateway_refuses_for_good(
    artifacts: Path, dead: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spill_dir = tmp_path / "spill"
    run_cli(no_run(artifacts, "--gateway", dead, "--spill-dir", str(spill_dir)), capsys)
    [entry] = spill.scan(spill_dir).entries
    code, _, err = run_cli(
        ["replay", "--spill-dir", str(spill_dir), "--gateway", dead, "--retries", "0"], capsys
    )
    assert code == 4 and error_lines(err)[-1].endswith("run this command again once the gateway accepts them")
    with Loopback([Reply(400, b"bad metric")]) as refusing:
        # replay only sends an entry to the URL it was spilled for: point it at a refusing gateway
        moved = spill_dir / entry.path.name
        moved.write_text(moved.read_text().replace(dead, refusing.url))
        code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir), "--gateway", refusing.url], capsys)
    # was: "run this command again once the gateway accepts them", which it never will
    [line] = error_lines(err)
    assert code == 4 and f"{entry.path.name} cannot be delivered as they are" in line
    assert "or delete the file if that run is not wanted" in line and moved.exists()


# -- stale and already-pushed artifacts ------------------------------------------------------


def test_no_run_of_an_artifact_already_pushed_is_a_no_op_unless_forced(
    artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pushgateway: servers.Server
) -> None:
    args = no_run(artifacts, "--gateway", pushgateway.url, "--spill-dir", str(tmp_path / "spill"))
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    held = read_gateway(pushgateway.url).run_value("dbt_source_freshness_run_timestamp_seconds")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "nothing to push" in err and "already holds the same or newer checks" in err
    code, _, err = run_cli([*args, "--force"], capsys)
    assert code == 0 and "dbt-prom: pushed 9 sources to" in err, err
    older = write_artifacts(tmp_path / "older", time.time() - 90)
    code, _, err = run_cli(no_run(older, "--gateway", pushgateway.url), capsys)
    assert code == 0 and "nothing to push" in err, err
    assert read_gateway(pushgateway.url).run_value("dbt_source_freshness_run_timestamp_seconds") == held


@pytest.mark.e2e
@pytest.mark.dbt
def test_after_a_failed_dbt_run_a_cron_reading_the_old_file_changes_nothing(
    sample_project: DbtProjectEnv,
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """dbt exit 2 leaves the previous sources.json in place: `--no-run` must not push it again."""
    args = [
        "push",
        "--gateway",
        pushgateway.url,
        *sample_project.cli_args(),
        "--spill-dir",
        str(tmp_path / "s"),
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    good = read_gateway(pushgateway.url).run_value("dbt_source_freshness_run_timestamp_seconds")
    sample_project.postgres.stop()
    try:
        code, _, err = run_cli(args, capsys)
        assert code == 3, err
        code, _, err = run_cli([*args, "--no-run"], capsys)
    finally:
        sample_project.postgres.start()
    assert code == 0 and "nothing to push" in err, err
    after = read_gateway(pushgateway.url)
    assert after.run_value("dbt_source_freshness_run_timestamp_seconds") == good
    assert after.run_value("dbt_source_freshness_run_success") == 0


@pytest.mark.dbt
def test_dbt_cannot_run_and_the_push_fails_too(tmp_path: Path, dead: str) -> None:
    """Exit 3 (dbt is the cause to fix); the run_success 0 record is spilled and replayable."""
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: broken\nversion: '1'\nprofile: broken\nconfig-version: 2\n"
    )
    (project / "models" / "s.yml").write_text(
        "version: 2\nsources: [{name: raw, loaded_at_field: t,"
        " freshness: {warn_after: {count: 1, period: hour}}, tables: [{name: events}]}]\n"
    )
    (project / "profiles.yml").write_text(
        "broken: {target: dev, outputs: {dev: {type: postgres, host: 127.0.0.1, "
        f"port: {servers.free_port()}, user: u, password: p, dbname: d, schema: s, threads: 1}}}}}}\n"
    )
    proc = subprocess.run(
        [DBT_PROM, "push", "--project-dir", str(project), "--profiles-dir", str(project), "--gateway", dead],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 3, proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("dbt-prom: warning: cannot reach")]
    assert warning and "replay it with: dbt-prom replay --spill-dir" in warning[0]
    assert error_lines(proc.stderr)[0].startswith("dbt-prom: error: dbt could not run")
    [entry] = spill.scan(project / "target" / "dbt-prom-spill").entries
    assert entry.run.success is False and entry.run.project == "broken" and entry.run.target == "dev"


# -- durations are Prometheus durations everywhere ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["push", "--dry-run", "--no-run", "--timeout", "0"],
        ["push", "--dry-run", "--no-run", "--timeout", "0s"],
        ["push", "--dry-run", "--no-run", "--timeout", "2"],
        ["push", "--dry-run", "--no-run", "--timeout", "-1s"],
        ["push", "--dry-run", "--no-run", "--max-artifact-age", "99999999999d"],
        ["replay", "--timeout", "0s"],
        ["status", "--max-artifact-age", "5"],
        ["serve", "--interval", "0s"],
        ["rules", "--stale-after", "2"],
        ["rules", "--for", "5"],
        ["rules", "--lookback", "99999999999d"],
        ["dashboard", "--stale-after", "0s"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_bad_durations_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    (line,) = error_lines(err)
    assert "duration" in line or "zero" in line
    assert "Traceback" not in err


def test_the_timeout_env_var_needs_a_unit_too(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DBT_PROM_TIMEOUT", "10")
    code, _, err = run_cli(no_run(artifacts, "--dry-run"), capsys)
    assert code == 2 and "no unit" in err
