"""Runs spilled for a wrong gateway URL: `replay --to URL` re-targets and pushes them to a real
Pushgateway (credentials only to the URL the user names), `replay --discard` deletes one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devtools import servers
from tests.fixtures_dbt import run_cli
from tests.reliability.loopback import Forward, Loopback
from tests.reliability.runs import held, write_artifacts
from tests.reliability.support import TOKEN

pytestmark = pytest.mark.e2e


def spill_for(url: str, art: Path, spill_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["push", "--no-run", "--artifacts-dir", str(art), "--target", "dev", "--gateway", url]
    code, _, err = run_cli(
        [*args, "--spill-dir", str(spill_dir), "--retries", "0", "--timeout", "2s"], capsys
    )
    assert code == 4, err


def test_replay_to_retargets_runs_spilled_for_a_wrong_url(
    pushgateway: servers.Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = f"http://127.0.0.1:{servers.free_port()}"
    spill_dir = tmp_path / "spill"
    spill_for(wrong, write_artifacts(tmp_path / "a1", time.time() - 60), spill_dir, capsys)
    spill_for(wrong + "/metrics", write_artifacts(tmp_path / "a2", time.time() - 30), spill_dir, capsys)
    assert len(list(spill_dir.glob("*.json"))) == 2

    # without --to, runs spilled for another URL are kept and the hint names --to
    code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir), "--gateway", pushgateway.url], capsys)
    assert code == 4 and "--to URL" in err

    # the token goes to the gateway named with --to, never to the URLs the runs were spilled for
    monkeypatch.setenv("DBT_PROM_GATEWAY_TOKEN", TOKEN)
    with Loopback([Forward(pushgateway.url)]) as proxy:
        code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir), "--to", proxy.url], capsys)
    assert code == 0, err
    assert err.count("re-targeted") == 2
    assert proxy.seen and all(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in proxy.seen)
    assert list(spill_dir.glob("*.json")) == []
    state = held(pushgateway.url, project="dbt_prom_demo", target="dev")
    assert state["dbt_source_freshness_run_success"] == {(): 1.0}


def test_a_retargeted_run_that_fails_again_stays_spilled_for_the_new_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong, also_dead = (f"http://127.0.0.1:{servers.free_port()}" for _ in range(2))
    spill_dir = tmp_path / "spill"
    spill_for(wrong, write_artifacts(tmp_path / "a", time.time() - 60), spill_dir, capsys)
    code, _, err = run_cli(
        ["replay", "--spill-dir", str(spill_dir), "--to", also_dead, "--retries", "0", "--timeout", "2s"],
        capsys,
    )
    assert code == 4, err
    (path,) = spill_dir.glob("*.json")
    assert json.loads(path.read_text())["destination"]["url"] == also_dead
    code, _, err = run_cli(["replay", "--spill-dir", str(spill_dir), "--discard", path.name], capsys)
    assert code == 0 and list(spill_dir.glob("*.json")) == []


def test_to_and_a_different_gateway_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        ["replay", "--spill-dir", str(tmp_path), "--to", "http://a:9091", "--gateway", "http://b:9091"],
        capsys,
    )
    assert code == 2 and "not both" in err
