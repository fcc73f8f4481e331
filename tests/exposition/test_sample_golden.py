"""Golden files: the exposition and summaries of the sample project's own artifacts.

The artifacts in tests/data/sample/ come from a real `dbt source freshness` of dbt_project/
(`python -m tests.data.sample.regenerate`); the clock is fixed to 90 s after dbt's run.
Update the goldens after an intended change with:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/exposition/test_sample_golden.py
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge import summary
from dbt_prom_bridge.artifacts import read_manifest, read_sources
from dbt_prom_bridge.exposition import render
from dbt_prom_bridge.model import FreshnessRun, RunContext, Status, build_run
from dbt_prom_bridge.state import initial
from tests.conftest import requires

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
GOLDEN = Path(__file__).resolve().parent / "golden"


def sample_run(meta_labels: tuple[str, ...] = ()) -> FreshnessRun:
    artifact = read_sources(SAMPLE / "sources.json")
    manifest = read_manifest(SAMPLE / "manifest.json")
    return initial(build_run(artifact, manifest, RunContext(target="dev", meta_labels=meta_labels)))


def fixed_now() -> float:
    generated_at = read_sources(SAMPLE / "sources.json").generated_at
    assert generated_at is not None
    return generated_at + 90.0


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: UPDATE_GOLDEN=1 pytest {Path(__file__).name}"
    assert text == path.read_text(), (
        f"{name} changed: UPDATE_GOLDEN=1 pytest tests/exposition/test_sample_golden.py"
    )


@pytest.mark.parametrize(
    ("name", "meta_labels"),
    [("sample.prom", ()), ("sample_owner_team.prom", ("owner", "team"))],
)
def test_sample_exposition(name: str, meta_labels: tuple[str, ...]) -> None:
    check_golden(name, render(sample_run(meta_labels)))


def test_sample_summary_table() -> None:
    check_golden("sample_summary.txt", summary.table(sample_run(), colour=False, now=fixed_now) + "\n")


def test_sample_summary_json() -> None:
    check_golden("sample_summary.json", summary.as_json(sample_run(("owner",)), now=fixed_now) + "\n")


def test_sample_run_semantics() -> None:
    """What the goldens must say, independently of their bytes."""
    run = sample_run(("owner",))
    by_key = {f"{c.source_name}.{c.table_name}": c for c in run.checks}
    assert "orders.customers_archive" not in by_key
    # sources.json drops the runtime error: with the manifest it is configured-but-missing
    assert by_key["orders.refunds"].status is Status.NOT_RUN
    assert by_key["orders.order_items"].has_data is False
    assert by_key["orders.order_items"].max_loaded_at is None
    assert by_key["events.clicks"].status is Status.WARN
    assert by_key["events.clicks"].error_after is not None
    assert by_key["events.clicks"].error_after.seconds == 1800
    assert by_key["finance.ml_features"].identifier == "ml_feature_store"
    assert by_key["events.page_views"].meta_values == ("platform-data",)

    families = {f.name: f for f in text_string_to_metric_families(render(run))}
    loaded = {s.labels["table_name"] for s in families["dbt_source_max_loaded_at_timestamp_seconds"].samples}
    assert "order_items" not in loaded and "refunds" not in loaded
    assert run.counts()[Status.NOT_RUN] == 1


@requires("promtool")
def test_sample_exposition_passes_promtool() -> None:
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=render(sample_run(("owner", "team"))),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
