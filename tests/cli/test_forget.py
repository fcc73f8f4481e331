"""``dbt-prom forget`` against a real Pushgateway: the group and this host's state cache go, so
the next push of a selection does not bring the old sources back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devtools import servers
from tests.fixtures_dbt import read_gateway, run_cli
from tests.reliability.runs import write_artifacts

pytestmark = pytest.mark.e2e


def test_forget_removes_the_group_and_the_state(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spill = tmp_path / "spill"
    full = write_artifacts(tmp_path / "full", time.time() - 120)
    common = ["--gateway", pushgateway.url, "--spill-dir", str(spill), "--target", "dev"]
    code, _, err = run_cli(["push", "--no-run", "--artifacts-dir", str(full), *common], capsys)
    assert code == 0, err
    assert len(read_gateway(pushgateway.url).statuses()) == 10

    code, _, err = run_cli(["forget", "--project", "dbt_prom_demo", *common], capsys)
    assert code == 0 and "removed job=dbt_source_freshness, project=dbt_prom_demo, target=dev" in err, err
    assert read_gateway(pushgateway.url).statuses() == {}
    assert not list((spill / "state").glob("*.json"))

    # a later selection (no manifest: it declares nothing else) holds only its own source
    one = write_artifacts(tmp_path / "one", time.time() - 60, only=["orders.orders"])
    (one / "manifest.json").unlink()
    code, _, err = run_cli(["push", "--no-run", "--artifacts-dir", str(one), *common], capsys)
    assert code == 0, err
    assert read_gateway(pushgateway.url).statuses() == {"orders.orders": "pass"}


def test_forget_needs_a_gateway_and_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["forget", "--project", "p", "--gateway", ""], capsys)
    assert code == 2 and "--gateway" in err
    code, _, err = run_cli(
        ["forget", "--project-dir", str(tmp_path), "--gateway", "http://127.0.0.1:9"], capsys
    )
    assert code == 2 and "--project" in err
