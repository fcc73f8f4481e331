"""Business calendars: parsing, the clock arithmetic (against a minute-by-minute reference), DST."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.calendar import (
    Calendar,
    calendar_age,
    calendar_from_meta,
    deadline,
    deadlines,
    parse_calendar,
    running_intervals,
    verdict_at,
)
from dbt_prom_bridge.errors import CalendarError, ExitCode

NY = "America/New_York"
BUSINESS = {"timezone": NY, "days": "mon-fri", "hours": "06:00-20:00", "holidays": "US"}


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return local("UTC", year, month, day, hour, minute)


# -- parsing -----------------------------------------------------------------------------------


def test_defaults_run_all_the_time() -> None:
    cal = parse_calendar({}, "raw.orders")
    assert cal == Calendar()
    assert deadline(cal, 1000.0, 3600.0) == 4600.0


def test_parse_normalises() -> None:
    cal = parse_calendar(
        {"timezone": NY, "days": "Mon,wed , FRIDAY", "hours": "13:00-20:00,06:00-12:00", "holidays": "us-NY"},
        "raw.orders",
    )
    assert cal.days == (0, 2, 4)
    assert cal.hours == ((360, 720), (780, 1200))
    assert cal.holidays == ("US-NY",)
    assert cal.describe() == "mon,wed,fri 06:00-12:00,13:00-20:00 America/New_York, except US-NY holidays"


def test_day_ranges_wrap_and_lists() -> None:
    assert parse_calendar({"days": "fri-mon"}, "s.t").days == (0, 4, 5, 6)
    assert parse_calendar({"days": ["mon-wed", "sat"]}, "s.t").days == (0, 1, 2, 5)
    assert parse_calendar({"days": "mon-fri"}, "s.t").days_text() == "mon-fri"


def test_overlapping_hours_merge() -> None:
    assert parse_calendar({"hours": "06:00-12:00,11:00-14:00,14:00-15:00"}, "s.t").hours == ((360, 900),)
    assert parse_calendar({"hours": "00:00-24:00"}, "s.t").hours == ((0, 1440),)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": 5}, "timezone"),
        ({"days": "mon-fry"}, "days"),
        ({"days": "mon,,fri"}, "days"),
        ({"days": ""}, "days"),
        ({"days": 3}, "days"),
        ({"hours": "20:00-06:00"}, "hours"),
        ({"hours": "06:00-06:00"}, "hours"),
        ({"hours": "6-20"}, "hours"),
        ({"hours": "06:00-25:00"}, "hours"),
        ({"hours": "06:60-20:00"}, "hours"),
        ({"hours": 360}, "hours"),  # YAML 1.1 reads an unquoted 06:00 as 360
        ({"holidays": "XX"}, "holidays"),
        ({"holidays": "US-ZZ"}, "holidays"),
        ({"holidays": ["US", 1]}, "holidays"),
        ({"timezome": "UTC"}, "timezome"),
    ],
)
def test_bad_calendar_names_source_and_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(CalendarError) as info:
        parse_calendar(raw, "raw.orders")
    assert info.value.exit_code == ExitCode.INPUT
    assert f"raw.orders: meta dbt_prom.calendar.{field}" in str(info.value)
    assert "\n" not in str(info.value)


def test_calendar_from_meta() -> None:
    meta = (("dbt_prom", json.dumps({"calendar": BUSINESS, "slo": 0.99})), ("owner", "ops"))
    cal = calendar_from_meta(meta, "raw.orders")
    assert cal is not None and cal.timezone == NY
    assert calendar_from_meta((("owner", "ops"),), "raw.orders") is None
    assert calendar_from_meta((("dbt_prom", json.dumps({"slo": 0.99})),), "raw.orders") is None
    with pytest.raises(CalendarError, match=r"raw\.orders"):
        calendar_from_meta((("dbt_prom", "weekdays"),), "raw.orders")
    with pytest.raises(CalendarError, match="calendar"):
        calendar_from_meta((("dbt_prom", json.dumps({"calendar": "mon-fri"})),), "raw.orders")


# -- worked examples ------------------------------------------------------------------------------


def test_worked_example_holiday_thursday() -> None:
    """06:00-20:00 Mon-Fri, warn_after 2h, last load Wednesday 19:00 before a Thursday holiday
    (Thanksgiving 2026-11-26): 1 h counts on Wednesday, the clock stops until Friday 06:00, warn
    at Friday 07:00 local."""
    cal = parse_calendar(BUSINESS, "raw.orders")
    loaded = local(NY, 2026, 11, 25, 19, 0)
    warn = deadline(cal, loaded, 2 * 3600)
    assert warn == local(NY, 2026, 11, 27, 7, 0)
    assert cal.local_text(warn) == "Fri 2026-11-27 07:00 EST"
    assert verdict_at(local(NY, 2026, 11, 26, 23, 0), warn, None) == "pass"  # 28 h later, a holiday
    assert verdict_at(warn, warn, None) == "pass"
    assert verdict_at(warn + 1, warn, None) == "warn"
    assert calendar_age(cal, loaded, local(NY, 2026, 11, 27, 6, 30)) == 1.5 * 3600


def test_without_the_holiday_thursday_counts() -> None:
    cal = parse_calendar({**BUSINESS, "holidays": None}, "raw.orders")
    assert deadline(cal, local(NY, 2026, 11, 25, 19, 0), 2 * 3600) == local(NY, 2026, 11, 26, 7, 0)


def test_weekend_is_skipped() -> None:
    cal = parse_calendar({"timezone": NY, "days": "mon-fri"}, "raw.orders")
    loaded = local(NY, 2026, 10, 16, 22, 0)  # Friday 22:00
    assert deadline(cal, loaded, 4 * 3600) == local(NY, 2026, 10, 19, 2, 0)  # Monday 02:00


def test_deadline_after_november_change_is_an_hour_later_than_naive() -> None:
    """Load Friday 2026-10-30 19:00 EDT, warn_after 2h: 1 h on Friday, then Monday 2026-11-02 (after
    the 1 November change to EST) 06:00-07:00. Monday 07:00 EST is 12:00 UTC; a naive offset (the
    load's -4 h) would say 11:00 UTC."""
    cal = parse_calendar({"timezone": NY, "days": "mon-fri", "hours": "06:00-20:00"}, "raw.orders")
    loaded = local(NY, 2026, 10, 30, 19, 0)
    warn = deadline(cal, loaded, 2 * 3600)
    assert warn == utc(2026, 11, 2, 12, 0)
    naive = utc(2026, 11, 2, 7, 0) + 4 * 3600
    assert warn - naive == 3600


def test_spring_forward_gap_runs_23_hours() -> None:
    cal = parse_calendar({"timezone": NY}, "s.t")
    loaded = local(NY, 2026, 3, 8, 0, 0)
    # every instant runs: a day of wall time is 23 real hours, the calendar counts real time
    assert deadline(cal, loaded, 86400) == loaded + 86400
    hours = parse_calendar({"timezone": NY, "hours": "00:00-24:00", "days": "sun"}, "s.t")
    assert calendar_age(hours, loaded, local(NY, 2026, 3, 9, 0, 0)) == 23 * 3600


def test_fall_back_repeated_hour_counts_twice() -> None:
    cal = parse_calendar({"timezone": NY, "hours": "01:00-02:00"}, "s.t")
    start = local(NY, 2026, 11, 1, 0, 0)
    assert calendar_age(cal, start, local(NY, 2026, 11, 1, 12, 0)) == 2 * 3600


def test_load_outside_calendar_starts_clock_at_next_opening() -> None:
    cal = parse_calendar(BUSINESS, "s.t")
    loaded = local(NY, 2026, 11, 28, 9, 0)  # Saturday
    assert deadline(cal, loaded, 60) == local(NY, 2026, 11, 30, 6, 1)


def test_deadlines_absent_without_load_or_threshold() -> None:
    cal = parse_calendar(BUSINESS, "s.t")
    assert deadlines(cal, None, 60, 120) == (None, None)
    warn, error = deadlines(None, 100.0, None, 120)
    assert warn is None and error == 220.0


def test_exhausted_at_closing_is_late_only_when_the_clock_resumes() -> None:
    cal = parse_calendar({"timezone": "UTC", "hours": "06:00-20:00"}, "s.t")
    loaded = utc(2026, 6, 1, 18, 0)
    # 2 h are used up exactly at 20:00; the age exceeds 2 h only once the clock runs again
    assert deadline(cal, loaded, 7200) == utc(2026, 6, 2, 6, 0)
    assert calendar_age(cal, loaded, utc(2026, 6, 2, 5, 0)) == 7200


# -- property: the clock against a minute-by-minute reference ------------------------------------

ZONES = [
    "UTC",
    NY,
    "Europe/Paris",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30 with DST
    "America/Santiago",  # changes at midnight
    "Pacific/Chatham",
]


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    cuts = sorted(draw(st.sets(st.integers(0, 48), min_size=2, max_size=6)))
    ranges = [(cuts[i] * 30, cuts[i + 1] * 30) for i in range(0, len(cuts) - 1, 2)]
    holidays = draw(st.sampled_from([(), ("US",), ("FR",), ("GB-ENG", "US-NY")]))
    return Calendar(
        timezone=draw(st.sampled_from(ZONES)),
        days=tuple(sorted(days)),
        hours=tuple(ranges),
        holidays=holidays,
    )


def brute_runs(cal: Calendar, minute_start: float) -> bool:
    return cal.runs_at(minute_start)


def brute_deadline(cal: Calendar, loaded: float, threshold_minutes: int) -> float:
    """Minute by minute: the start of the first running minute after ``threshold`` running minutes."""
    remaining = threshold_minutes
    t = loaded
    while True:
        if brute_runs(cal, t):
            if remaining == 0:
                return t
            remaining -= 1
        t += 60


def brute_age_minutes(cal: Calendar, loaded: float, now: float) -> int:
    count, t = 0, loaded
    while t < now:
        count += brute_runs(cal, t)
        t += 60
    return count


#: Minutes from 2015 to 2035.
start_minutes = st.integers(int(utc(2015, 1, 1) // 60), int(utc(2035, 1, 1) // 60))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cal=calendars(), start=start_minutes, threshold=st.integers(0, 8 * 60))
def test_deadline_matches_minute_by_minute(cal: Calendar, start: int, threshold: int) -> None:
    loaded = start * 60.0
    assert deadline(cal, loaded, threshold * 60.0) == brute_deadline(cal, loaded, threshold)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cal=calendars(),
    start=start_minutes,
    span=st.integers(0, 4 * 24 * 60),
    threshold=st.integers(1, 12 * 60),
)
def test_age_and_verdict_match_minute_by_minute(cal: Calendar, start: int, span: int, threshold: int) -> None:
    loaded, now = start * 60.0, (start + span) * 60.0
    age = brute_age_minutes(cal, loaded, now)
    assert calendar_age(cal, loaded, now) == age * 60
    # late exactly when now > deadline, as the alert rules test it
    assert (now > deadline(cal, loaded, threshold * 60.0)) == (age > threshold)


@settings(max_examples=60, deadline=None)
@given(cal=calendars(), start=start_minutes, offset=st.floats(0, 59.999), threshold=st.floats(0, 36000))
def test_intervals_are_ordered_and_deadline_monotone(
    cal: Calendar, start: int, offset: float, threshold: float
) -> None:
    loaded = start * 60.0 + offset
    previous_end = loaded
    for count, (lo, hi) in enumerate(running_intervals(cal, loaded)):
        assert previous_end <= lo < hi
        previous_end = hi
        if count > 20:
            break
    first = deadline(cal, loaded, threshold)
    assert first >= loaded + min(threshold, 0)
    assert deadline(cal, loaded, threshold + 60) >= first


def test_holiday_lookup_uses_local_date() -> None:
    cal = parse_calendar({"timezone": "Europe/Paris", "holidays": "FR"}, "s.t")
    assert cal.is_holiday(date(2026, 7, 14))
    # 2026-07-13 23:30 UTC is already the 14th in Paris: the clock is stopped
    assert not cal.runs_at(utc(2026, 7, 13, 23, 30))
    assert cal.runs_at(utc(2026, 7, 13, 21, 30))
