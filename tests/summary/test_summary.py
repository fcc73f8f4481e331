"""The human table and the JSON summary."""

from __future__ import annotations

import json

from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold
from dbt_prom_bridge.summary import as_dict, as_json, table

NOW = 1_800_000_000.0


def check(name: str, status: Status, age: float | None, has_data: bool | None = True) -> SourceCheck:
    return SourceCheck(
        unique_id=f"source.p.s.{name}",
        source_name="s",
        table_name=name,
        database="db",
        schema="sc",
        identifier=name,
        status=status,
        max_loaded_at=None if age is None else NOW - age,
        has_data=has_data,
        checked_at=NOW,
        warn_after=Threshold(1, "hour"),
        error_after=Threshold(2, "day"),
        duration=0.1,
        meta_values=("alice",),
    )


RUN = FreshnessRun(
    project="p",
    target="dev",
    checks=(
        check("fresh", Status.PASS, 120),
        check("empty", Status.ERROR, None, has_data=False),
        check("broken", Status.RUNTIME_ERROR, None, has_data=None),
        check("future", Status.PASS, -7200),
    ),
    generated_at=NOW,
    elapsed=1.5,
    success=True,
    meta_labels=("owner",),
)


def test_table_plain() -> None:
    out = table(RUN, colour=False, now=lambda: NOW)
    assert out.splitlines()[0].split() == ["SOURCE", "STATUS", "AGE", "THRESHOLD"]
    assert "s.fresh" in out and "2m00s" in out and "warn 1 hour, error 2 days" in out
    assert "no data" in out
    assert "-2h00m (future)" in out
    assert "\x1b[" not in out
    assert out.splitlines()[-1] == "4 sources in p/dev: 2 pass, 1 error, 1 runtime_error"


def test_table_colour_only_on_request() -> None:
    out = table(RUN, colour=True, now=lambda: NOW)
    assert "\x1b[31m" in out and "\x1b[0m" in out


def test_json_has_everything() -> None:
    doc = json.loads(as_json(RUN, now=lambda: NOW))
    assert doc == as_dict(RUN, now=lambda: NOW)
    assert doc["counts"] == {"pass": 2, "warn": 0, "error": 1, "runtime_error": 1, "not_run": 0}
    fresh = next(s for s in doc["sources"] if s["table_name"] == "fresh")
    assert fresh["age_seconds"] == 120
    assert fresh["warn_after_seconds"] == 3600
    assert fresh["meta"] == {"owner": "alice"}


def test_large_runs_list_the_most_severe_sources_only() -> None:
    import dataclasses

    many = [check(f"t{i:04d}", Status.PASS, 60) for i in range(500)]
    many[250] = check("t0250", Status.ERROR, 60)
    many[7] = check("t0007", Status.WARN, 60)
    run = dataclasses.replace(RUN, checks=tuple(many))
    out = table(run, now=lambda: NOW, limit=10).splitlines()
    rows = out[1:-2]
    assert len(rows) == 10
    assert [r.split()[0] for r in rows][:2] == ["s.t0000", "s.t0001"]  # name order kept
    assert any("s.t0250" in r and "error" in r for r in rows)
    assert any("s.t0007" in r and "warn" in r for r in rows)
    assert "490 more passing sources not shown" in out[-2] and "--format json" in out[-2]
    # every source that does not pass is listed, whatever the limit
    failing = dataclasses.replace(run, checks=tuple(check(f"t{i:04d}", Status.ERROR, 60) for i in range(20)))
    listed = table(failing, now=lambda: NOW, limit=10).splitlines()[1:-1]
    assert len(listed) == 20 and not any("not shown" in line for line in listed)
    assert out[-1] == "500 sources in p/dev: 498 pass, 1 warn, 1 error"
    assert len(table(run, now=lambda: NOW, limit=None).splitlines()) == 502
