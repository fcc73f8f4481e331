"""A selected run (--select/--exclude) updates only the sources it checked; the gateway keeps the rest."""

from __future__ import annotations

import pytest

from devtools import servers
from tests.fixtures_dbt import (
    EXPECTED_STATUS,
    DbtProjectEnv,
    GatewayView,
    read_gateway,
    run_cli,
    status_counts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, pytest.mark.compat]

PER_SOURCE = (
    "dbt_source_max_loaded_at_timestamp_seconds",
    "dbt_source_has_data",
    "dbt_source_freshness_checked_timestamp_seconds",
    "dbt_source_freshness_warn_after_seconds",
    "dbt_source_freshness_error_after_seconds",
    "dbt_source_freshness_check_duration_seconds",
)


def owners(gw: GatewayView) -> dict[str, str]:
    return {f"{lb['source_name']}.{lb['table_name']}": lb["owner"] for lb, _ in gw.of("dbt_source_has_data")}


def test_selected_source_is_updated_and_the_others_kept(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["push", "--gateway", pushgateway.url, "--meta-label", "owner", *sample_project.cli_args()]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    full = read_gateway(pushgateway.url)

    sample_project.make_stale("finance.transactions")
    code, _, err = run_cli([*args, "--select", "source:finance.transactions"], capsys)
    assert code == 0, err
    assert f"({len(EXPECTED_STATUS) - 1} not in this run kept)" in err
    partial = read_gateway(pushgateway.url)

    assert partial.statuses() == {**EXPECTED_STATUS, "finance.transactions": "error"}
    assert owners(partial) == owners(full)
    for family in PER_SOURCE:
        before, after = full.per_source(family), partial.per_source(family)
        assert set(after) == set(before), family
        unchanged = {k: v for k, v in after.items() if k != "finance.transactions"}
        assert unchanged == {k: v for k, v in before.items() if k != "finance.transactions"}, family
    loaded = "dbt_source_max_loaded_at_timestamp_seconds"
    checked = "dbt_source_freshness_checked_timestamp_seconds"
    # stale now: its newest row is 6 days old, and it was checked again
    assert (
        full.per_source(loaded)["finance.transactions"] - partial.per_source(loaded)["finance.transactions"]
        > 4 * 86400
    )
    assert (
        partial.per_source(checked)["finance.transactions"] > full.per_source(checked)["finance.transactions"]
    )
    # the run-level series describe what the gateway now holds
    assert partial.run_value("dbt_source_freshness_run_success") == 1
    assert (partial.run_value("dbt_source_freshness_run_timestamp_seconds") or 0) > (
        full.run_value("dbt_source_freshness_run_timestamp_seconds") or 0
    )
    assert partial.counts() == status_counts({**EXPECTED_STATUS, "finance.transactions": "error"})


def test_exclusion_keeps_the_excluded_sources(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["push", "--gateway", pushgateway.url, *sample_project.cli_args()]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    sample_project.make_stale("events.clicks", "orders.orders")
    code, _, err = run_cli([*args, "--exclude", "source:events"], capsys)
    assert code == 0, err
    # orders.orders was checked again (stale now); events.clicks was excluded: still its old warn
    assert read_gateway(pushgateway.url).statuses() == {**EXPECTED_STATUS, "orders.orders": "error"}


def test_selection_into_an_empty_gateway_pushes_only_the_selection(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        [
            "push",
            "--gateway",
            pushgateway.url,
            "--select",
            "source:orders",
            *sample_project.cli_args(),
        ],
        capsys,
    )
    assert code == 0, err
    gw = read_gateway(pushgateway.url)
    # the selection's sources as checked; the others are configured and no run has checked them
    assert gw.statuses() == {
        k: (v if k.startswith("orders.") else "not_run") for k, v in EXPECTED_STATUS.items()
    }
