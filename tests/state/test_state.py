"""The newest-wins merge (pure): properties over random runs, and the rules one by one."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status
from dbt_prom_bridge.state import FUTURE_SKEW, initial, join, merge
from tests.reliability.runs import T0, check, failed, run

TABLES = ("a", "b", "c", "d")


@st.composite
def runs(draw: st.DrawFn) -> FreshnessRun:
    at = T0 + draw(st.integers(0, 1000))
    tables = draw(st.lists(st.sampled_from(TABLES), min_size=1, unique=True))
    checks = tuple(
        check("src", t, loaded=at - draw(st.integers(0, 5000)), checked=at - draw(st.integers(0, 30)))
        for t in sorted(tables)
    )
    return run(at=at, checks=checks)


def newest(all_runs: list[FreshnessRun]) -> dict[tuple[str, str], SourceCheck]:
    best: dict[tuple[str, str], SourceCheck] = {}
    for one in all_runs:
        for c in one.checks:
            mine = best.get(c.key)
            if mine is None or (c.checked_at or 0) > (mine.checked_at or 0):
                best[c.key] = c
    return best


@settings(max_examples=200)
@given(st.lists(runs(), min_size=1, max_size=6), st.randoms())
def test_any_order_ends_with_the_newest_check_of_each_source(
    all_runs: list[FreshnessRun], rnd: random.Random
) -> None:
    # two different checks of one source at the same instant cannot both be the newest
    stamps = [(c.key, c.checked_at) for r in all_runs for c in r.checks]
    assume(len(stamps) == len(set(stamps)))
    order = list(all_runs)
    rnd.shuffle(order)
    held = None
    for one in order:
        held = merge(held, one).state
    assert held is not None
    want = newest(all_runs)
    got = {c.key: c for c in held.checks}
    assert set(got) == set(want)
    for key, c in want.items():
        assert got[key].checked_at == c.checked_at and got[key].max_loaded_at == c.max_loaded_at
    assert held.generated_at == max(r.generated_at or 0 for r in all_runs)


@given(runs(), runs())
def test_a_tie_keeps_what_is_held(x: FreshnessRun, y: FreshnessRun) -> None:
    """Equal check times: the held check stays (pushing the same artifact again changes nothing)."""
    held = merge(None, x).state
    tied = replace(y, checks=tuple(replace(c, checked_at=T0) for c in y.checks))
    held = merge(None, replace(x, checks=tuple(replace(c, checked_at=T0) for c in x.checks))).state
    after = merge(held, tied)
    assert not after.updated or set(after.updated).isdisjoint({c.key for c in held.checks})


@given(runs(), runs())
def test_join_is_commutative_for_the_sources(x: FreshnessRun, y: FreshnessRun) -> None:
    a, b = join([x, y]), join([y, x])
    assert a is not None and b is not None
    assert {c.key: c.checked_at for c in a.checks} == {c.key: c.checked_at for c in b.checks}


@given(runs())
def test_merging_the_same_run_again_changes_nothing(one: FreshnessRun) -> None:
    held = merge(None, one).state
    again = merge(held, one)
    assert not again.changed and again.state.checks == held.checks
    assert len(again.not_newer) == len(one.checks)


def test_a_run_never_changes_what_it_did_not_check() -> None:
    held = merge(None, run(at=T0)).state
    after = merge(held, run(at=T0 + 60, tables=("a",), loaded_offset=1))
    assert after.updated == (("src", "a"),) and after.kept == 2
    assert {c.key: c for c in after.state.checks}[("src", "b")] == {c.key: c for c in held.checks}[
        ("src", "b")
    ]


def test_an_older_run_updates_nothing_and_keeps_the_run_level_values() -> None:
    held = merge(None, run(at=T0 + 60)).state
    late = merge(held, run(at=T0, loaded_offset=1))
    assert not late.changed and late.state.generated_at == T0 + 60


def test_never_checked_sources_are_not_run_and_checked_ones_stay() -> None:
    placeholder = replace(check("src", "b"), status=Status.NOT_RUN, max_loaded_at=None, checked_at=None)
    first = merge(None, run(at=T0, tables=("a",), unchecked=(placeholder,), complete=True)).state
    assert {c.key: c.status for c in first.checks} == {
        ("src", "a"): Status.PASS,
        ("src", "b"): Status.NOT_RUN,
    }
    # b is checked later; a run that does not check it keeps that check
    second = merge(first, run(at=T0 + 10, tables=("b",))).state
    third = merge(second, run(at=T0 + 20, tables=("a",), unchecked=(placeholder,), complete=True)).state
    assert {c.key: c.status for c in third.checks} == {("src", "a"): Status.PASS, ("src", "b"): Status.PASS}


def test_sources_the_manifest_no_longer_declares_are_removed_only_by_a_complete_run() -> None:
    held = merge(None, run(at=T0)).state
    assert merge(held, run(at=T0 + 1, tables=("a",))).removed == ()
    gone = merge(held, run(at=T0 + 1, tables=("a",), complete=True))
    assert set(gone.removed) == {("src", "b"), ("src", "c")}
    assert [c.key for c in gone.state.checks] == [("src", "a")]


def test_a_failed_run_only_drops_run_success() -> None:
    held = merge(None, run(at=T0)).state
    after = merge(held, failed())
    assert after.changed and not after.state.success
    assert after.state.checks == held.checks and after.state.generated_at == T0
    # the same artifact read again afterwards does not bring run_success back
    again = merge(after.state, run(at=T0))
    assert not again.changed and not again.state.success


def test_force_and_future_dated_held_checks() -> None:
    held = merge(None, run(at=T0 + 60)).state
    assert merge(held, run(at=T0, tables=("a",)), force=True).updated == (("src", "a"),)
    future = merge(None, run(at=T0 + 10 * FUTURE_SKEW)).state
    real = merge(future, run(at=T0, tables=("a",)), now=T0)
    assert real.updated == (("src", "a"),)


def test_initial_is_the_run_on_an_empty_destination() -> None:
    placeholder = replace(check("src", "z"), status=Status.NOT_RUN, checked_at=None)
    state = initial(run(at=T0, unchecked=(placeholder,)))
    assert [c.key for c in state.checks][-1] == ("src", "z") and len(state.checks) == 4


def test_a_held_source_read_back_from_series_gets_its_calendar_from_the_manifest() -> None:
    from dbt_prom_bridge.calendar import parse_calendar
    from dbt_prom_bridge.exposition import held_from_series, render
    from tests.state.test_models_state import series

    cal = parse_calendar({"days": "mon-fri", "timezone": "America/New_York"}, "src.a")
    first = run(T0)
    with_cal = replace(first, checks=tuple(replace(c, calendar=cal) for c in first.checks))
    back = held_from_series(series(render(initial(with_cal))), "shop", "dev", ())
    assert back is not None and all(c.calendar is None for c in back.checks)  # not in series
    # a later run checking only src.a, with the manifest declaring the others (and their calendar)
    later = replace(
        run(T0 + 60, tables=("a",)),
        unchecked=tuple(replace(c, calendar=cal) for c in with_cal.checks if c.table_name != "a"),
        complete=True,
    )
    merged = merge(back, later).state
    assert {c.table_name: c.calendar for c in merged.checks if c.table_name != "a"} == {"b": cal, "c": cal}
