"""`dbt-prom push` end to end: a real dbt run of the sample project on a real PostgreSQL, pushed to a
real Pushgateway, read back from the gateway's /metrics as Prometheus would scrape it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dbt_prom_bridge import __version__
from dbt_prom_bridge.artifacts import parse_timestamp
from dbt_prom_bridge.calendar import deadline, parse_calendar
from dbt_prom_bridge.runner import installed_dbt_version
from devtools import servers
from devtools.seed import PARTNER_CALENDAR
from tests.fixtures_dbt import (
    EXPECTED_STATUS,
    NO_FRESHNESS,
    PROJECT,
    TARGET,
    DbtProjectEnv,
    read_gateway,
    run_cli,
    status_counts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, pytest.mark.compat]

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
#: Effective thresholds after inheritance (source level, or the clicks table override).
THRESHOLDS = {
    "finance.transactions": (2 * DAY, 5 * DAY),
    "finance.transaction_labels": (2 * DAY, 5 * DAY),
    "finance.ml_features": (2 * DAY, 5 * DAY),
    "events.page_views": (HOUR, 6 * HOUR),
    "events.consumer_offsets": (HOUR, 6 * HOUR),
    "events.app_events": (HOUR, 6 * HOUR),
    "events.clicks": (15 * MIN, 30 * MIN),
    "orders.orders": (12 * HOUR, 24 * HOUR),
    "orders.order_items": (12 * HOUR, 24 * HOUR),
    "orders.refunds": (12 * HOUR, 24 * HOUR),
    "partners.invoices": (16 * HOUR, 24 * HOUR),
    "partners.shipments": (16 * HOUR, 24 * HOUR),
}
IDENTIFIERS = {"finance.ml_features": "ml_feature_store", "events.consumer_offsets": "kafka_consumer_offsets"}
OWNERS = {
    "finance": "finance-data",
    "events": "platform-data",
    "orders": "commerce-data",
    "partners": "partner-ops",
}
#: How the newest load time of each source is computed, straight from the database.
NEWEST_SQL = {
    "finance.transactions": "select max(_loaded_at) from raw_finance.transactions",
    "finance.transaction_labels": "select max(_loaded_at) from raw_finance.transaction_labels",
    "finance.ml_features": "select max(_loaded_at) from raw_finance.ml_feature_store",
    # naive timestamp column written in UTC: dbt reads it as UTC
    "events.page_views": "select max(viewed_at) at time zone 'UTC' from raw_events.page_views",
    "events.consumer_offsets": "select max(committed_at) from raw_events.kafka_consumer_offsets",
    "events.app_events": "select max(received_at) from raw_events.app_events where event_type <> 'heartbeat'",
    "events.clicks": "select max(received_at) from raw_events.clicks",
    "orders.orders": "select max(_synced_at) from raw_orders.orders",
    "partners.invoices": "select max(_loaded_at) from raw_partners.invoices",
    "partners.shipments": "select max(_loaded_at) from raw_partners.shipments",
}


def newest_rows(project: DbtProjectEnv) -> dict[str, float]:
    conn: Any = project.connect()
    try:
        with conn.cursor() as cur:
            out = {}
            for source, sql in NEWEST_SQL.items():
                if source not in EXPECTED_STATUS:  # a dbt >= 1.10 case, not in the project before
                    continue
                cur.execute(f"select extract(epoch from ({sql}))")
                out[source] = float(cur.fetchone()[0])
            return out
    finally:
        conn.close()


def test_push_sends_every_source_and_the_run(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.time()
    code, out, err = run_cli(
        ["push", "--gateway", pushgateway.url, "--meta-label", "owner", *sample_project.cli_args()], capsys
    )
    finished = time.time()
    assert code == 0, err
    assert out == ""
    assert f"pushed {len(EXPECTED_STATUS)} sources to {pushgateway.url}" in err
    written = json.loads(sample_project.sources_json.read_text())
    gw = read_gateway(pushgateway.url)

    # every checked source, in its state; the source without freshness nowhere
    assert gw.statuses() == EXPECTED_STATUS
    for labels, _ in gw.of("dbt_source_freshness_status"):
        assert f"{labels['source_name']}.{labels['table_name']}" not in NO_FRESHNESS
    per_source_states: dict[str, dict[str, float]] = {}
    for labels, value in gw.of("dbt_source_freshness_status"):
        key = f"{labels['source_name']}.{labels['table_name']}"
        per_source_states.setdefault(key, {})[labels["status"]] = value
    for key, states in per_source_states.items():
        assert sorted(states) == sorted(["pass", "warn", "error", "runtime_error", "not_run"]), key
        assert sum(states.values()) == 1, key

    # labels from the manifest, meta label copied
    for source in EXPECTED_STATUS:
        source_name, table_name = source.split(".")
        assert gw.labels(source) == {
            "project": PROJECT,
            "target": TARGET,
            "source_name": source_name,
            "table_name": table_name,
            "database": "dbt_prom_demo",
            "schema": f"raw_{source_name}",
            "identifier": IDENTIFIERS.get(source, table_name),
            "owner": OWNERS[source_name],
        }

    # newest load times: exactly the database's; none for the empty table or the failed query
    loaded = gw.per_source("dbt_source_max_loaded_at_timestamp_seconds")
    expected_loaded = newest_rows(sample_project)
    assert set(loaded) == set(expected_loaded)
    for source, value in expected_loaded.items():
        assert loaded[source] == pytest.approx(value, abs=1e-3), source
    has_data = gw.per_source("dbt_source_has_data")
    # the runtime error has none: dbt never found out whether the table has rows
    assert has_data == {
        s: (0.0 if s == "orders.order_items" else 1.0) for s in EXPECTED_STATUS if s != "orders.refunds"
    }

    # thresholds in seconds, after inheritance and the clicks override
    assert gw.per_source("dbt_source_freshness_warn_after_seconds") == {
        s: w for s, (w, _) in THRESHOLDS.items() if s in EXPECTED_STATUS
    }
    assert gw.per_source("dbt_source_freshness_error_after_seconds") == {
        s: e for s, (_, e) in THRESHOLDS.items() if s in EXPECTED_STATUS
    }

    # deadlines: max_loaded_at + threshold, counted on the business calendar of partners.invoices
    invoices = parse_calendar(PARTNER_CALENDAR, "partners.invoices")
    for metric, index in (
        ("dbt_source_freshness_warn_deadline_timestamp_seconds", 0),
        ("dbt_source_freshness_error_deadline_timestamp_seconds", 1),
    ):
        due = gw.per_source(metric)
        assert set(due) == set(expected_loaded)
        for source in expected_loaded:
            calendar = invoices if source == "partners.invoices" else None
            want = deadline(calendar, loaded[source], THRESHOLDS[source][index])
            assert due[source] == pytest.approx(want, abs=1e-3), source
    assert due["partners.invoices"] > due["partners.shipments"]

    # when each was checked (the runtime error has no snapshot time: the run's time stands in for
    # it, so "not checked for --stale-after" covers it too) and how long it took
    checked = gw.per_source("dbt_source_freshness_checked_timestamp_seconds")
    assert set(checked) == set(EXPECTED_STATUS)
    assert all(started - 1 <= v <= finished + 1 for v in checked.values()), checked
    durations = gw.per_source("dbt_source_freshness_check_duration_seconds")
    assert set(durations) == set(EXPECTED_STATUS)  # a runtime error keeps dbt's measured time
    assert all(0 < v < 60 for v in durations.values())

    # run level: the artifact's time and duration, never the push time
    generated_at = parse_timestamp(written["metadata"]["generated_at"], "generated_at")
    assert generated_at is not None
    assert gw.run_value("dbt_source_freshness_run_timestamp_seconds") == pytest.approx(
        generated_at.timestamp(), abs=1e-3
    )
    assert gw.run_value("dbt_source_freshness_run_duration_seconds") == pytest.approx(
        written["elapsed_time"], abs=1e-3
    )
    assert gw.run_value("dbt_source_freshness_run_success") == 1
    assert gw.counts() == status_counts(EXPECTED_STATUS)
    ((build_labels, build_value),) = gw.of("dbt_prom_bridge_build_info")
    assert build_value == 1
    assert (build_labels["version"], build_labels["dbt_version"]) == (__version__, installed_dbt_version())
    for labels, _ in gw.of("dbt_source_freshness_run_success"):
        assert (labels["job"], labels["project"], labels["target"]) == (
            "dbt_source_freshness",
            PROJECT,
            TARGET,
        )

    # the summary table on stderr names every source
    for source in EXPECTED_STATUS:
        assert source in err


def test_no_run_of_the_same_artifact_changes_nothing(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """The in-process run saw refunds' runtime error; reading its sources.json back (which leaves
    runtime errors out) is no newer check of anything: nothing is pushed, refunds keeps its error."""
    args = ["--gateway", pushgateway.url, *sample_project.cli_args()]
    code, _, err = run_cli(["push", *args], capsys)
    assert code == 0, err
    before = read_gateway(pushgateway.url)

    code, _, err = run_cli(["push", "--no-run", *args], capsys)
    assert code == 0 and "nothing to push" in err and "Traceback" not in err, err

    code, _, err = run_cli(["push", "--no-run", "--force", *args], capsys)
    assert code == 0, err
    gw = read_gateway(pushgateway.url)
    assert gw.statuses() == EXPECTED_STATUS == before.statuses()
    assert gw.counts() == status_counts(EXPECTED_STATUS)
    assert gw.run_value("dbt_source_freshness_run_timestamp_seconds") == before.run_value(
        "dbt_source_freshness_run_timestamp_seconds"
    )
    # the runtime error keeps its labels and thresholds from the manifest
    assert gw.labels("orders.refunds")["schema"] == "raw_orders"
    assert gw.per_source("dbt_source_freshness_error_after_seconds")["orders.refunds"] == 24 * HOUR


def test_stale_source_reaches_the_gateway(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_project.make_stale("finance.transactions", "events.app_events")
    code, _, err = run_cli(
        ["push", "--gateway", pushgateway.url, "--fail-on", "error", *sample_project.cli_args()], capsys
    )
    assert code == 1, err
    assert "--fail-on error" in err and "finance.transactions (error)" in err
    statuses = read_gateway(pushgateway.url).statuses()
    # app_events' heartbeats are fresh, but the source's filter ignores them
    assert statuses == {**EXPECTED_STATUS, "finance.transactions": "error", "events.app_events": "error"}
