"""Remote write encoding (pure): the same series as the exposition, in protocol shape."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.artifacts import parse_manifest, parse_sources
from dbt_prom_bridge.config import RemoteWriteConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import (
    BUILD_INFO,
    PER_SOURCE_METRICS,
    RUN_METRICS,
    RUN_SUCCESS,
    SOURCES,
    render,
)
from dbt_prom_bridge.model import FreshnessRun, RunContext, build_run
from dbt_prom_bridge.sinks import remote_write
from dbt_prom_bridge.sinks.remote_write import batches, compress, messages
from devtools import synthetic

NOW = 1_800_000_000.0
STAMP = 1_800_000_123_456

Series = tuple[str, tuple[tuple[str, str], ...], float]


def make_run(n: int = 400, hostile: bool = True, meta: tuple[str, ...] = ("owner", "team")) -> FreshnessRun:
    manifest, sources = synthetic.generate(
        n, seed=12, now=NOW, hostile=hostile, runtime_errors_in_artifact=True
    )
    return build_run(
        parse_sources(sources), parse_manifest(manifest), RunContext(target="prod", meta_labels=meta)
    )


def decode(
    run: FreshnessRun, config: RemoteWriteConfig, run_level: bool = True
) -> tuple[list[Series], list[Any], list[int]]:
    """Every series the requests carry, the metadata, and the series count of each request."""
    stamps = {STAMP} | {round(c.checked_at * 1000) for c in run.checks if c.checked_at is not None}
    stamps |= {round(m.built_at * 1000) for m in run.models if m.built_at is not None}
    msgs = messages()
    out: list[Series] = []
    metadata: list[Any] = []
    sizes: list[int] = []
    for batch in batches(run, config, STAMP, run_level=run_level):
        request = msgs.WriteRequest()
        request.ParseFromString(batch.body)
        sizes.append(len(request.timeseries))
        assert batch.series == len(request.timeseries)
        metadata.extend(request.metadata)
        for ts in request.timeseries:
            names = [label.name for label in ts.labels]
            assert names == sorted(names), "labels must be sorted by name"
            assert len(names) == len(set(names))
            assert all(label.value for label in ts.labels), "no empty label values"
            [sample] = ts.samples
            assert sample.timestamp in stamps
            labels = {label.name: label.value for label in ts.labels}
            name = labels.pop("__name__")
            out.append((name, tuple(sorted(labels.items())), ts.samples[0].value))
    return out, metadata, sizes


def expected(run: FreshnessRun, extra: dict[str, str], only: tuple[str, ...] | None = None) -> list[Series]:
    """What Prometheus stores from the exposition text, plus job/grouping labels."""
    out: list[Series] = []
    for fam in text_string_to_metric_families(render(run, only)):
        for sample in fam.samples:
            labels = {k: v for k, v in {**sample.labels, **extra}.items() if v != ""}
            out.append((sample.name, tuple(sorted(labels.items())), sample.value))
    return out


def test_a_full_run_sends_exactly_the_exposition_series() -> None:
    run = make_run()
    config = RemoteWriteConfig(url="http://rw", job="freshness", labels=(("region", "eu/west"),), batch=700)
    got, metadata, sizes = decode(run, config)
    assert Counter(got) == Counter(expected(run, {"job": "freshness", "region": "eu/west"}))
    assert all(size <= 700 for size in sizes) and sum(sizes) == len(got) and len(sizes) > 3
    # one GAUGE metadata entry per family, in the first request only
    assert len(metadata) == len(PER_SOURCE_METRICS) + len(RUN_METRICS) and {m.type for m in metadata} == {2}
    assert {m.metric_family_name for m in metadata} >= {RUN_SUCCESS, SOURCES, BUILD_INFO}


def test_hostile_values_arrive_unescaped() -> None:
    run = make_run()
    got, _, _ = decode(run, RemoteWriteConfig(url="http://rw"))
    values = {v for _n, labels, _v in got for _k, v in labels}
    assert any("\n" in v for v in values) and any('"' in v for v in values) and any("\\" in v for v in values)
    assert any("日本語" in v for v in values)


def test_upper_case_meta_label_sorts_before_name() -> None:
    run = replace(make_run(30, hostile=False, meta=()), meta_labels=("Owner",))
    run = replace(run, checks=tuple(replace(c, meta_values=("me",)) for c in run.checks))
    msgs = messages()
    request = msgs.WriteRequest()
    request.ParseFromString(next(batches(run, RemoteWriteConfig(url="http://rw"), STAMP)).body)
    assert [label.name for label in request.timeseries[0].labels][:2] == ["Owner", "__name__"]


def test_each_source_carries_its_check_time_and_run_level_the_run_time() -> None:
    run = make_run(60, hostile=False)
    msgs = messages()
    by_source: dict[tuple[str, str], set[int]] = {}
    run_level: set[int] = set()
    for batch in batches(run, RemoteWriteConfig(url="http://rw"), STAMP):
        request = msgs.WriteRequest()
        request.ParseFromString(batch.body)
        for ts in request.timeseries:
            labels = {label.name: label.value for label in ts.labels}
            if "source_name" in labels:
                by_source.setdefault((labels["source_name"], labels["table_name"]), set()).add(
                    ts.samples[0].timestamp
                )
            else:
                run_level.add(ts.samples[0].timestamp)
    want = {c.key: {round(c.checked_at * 1000)} for c in run.checks if c.checked_at is not None}
    assert by_source == want and len(want) == len(run.checks)
    assert run_level == {STAMP}


def test_without_run_level_only_the_sources_are_sent() -> None:
    got, _, _ = decode(make_run(100), RemoteWriteConfig(url="http://rw"), run_level=False)
    names = {n for n, _l, _v in got}
    assert SOURCES not in names and RUN_SUCCESS not in names and "dbt_source_freshness_status" in names


def test_a_failed_run_sends_only_run_success_and_build_info() -> None:
    run = replace(make_run(50), success=False, checks=(), unchecked=(), generated_at=None, elapsed=None)
    got, _metadata, sizes = decode(run, RemoteWriteConfig(url="http://rw"))
    assert {n for n, _l, _v in got} == {RUN_SUCCESS, BUILD_INFO}
    assert [v for n, _l, v in got if n == RUN_SUCCESS] == [0.0]
    assert sizes == [2]


@pytest.mark.parametrize(
    "labels",
    [(("job", "x"),), (("source_name", "x"),), (("owner", "x"),), (("bad-name", "x"),), (("__x", "y"),)],
)
def test_extra_labels_must_not_collide(labels: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(UsageError):
        list(batches(make_run(10), RemoteWriteConfig(url="http://rw", labels=labels), STAMP))


def test_batch_must_be_positive() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        list(batches(make_run(10), RemoteWriteConfig(url="http://rw", batch=0), STAMP))


def test_batches_are_deterministic_and_snappy_round_trips() -> None:
    cramjam = pytest.importorskip("cramjam")
    run = make_run(200)
    config = RemoteWriteConfig(url="http://rw", batch=1000)
    first = [b.body for b in batches(run, config, STAMP)]
    assert first == [b.body for b in batches(run, config, STAMP)]
    assert bytes(cramjam.snappy.decompress_raw(compress(first[0]))) == first[0]


def test_source_chunks_do_not_change_the_series(monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(300)
    config = RemoteWriteConfig(url="http://rw", batch=10_000)
    whole, _, _ = decode(run, config)
    monkeypatch.setattr(remote_write, "CHUNK_SOURCES", 7)
    assert Counter(decode(run, config)[0]) == Counter(whole)


@pytest.mark.parametrize(
    ("status", "text", "result"),
    [
        (400, "HTTP 400 from http://p/api/v1/write: out of order sample", True),
        (400, "HTTP 400 from x: out of bounds", True),
        (400, "HTTP 400 from x: duplicate sample for timestamp", True),
        (409, "HTTP 409 from x: out of order sample", True),
        (400, "HTTP 400 from x: err-mimir-sample-out-of-order", True),
        (400, "HTTP 400 from x: err-mimir-sample-timestamp-too-old", True),
        (400, "HTTP 400 from x: invalid labels", False),
        (500, "HTTP 500 from x: out of order sample", False),
        (None, "cannot reach x", False),
    ],
)
def test_too_old_answers(status: int | None, text: str, result: bool) -> None:
    assert remote_write.too_old(PushError(text, status=status)) is result


def test_models_are_sent_with_their_build_time() -> None:
    from tests.state.test_models_state import model

    models = (
        model("orders", built=NOW - 60, meta_values=("ana", "")),
        model("daily", None, built=None, seen_at=NOW, build_duration=None, meta_values=("", "core")),
    )
    run = replace(make_run(20, hostile=False), models=models)
    config = RemoteWriteConfig(url="http://rw", job="freshness")
    got, metadata, _ = decode(run, config)
    assert Counter(got) == Counter(expected(run, {"job": "freshness"}))
    assert {m.metric_family_name for m in metadata} >= {
        "dbt_model_build_status",
        "dbt_model_freshness_warn_after_seconds",
    }
    msgs = messages()
    stamps: dict[str, set[int]] = {}
    for batch in batches(run, config, STAMP):
        request = msgs.WriteRequest()
        request.ParseFromString(batch.body)
        for ts in request.timeseries:
            labels = {label.name: label.value for label in ts.labels}
            if "model" in labels:
                stamps.setdefault(labels["model"], set()).add(ts.samples[0].timestamp)
    # a build's series carry the build's end; a model never built, the run's time
    assert stamps == {"orders": {round((NOW - 60) * 1000)}, "daily": {STAMP}}
