"""The fast reader (msgspec) gives exactly the records Python's ``json`` gives, or steps aside.

For every artifact we have (the sample project's, the public corpus, synthetic ones, hostile
ones), ``parse_*`` of the fast reader's reduced document equals ``parse_*`` of ``json.load``'s
full document, or both refuse with the same message, or the fast reader returns None (and the
other readers, whose messages are tested elsewhere, take over)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_prom_bridge import artifacts, fastjson
from dbt_prom_bridge.errors import ArtifactError
from devtools import synthetic
from tests.conftest import CORPUS

DATA = Path(__file__).resolve().parents[1] / "data"


def outcome(parse: Callable[[Any, str], Any], doc: Any) -> Any:
    try:
        return parse(doc, "x.json")
    except ArtifactError as exc:
        return ("refused", str(exc))


def same(path: Path, kind: str) -> None:
    reduce, parse = (
        (fastjson.manifest_doc, artifacts.parse_manifest)
        if kind == "manifest"
        else (fastjson.sources_doc, artifacts.parse_sources)
    )
    reduced = reduce(path)
    if reduced is None:
        return  # stepped aside: the other readers decide
    full = json.loads(path.read_bytes())
    assert outcome(parse, reduced) == outcome(parse, full)


def test_the_sample_artifacts_read_the_same() -> None:
    for sub in ("sample", "models"):
        same(DATA / sub / "manifest.json", "manifest")
    same(DATA / "sample" / "sources.json", "sources")
    assert fastjson.manifest_doc(DATA / "sample" / "manifest.json") is not None


def test_synthetic_hostile_artifacts_read_the_same(tmp_path: Path) -> None:
    written = synthetic.write(tmp_path, 300, seed=5, hostile=True)
    same(written.manifest, "manifest")
    same(written.sources_json, "sources")
    assert fastjson.sources_doc(written.sources_json) is not None


CORPUS_FILES = sorted([*CORPUS.glob("*.json"), *CORPUS.glob("fixtures/*.json")]) if CORPUS.is_dir() else []


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is absent")
def test_every_corpus_artifact_reads_the_same() -> None:
    for path in CORPUS_FILES:
        same(path, "sources")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, '
        b'"sources": {"source.p.s.t": {"name": NaN}}}',
        b'{"metadata": {}, "sources": {"source.p.s.t": "\xff"}}',
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, '
        b'"sources": {"source.p.s.t": {"name": "\\ud800"}}}',
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, '
        b'"sources": {"source.p.s.t": []}}',
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, '
        b'"sources": []}',
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}}',
        b"[1, 2]",
        b"",
        b'{"metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"}, '
        b'"sources": {"source.p.s.t": {"meta": {"big": 1' + b"0" * 400 + b', "f": 1e400}}}}',
    ],
)
def test_hostile_manifests_read_the_same_or_step_aside(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(raw)
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        assert fastjson.manifest_doc(path) is None  # json cannot read it: neither may we
        return
    same(path, "manifest")


def test_big_files_are_left_to_the_streaming_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = synthetic.write(tmp_path, 20, seed=1).manifest
    monkeypatch.setattr(fastjson, "MAX_BYTES", path.stat().st_size - 1)
    assert fastjson.manifest_doc(path) is None
    assert fastjson.manifest_doc(tmp_path / "missing.json") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
node_keys = st.sampled_from([*fastjson.SOURCE_NODE_KEYS, "columns", "description", "tags"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nodes=st.dictionaries(
        st.sampled_from(["source.p.s.t", "source.p.s.u", "source.q.r.v", "bad"]),
        st.dictionaries(node_keys, json_values, max_size=6) | json_values,
        max_size=3,
    )
)
def test_any_manifest_reads_the_same(nodes: dict[str, Any], tmp_path: Path) -> None:
    doc = {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"},
        "nodes": {"model.p.m": {"columns": {}}},
        "sources": nodes,
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    same(path, "manifest")
