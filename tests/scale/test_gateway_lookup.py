"""Finding one group's run timestamp on a gateway that holds many (the --no-run already-pushed
check) from its /metrics text, and the streamed request body."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.exposition import render, render_bytes
from dbt_prom_bridge.model import FreshnessRun, RunContext, build_run
from dbt_prom_bridge.sinks.pushgateway import Pushgateway, grouping_labels, held_run_timestamp
from devtools import servers, synthetic
from tests.conftest import requires

NOW = 1_800_000_000.0


def small_run(project: str, generated_at: float) -> FreshnessRun:
    manifest, sources = synthetic.generate(30, seed=4, now=NOW, hostile=True)
    run = build_run(parse_sources(sources), parse_manifest(manifest), RunContext(target="prod"))
    return replace(run, project=project, generated_at=generated_at)


def test_render_bytes_is_the_encoded_text() -> None:
    run = small_run("p", NOW)
    assert bytes(render_bytes(run)) == render(run).encode()


@pytest.mark.e2e
@requires("prometheus-pushgateway")
def test_run_timestamp_of_exactly_one_group(pushgateway: servers.Server) -> None:
    groups = [
        ("proj", (), NOW - 100),
        ("proj", (("region", "eu/west"),), NOW - 200),
        ("proj", (("region", 'we"ird\\ ü'),), NOW - 300),
        ("other", (), NOW - 400),
    ]
    for project, extra, at in groups:
        config = GatewayConfig(url=pushgateway.url, grouping_key=extra)
        Pushgateway(config).push(small_run(project, at))
    for project, extra, at in groups:
        config = GatewayConfig(url=pushgateway.url, grouping_key=extra)
        labels = grouping_labels(small_run(project, at), config)
        assert Pushgateway(config).run_timestamp(labels) == at
    missing = GatewayConfig(url=pushgateway.url, grouping_key=(("region", "us"),))
    assert Pushgateway(missing).run_timestamp(grouping_labels(small_run("proj", 0), missing)) is None
    other_job = GatewayConfig(url=pushgateway.url, job="another")
    assert Pushgateway(other_job).run_timestamp(grouping_labels(small_run("proj", 0), other_job)) is None


def test_held_run_timestamp_ignores_other_metrics_and_groups() -> None:
    text = (
        b"# TYPE dbt_source_freshness_run_timestamp_seconds gauge\n"
        b'dbt_source_freshness_run_timestamp_seconds{instance="",job="j",project="p",target="t"} 1.7e+09\n'
        b'dbt_source_freshness_run_timestamp_seconds{instance="",job="j",project="p",region="x",'
        b'target="t"} 5\n'
        b'dbt_source_freshness_run_timestamp_secondsX{instance="",job="j",project="p",target="t"} 6\n'
        b'push_time_seconds{instance="",job="j",project="p",target="t"} 7\n'
    )
    assert held_run_timestamp(text, {"job": "j", "project": "p", "target": "t"}) == 1.7e9
    assert held_run_timestamp(text, {"job": "j", "project": "p", "target": "t", "region": "x"}) == 5
    assert held_run_timestamp(text, {"job": "j", "project": "q", "target": "t"}) is None
    assert held_run_timestamp(b"", {"job": "j"}) is None
