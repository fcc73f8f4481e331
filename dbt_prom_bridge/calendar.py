"""Business calendars for freshness: when a source's freshness clock runs, and its deadlines.

A source declares a calendar in dbt ``meta`` (source level, overridden per table)::

    meta:
      dbt_prom:
        calendar:
          timezone: America/New_York   # IANA name; default UTC
          days: mon-fri                # ranges and lists (mon,wed,fri); default every day
          hours: "06:00-20:00"         # one or more local ranges ("06:00-12:00,13:00-20:00")
          holidays: US                 # country[-subdivision] as the ``holidays`` package names them

Like a business-hours SLA clock, a source's *calendar age* grows only while the calendar runs:
an instant runs when its local wall time (in ``timezone``, DST included through :mod:`zoneinfo`)
falls on a running day that is not a public holiday, within one of the ``hours`` ranges. dbt's
``warn_after``/``error_after`` stay the thresholds; with a calendar they are measured in calendar
time. A source's **deadline** for a threshold is the last instant at which its calendar age is
still within it: the source is late exactly when ``now > deadline`` (the test the alert rules
make with ``time() > deadline``), and the deadline depends only on the last load and the
calendar, so it can be computed once at push time.

Pure: no I/O. Public holidays come from the ``holidays`` package, imported only when a calendar
names a country.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dbt_prom_bridge.errors import CalendarError

#: The ``meta`` key under which dbt-prom-bridge reads its per-source settings.
META_KEY = "dbt_prom"
CALENDAR_KEY = "calendar"
FIELDS: tuple[str, ...] = ("timezone", "days", "hours", "holidays")

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES: dict[str, int] = {
    **{name: i for i, name in enumerate(DAY_NAMES)},
    **{
        full: i
        for i, full in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    "tues": 1,
    "weds": 2,
    "thur": 3,
    "thurs": 3,
}
_DAY_MINUTES = 24 * 60
_UTC = timezone.utc
#: How far a deadline is searched for before the calendar is declared unable to reach it.
_HORIZON_SECONDS = 100 * 366 * 86400


@dataclass(frozen=True, slots=True)
class Calendar:
    """When a freshness clock runs. Hashable, so it can key caches."""

    timezone: str = "UTC"
    #: Weekdays the clock runs (0 = Monday), sorted.
    days: tuple[int, ...] = tuple(range(7))
    #: Local ranges it runs in, as (start, end) minutes of the day, sorted, disjoint, end <= 1440.
    hours: tuple[tuple[int, int], ...] = ((0, _DAY_MINUTES),)
    #: Public-holiday calendars, ``COUNTRY`` or ``COUNTRY-SUBDIVISION``.
    holidays: tuple[str, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def days_text(self) -> str:
        return _days_text(self.days)

    def hours_text(self) -> str:
        return ",".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in self.hours)

    def describe(self) -> str:
        """One line for summaries and alert annotations, e.g.
        ``mon-fri 06:00-20:00 America/New_York, except US holidays``."""
        text = f"{self.days_text()} {self.hours_text()} {self.timezone}"
        if self.holidays:
            text += f", except {'/'.join(self.holidays)} holidays"
        return text

    def as_dict(self) -> dict[str, str]:
        """The calendar in the meta form it was declared in (normalised)."""
        out = {"timezone": self.timezone, "days": self.days_text(), "hours": self.hours_text()}
        if self.holidays:
            out["holidays"] = ",".join(self.holidays)
        return out

    def is_holiday(self, day: date) -> bool:
        return any(day in _holiday_dates(spec, day.year) for spec in self.holidays)

    def runs_on(self, day: date) -> bool:
        """True when the clock runs on local date ``day`` (a running weekday, not a holiday)."""
        return day.weekday() in self.days and not self.is_holiday(day)

    def runs_at(self, instant: float) -> bool:
        """True when the clock runs at Unix time ``instant`` (the definition; slow, for tests)."""
        local = datetime.fromtimestamp(instant, self.zone)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return self.runs_on(local.date()) and any(s <= minute < e for s, e in self.hours)

    def local_text(self, instant: float) -> str:
        """``instant`` as local time in the calendar's zone, e.g. ``Fri 2026-11-27 07:00 EST``."""
        local = datetime.fromtimestamp(instant, self.zone)
        return f"{DAY_NAMES[local.weekday()].title()} {local:%Y-%m-%d %H:%M} {local.tzname()}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: Sequence[int]) -> str:
    """Shortest text for a set of weekdays: runs of 3+ days as ranges (``mon-fri,sun``)."""
    if len(days) == 7:
        return "mon-sun"
    parts: list[str] = []
    run: list[int] = []
    for day in [*days, 99]:
        if run and day == run[-1] + 1:
            run.append(day)
            continue
        if run:
            if len(run) >= 3:
                parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
            else:
                parts.extend(DAY_NAMES[d] for d in run)
        run = [day]
    return ",".join(parts)


