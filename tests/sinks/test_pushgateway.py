"""The Pushgateway sink against a real Pushgateway: grouping-key encoding, full/partial/failed
pushes, and replay that never replaces newer data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dbt_prom_bridge import api
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.errors import ArtifactError
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.sinks.pushgateway import Pushgateway, group_path
from devtools import servers
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


def test_partial_run_keeps_the_sources_it_did_not_check(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(run(at=T0))
    outcome = gw(pushgateway).push(run(at=T0 + 60, tables=("b",), partial=True, loaded_offset=7200))
    assert outcome.carried_over == 2
    state = held(pushgateway.url, project="shop", target="dev")
    assert loaded_at(state) == {("src", "a"): T0 - 600, ("src", "b"): T0 + 60 - 7200, ("src", "c"): T0 - 600}
    assert run_ts(state) == T0 + 60
    assert state["dbt_source_freshness_sources"][("pass",)] == 3


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


# -- replay: newest data always wins ---------------------------------------------------------


def test_replay_of_a_newer_run_pushes_it(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(run(at=T0))
    outcome = gw(pushgateway).replay(run(at=T0 + 60, tables=("a", "b")), T0 + 60)
    assert outcome is not None and outcome.method == "PUT"
    state = held(pushgateway.url, project="shop", target="dev")
    assert run_ts(state) == T0 + 60 and set(statuses(state)) == {("src", "a"), ("src", "b")}


def test_replay_into_an_empty_gateway(pushgateway: servers.Server) -> None:
    assert gw(pushgateway).replay(run(at=T0), T0) is not None
    assert run_ts(held(pushgateway.url, project="shop", target="dev")) == T0


@pytest.mark.parametrize("offset", [0, -60])
def test_replay_of_the_same_or_an_older_full_run_is_superseded(
    pushgateway: servers.Server, offset: int
) -> None:
    gw(pushgateway).push(run(at=T0))
    before = held(pushgateway.url, project="shop", target="dev")
    assert gw(pushgateway).replay(run(at=T0 + offset, loaded_offset=9999), T0 + offset) is None
    assert held(pushgateway.url, project="shop", target="dev") == before


def test_replay_of_an_older_run_updates_only_sources_held_with_older_checks(
    pushgateway: servers.Server,
) -> None:
    # The gateway holds: a, b, c from a full run at T0, then a newer partial run of b at T0+120.
    gw(pushgateway).push(run(at=T0))
    gw(pushgateway).push(run(at=T0 + 120, tables=("b",), partial=True, loaded_offset=30))
    # A full run at T0+60 (a, b, c, d) failed to push earlier and is replayed now.
    late = run(at=T0 + 60, tables=("a", "b", "c", "d"), loaded_offset=5)
    outcome = gw(pushgateway).replay(late, T0 + 60)
    assert outcome is not None and outcome.carried_over == 1  # b kept from the gateway
    state = held(pushgateway.url, project="shop", target="dev")
    assert loaded_at(state) == {
        ("src", "a"): T0 + 55,  # from the replayed run: newer than T0
        ("src", "b"): T0 + 90,  # the gateway's: newer than the replayed run
        ("src", "c"): T0 + 55,
    }  # d is not brought back: the newest run the gateway knows did not have it
    assert run_ts(state) == T0 + 120  # run-level series stay the newest run's
    assert state["dbt_source_freshness_run_duration_seconds"] == {(): 1.5}
    assert state["dbt_source_freshness_sources"][("pass",)] == 3
    assert state["dbt_prom_bridge_build_info"]


def test_replay_compares_runtime_errors_by_run_time(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(
        run(at=T0, checks=(check("src", "a", Status.RUNTIME_ERROR, loaded=None, checked=None),))
    )
    older = run(at=T0 - 60, checks=(check("src", "a", checked=T0 - 60),))
    assert gw(pushgateway).replay(older, T0 - 60) is None
    assert statuses(held(pushgateway.url, project="shop", target="dev")) == {("src", "a"): "runtime_error"}


def test_replay_of_a_failed_run(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(run(at=T0))
    assert gw(pushgateway).replay(failed(), T0 - 1) is None  # a good run came after the failure
    assert held(pushgateway.url, project="shop", target="dev")["dbt_source_freshness_run_success"] == {
        (): 1.0
    }
    outcome = gw(pushgateway).replay(failed(), T0 + 1)
    assert outcome is not None and outcome.method == "POST"
    state = held(pushgateway.url, project="shop", target="dev")
    assert state["dbt_source_freshness_run_success"] == {(): 0.0} and len(statuses(state)) == 3


def test_replay_of_a_newer_partial_run_merges(pushgateway: servers.Server) -> None:
    gw(pushgateway).push(run(at=T0))
    outcome = gw(pushgateway).replay(run(at=T0 + 60, tables=("c",), partial=True, loaded_offset=1), T0 + 60)
    assert outcome is not None and outcome.carried_over == 2
    assert loaded_at(held(pushgateway.url, project="shop", target="dev"))[("src", "c")] == T0 + 59


# -- stale artifacts -------------------------------------------------------------------------


def test_an_artifact_already_pushed_is_refused(pushgateway: servers.Server) -> None:
    config = GatewayConfig(url=pushgateway.url, retries=0)
    api.check_not_already_pushed(run(at=T0), config)  # nothing held yet
    Pushgateway(config).push(run(at=T0))
    with pytest.raises(ArtifactError, match="already pushed"):
        api.check_not_already_pushed(run(at=T0), config)
    with pytest.raises(ArtifactError, match="1m00s older than the run the gateway holds"):
        api.check_not_already_pushed(run(at=T0 - 60), config)
    api.check_not_already_pushed(run(at=T0 + 1), config)
    api.check_not_already_pushed(replace(run(at=T0), target="prod"), config)


def test_the_already_pushed_check_does_not_block_when_the_gateway_is_down() -> None:
    api.check_not_already_pushed(
        run(), GatewayConfig(url=f"http://127.0.0.1:{servers.free_port()}", retries=0)
    )
