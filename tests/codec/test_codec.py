"""The records' one codec: both shapes round-trip every field; bad input is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dbt_prom_bridge.codec import (
    check_from_json,
    check_from_row,
    check_to_json,
    check_to_row,
    run_from_json,
    run_to_json,
)
from dbt_prom_bridge.model import Status
from tests.reliability.runs import check, failed, run


@pytest.mark.parametrize("rows", [False, True])
def test_runs_round_trip_through_json(rows: bool) -> None:
    placeholder = check(
        "src", "z", status=Status.NOT_RUN, loaded=None, checked=None, meta=(("owner", 'ü\n"x'),)
    )
    original = run(unchecked=(placeholder,), complete=True, meta_labels=("owner",), warnings=("w",))
    text = json.dumps(run_to_json(original, rows=rows))
    assert run_from_json(json.loads(text)) == original
    assert run_from_json(json.loads(json.dumps(run_to_json(failed(), rows=rows)))) == failed()


def test_every_field_is_in_both_shapes() -> None:
    c = check("src", "a")
    assert check_from_json(check_to_json(c)) == c == check_from_row(check_to_row(c))
    assert len(check_to_row(c)) == len(check_to_json(c))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(checked_at=float("nan")),
        lambda d: d.update(max_loaded_at="soon"),
        lambda d: d.update(status="fresh"),
        lambda d: d.update(warn_after=[0, "hour"]),
        lambda d: d.update(has_data="yes"),
        lambda d: d.pop("unique_id"),
    ],
)
def test_bad_values_are_refused(mutate: Callable[[dict[str, Any]], object]) -> None:
    raw = check_to_json(check("src", "a"))
    mutate(raw)
    with pytest.raises((KeyError, TypeError, ValueError)):
        check_from_json(raw)


def test_a_row_of_another_layout_is_refused() -> None:
    doc = run_to_json(run(), rows=True)
    doc["check_fields"] = ["table_name", *doc["check_fields"][1:]]
    with pytest.raises(ValueError):
        run_from_json(doc)
    with pytest.raises(ValueError):
        check_from_row("abc")
