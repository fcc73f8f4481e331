"""Calendars in a run: deadlines on the record, their series, the verdict, and the codecs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge import summary
from dbt_prom_bridge.calendar import parse_calendar
from dbt_prom_bridge.cli.push import gate
from dbt_prom_bridge.codec import run_from_json, run_to_json
from dbt_prom_bridge.errors import CalendarError, CheckFailed, ExitCode
from dbt_prom_bridge.exposition import ERROR_DEADLINE, WARN_DEADLINE, checks_from_series, render
from dbt_prom_bridge.model import FailOn, RunContext, Status, build_run
from dbt_prom_bridge.serve import ExporterState, Refresh
from tests.calendar.test_calendar import BUSINESS, NY, local
from tests.model.test_build_run import manifest, node, result, sources

HOLIDAY_UID = "source.shop.crm.accounts"
PLAIN_UID = "source.shop.crm.contacts"
CRITERIA = {
    "warn_after": {"count": 2, "period": "hour"},
    "error_after": {"count": 12, "period": "hour"},
    "filter": None,
}
# Wednesday 2026-11-25 19:00 EST, checked Thanksgiving Thursday 10:00 EST (15 h later).
LOADED = "2026-11-26T00:00:00+00:00"
CHECKED = "2026-11-26T15:00:00+00:00"


def calendar_run(calendar: Any = BUSINESS, **ctx: Any) -> Any:
    res = [
        result(uid, "error", max_loaded_at=LOADED, snapshotted_at=CHECKED, criteria=CRITERIA)
        for uid in (HOLIDAY_UID, PLAIN_UID)
    ]
    man = manifest(
        (HOLIDAY_UID, node(HOLIDAY_UID, source_meta={"dbt_prom": {"calendar": calendar}})),
        (PLAIN_UID, node(PLAIN_UID)),
    )
    return build_run(sources(*res), man, RunContext(target="dev", **ctx))


def test_deadlines_on_the_record() -> None:
    run = calendar_run()
    cal_check, plain = run.checks
    assert cal_check.calendar is not None and cal_check.calendar.timezone == NY
    assert cal_check.warn_deadline == local(NY, 2026, 11, 27, 7, 0)
    assert cal_check.error_deadline == local(NY, 2026, 11, 27, 17, 0)
    assert plain.calendar is None
    assert plain.warn_deadline == local(NY, 2026, 11, 25, 21, 0)
    assert plain.error_deadline == local(NY, 2026, 11, 26, 7, 0)


def test_verdict_and_fail_on_use_the_calendar() -> None:
    run = calendar_run()
    cal_check, plain = run.checks
    assert (cal_check.status, cal_check.verdict) == (Status.ERROR, Status.PASS)
    assert (plain.status, plain.verdict) == (Status.ERROR, Status.ERROR)
    assert run.tripped(FailOn.WARN) == [plain]


def test_table_overrides_source_calendar() -> None:
    res = result(HOLIDAY_UID, "error", max_loaded_at=LOADED, snapshotted_at=CHECKED, criteria=CRITERIA)
    table_meta = {"dbt_prom": {"calendar": {"timezone": "UTC"}}}
    man = manifest(
        (HOLIDAY_UID, node(HOLIDAY_UID, source_meta={"dbt_prom": {"calendar": BUSINESS}}, meta=table_meta))
    )
    (check,) = build_run(sources(res), man, RunContext(target="dev")).checks
    assert check.calendar == parse_calendar({"timezone": "UTC"}, "x")
    assert check.verdict is Status.ERROR


def test_series_are_pushed_and_parse_back() -> None:
    run = calendar_run()
    text = render(run)
    series = [
        (s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples
    ]
    assert sum(name in (WARN_DEADLINE, ERROR_DEADLINE) for name, _, _ in series) == 4
    held = checks_from_series(series, ())
    back = held[("shop", "dev", "crm", "accounts")]
    assert back.warn_deadline == run.checks[0].warn_deadline
    assert back.error_deadline == run.checks[0].error_deadline


def test_no_deadline_without_load_time_or_threshold() -> None:
    criteria = {**CRITERIA, "warn_after": {"count": None, "period": None}}
    res = result(PLAIN_UID, "error", max_loaded_at="0001-01-01T00:00:00+00:00", criteria=criteria)
    (check,) = build_run(
        sources(res), manifest((PLAIN_UID, node(PLAIN_UID))), RunContext(target="dev")
    ).checks
    assert check.warn_deadline is None and check.error_deadline is None
    assert WARN_DEADLINE not in render(build_run(sources(res), None, RunContext(target="dev")))


def test_spill_round_trip_keeps_calendar_and_deadlines() -> None:
    run = calendar_run()
    assert run_from_json(run_to_json(run)).checks == run.checks


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"days": "weekdays"}, "days"),
        ({"holidays": "ZZ"}, "holidays"),
    ],
)
def test_wrong_calendar_fails_the_run(calendar: dict[str, str], field: str) -> None:
    with pytest.raises(CalendarError) as info:
        calendar_run(calendar)
    assert info.value.exit_code == ExitCode.INPUT
    assert f"crm.accounts: meta dbt_prom.calendar.{field}" in str(info.value)


def test_not_run_sources_are_validated_too() -> None:
    man = manifest((HOLIDAY_UID, node(HOLIDAY_UID, meta={"dbt_prom": {"calendar": {"hours": "9-5"}}})))
    with pytest.raises(CalendarError, match="hours"):
        build_run(sources(), man, RunContext(target="dev"))


# -- summary, --fail-on, /healthz -----------------------------------------------------------------


def test_summary_shows_verdict_beside_dbt_status() -> None:
    run = calendar_run()
    text = summary.table(run, now=lambda: local(NY, 2026, 11, 26, 10, 0))
    accounts = next(line for line in text.splitlines() if line.startswith("crm.accounts"))
    assert "pass (dbt: error)" in accounts and "America/New_York" in accounts
    assert "CALENDAR" in text.splitlines()[0]
    assert text.splitlines()[-1].endswith("1 pass, 1 error")
    data = summary.as_dict(run, now=lambda: 0.0)
    first = data["sources"][0]
    assert (first["status"], first["dbt_status"]) == ("pass", "error")
    assert first["calendar"]["days"] == "mon-fri"
    assert data["counts"]["pass"] == 1 and data["dbt_counts"]["error"] == 2


def test_no_calendar_column_without_calendars() -> None:
    run = calendar_run()
    plain = replace(run, checks=run.checks[1:])
    assert "CALENDAR" not in summary.table(plain, now=lambda: 0.0)


def test_fail_on_gate_uses_verdict() -> None:
    run = calendar_run()
    with pytest.raises(CheckFailed) as info:
        gate(run, None, FailOn.ERROR)
    assert "crm.contacts" in str(info.value) and "crm.accounts" not in str(info.value)
    gate(replace(run, checks=run.checks[:1]), None, FailOn.WARN)  # the holiday source alone passes


def test_healthz_counts_calendar_verdicts() -> None:
    run = calendar_run()
    state = ExporterState(interval=60, clock=lambda: 100.0)
    state.record(Refresh(99.0, 0.5, run))
    healthy, body = state.health()
    assert healthy
    assert body["counts"]["pass"] == 1 and body["counts"]["error"] == 1
    (override,) = body["calendar_overrides"]
    assert override["source"] == "crm.accounts"
    assert (override["verdict"], override["dbt_status"]) == ("pass", "error")
