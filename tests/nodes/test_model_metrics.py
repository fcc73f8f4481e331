"""The dbt_model_* families: golden file of the sample project's real `dbt build`, promtool's
lint, a parse back with prometheus_client, and the series each model adds.

Update the golden after an intended change with:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/nodes/test_model_metrics.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.exposition import HELP, render_families
from dbt_prom_bridge.model import Status
from dbt_prom_bridge.model_artifacts import load_models
from dbt_prom_bridge.model_metrics import model_families, render_models
from dbt_prom_bridge.nodes import (
    BUILD_STATUS,
    FRESHNESS_STATUS,
    LAST_SUCCESS,
    MODEL_LABELS,
    PER_MODEL_METRICS,
    BuildStatus,
    ModelCheck,
    ModelRun,
)
from tests.conftest import requires
from tests.nodes.support import MODELS, SAMPLE_BUILD_STATUS

GOLDEN = Path(__file__).resolve().parent / "golden"


def sample_run(meta_labels: tuple[str, ...] = ()) -> ModelRun:
    return load_models(
        "dev",
        run_results=MODELS / "run_results.json",
        manifest=MODELS / "manifest.json",
        meta_labels=meta_labels,
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: UPDATE_GOLDEN=1 pytest {Path(__file__).name}"
    assert text == path.read_text(), (
        f"{name} changed: UPDATE_GOLDEN=1 pytest tests/nodes/test_model_metrics.py"
    )


@pytest.mark.parametrize(("name", "meta_labels"), [("models.prom", ()), ("models_owner.prom", ("owner",))])
def test_sample_exposition_golden(name: str, meta_labels: tuple[str, ...]) -> None:
    check_golden(name, render_models(sample_run(meta_labels)))


@requires("promtool")
def test_promtool_accepts_the_model_exposition() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    lint = subprocess.run(
        [promtool, "check", "metrics"],
        input=render_models(sample_run(("owner",))),
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_parses_back_and_says_what_dbt_said() -> None:
    run = sample_run(("owner",))
    samples = [
        (s.name, dict(s.labels), s.value)
        for fam in text_string_to_metric_families(render_models(run))
        for s in fam.samples
    ]
    status = {
        labels["model"]: labels["status"]
        for name, labels, value in samples
        if name == BUILD_STATUS and value == 1
    }
    assert status == SAMPLE_BUILD_STATUS
    # one-hot: exactly one state is 1 per model
    per_model: dict[str, float] = {}
    for name, labels, value in samples:
        if name == BUILD_STATUS:
            per_model[labels["model"]] = per_model.get(labels["model"], 0) + value
    assert set(per_model.values()) == {1.0}
    success_models = {labels["model"] for name, labels, _ in samples if name == LAST_SUCCESS}
    assert "orders_enriched" not in success_models and "orders_enriched_daily" not in success_models
    labels = next(labels for name, labels, _ in samples if name == LAST_SUCCESS)
    assert tuple(labels) == (*MODEL_LABELS, "owner")


def test_every_model_metric_has_help_in_the_contract() -> None:
    assert all(name in HELP for name in PER_MODEL_METRICS)


def synthetic(n: int, *, thresholds: bool, freshness: bool) -> ModelRun:
    checks = tuple(
        ModelCheck(
            unique_id=f"model.p.m{i}",
            model=f"m{i}",
            package="p",
            database="db",
            schema="s",
            identifier=f"m{i}",
            resource_type="model",
            seen_at=100.0,
            build_status=BuildStatus.SUCCESS,
            built_at=90.0,
            last_success_at=90.0,
            build_duration=1.0,
            warn_after=3600.0 if thresholds else None,
            error_after=7200.0 if thresholds else None,
            freshness_status=Status.PASS if freshness else None,
            freshness_checked_at=95.0 if freshness else None,
            max_loaded_at=50.0 if freshness else None,
        )
        for i in range(n)
    )
    return ModelRun(project="p", target="dev", checks=checks, generated_at=100.0)


@pytest.mark.parametrize(
    ("thresholds", "freshness", "per_model"),
    [(False, False, 6), (True, False, 8), (True, True, 14)],
)
def test_series_per_model(thresholds: bool, freshness: bool, per_model: int) -> None:
    """docs/models.md's table: series per built model (6), + thresholds (2), + dbt freshness (6)."""
    run = synthetic(2000, thresholds=thresholds, freshness=freshness)
    assert sum(len(f.rows) for f in model_families(run)) == 2000 * per_model
    names = {f.name for f in model_families(run)}
    assert (FRESHNESS_STATUS in names) is freshness


def test_only_and_empty() -> None:
    run = sample_run()
    assert [f.name for f in model_families(run, only=[LAST_SUCCESS])] == [LAST_SUCCESS]
    empty = ModelRun(project="p", target="t", checks=(), generated_at=None)
    assert model_families(empty) == [] and render_families(model_families(empty)) == ""
