"""The Pushgateway sink against a real Pushgateway: grouping-key encoding, full/partial/failed
pushes, and replay that never replaces newer data."""

from __future__ import annotations

import io
import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dbt_prom_bridge import api
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.exposition import render
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.pushgateway import Pushgateway, group_path, read_group, read_revision
from devtools import servers
from tests.conftest import wipe
from tests.reliability.runs import T0, check, failed, groups, held, loaded_at, run, run_ts, statuses

pytestmark = pytest.mark.e2e

HOSTILE = [".", "..", "a/b", "", "%2F", "a b", "ü→✓", "x\ny", "a?b#c", "@base64", "=", "\\", '"q"', "{{ x }}"]


def gw(server: servers.Server, **kw: object) -> Pushgateway:
    return Pushgateway(GatewayConfig(url=server.url, retries=0, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", HOSTILE)
def test_grouping_key_values_round_trip(pushgateway: servers.Server, value: str) -> None:
    gw(pushgateway, job=value or "j", grouping_key=(("extra", value),)).push(run(project=value, target=value))
    [group] = groups(pushgateway.url)
    assert group["labels"] == {"job": value or "j", "project": value, "target": value, "extra": value}


def test_group_path_uses_base64_only_where_needed() -> None:
    assert (
        group_path("j", [("project", "shop"), ("target", "a b")])
        == "/metrics/job/j/project/shop/target/a%20b"
    )
    assert group_path("j", [("project", "")]) == "/metrics/job/j/project@base64/="
    assert group_path("j", [("project", "..")]) == "/metrics/job/j/project@base64/Li4"


def test_targets_and_projects_never_overwrite_each_other(pushgateway: servers.Server) -> None:
    for project in ("shop", "Shop"):
        for target in ("dev", "prod"):
            gw(pushgateway).push(run(project=project, target=target, tables=(f"{project}-{target}",)))
    for project in ("shop", "Shop"):
        for target in ("dev", "prod"):
            state = held(pushgateway.url, project=project, target=target)
            assert statuses(state) == {("src", f"{project}-{target}"): "pass"}


def test_partial_run_on_an_empty_gateway(pushgateway: servers.Server) -> None:
    outcome = gw(pushgateway).push(run(tables=("b",), partial=True))
    assert outcome.carried_over == 0
    assert set(statuses(held(pushgateway.url, project="shop", target="dev"))) == {("src", "b")}


def test_failed_run_keeps_the_last_good_series(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(run(at=T0))
    gw(pushgateway).push(failed())
    state = held(pushgateway.url, project="shop", target="dev")
    assert state["dbt_source_freshness_run_success"] == {(): 0.0}
    assert run_ts(state) == T0 and len(statuses(state)) == 3


# -- newest check wins, per source (issue: the source is the unit of truth) -------------------


def gw_at(server: servers.Server, state_dir: Path | None, **kw: object) -> Pushgateway:
    return Pushgateway(GatewayConfig(url=server.url, retries=0, **kw), state_dir=state_dir)  # type: ignore[arg-type]


def test_an_older_check_never_replaces_a_newer_one(pushgateway: servers.Server, tmp_path: Path) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0 + 60, loaded_offset=10))
    before = held(pushgateway.url, project="shop", target="dev")
    late = gw_at(pushgateway, tmp_path).push(run(at=T0, loaded_offset=9999))
    assert not late.pushed and len(late.merged.not_newer) == 3
    assert held(pushgateway.url, project="shop", target="dev") == before


def test_a_run_changes_only_the_sources_it_checked(pushgateway: servers.Server, tmp_path: Path) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0))
    # a run whose artifact has only b (dbt's own --select): no flag says it is partial
    outcome = gw_at(pushgateway, tmp_path).push(run(at=T0 + 60, tables=("b",), loaded_offset=7200))
    assert outcome.carried_over == 2 and outcome.merged.updated == (("src", "b"),)
    state = held(pushgateway.url, project="shop", target="dev")
    assert loaded_at(state) == {("src", "a"): T0 - 600, ("src", "b"): T0 + 60 - 7200, ("src", "c"): T0 - 600}
    assert run_ts(state) == T0 + 60
    assert state["dbt_source_freshness_sources"][("pass",)] == 3


