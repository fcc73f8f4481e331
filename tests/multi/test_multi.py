"""Several dbt projects/targets in one `dbt-prom push --projects FILE`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge import multi
from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.config import (
    ArtifactOptions,
    DbtOptions,
    DeliveryOptions,
    GatewayConfig,
    RemoteWriteConfig,
)
from dbt_prom_bridge.errors import CheckFailed, DbtRunError, ExitCode, PushError, UsageError
from dbt_prom_bridge.exposition import RUN_TIMESTAMP
from dbt_prom_bridge.model import RunContext, build_run
from devtools import servers, synthetic
from tests.conftest import requires, scrape
from tests.fixtures_dbt import DbtProjectEnv, copy_project, run_cli

NOW = 1_800_000_000.0


def write_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_entries_resolve_paths_and_fall_back_to_the_flags(tmp_path: Path) -> None:
    projects = write_file(
        tmp_path / "projects.yml",
        """
projects:
  - project_dir: finance
    target: prod
    grouping_key: {team: finance, tier: 1, paged: true}
    meta_labels: [owner]
  - project_dir: /abs/events
    profiles_dir: profiles
    select: source:kafka
    exclude: [source:old]
    vars: {region: eu, n: 2}
    artifacts_dir: events/target
    manifest: events/target/manifest.json
