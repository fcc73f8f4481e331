"""`make demo` end to end (a private copy of the sample project, its own state directory)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dbt_prom_bridge.cli import COMMANDS
from devtools import demo, stack
from tests.conftest import requires
from tests.fixtures_dbt import copy_project

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.dbt,
    requires("prometheus", "prometheus-pushgateway", "prometheus-alertmanager"),
]


def test_demo_fires_the_alert_and_down_cleans_up(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "dbt_project")
    # PostgreSQL runs as its own OS user: the demo directory must be enterable by it.
    base = Path(tempfile.mkdtemp(prefix="dbt-prom-demo-"))
    base.chmod(0o755)
    workdir = base / "demo"
    argv = [sys.executable, "-m", "devtools.demo", "up", "--dir", str(workdir), "--project", str(project)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=demo.ROOT)
        state = stack.read_state(workdir.resolve() / "stack")
        if "rules" not in COMMANDS:
            assert result.returncode == 3, result.stdout + result.stderr
            assert "`dbt-prom rules` is not available in this build yet" in result.stdout
        else:
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"alert     {demo.ALERT}, severity critical" in result.stdout
            # the same stale data: the source without a calendar fires, the one with it is quiet
            assert f"{demo.CALENDAR_LATE:<19} no calendar" in result.stdout
            assert f"{demo.CALENDAR_QUIET:<19} same data, calendar mon-fri" in result.stdout
            assert "source    finance.transactions (owner finance-data, team finance)" in result.stdout
            assert "routed to finance-email-urgent" in result.stdout
            assert "inhibits  DbtSourceFreshnessWarn for the same source is suppressed" in result.stdout
        assert "dbt now says: finance.transactions error" in result.stdout
        assert state is not None and all(url in result.stdout for url in state.urls.values())
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "devtools.demo", "down", "--dir", str(workdir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=demo.ROOT,
        )
    assert down.returncode == 0, down.stderr
    assert not workdir.exists()
    shutil.rmtree(base, ignore_errors=True)
    if state is not None:
        assert not any(
            stack.is_our_server(name, pid, workdir.resolve() / "stack") for name, pid in state.pids.items()
        )
