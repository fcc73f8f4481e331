"""The streamed readers give exactly what the whole-document parsers give (and the same refusals)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dbt_prom_bridge.artifacts import (
    load_json,
    parse_manifest,
    parse_sources,
    read_manifest,
    read_sources,
)
from dbt_prom_bridge.errors import ArtifactError
from devtools import synthetic
from tests.conftest import corpus_files, needs_corpus

NOW = 1_800_000_000.0


@pytest.mark.parametrize("hostile", [False, True])
def test_streamed_equals_whole_for_synthetic_artifacts(tmp_path: Path, hostile: bool) -> None:
    written = synthetic.write(
        tmp_path, 2500, seed=21, now=NOW, hostile=hostile, runtime_errors_in_artifact=True
    )
    whole_manifest = parse_manifest(json.loads(written.manifest.read_bytes()), str(written.manifest))
    whole_sources = parse_sources(json.loads(written.sources_json.read_bytes()), str(written.sources_json))
    assert read_manifest(written.manifest) == whole_manifest
    assert read_sources(written.sources_json) == whole_sources


def test_metadata_after_the_data_still_reads(tmp_path: Path) -> None:
    manifest, sources = synthetic.generate(50, seed=2, now=NOW)
    path_m, path_s = tmp_path / "manifest.json", tmp_path / "sources.json"
    path_m.write_text(json.dumps({"sources": manifest["sources"], "metadata": manifest["metadata"]}))
    path_s.write_text(json.dumps({"results": sources["results"], "metadata": sources["metadata"]}))
    assert read_manifest(path_m) == parse_manifest(manifest, str(path_m))
    assert read_sources(path_s) == parse_sources({**sources, "elapsed_time": None}, str(path_s))


def outcome(func, *args):
    try:
        return func(*args)
    except ArtifactError as exc:
        return f"ArtifactError: {exc}"


@needs_corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_files_read_the_same_streamed(path: Path) -> None:
    def whole(p: Path):
        return parse_sources(load_json(p, "sources.json", "x"), str(p))

    assert outcome(read_sources, path) == outcome(whole, path)


def head(schema: str) -> str:
    return f'{{"metadata": {{"dbt_schema_version": "https://schemas.getdbt.com/dbt/{schema}.json"}}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (head("manifest/v99") + ', "sources": {}}', "manifest/v99"),
        (head("sources/v3") + ', "results": []}', "expected a manifest.json"),
        (head("manifest/v12") + ', "sources": []}', "no 'sources' map"),
        (head("manifest/v12") + ', "nodes": {}}', "no 'sources' map"),
        (head("manifest/v12") + ', "sources": {"a": 1', "not valid JSON"),
        (head("manifest/v12") + ', "sources": {"source.p.s.t": 3}}', "is not an object"),
        ("", "is empty"),
        ("[]", "found a JSON list"),
    ],
)
def test_manifest_refusals_keep_their_messages(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(ArtifactError, match=re.escape(message)) as streamed:
        read_manifest(path)
    try:
        parse_manifest(
            load_json(
                path, "manifest.json", "run `dbt parse` (or any dbt command) first, or pass --manifest"
            ),
            str(path),
        )
    except ArtifactError as exc:
        assert str(exc) == str(streamed.value)
    else:  # pragma: no cover - the whole-document path must refuse too
        pytest.fail("whole-document parse accepted what the streamed reader refused")


def test_shared_records_are_equal_but_not_duplicated(tmp_path: Path) -> None:
    written = synthetic.write(tmp_path, 3000, seed=3, now=NOW)
    manifest = read_manifest(written.manifest)
    defs = list(manifest.sources.values())
    by_name: dict[str, set[int]] = {}
    for d in defs:
        by_name.setdefault(d.source_name, set()).add(id(d.source_name))
    assert all(len(ids) == 1 for ids in by_name.values())
    thresholds = {id(d.warn_after) for d in defs if d.warn_after is not None}
    assert len(thresholds) <= 20
