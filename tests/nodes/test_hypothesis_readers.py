"""Hostile or corrupt model artifacts (any JSON where dbt writes a field): the readers either
read them or refuse with an ArtifactError; never another exception (a traceback, exit 70)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.errors import ArtifactError
from dbt_prom_bridge.model_artifacts import parse_manifest_models, parse_model_freshness, parse_run_results
from dbt_prom_bridge.model_metrics import render_models
from dbt_prom_bridge.nodes import build_models
from tests.nodes.support import MODELS, build_entry, freshness_doc, freshness_entry, run_results

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

RUN_RESULTS = run_results(6, [build_entry("model.shop.a", "success"), build_entry("seed.shop.b", "error")])
FRESHNESS = freshness_doc([freshness_entry("model.shop.a", "Pass", warn={"count": 1, "period": "hour"})])
MANIFEST = json.loads((MODELS / "manifest.json").read_text())
NODE = next(k for k in MANIFEST["nodes"] if k.startswith("model."))


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*prefix, i))
    return out


def mutated(doc: Any, where: tuple[Any, ...], value: Any) -> Any:
    if not where:
        return value
    out = copy.deepcopy(doc)
    target = out
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(paths(RUN_RESULTS)), json_values)
def test_run_results_never_crash(where: tuple[Any, ...], value: Any) -> None:
    try:
        art = parse_run_results(mutated(RUN_RESULTS, where, value))
    except ArtifactError as exc:
        assert "\n" not in str(exc)
        return
    render_models(build_models("dev", art))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(paths(FRESHNESS)), json_values)
@example(("results", 0, "criteria", "warn_after", "count"), 1e308)  # found: OverflowError
def test_freshness_never_crash(where: tuple[Any, ...], value: Any) -> None:
    try:
        art = parse_model_freshness(mutated(FRESHNESS, where, value))
    except ArtifactError:
        return
    render_models(build_models("dev", None, art))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(paths(MANIFEST["nodes"][NODE], ("nodes", NODE))), json_values)
def test_manifest_models_never_crash(where: tuple[Any, ...], value: Any) -> None:
    doc = {"metadata": MANIFEST["metadata"], "nodes": {NODE: MANIFEST["nodes"][NODE]}}
    try:
        found = parse_manifest_models(mutated(doc, where, value))
    except ArtifactError:
        return
    render_models(build_models("dev", None, None, found.models))