def test_sources_removed_from_the_project_go_and_never_checked_ones_are_not_run(
    pushgateway: servers.Server, tmp_path: Path
) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0))
    # the manifest now declares a (checked), b (configured, not checked) and d (new, never checked)
    declared = run(at=T0 + 60, tables=("a",))
    placeholders = tuple(
        replace(check("src", t), status=Status.NOT_RUN, max_loaded_at=None, checked_at=None, has_data=None)
        for t in ("b", "d")
    )
    outcome = gw_at(pushgateway, tmp_path).push(replace(declared, unchecked=placeholders, complete=True))
    assert outcome.merged.removed == (("src", "c"),)
    state = held(pushgateway.url, project="shop", target="dev")
    assert statuses(state) == {("src", "a"): "pass", ("src", "b"): "pass", ("src", "d"): "not_run"}
    assert loaded_at(state)[("src", "b")] == T0 - 600  # b keeps its last check


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_of_runs_ends_with_the_newest_check_of_each_source(
    pushgateway: servers.Server, tmp_path: Path, order: tuple[int, ...]
) -> None:
    runs = [
        run(at=T0, loaded_offset=100),  # full
        run(at=T0 + 30, tables=("a",), loaded_offset=50),  # a selection
        run(at=T0 + 60, tables=("b", "c"), loaded_offset=20),  # another selection
        run(at=T0 + 90, tables=("c",), loaded_offset=5),
    ]
    for i in order:
        gw_at(pushgateway, tmp_path).push(runs[i])
    state = held(pushgateway.url, project="shop", target="dev")
    assert loaded_at(state) == {("src", "a"): T0 - 20, ("src", "b"): T0 + 40, ("src", "c"): T0 + 85}
    assert run_ts(state) == T0 + 90


def test_a_host_without_the_cache_reads_the_group(pushgateway: servers.Server, tmp_path: Path) -> None:
    """Two hosts (separate state dirs) share a group: each reads what the other wrote."""
    gw_at(pushgateway, tmp_path / "host-a").push(run(at=T0))
    b = gw_at(pushgateway, tmp_path / "host-b").push(run(at=T0 + 60, tables=("b",), loaded_offset=1))
    assert b.carried_over == 2
    a = gw_at(pushgateway, tmp_path / "host-a").push(run(at=T0 + 120, tables=("c",), loaded_offset=2))
    assert a.carried_over == 2
    assert loaded_at(held(pushgateway.url, project="shop", target="dev")) == {
        ("src", "a"): T0 - 600,
        ("src", "b"): T0 + 59,
        ("src", "c"): T0 + 118,
    }


def test_a_gateway_that_lost_its_groups_gets_them_back(pushgateway: servers.Server, tmp_path: Path) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0))
    wipe(pushgateway)  # a restart without persistence
    gw_at(pushgateway, tmp_path).push(run(at=T0 + 60, tables=("a",), loaded_offset=1))
    assert set(statuses(held(pushgateway.url, project="shop", target="dev"))) == {
        ("src", "a"),
        ("src", "b"),
        ("src", "c"),
    }


def test_delete_removes_the_group_and_the_cache(pushgateway: servers.Server, tmp_path: Path) -> None:
    sink = gw_at(pushgateway, tmp_path)
    sink.push(run(at=T0))
    sink.delete(run())
    assert held(pushgateway.url, project="shop", target="dev") == {}
    sink.push(run(at=T0 + 60, tables=("a",)))
    assert set(statuses(held(pushgateway.url, project="shop", target="dev"))) == {("src", "a")}


