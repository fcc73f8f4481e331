"""dbt Cloud runs against a local Administrative API v2 (tests/cloud/fake_cloud.py) serving the
sample project's real artifacts: `push --dbt-cloud-run/--dbt-cloud-job` (dry run and a real
Pushgateway), `serve --dbt-cloud-job` polling, and every way the API can say no."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbt_prom_bridge.cloud import (
    CloudConfig,
    CloudRefresher,
    CloudUnavailable,
    DbtCloudClient,
    base_url,
    collect_all,
)
from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions, Secret
from dbt_prom_bridge.errors import ExitCode, UsageError
from dbt_prom_bridge.exposition import RUN_SUCCESS
from devtools import servers
from tests.cloud.fake_cloud import (
    ACCOUNT,
    MODELS,
    READ_ONLY_WITHOUT_JOBS,
    SAMPLE,
    TOKEN,
    FakeCloud,
    Fault,
    Run,
    sample_artifacts,
)
from tests.conftest import scrape
from tests.fixtures_dbt import run_cli

JOB = 77


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloud]:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", TOKEN)
    for name in ("DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_HOST", "DBT_TARGET", "DBT_PROM_GATEWAY"):
        monkeypatch.delenv(name, raising=False)
    with FakeCloud(jobs={JOB: "prod"}) as fake:
        fake.add_run(Run(500, JOB, 10, sample_artifacts()))
        yield fake


def cloud_args(api: FakeCloud, *more: str) -> list[str]:
    return ["--dbt-cloud-account", str(ACCOUNT), "--dbt-cloud-host", api.url, *more]


def push(capsys: pytest.CaptureFixture[str], api: FakeCloud, *more: str) -> tuple[int, str, str]:
    # an empty project dir: nothing local may leak into a Cloud run's labels
    with tempfile.TemporaryDirectory() as empty:
        return run_cli(
            ["push", "--project-dir", empty, *cloud_args(api, *more), "--allow-stale-artifact"], capsys
        )


def one_line_refusal(code: int, err: str, expected: ExitCode, fragment: str) -> None:
    assert code == expected, err
    lines = [ln for ln in err.splitlines() if ln.startswith("dbt-prom: error:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], err
    assert TOKEN not in err


def test_run_reads_exactly_what_no_run_reads(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run")
    assert code == 0, err
    assert "read dbt Cloud run 500 of job 77 (Success" in err
    with tempfile.TemporaryDirectory() as empty:
        code2, local, err2 = run_cli(
            [
                "push",
                "--project-dir",
                empty,
                "--no-run",
                "--artifacts-dir",
                str(SAMPLE),
                "--target",
                "prod",
                "--allow-stale-artifact",
                "--run-results",
                str(MODELS / "run_results.json"),
                "--dry-run",
            ],
            capsys,
        )
    assert code2 == 0, err2
    assert out == local  # the job's target_name is the target label
    assert 'dbt_model_build_status{project="dbt_prom_demo",target="prod",model="orders_enriched"' in out
    assert 'target="prod"' in out
    paths = api.paths()
    assert f"/api/v2/accounts/{ACCOUNT}/runs/500/" in paths
    assert {p.rsplit("/", 1)[-1] for p in paths if "/artifacts/" in p} == {
        "manifest.json",
        "sources.json",
        "run_results.json",
    }
    assert all(auth == f"Token {TOKEN}" for _, auth in api.requests)


def test_target_flag_wins_and_the_job_is_not_asked(
    api: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run", "--target", "cloud")
    assert code == 0, err
    assert 'target="cloud"' in out
    assert not any("/jobs/" in p for p in api.paths())


def test_job_takes_its_latest_completed_run_across_pages(
    api: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    api.max_limit = 100
    api.add_run(Run(400, JOB, 10, sample_artifacts()))  # older, completed
    api.add_run(Run(450, JOB, 20, sample_artifacts()))  # the latest completed one (errored)
    api.add_run(Run(460, JOB, 30))  # cancelled in the queue: no artifacts, passed over
    for rid in range(1000, 1150):  # 150 newer runs still queued or running: page 1 and 2
        api.add_run(Run(rid, JOB, 3 if rid % 2 else 1))
    api.add_run(Run(9999, JOB + 1, 10, sample_artifacts()))  # another job's
    del api.runs[500]
    code, out, err = push(capsys, api, "--dbt-cloud-job", str(JOB), "--dry-run")
    assert code == 0, err
    assert "read dbt Cloud run 450 of job 77 (Error" in err
    assert "ended Error; its sources.json results are pushed" in err
    assert f'{RUN_SUCCESS}{{project="dbt_prom_demo",target="prod"}} 1' in out
    listing = [p for p in api.paths() if "/runs/?" in p]
    assert len(listing) == 2 and "offset=100" in listing[1] and "order_by=-id" in listing[0]


def test_job_without_completed_run(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    api.runs = {1: Run(1, JOB, 3)}
    code, _, err = push(capsys, api, "--dbt-cloud-job", str(JOB), "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "has no completed run")


@pytest.mark.parametrize(
    ("token", "fragment"),
    [("wrong-token-value", "rejected the API token (HTTP 401)"), (READ_ONLY_WITHOUT_JOBS, "Job Viewer")],
)
def test_401_and_403_say_what_to_fix(
    api: FakeCloud,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    fragment: str,
) -> None:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", token)
    code, _, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, fragment)
    assert token not in err  # the fake echoes the token in its 401 message: scrubbed
    assert len(api.requests) == 1  # an auth failure is never retried


def test_unknown_run_and_account(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = push(capsys, api, "--dbt-cloud-run", "501", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "has no run 501 (HTTP 404)")
    code, _, err = run_cli(
        [
            "push",
            "--dbt-cloud-account",
            "1",
            "--dbt-cloud-host",
            api.url,
            "--dbt-cloud-run",
            "500",
            "--dry-run",
        ],
        capsys,
    )
    one_line_refusal(code, err, ExitCode.INPUT, "account 1")


def test_job_without_freshness_step(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    artifacts = sample_artifacts(sources=False)
    del artifacts["run_results.json"]
    api.add_run(Run(600, JOB, 10, artifacts))
    code, _, err = push(capsys, api, "--dbt-cloud-run", "600", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "has no sources.json")


def test_build_job_without_freshness_pushes_its_models(
    api: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    api.add_run(Run(600, JOB, 10, sample_artifacts(sources=False)))
    code, out, err = push(capsys, api, "--dbt-cloud-run", "600", "--dry-run")
    assert code == 0, err
    assert 'model="orders_enriched"' in out and "dbt_source_freshness_status" not in out
    assert "dbt_source_freshness_run_success" not in out  # no freshness run to report on
    assert "7 models in dbt_prom_demo/prod: 5 success, 1 error, 1 skipped" in err


def test_unfinished_run_is_refused(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    api.add_run(Run(700, JOB, 3))
    code, _, err = push(capsys, api, "--dbt-cloud-run", "700", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "is not finished (Running)")


def test_429_and_5xx_are_retried(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    run_path = f"/api/v2/accounts/{ACCOUNT}/runs/500/"
    api.faults[run_path + "artifacts/sources.json"] = [
        Fault(429, (("Retry-After", "0"),)),
        Fault(502, (("Retry-After", "0"),), b"<html>bad gateway</html>"),
    ]
    code, out, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run")
    assert code == 0, err
    assert "dbt_source_freshness_status" in out
    assert api.paths().count(run_path + "artifacts/sources.json") == 3


def test_retry_after_is_honoured_and_unavailable_is_exit_3(api: FakeCloud) -> None:
    waits: list[float] = []
    config = CloudConfig(
        account=ACCOUNT, token=Secret(TOKEN), host=api.url, run_id=500, retries=3, backoff=0.5
    )
    api.faults[f"/api/v2/accounts/{ACCOUNT}/runs/500/"] = [
        Fault(429, (("Retry-After", "7"),)),
        Fault(503),
        Fault(429, (("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT"),)),
    ]
    client = DbtCloudClient(config, sleep=waits.append, clock=lambda: 1792567670.0)  # 10 s before that date
    assert client.run(500).id == 500
    assert waits == [7.0, 1.0, 10.0]  # Retry-After seconds, backoff 0.5 * 2**1, Retry-After date
    api.faults[f"/api/v2/accounts/{ACCOUNT}/runs/500/"] = [Fault(500)] * 4
    with pytest.raises(CloudUnavailable) as info:
        client.run(500)
    assert info.value.exit_code is ExitCode.DBT and "4 attempts" in str(info.value)


def test_unreachable_cloud_is_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", TOKEN)
    fake = FakeCloud()
    url = fake.url
    fake.server.server_close()  # nothing listens there any more
    config = CloudConfig(account=ACCOUNT, token=Secret(TOKEN), host=url, run_id=1, retries=1, backoff=0)
    with pytest.raises(CloudUnavailable):
        DbtCloudClient(config, sleep=lambda _s: None).run(1)


def test_redirect_to_an_account_url_is_named(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    api.faults[f"/api/v2/accounts/{ACCOUNT}/runs/500/"] = [
        Fault(301, (("Location", "https://ab123.us1.dbt.com/api/v2/accounts/4242/runs/500/"),))
    ]
    code, _, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "redirects to https://ab123.us1.dbt.com")


def test_not_an_api_envelope(api: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    api.faults[f"/api/v2/accounts/{ACCOUNT}/runs/500/"] = [Fault(200, (), b"<html>login</html>")]
    code, _, err = push(capsys, api, "--dbt-cloud-run", "500", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "not JSON")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--dbt-cloud-run", "1", "--dbt-cloud-job", "2", "--dbt-cloud-account", "3"], "not both"),
        (["--dbt-cloud-run", "1"], "--dbt-cloud-account"),
        (["--dbt-cloud-account", "3"], "needs --dbt-cloud-run"),
        (["--dbt-cloud-run", "0", "--dbt-cloud-account", "3"], "not a dbt Cloud id"),
        (
            ["--dbt-cloud-run", "1", "--dbt-cloud-account", "3", "--dbt-cloud-host", "http://cloud.example"],
            "plain http",
        ),
        (
            ["--dbt-cloud-run", "1", "--dbt-cloud-account", "3", "--dbt-cloud-host", "https://u:p@h/x"],
            "alone",
        ),
        (
            ["--dbt-cloud-run", "1", "--dbt-cloud-account", "3", "--sources-json", "s.json"],
            "cannot be combined",
        ),
    ],
)
def test_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", TOKEN)
    monkeypatch.delenv("DBT_CLOUD_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("DBT_CLOUD_HOST", raising=False)
    code, _, err = run_cli(["push", "--dry-run", *args], capsys)
    one_line_refusal(code, err, ExitCode.INPUT, fragment)


def test_token_only_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBT_CLOUD_API_TOKEN", raising=False)
    code, _, err = run_cli(["push", "--dry-run", "--dbt-cloud-run", "1", "--dbt-cloud-account", "3"], capsys)
    one_line_refusal(code, err, ExitCode.INPUT, "DBT_CLOUD_API_TOKEN")
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", "two words")
    code, _, err = run_cli(["push", "--dry-run", "--dbt-cloud-run", "1", "--dbt-cloud-account", "3"], capsys)
    one_line_refusal(code, err, ExitCode.INPUT, "DBT_CLOUD_API_TOKEN")
    assert "two words" not in err


def test_hosts() -> None:
    assert base_url("cloud.getdbt.com") == "https://cloud.getdbt.com"
    assert base_url("https://ab123.us1.dbt.com/") == "https://ab123.us1.dbt.com"
    assert base_url("emea.dbt.com") == "https://emea.dbt.com"
    assert base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(UsageError):
        base_url("ftp://cloud.getdbt.com")


# --- a real Pushgateway ------------------------------------------------------------------------


@pytest.mark.e2e
def test_push_to_a_real_gateway_once_per_run(
    api: FakeCloud, capsys: pytest.CaptureFixture[str], pushgateway: servers.Server
) -> None:
    code, _, err = push(capsys, api, "--dbt-cloud-job", str(JOB), "--gateway", pushgateway.url)
    assert code == 0, err
    held = {(n, tuple(sorted(lbl.items()))): v for n, lbl, v in scrape(pushgateway.url + "/metrics")}
    assert any(n == RUN_SUCCESS and v == 1 for (n, _), v in held.items())
    assert any(dict(lbl).get("target") == "prod" for (_, lbl) in held)
    # the cron job's next poll: the same latest run, nothing to push, not an error
    code, _, err = push(capsys, api, "--dbt-cloud-job", str(JOB), "--gateway", pushgateway.url)
    assert code == 0, err
    assert "nothing to push" in err and "already holds the same or newer checks" in err


@pytest.mark.e2e
def test_failed_run_without_sources_pushes_run_success_zero(
    api: FakeCloud, capsys: pytest.CaptureFixture[str], pushgateway: servers.Server
) -> None:
    api.add_run(Run(800, JOB, 20, sample_artifacts(sources=False)))
    code, _, err = push(capsys, api, "--dbt-cloud-run", "800", "--gateway", pushgateway.url)
    assert code == ExitCode.DBT, err
    assert "ended Error before writing sources.json" in err
    series = scrape(pushgateway.url + "/metrics")
    values = [(lbl, v) for n, lbl, v in series if n == RUN_SUCCESS]
    assert [(lbl["project"], lbl["target"], v) for lbl, v in values] == [("dbt_prom_demo", "prod", 0.0)]
    # the builds the failed run reported are pushed too
    failed = {
        lbl["model"]
        for n, lbl, v in series
        if n == "dbt_model_build_status" and lbl["status"] == "error" and v
    }
    assert failed == {"orders_enriched"}


# --- serve --dbt-cloud-job ---------------------------------------------------------------------


def test_serve_fetches_each_run_once(api: FakeCloud) -> None:
    config = CloudConfig(account=ACCOUNT, token=Secret(TOKEN), host=api.url, job_id=JOB)
    art = ArtifactOptions(allow_stale=True)
    with tempfile.TemporaryDirectory() as empty:
        refresher = CloudRefresher(config, DbtOptions(project_dir=Path(empty)), art, RunOptions())
        first = refresher()
        assert refresher() is first and refresher.fetches == 1
        artifact_gets = sum("/artifacts/" in p for p in api.paths())
        api.add_run(Run(501, JOB, 10, sample_artifacts()))
        second = refresher()
    assert refresher.fetches == 2 and refresher.run_id == 501 and second is not first
    assert sum("/artifacts/" in p for p in api.paths()) == 2 * artifact_gets


def test_serve_command_polls_a_job(api: FakeCloud, tmp_path: Path) -> None:
    """The real `dbt-prom serve --dbt-cloud-job` process serves the run's metrics."""
    import subprocess
    import sys
    import time
    import urllib.request

    from devtools.servers import free_port

    port = free_port()
    env = {**os.environ, "DBT_CLOUD_API_TOKEN": TOKEN}
    exe = Path(sys.executable).parent / "dbt-prom"
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--project-dir",
            str(tmp_path),
            *cloud_args(api, "--dbt-cloud-job", str(JOB)),
            "--allow-stale-artifact",
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            "1h",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline and "dbt_source_freshness_status" not in body:
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
            except OSError:
                continue
        assert 'target="prod"' in body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "polling dbt Cloud job 77" in err and TOKEN not in err


