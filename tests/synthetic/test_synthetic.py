"""The synthetic artifact generator: deterministic, dbt-valid documents with every case the bridge handles."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.artifacts import parse_manifest, parse_sources, read_manifest, read_sources
from dbt_prom_bridge.exposition import render
from dbt_prom_bridge.model import FreshnessRun, RunContext, Status, build_run
from dbt_prom_bridge.state import initial
from devtools import synthetic
from tests.conftest import CORPUS

NOW = 1_800_000_000.0


def run_of(
    manifest: dict[str, object], sources: dict[str, object], meta: tuple[str, ...] = ()
) -> FreshnessRun:
    return build_run(
        parse_sources(sources), parse_manifest(manifest), RunContext(target="prod", meta_labels=meta)
    )


def test_same_arguments_give_the_same_documents() -> None:
    first = synthetic.generate(500, seed=7, now=NOW)
    assert synthetic.generate(500, seed=7, now=NOW) == first
    assert synthetic.generate(500, seed=8, now=NOW) != first
    manifest, sources = first
    assert len(manifest["sources"]) == 500
    assert sources["metadata"]["generated_at"] == "2027-01-15T08:00:00.000000Z"


def test_write_streams_the_same_bytes_as_generate(tmp_path: Path) -> None:
    manifest, sources = synthetic.generate(400, seed=2, now=NOW, hostile=True)
    written = synthetic.write(tmp_path, 400, seed=2, now=NOW, hostile=True)
    assert written.manifest.read_text(encoding="utf-8") == json.dumps(manifest)
    assert written.sources_json.read_text(encoding="utf-8") == json.dumps(sources)
    assert written.n_results == len(sources["results"])
    assert (tmp_path / "dbt_project.yml").read_text().startswith(f"name: {synthetic.DEFAULT_PROJECT}\n")


def test_every_case_the_bridge_handles_is_present() -> None:
    manifest, sources = synthetic.generate(5000, seed=0, now=NOW)
    run = initial(run_of(manifest, sources))
    counts = Counter(c.status for c in run.checks)
    total = len(run.checks)
    # Shares follow synthetic.Shape (seeded, so stable; ranges keep the test readable).
    assert 0.70 < counts[Status.PASS] / total < 0.85
    assert 0.05 < counts[Status.WARN] / total < 0.12
    assert 0.05 < counts[Status.ERROR] / total < 0.12
    # dbt 1.8-1.12 leaves runtime errors out of sources.json: the manifest shows them as not_run.
    assert 0.01 < counts[Status.NOT_RUN] / total < 0.04
    assert counts[Status.RUNTIME_ERROR] == 0

    checks = run.checks
    assert any(c.has_data is False and c.max_loaded_at is None for c in checks), "no-data sentinel"
    assert any(c.age_seconds is not None and c.age_seconds < 0 for c in checks), "negative age"
    no_freshness = [s for s in manifest["sources"].values() if s["freshness"] is None]
    assert no_freshness and all(s["unique_id"] not in {c.unique_id for c in checks} for s in no_freshness)
    nodes = manifest["sources"].values()
    assert any(s["loaded_at_query"] and s["loaded_at_field"] is None for s in nodes)
    assert any(s["freshness"] and s["freshness"]["filter"] for s in nodes)
    assert {s["package_name"] for s in nodes} > {synthetic.DEFAULT_PROJECT}
    assert any(s["identifier"] != s["name"] for s in nodes)
    # a table override that sets only warn_after keeps the source's error_after
    assert any(
        s["freshness"]
        and s["freshness"]["warn_after"] == {"count": 3, "period": "hour"}
        and s["freshness"]["error_after"]["count"] is not None
        for s in nodes
    )
    owners = {c.meta_get("owner") for c in checks}
    assert len(owners) > 5
    assert any(c.meta_get("tier") in ("1", "2", "3") for c in checks), "non-string meta value"
    assert run.warnings == ()
    groups = {c.source_name for c in checks}
    assert len(groups) > 50


def test_statuses_agree_with_thresholds_and_ages() -> None:
    _manifest, sources = synthetic.generate(2000, seed=4, now=NOW)
    for entry in sources["results"]:
        crit = entry["criteria"]
        ago = entry["max_loaded_at_time_ago_in_s"]
        limits = {
            k: crit[k]["count"] * {"minute": 60, "hour": 3600, "day": 86400}[crit[k]["period"]]
            for k in ("warn_after", "error_after")
            if crit[k]["count"] is not None
        }
        if "error_after" in limits and ago >= limits["error_after"]:
            expected = "error"
        elif "warn_after" in limits and ago >= limits["warn_after"]:
            expected = "warn"
        else:
            expected = "pass"
        assert entry["status"] == expected, entry["unique_id"]


def test_runtime_errors_can_be_written_into_the_artifact() -> None:
    manifest, sources = synthetic.generate(3000, seed=1, now=NOW, runtime_errors_in_artifact=True)
    run = run_of(manifest, sources)
    errors = [c for c in run.checks if c.status is Status.RUNTIME_ERROR]
    assert errors and all(c.error and "does not exist" in c.error for c in errors)
    assert all(c.warn_after is not None or c.error_after is not None for c in errors)


def test_hostile_values_survive_the_exposition() -> None:
    manifest, sources = synthetic.generate(600, seed=5, now=NOW, hostile=True)
    run = run_of(manifest, sources, meta=("owner",))
    values = {v for c in run.checks for v in (c.identifier, c.table_name, *c.meta_values)}
    assert any('"' in v for v in values) and any("\\" in v for v in values) and any("\n" in v for v in values)
    assert any("日本" in v for v in values) and "" in values
    text = render(run)
    parsed = {
        (s.labels["source_name"], s.labels["table_name"], s.labels["identifier"], s.labels["owner"])
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if "table_name" in s.labels
    }
    expected = {(c.source_name, c.table_name, c.identifier, c.meta_values[0]) for c in run.checks}
    assert parsed == expected


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make system-deps)")
def test_exposition_of_a_synthetic_run_passes_promtool(tmp_path: Path) -> None:
    manifest, sources = synthetic.generate(1000, seed=6, now=NOW, hostile=True)
    text = render(run_of(manifest, sources, meta=("owner", "team")))
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]


@pytest.mark.skipif(not (CORPUS / "schemas").is_dir(), reason=f"shared corpus not found at {CORPUS}")
def test_sources_document_matches_dbt_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((CORPUS / "schemas" / "sources_v3.json").read_text())
    _manifest, sources = synthetic.generate(300, seed=9, now=NOW, hostile=True)
    jsonschema.validate(sources, schema)


@pytest.mark.dbt
def test_dbt_itself_reads_the_written_artifacts(tmp_path: Path) -> None:
    """dbt-core's own artifact classes load both files (the shapes are real, not look-alikes)."""
    pytest.importorskip("dbt")
    from dbt.artifacts.schemas.freshness import FreshnessExecutionResultArtifact
    from dbt.artifacts.schemas.manifest import WritableManifest

    written = synthetic.write(tmp_path, 500, seed=3, now=NOW, hostile=True, runtime_errors_in_artifact=False)
    manifest = WritableManifest.read_and_check_versions(str(written.manifest))
    assert len(manifest.sources) == 500 and manifest.nodes
    freshness = FreshnessExecutionResultArtifact.read_and_check_versions(str(written.sources_json))
    assert len(freshness.results) == written.n_results


def test_readers_load_written_files(tmp_path: Path) -> None:
    written = synthetic.write(tmp_path, 1500, seed=11, now=NOW)
    manifest = read_manifest(written.manifest)
    artifact = read_sources(written.sources_json)
    assert len(manifest.sources) == 1500 and manifest.project_name == synthetic.DEFAULT_PROJECT
    assert len(artifact.results) == written.n_results
    assert artifact.generated_at == NOW


def test_zero_sources(tmp_path: Path) -> None:
    manifest, sources = synthetic.generate(0, now=NOW)
    assert manifest["sources"] == {} and sources["results"] == []
    with pytest.raises(ValueError, match="n_sources"):
        synthetic.generate(-1)
