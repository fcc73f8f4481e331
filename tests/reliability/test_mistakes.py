"""Mistakes around the dbt run never reach the gateway as data: real dbt on the embedded
PostgreSQL, a real Pushgateway, and after each mistake the gateway is asserted untouched.

A typo in how dbt is invoked (unknown --target, missing profiles.yml or profile, a directory that
is not a dbt project, a malformed or empty selection) is a usage error (exit 2): pushing
``run_success 0`` would create a group of its own (``target="nosuch"``) whose critical alert keeps
firing after the typo is fixed. A database that cannot be reached is an outage and keeps exit 3
with ``run_success 0`` (tests/e2e/test_dbt_failure.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools import servers
from tests.fixtures_dbt import DbtProjectEnv, run_cli
from tests.reliability.runs import groups, write_artifacts

pytestmark = [pytest.mark.e2e, pytest.mark.dbt]


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("dbt-prom: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _unknown_target(p: DbtProjectEnv, tmp: Path) -> list[str]:
    return [*p.cli_args(), "--target", "nosuch"]


def _missing_profiles_yml(p: DbtProjectEnv, tmp: Path) -> list[str]:
    (tmp / "profiles").mkdir()
    return ["--project-dir", str(p.project_dir), "--profiles-dir", str(tmp / "profiles")]


def _missing_profiles_dir(p: DbtProjectEnv, tmp: Path) -> list[str]:
    return ["--project-dir", str(p.project_dir), "--profiles-dir", str(tmp / "no-such-dir")]


def _missing_profile(p: DbtProjectEnv, tmp: Path) -> list[str]:
    (tmp / "profiles").mkdir()
    (tmp / "profiles" / "profiles.yml").write_text(
        "another_profile:\n  target: dev\n  outputs:\n    dev: {type: postgres, host: h, user: u, "
        "password: p, port: 5432, dbname: d, schema: s, threads: 1}\n"
    )
    return ["--project-dir", str(p.project_dir), "--profiles-dir", str(tmp / "profiles")]


def _not_a_project(p: DbtProjectEnv, tmp: Path) -> list[str]:
    (tmp / "models").mkdir()
    return ["--project-dir", str(tmp), "--profiles-dir", str(p.profiles_dir)]


def _select_nothing(p: DbtProjectEnv, tmp: Path) -> list[str]:
    return [*p.cli_args(), "--select", "source:no_such_source"]


def _exclude_everything(p: DbtProjectEnv, tmp: Path) -> list[str]:
    return [*p.cli_args(), "--exclude", "source:*"]


def _malformed_selector(p: DbtProjectEnv, tmp: Path) -> list[str]:
    return [*p.cli_args(), "--select", "sourc:orders"]


MISTAKES: dict[str, tuple[Callable[[DbtProjectEnv, Path], list[str]], str]] = {
    "unknown --target": (_unknown_target, "nosuch"),
    "profiles dir without profiles.yml": (_missing_profiles_yml, "profile"),
    "profiles dir that does not exist": (_missing_profiles_dir, "does not exist"),
    "profiles.yml without the project's profile": (_missing_profile, "dbt_prom_demo"),
    "project dir that is not a dbt project": (_not_a_project, "dbt_project.yml"),
    "--select matching no source": (_select_nothing, "matched no source"),
    "--exclude of every source": (_exclude_everything, "matched no source"),
    "malformed selector": (_malformed_selector, "sourc"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_a_mistake_exits_2_and_pushes_nothing(
    mistake: str,
    sample_project: DbtProjectEnv,
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build, fragment = MISTAKES[mistake]
    args = [
        "push",
        "--gateway",
        pushgateway.url,
        "--spill-dir",
        str(tmp_path / "spill"),
        *build(sample_project, tmp_path),
    ]
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    assert fragment in error_line(err)
    assert out == ""
    assert groups(pushgateway.url) == []  # no group, not even run_success 0
    assert not (tmp_path / "spill").exists() or not list((tmp_path / "spill").glob("*.json"))


def test_a_mistake_leaves_the_good_group_alone(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a good push, a typo'd target neither creates a group nor touches the good one."""
    good = ["push", "--gateway", pushgateway.url, *sample_project.cli_args()]
    code, _, err = run_cli(good, capsys)
    assert code == 0, err
    before = groups(pushgateway.url)
    code, _, err = run_cli([*good, "--target", "nosuch"], capsys)
    assert code == 2, err
    assert groups(pushgateway.url) == before


def test_no_run_selection_of_an_empty_artifact_pushes_nothing(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dbt source freshness --select source:typo` wrote an artifact without results."""
    art = write_artifacts(tmp_path / "art", time.time() - 30, only=())
    args = ["push", "--no-run", "--artifacts-dir", str(art), "--target", "dev", "--gateway", pushgateway.url]
    args += ["--spill-dir", str(tmp_path / "spill")]
    code, _, err = run_cli([*args, "--select", "source:typo"], capsys)
    assert code == 2, err
    assert "matched no source" in error_line(err)
    assert groups(pushgateway.url) == []


def _redate(art: Path, generated: float, snapshot: float | None = None) -> None:
    doc = json.loads((art / "sources.json").read_text())
    doc["metadata"]["generated_at"] = dt.datetime.fromtimestamp(generated, dt.timezone.utc).isoformat()
    if snapshot is not None:
        doc["results"][0]["snapshotted_at"] = dt.datetime.fromtimestamp(snapshot, dt.timezone.utc).isoformat()
    (art / "sources.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("generated", "snapshot"),
    [(5 * 365 * 86400, None), (3600, None), (0, 86400)],
    ids=["generated 5 years ahead", "generated 1 hour ahead", "one check a day ahead"],
)
def test_an_artifact_from_the_future_is_refused(
    generated: float,
    snapshot: float | None,
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    art = write_artifacts(tmp_path / "art", now - 30)
    _redate(art, now + generated, None if snapshot is None else now + snapshot)
    args = ["push", "--no-run", "--artifacts-dir", str(art), "--target", "dev", "--gateway", pushgateway.url]
    args += ["--spill-dir", str(tmp_path / "spill")]
    for extra in ([], ["--allow-stale-artifact"], ["--force"]):
        code, _, err = run_cli([*args, *extra], capsys)
        assert code == 2, err
        assert "future" in error_line(err)
    assert groups(pushgateway.url) == []
    # within the clock-skew allowance it is pushed
    art = write_artifacts(tmp_path / "art", now - 30)
    _redate(art, now + 60, now + 60)
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert groups(pushgateway.url) != []