""",
    )
    defaults = DbtOptions(target="dev", select=("source:x",), vars="{a: 1}")
    art = ArtifactOptions(no_run=True, max_artifact_age=60.0)
    first, second = multi.load(projects, defaults, art)
    assert first.dbt.project_dir == tmp_path / "finance" and first.dbt.target == "prod"
    assert first.dbt.select == ("source:x",) and first.dbt.vars == "{a: 1}"
    assert first.grouping_key == (("team", "finance"), ("tier", "1"), ("paged", "true"))
    assert (
        first.meta_labels == ("owner",) and first.artifacts.no_run and first.artifacts.max_artifact_age == 60
    )
    assert second.dbt.project_dir == Path("/abs/events") and second.dbt.target == "dev"
    assert second.dbt.profiles_dir == tmp_path / "profiles"
    assert second.dbt.select == ("source:kafka",) and second.dbt.exclude == ("source:old",)
    assert second.dbt.vars == "{n: 2, region: eu}"
    assert second.artifacts.artifacts_dir == tmp_path / "events" / "target"
    assert second.artifacts.manifest == tmp_path / "events" / "target" / "manifest.json"
    assert second.meta_labels is None and second.grouping_key == ()
    assert "entry 2 (events/dev)" in second.where


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projects: []", "needs a non-empty `projects:` list"),
        ("- project_dir: a", "needs a non-empty `projects:` list"),
        ("projects:\n  - target: prod", "entry 1: needs project_dir"),
        (
            "projects:\n  - project_dir: a\n    tagret: prod",
            "entry 1: unknown key(s) tagret; allowed: project_dir",
        ),
        ("projects:\n  - just-a-string", "entry 1: is not a mapping"),
        ("projects:\n  - project_dir: a\n    grouping_key: {job: x}", "grouping_key job is set by dbt-prom"),
        ("projects:\n  - project_dir: a\n    grouping_key: [x]", "grouping_key must be a mapping"),
        ("projects:\n  - project_dir: a\n    grouping_key: {a b: x}", "not a valid Prometheus label"),
        ("projects:\n  - project_dir: a\n    grouping_key: {status: x}", "grouping_key status is set by"),
        ("projects:\n  - project_dir: a\n    meta_labels: [target]", "collides with a label"),
        ("projects:\n  - project_dir: a\n    select: {a: 1}", "select must be a string or a list"),
        ("projects:\n  - project_dir: a\n  - project_dir: ./a", "entry 2 (a) repeats projects.yml entry 1"),
        ("projects:\n  - project_dir: a\nextra: 1", "unknown top-level key(s) extra"),
        ("projects:\n  - project_dir: [a", "is not valid YAML at line"),
    ],
)
def test_bad_files_are_refused_with_the_entry_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        multi.load(write_file(tmp_path / "projects.yml", text))
    assert message in str(refused.value)


def test_the_same_project_with_two_targets_is_two_entries(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "projects.yml",
        "projects:\n  - {project_dir: a, target: prod}\n  - {project_dir: a, target: dev}\n",
    )
    assert [s.dbt.target for s in multi.load(path)] == ["prod", "dev"]


def test_an_entry_grouping_key_overrides_the_same_flag_label(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "projects.yml", "projects:\n  - {project_dir: a, grouping_key: {team: fin}}\n"
    )
    (spec,) = multi.load(path)
    gateway = GatewayConfig(url="http://gw", grouping_key=(("team", "all"), ("region", "eu")))
    remote = RemoteWriteConfig(url="http://rw", labels=(("team", "all"),))
    delivery = multi.delivery_for(spec, DeliveryOptions(gateway=gateway, remote_write=remote), None)
    assert delivery.gateway is not None and delivery.remote_write is not None
    # one label each, the entry's value: a repeated label would be refused (or sent twice)
    assert delivery.gateway.grouping_key == (("team", "fin"), ("region", "eu"))
    assert delivery.remote_write.labels == (("team", "fin"),)


def test_a_missing_file() -> None:
    with pytest.raises(UsageError, match="cannot read the projects file"):
        multi.load(Path("/nonexistent/projects.yml"))


def test_one_exposition_for_several_runs() -> None:
    runs = []
    for project, meta in (("alpha", ("owner",)), ("beta", ())):
        manifest, sources = synthetic.generate(120, seed=3, now=NOW, project=project, hostile=True)
        runs.append(
            build_run(parse_sources(sources), parse_manifest(manifest), RunContext("prod", meta_labels=meta))
        )
    text = "".join(multi.iter_text_many(runs))
    fams = list(text_string_to_metric_families(text))
    assert len({f.name for f in fams}) == len(fams) == 12
    timestamps = {s.labels["project"]: s.value for f in fams if f.name == RUN_TIMESTAMP for s in f.samples}
    assert timestamps == {"alpha": NOW, "beta": NOW}
    owners = {s.labels.get("owner") for f in fams for s in f.samples if s.labels.get("project") == "alpha"}
    assert owners - {None}
    if shutil.which("promtool"):
        done = subprocess.run(
            ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()


def test_exit_code_is_the_most_serious() -> None:
    spec = multi.ProjectSpec(DbtOptions(), ArtifactOptions())
    ok = multi.ProjectResult(spec)
    assert multi.exit_code([ok], False) is ExitCode.OK
    assert multi.exit_code([ok], True) is ExitCode.FAILED_CHECK
    bad_input = multi.ProjectResult(spec, error=UsageError("x"))
    dbt_down = multi.ProjectResult(spec, error=DbtRunError("x"))
    push_down = multi.ProjectResult(spec, error=PushError("x"))
    assert multi.exit_code([ok, bad_input], True) is ExitCode.INPUT
    assert multi.exit_code([bad_input, dbt_down], False) is ExitCode.DBT
    assert multi.exit_code([dbt_down, push_down, bad_input], False) is ExitCode.PUSH
    assert CheckFailed("x").exit_code is ExitCode.FAILED_CHECK


def synthetic_projects(base: Path) -> Path:
    """Two synthetic projects, one of them with two targets; artifacts fresh."""
    for name, seed in (("finance_platform", 1), ("events_platform", 2)):
        synthetic.write(base / name, 80, seed=seed, project=name, now=time.time())
    return write_file(
        base / "projects.yml",
        """
projects:
  - project_dir: finance_platform
    artifacts_dir: finance_platform
    target: prod
    grouping_key: {team: finance}
    meta_labels: [owner]
  - project_dir: finance_platform
    artifacts_dir: finance_platform
    target: staging
    grouping_key: {team: finance}
  - project_dir: events_platform
    artifacts_dir: events_platform
    target: prod