def test_force_lets_an_older_check_replace_a_newer_one(pushgateway: servers.Server, tmp_path: Path) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0 + 60))
    gw_at(pushgateway, tmp_path).push(run(at=T0, tables=("a",), loaded_offset=1), force=True)
    assert loaded_at(held(pushgateway.url, project="shop", target="dev"))[("src", "a")] == T0 - 1


def test_a_held_check_from_the_future_does_not_block_real_checks(
    pushgateway: servers.Server, tmp_path: Path
) -> None:
    future = time.time() + 5 * 365 * 86400
    gw_at(pushgateway, tmp_path).push(run(at=future))
    now = time.time()
    gw_at(pushgateway, tmp_path).push(run(at=now, tables=("a",), loaded_offset=1))
    assert loaded_at(held(pushgateway.url, project="shop", target="dev"))[("src", "a")] == now - 1


def test_failed_run_then_the_same_old_artifact_keeps_run_success_0(
    pushgateway: servers.Server, tmp_path: Path
) -> None:
    gw_at(pushgateway, tmp_path).push(run(at=T0))
    gw_at(pushgateway, tmp_path).push(failed())
    again = gw_at(pushgateway, tmp_path).push(run(at=T0))
    assert not again.pushed
    state = held(pushgateway.url, project="shop", target="dev")
    assert state["dbt_source_freshness_run_success"] == {(): 0.0} and run_ts(state) == T0


def test_replay_goes_through_the_same_merge(pushgateway: servers.Server, tmp_path: Path) -> None:
    config = GatewayConfig(url=pushgateway.url, retries=0)
    sink = Pushgateway(config, state_dir=tmp_path)
    older, newer = run(at=T0, loaded_offset=100), run(at=T0 + 60, tables=("a",), loaded_offset=1)
    for spilled in (older, newer):
        spill.spill_run(tmp_path, spilled, sink.destination(spilled), "down", now=lambda: T0)
    sink.push(run(at=T0 + 30, tables=("b",), loaded_offset=3))
    report = api.replay(tmp_path, config)
    assert len(report.pushed) == 2 and not report.superseded
    assert loaded_at(held(pushgateway.url, project="shop", target="dev")) == {
        ("src", "a"): T0 + 59,
        ("src", "b"): T0 + 27,  # the older replayed run did not win over b's newer check
        ("src", "c"): T0 - 100,
    }
    spill.spill_run(tmp_path, older, sink.destination(older), "down", now=lambda: T0)
    assert [e.run.generated_at for e in api.replay(tmp_path, config).superseded] == [T0]


def test_read_revision_stops_at_its_family_and_matches_exactly() -> None:
    text = (
        b"# HELP dbt_prom_bridge_state_revision x\n"
        b"# TYPE dbt_prom_bridge_state_revision gauge\n"
        b'dbt_prom_bridge_state_revision{instance="",job="j",project="p",region="x",target="t"} 5\n'
        b'dbt_prom_bridge_state_revision{instance="",job="j",project="p",target="t"} 7\n'
        b'dbt_source_freshness_status{instance="",job="j",project="p"} 1\n'
    )
    group = {"job": "j", "project": "p", "target": "t"}
    assert read_revision(io.BytesIO(text), group) == 7
    assert read_revision(io.BytesIO(text), {**group, "region": "x"}) == 5
    assert read_revision(io.BytesIO(text), {**group, "project": "q"}) is None
    assert read_revision(io.BytesIO(b""), group) is None


def test_read_group_keeps_only_its_own_series() -> None:
    mine = Pushgateway(GatewayConfig(url="http://gw")).labels(run())
    first, other = run(at=T0), run(at=T0 + 5, project="other", tables=("z",))
    text = (render(first) + render(other)).replace("{project=", '{instance="",job="j",project=')
    state, revision = read_group(io.BytesIO(text.encode()), {"job": "j", **dict(mine)}, run())
    assert revision is None and state is not None
    assert {c.key for c in state.checks} == {("src", "a"), ("src", "b"), ("src", "c")}
    assert state.generated_at == T0
