"""Streaming the exposition in pieces gives the same families and the same bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.exposition import (
    FAILURE_METRICS,
    PER_SOURCE_METRICS,
    Family,
    families,
    iter_families,
    iter_render,
    iter_text,
    render,
    render_families,
)
from dbt_prom_bridge.model import FreshnessRun, RunContext, build_run
from devtools import synthetic

NOW = 1_800_000_000.0


def synthetic_run(n: int, hostile: bool = True) -> FreshnessRun:
    manifest, sources = synthetic.generate(
        n, seed=8, now=NOW, hostile=hostile, runtime_errors_in_artifact=True
    )
    return build_run(
        parse_sources(sources),
        parse_manifest(manifest),
        RunContext(target="prod", meta_labels=("owner", "team")),
    )


def merged(pieces: list[Family]) -> list[Family]:
    out: list[Family] = []
    for piece in pieces:
        if out and out[-1].name == piece.name:
            out[-1].rows.extend(piece.rows)
        else:
            out.append(Family(piece.name, piece.label_names, list(piece.rows)))
    return out


RUN = synthetic_run(700)
RUNS = [RUN, replace(RUN, checks=()), replace(RUN, success=False, checks=(), elapsed=None, generated_at=None)]


@pytest.mark.parametrize("run", RUNS, ids=["full", "no-sources", "dbt-failed"])
@pytest.mark.parametrize("chunk", [1, 3, 64, 100_000])
def test_pieces_join_to_the_families(run: FreshnessRun, chunk: int) -> None:
    pieces = list(iter_families(run, chunk=chunk))
    assert merged(pieces) == families(run)
    assert all(p.rows for p in pieces)
    assert "".join(iter_render(pieces)) == render(run) == render_families(families(run))


@pytest.mark.parametrize("only", [FAILURE_METRICS, PER_SOURCE_METRICS, ("dbt_source_has_data",)])
def test_only_limits_the_pieces(only: tuple[str, ...]) -> None:
    assert "".join(iter_text(RUN, only)) == render_families(families(RUN, only))
    assert {f.name for f in iter_families(RUN, only, chunk=5)} <= set(only)


def test_every_header_is_written_once() -> None:
    text = "".join(iter_render(iter_families(RUN, chunk=10), timestamp_ms=1700000000000))
    helps = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps)) == len(families(RUN))
    assert all(line.endswith(" 1700000000000") for line in text.splitlines() if not line.startswith("#"))
