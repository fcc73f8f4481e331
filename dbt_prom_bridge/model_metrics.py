"""The model side of the metric contract: :class:`~dbt_prom_bridge.nodes.ModelRun` ->
:class:`~dbt_prom_bridge.exposition.Family` objects, rendered by the same writer as sources
(:func:`dbt_prom_bridge.exposition.render_families`).

Series per model: one ``dbt_model_build_status`` per state (3) once the model was built, plus
one series for each value the record has (last success, build time, duration, thresholds,
max_loaded_at, freshness state set of 4 and check time). docs/models.md gives the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dbt_prom_bridge.exposition import Family
from dbt_prom_bridge.nodes import (
    BUILD_DURATION,
    BUILD_STATUS,
    BUILD_STATUSES,
    BUILT_AT,
    ERROR_AFTER,
    FRESHNESS_CHECKED_AT,
    FRESHNESS_STATUS,
    FRESHNESS_STATUSES,
    LAST_SUCCESS,
    MAX_LOADED_AT,
    MODEL_LABELS,
    PER_MODEL_METRICS,
    WARN_AFTER,
    ModelCheck,
    ModelRun,
)

Row = tuple[tuple[str, ...], float]


def model_label_names(meta_labels: Sequence[str]) -> tuple[str, ...]:
    return (*MODEL_LABELS, *meta_labels)


def model_label_values(run: ModelRun, check: ModelCheck) -> tuple[str, ...]:
    return (
        run.project,
        run.target,
        check.model,
        check.package,
        check.database,
        check.schema,
        check.identifier,
        check.resource_type,
        *check.meta_values,
    )


def _rows(name: str, pairs: list[tuple[ModelCheck, tuple[str, ...]]]) -> list[Row]:
    if name == BUILD_STATUS:
        return [
            ((*v, s.value), 1.0 if s is c.build_status else 0.0)
            for c, v in pairs
            if c.build_status is not None
            for s in BUILD_STATUSES
        ]
    if name == FRESHNESS_STATUS:
        return [
            ((*v, s.value), 1.0 if s is c.freshness_status else 0.0)
            for c, v in pairs
            if c.freshness_status is not None
            for s in FRESHNESS_STATUSES
        ]
    field = {
        LAST_SUCCESS: "last_success_at",
        BUILT_AT: "built_at",
        BUILD_DURATION: "build_duration",
        WARN_AFTER: "warn_after",
        ERROR_AFTER: "error_after",
        MAX_LOADED_AT: "max_loaded_at",
        FRESHNESS_CHECKED_AT: "freshness_checked_at",
    }[name]
    rows: list[Row] = []
    for check, values in pairs:
        value = getattr(check, field)
        if value is not None:
            rows.append((values, float(value)))
    return rows


def model_families(run: ModelRun, only: Iterable[str] | None = None) -> list[Family]:
    """The per-model metric families of ``run``, in a fixed order; families without rows are
    left out, ``only`` limits the output to those names."""
    wanted = set(only) if only is not None else None
    names = model_label_names(run.meta_labels)
    pairs = [(check, model_label_values(run, check)) for check in run.checks]
    out: list[Family] = []
    for name in PER_MODEL_METRICS:
        if wanted is not None and name not in wanted:
            continue
        rows = _rows(name, pairs)
        if rows:
            label_names = (*names, "status") if name in (BUILD_STATUS, FRESHNESS_STATUS) else names
            out.append(Family(name, label_names, rows))
    return out


def render_models(run: ModelRun) -> str:
    """The exposition text of the model series of ``run``."""
    from dbt_prom_bridge.exposition import render_families

    return render_families(model_families(run))