# -- parsing ----------------------------------------------------------------------------------


def _fail(where: str, field: str, problem: str) -> CalendarError:
    key = f"meta {META_KEY}.{CALENDAR_KEY}" + (f".{field}" if field else "")
    return CalendarError(f"source {where}: {key} {problem}; fix the calendar in the source's dbt meta")


def _parse_timezone(raw: object, where: str) -> str:
    if raw is None:
        return "UTC"
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(where, "timezone", f"{raw!r} is not an IANA time zone name")
    name = raw.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _fail(
            where,
            "timezone",
            f"{name!r} is not a known IANA time zone (e.g. UTC, Europe/Paris, America/New_York)",
        ) from None
    return name


def _items(raw: object, where: str, field: str, example: str) -> list[str]:
    """A comma-separated string or a list of strings -> stripped, non-empty items."""
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        items = [part for x in raw for part in x.split(",")]
    else:
        raise _fail(where, field, f"{raw!r} is not a string like {example!r} (quote it in YAML)")
    out = [x.strip() for x in items]
    if not out or any(not x for x in out):
        raise _fail(where, field, f"{raw!r} has an empty item; write it like {example!r}")
    return out


def _day(text: str, where: str) -> int:
    day = _DAY_ALIASES.get(text.lower())
    if day is None:
        raise _fail(where, "days", f"has {text!r}, which is not a day (mon, tue, wed, thu, fri, sat, sun)")
    return day


def _parse_days(raw: object, where: str) -> tuple[int, ...]:
    if raw is None:
        return tuple(range(7))
    days: set[int] = set()
    for item in _items(raw, where, "days", "mon-fri"):
        if "-" in item:
            first, _, last = item.partition("-")
            start, end = _day(first.strip(), where), _day(last.strip(), where)
            span = (end - start) % 7
            days.update((start + i) % 7 for i in range(span + 1))
        else:
            days.add(_day(item, where))
    return tuple(sorted(days))


def _minute(text: str, where: str, item: str) -> int:
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2 or len(hh) > 2:
        raise _fail(where, "hours", f"range {item!r} is not HH:MM-HH:MM (e.g. 06:00-20:00)")
    hours, minutes = int(hh), int(mm)
    if minutes >= 60 or hours > 24 or (hours == 24 and minutes):
        raise _fail(where, "hours", f"range {item!r} has a time outside 00:00-24:00")
    return hours * 60 + minutes