""",
    )


def run_timestamps(gateway: servers.Server) -> dict[tuple[str, str, str], float]:
    return {
        (labels["project"], labels["target"], labels.get("team", "")): value
        for name, labels, value in scrape(gateway.url + "/metrics")
        if name == RUN_TIMESTAMP
    }


@pytest.mark.e2e
@requires("prometheus-pushgateway")
def test_push_projects_to_a_real_gateway(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    projects = synthetic_projects(tmp_path)
    code, out, err = run_cli(
        [
            "push",
            "--no-run",
            "--projects",
            str(projects),
            "--gateway",
            pushgateway.url,
            "--spill-dir",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    assert code == 0, err
    assert out == ""
    assert set(run_timestamps(pushgateway)) == {
        ("finance_platform", "prod", "finance"),
        ("finance_platform", "staging", "finance"),
        ("events_platform", "prod", ""),
    }
    assert err.count("dbt-prom: pushed ") == 3 and "3 project(s) from" in err
    owners = {
        labels.get("owner")
        for _n, labels, _v in scrape(pushgateway.url + "/metrics")
        if labels.get("target") == "prod" and labels.get("project") == "finance_platform"
    }
    assert owners - {None}, "meta_labels of the entry"

    # one entry broken (its sources.json gone): the others are still pushed, exit 2, named
    (tmp_path / "events_platform" / "sources.json").unlink()
    code, _out, err = run_cli(
        [
            "push",
            "--no-run",
            "--force",
            "--projects",
            str(projects),
            "--gateway",
            pushgateway.url,
            "--spill-dir",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    assert code == 2
    assert err.count("dbt-prom: pushed ") == 2
    assert "error: projects.yml entry 3 (events_platform/prod): sources.json not found" in err
    assert err.strip().splitlines()[-1].startswith("dbt-prom: error: 1 of 3 project(s) failed (")


def test_dry_run_prints_one_exposition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    projects = synthetic_projects(tmp_path)
    code, out, err = run_cli(["push", "--no-run", "--dry-run", "--projects", str(projects)], capsys)
    assert code == 0, err
    fams = list(text_string_to_metric_families(out))
    assert len({f.name for f in fams}) == len(fams)
    stamps = {
        (s.labels["project"], s.labels["target"]) for f in fams if f.name == RUN_TIMESTAMP for s in f.samples
    }
    assert stamps == {
        ("finance_platform", "prod"),
        ("finance_platform", "staging"),
        ("events_platform", "prod"),
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--project-dir", "."], "give either --project-dir or --projects"),
        (["--artifacts-dir", "."], "--artifacts-dir cannot be used with --projects"),
        (["--textfile", "x.prom"], "--textfile cannot be used with --projects"),
    ],
)
def test_single_project_flags_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    projects = synthetic_projects(tmp_path)
    code, _out, err = run_cli(["push", "--no-run", "--dry-run", "--projects", str(projects), *extra], capsys)
    assert code == 2 and message in err


def test_fail_on_across_projects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    projects = synthetic_projects(tmp_path)
    code, _out, err = run_cli(
        ["push", "--no-run", "--dry-run", "--fail-on", "error", "--projects", str(projects)], capsys
    )
    assert code == 1 and "--fail-on error: " in err


@pytest.mark.e2e
@pytest.mark.dbt
@requires("prometheus-pushgateway")
def test_two_real_dbt_projects_in_one_process(
    sample_project: DbtProjectEnv,
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two copies of the sample project, run in-process one after the other, each to its own group."""
    for name in ("copy_a", "copy_b"):
        copy_project(tmp_path / name)
    projects = write_file(
        tmp_path / "projects.yml",
        f"""
projects:
  - project_dir: copy_a
    profiles_dir: {sample_project.profiles_dir}
    grouping_key: {{copy: a}}
  - project_dir: copy_b
    profiles_dir: {sample_project.profiles_dir}
    grouping_key: {{copy: b}}
    select: [source:finance]
""",
    )
    code, _out, err = run_cli(["push", "--projects", str(projects), "--gateway", pushgateway.url], capsys)
    assert code == 0, err
    series = scrape(pushgateway.url + "/metrics")
    tables = {
        copy: {
            labels["table_name"]
            for name, labels, _v in series
            if name == "dbt_source_freshness_checked_timestamp_seconds" and labels.get("copy") == copy
        }
        for copy in ("a", "b")
    }
    assert len(tables["a"]) == 10 and "refunds" in tables["a"]
    assert tables["b"] == {"transactions", "transaction_labels", "ml_features"}