def test_corrupt_artifact_names_the_run_not_a_temp_path(
    api: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    api.add_run(Run(900, JOB, 10, {**sample_artifacts(), "sources.json": b'{"metadata": {"dbt_schema_ver'}))
    code, _, err = push(capsys, api, "--dbt-cloud-run", "900", "--dry-run")
    one_line_refusal(code, err, ExitCode.INPUT, "the sources.json of dbt Cloud run 900")
    assert "dbt-prom-cloud-" not in err


def test_stale_cloud_run_is_refused_like_a_stale_file(
    api: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as empty:
        code, _, err = run_cli(
            ["push", "--project-dir", empty, *cloud_args(api, "--dbt-cloud-run", "500"), "--dry-run"], capsys
        )
    one_line_refusal(code, err, ExitCode.INPUT, "--allow-stale-artifact")
    assert "dbt Cloud run 500" in err


def test_collect_all_reads_the_run_models(api: FakeCloud) -> None:
    config = CloudConfig(account=ACCOUNT, token=Secret(TOKEN), host=api.url, run_id=500)
    with tempfile.TemporaryDirectory() as empty:
        run, freshness, models = collect_all(
            config, DbtOptions(project_dir=Path(empty)), ArtifactOptions(allow_stale=True), RunOptions()
        )
    assert run.id == 500 and freshness.target == "prod"
    assert models is not None and models.project == "dbt_prom_demo" and models.target == "prod"
    assert {c.model for c in models.checks if c.build_status is not None} >= {
        "orders_enriched",
        "hourly_revenue",
    }