def _parse_hours(raw: object, where: str) -> tuple[tuple[int, int], ...]:
    if raw is None:
        return ((0, _DAY_MINUTES),)
    ranges: list[tuple[int, int]] = []
    for item in _items(raw, where, "hours", "06:00-20:00"):
        first, sep, last = item.partition("-")
        if not sep:
            raise _fail(where, "hours", f"range {item!r} is not HH:MM-HH:MM (e.g. 06:00-20:00)")
        start, end = _minute(first, where, item), _minute(last, where, item)
        if end <= start:
            raise _fail(
                where,
                "hours",
                f"range {item!r} ends before it starts; split a range past midnight in two "
                "(22:00-24:00,00:00-06:00)",
            )
        ranges.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _parse_holidays(raw: object, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    specs: list[str] = []
    for item in _items(raw, where, "holidays", "US"):
        country, _, subdiv = item.partition("-")
        spec = f"{country.upper()}-{subdiv}" if subdiv else country.upper()
        try:
            _holiday_dates(spec, 2000)
        except LookupError as exc:
            raise _fail(where, "holidays", f"{item!r}: {exc}") from None
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def parse_calendar(raw: object, where: str) -> Calendar:
    """Validate a ``calendar`` mapping; ``where`` names the source in errors."""
    if not isinstance(raw, dict):
        raise _fail(where, "", f"must be a mapping with {', '.join(FIELDS)}; got {raw!r}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise _fail(where, unknown[0], f"is not a calendar field (known: {', '.join(FIELDS)})")
    return Calendar(
        timezone=_parse_timezone(raw.get("timezone"), where),
        days=_parse_days(raw.get("days"), where),
        hours=_parse_hours(raw.get("hours"), where),
        holidays=_parse_holidays(raw.get("holidays"), where),
    )


def calendar_from_meta(meta: Iterable[tuple[str, str]], where: str) -> Calendar | None:
    """The calendar declared in a source's meta pairs (``dbt_prom`` as compact JSON), or None."""
    for key, value in meta:
        if key == META_KEY:
            return _calendar_from_text(value, where)
    return None


def _calendar_from_text(text: str, where: str) -> Calendar | None:
    if not text:
        return None
    try:
        return _cached_calendar(text)
    except CalendarError:
        _parse_meta(text, where)  # the same error, naming this source
        raise
    except RecursionError:  # pragma: no cover - absurdly nested JSON
        raise CalendarError(f"source {where}: meta {META_KEY} is nested too deeply") from None


def _parse_meta(text: str, where: str) -> Calendar | None:
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if not isinstance(value, dict):
        raise CalendarError(
            f"source {where}: meta {META_KEY} must be a mapping (e.g. {{calendar: {{days: mon-fri}}}}); "
            f"got {text[:60]!r}; fix the source's dbt meta"
        )
    if CALENDAR_KEY not in value or value[CALENDAR_KEY] is None:
        return None
    return parse_calendar(value[CALENDAR_KEY], where)


@lru_cache(maxsize=4096)
def _cached_calendar(text: str) -> Calendar | None:
    """One parse per distinct ``dbt_prom`` text (many sources share one calendar)."""
    return _parse_meta(text, "?")


@lru_cache(maxsize=1024)
def _holiday_dates(spec: str, year: int) -> frozenset[date]:
    """Public holidays of ``spec`` (``US``, ``US-NY``) in ``year``; LookupError when unknown."""
    import holidays

    country, _, subdiv = spec.partition("-")
    try:
        table = holidays.country_holidays(country, subdiv=subdiv or None, years=year)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise LookupError(
            f"not a holiday calendar of the holidays package ({str(exc).strip(chr(39))}); "
            "use an ISO 3166 country code, optionally with a subdivision (US, US-NY, GB-ENG, DE-BY)"
        ) from None
    return frozenset(table)


# -- the clock ----------------------------------------------------------------------------------


def _offset(zone: ZoneInfo, instant: float) -> float:
    off = datetime.fromtimestamp(instant, zone).utcoffset()
    return 0.0 if off is None else off.total_seconds()


def _next_change(zone: ZoneInfo, start: float, offset: float, limit: float) -> float:
    """The first instant in ``(start, limit]`` where the UTC offset is no longer ``offset``, or
    ``limit`` when it stays (offset changes happen at whole seconds)."""
    if _offset(zone, limit) == offset:
        return limit
    lo, hi = math.floor(start), math.ceil(limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == offset:
            lo = mid
        else:
            hi = mid
    return float(hi)


_WEEK = 7 * 86400.0


def running_intervals(cal: Calendar, start: float) -> Iterator[tuple[float, float]]:
    """The intervals ``[a, b)`` (Unix seconds, increasing, from ``start`` on) when the clock runs.

    Consecutive intervals may touch (a range ending at 24:00 and one starting at 00:00, or the
    end of a cached week). Each calendar's intervals are computed once per week of UTC
    (:func:`_week`), so many sources on one calendar cost a lookup each.
    """
    if cal.hours == ((0, _DAY_MINUTES),) and len(cal.days) == 7 and not cal.holidays:
        yield (start, math.inf)
        return
    week = math.floor(start / _WEEK)
    last = week + _HORIZON_SECONDS / _WEEK
    while week <= last:
        intervals = _week(cal, week)
        first = bisect.bisect_right(intervals, (start, math.inf)) - 1 if start > week * _WEEK else 0
        for lo, hi in intervals[max(first, 0) :]:
            if hi > start:
                yield (max(lo, start), hi)
        week += 1
    raise CalendarError(f"calendar {cal.describe()} does not run within a century")


@lru_cache(maxsize=8192)
def _week(cal: Calendar, week: int) -> tuple[tuple[float, float], ...]:
    """The running intervals within UTC week ``week`` (``[week * 7d, (week + 1) * 7d)``)."""
    start, end = week * _WEEK, (week + 1) * _WEEK
    out: list[tuple[float, float]] = []
    for lo, hi in _walk(cal, start):
        if lo >= end:
            break
        out.append((lo, min(hi, end)))
    return tuple(out)


def _walk(cal: Calendar, start: float) -> Iterator[tuple[float, float]]:
    """:func:`running_intervals` computed: walks UTC in pieces of constant UTC offset of at most
    a day; within one, local wall time is UTC plus the offset, so each running (date, hours
    range) maps to one UTC interval."""
    zone = cal.zone
    at = start
    while at - start < _HORIZON_SECONDS:
        offset = _offset(zone, at)
        piece_end = _next_change(zone, at, offset, at + 86400.0)
        wall_lo, wall_hi = at + offset, piece_end + offset
        day = datetime.fromtimestamp(wall_lo, _UTC).date()
        last_day = datetime.fromtimestamp(wall_hi, _UTC).date()
        while day <= last_day:
            if cal.runs_on(day):
                midnight = datetime(day.year, day.month, day.day, tzinfo=_UTC).timestamp()
                for s, e in cal.hours:
                    lo = max(midnight + s * 60, wall_lo)
                    hi = min(midnight + e * 60, wall_hi)
                    if lo < hi:
                        yield (lo - offset, hi - offset)
            day += timedelta(days=1)
        at = piece_end
    raise CalendarError(f"calendar {cal.describe()} does not run within a century")


def deadline(cal: Calendar | None, loaded_at: float, threshold: float) -> float:
    """The last instant at which the calendar age since ``loaded_at`` is still ``<= threshold``
    seconds: the source is late exactly when ``now > deadline``. Without a calendar,
    ``loaded_at + threshold``."""
    if cal is None:
        return loaded_at + threshold
    remaining = threshold
    for lo, hi in running_intervals(cal, loaded_at):
        if remaining < hi - lo:
            return lo + remaining
        remaining -= hi - lo
    raise AssertionError("running_intervals ended")  # pragma: no cover - it raises or never ends


def calendar_age(cal: Calendar | None, loaded_at: float, now: float) -> float:
    """Seconds the clock ran between ``loaded_at`` and ``now`` (0 when ``now`` is earlier)."""
    if now <= loaded_at:
        return 0.0
    if cal is None:
        return now - loaded_at
    total = 0.0
    for lo, hi in running_intervals(cal, loaded_at):
        if lo >= now:
            break
        total += min(hi, now) - lo
    return total


def deadlines(
    cal: Calendar | None, loaded_at: float | None, warn_after: float | None, error_after: float | None
) -> tuple[float | None, float | None]:
    """(warn deadline, error deadline); ``None`` where there is no load time or no threshold."""
    if loaded_at is None:
        return None, None
    warn = None if warn_after is None else deadline(cal, loaded_at, warn_after)
    error = None if error_after is None else deadline(cal, loaded_at, error_after)
    return warn, error


def verdict_at(now: float, warn_deadline: float | None, error_deadline: float | None) -> str:
    """``pass``, ``warn`` or ``error`` at ``now`` given the deadlines (late when ``now > deadline``)."""
    if error_deadline is not None and now > error_deadline:
        return "error"
    if warn_deadline is not None and now > warn_deadline:
        return "warn"
    return "pass"


def pauses(cal: Calendar, start: float) -> Iterator[tuple[float, float]]:
    """The pauses ``[a, b)`` of the clock from ``start`` on: gaps between its running intervals
    (touching intervals merged). None for a clock that always runs."""
    end: float | None = None
    for lo, hi in running_intervals(cal, start):
        if end is not None and lo > end:
            yield (end, lo)
        end = hi if end is None else max(end, hi)


# -- local time in Prometheus templates ----------------------------------------------------------

#: Alert annotations render a deadline in the calendar's time zone from a table of its UTC offsets
#: over these years (Prometheus templates know no time zones); outside them, in UTC.
LOCAL_TIME_YEARS: tuple[int, int] = (2020, 2040)


@lru_cache(maxsize=256)
def offset_table(zone_name: str) -> tuple[tuple[float, int, str], ...]:
    """(from, UTC offset seconds, abbreviation) over :data:`LOCAL_TIME_YEARS`, in time order."""
    zone = ZoneInfo(zone_name)
    start = datetime(LOCAL_TIME_YEARS[0], 1, 1, tzinfo=_UTC).timestamp()
    end = datetime(LOCAL_TIME_YEARS[1], 1, 1, tzinfo=_UTC).timestamp()
    out: list[tuple[float, int, str]] = []
    at = start
    while at < end:
        local = datetime.fromtimestamp(at, zone)
        offset = int(_offset(zone, at))
        out.append((at, offset, local.tzname() or "UTC"))
        nxt = at
        while nxt < end and _offset(zone, nxt) == offset:
            nxt = _next_change(zone, nxt, offset, min(nxt + 86400.0 * 30, end))
        at = nxt
    return tuple(out)


def window() -> tuple[float, float]:
    return (
        datetime(LOCAL_TIME_YEARS[0], 1, 1, tzinfo=_UTC).timestamp(),
        datetime(LOCAL_TIME_YEARS[1], 1, 1, tzinfo=_UTC).timestamp(),
    )


def deadline_text(cal: Calendar, instant: float) -> str:
    """``instant`` as alert annotations show it: local time in the calendar's zone within
    :data:`LOCAL_TIME_YEARS`, else UTC (``Fri 2026-11-27 07:00 EST``)."""
    lo, hi = window()
    if lo <= instant < hi:
        for start, offset, abbr in reversed(offset_table(cal.timezone)):
            if instant >= start:
                return _wall_text(instant + offset) + f" {abbr}"
    return _wall_text(instant) + " UTC"


def _wall_text(seconds: float) -> str:
    wall = datetime.fromtimestamp(seconds, _UTC)
    return f"{DAY_NAMES[wall.weekday()].title()} {wall:%Y-%m-%d %H:%M}"
