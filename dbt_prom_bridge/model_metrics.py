"""The model side of the metric contract: :class:`~dbt_prom_bridge.nodes.ModelRun` ->
:class:`~dbt_prom_bridge.exposition.Family` objects, rendered by the same writer as sources
(:func:`dbt_prom_bridge.exposition.render_families`).

Series per model: one ``dbt_model_build_status`` per state (3) once the model was built, plus
one series for each value the record has (last success, build time, duration, thresholds,
max_loaded_at, freshness state set of 4 and check time). docs/models.md gives the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dbt_prom_bridge.exposition import Family
from dbt_prom_bridge.model import Status
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
    BuildStatus,
    ModelCheck,
    ModelRun,
)

Row = tuple[tuple[str, ...], float]


def model_label_names(meta_labels: Sequence[str]) -> tuple[str, ...]:
    return (*MODEL_LABELS, *meta_labels)


def model_label_values(project: str, target: str, check: ModelCheck) -> tuple[str, ...]:
    return (
        project,
        target,
        check.model,
        check.package,
        check.database,
        check.schema,
        check.identifier,
        check.resource_type,
        *check.meta_values,
    )


_FIELDS: dict[str, str] = {
    LAST_SUCCESS: "last_success_at",
    BUILT_AT: "built_at",
    BUILD_DURATION: "build_duration",
    WARN_AFTER: "warn_after",
    ERROR_AFTER: "error_after",
    MAX_LOADED_AT: "max_loaded_at",
    FRESHNESS_CHECKED_AT: "freshness_checked_at",
}


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
    field = _FIELDS[name]
    rows: list[Row] = []
    for check, values in pairs:
        value = getattr(check, field)
        if value is not None:
            rows.append((values, float(value)))
    return rows


def model_families(run: ModelRun, only: Iterable[str] | None = None) -> list[Family]:
    """The per-model metric families of ``run``, in a fixed order; families without rows are
    left out, ``only`` limits the output to those names."""
    return families_of_models(run.project, run.target, run.meta_labels, run.checks, only)


def families_of_models(
    project: str,
    target: str,
    meta_labels: Sequence[str],
    checks: Iterable[ModelCheck],
    only: Iterable[str] | None = None,
) -> list[Family]:
    """:func:`model_families` of the model records ``checks`` of ``project``/``target`` (what
    :func:`dbt_prom_bridge.exposition.iter_families` adds to a run that carries models)."""
    wanted = set(only) if only is not None else None
    names = model_label_names(meta_labels)
    pairs = [(check, model_label_values(project, target, check)) for check in checks]
    out: list[Family] = []
    for name in PER_MODEL_METRICS:
        if wanted is not None and name not in wanted:
            continue
        rows = _rows(name, pairs)
        if rows:
            label_names = (*names, "status") if name in (BUILD_STATUS, FRESHNESS_STATUS) else names
            out.append(Family(name, label_names, rows))
    return out


def models_from_series(
    series: Iterable[tuple[str, Mapping[str, str], float]], meta_labels: Sequence[str]
) -> tuple[ModelCheck, ...]:
    """Model records rebuilt from their series (what a Pushgateway holds): the inverse of
    :func:`families_of_models` as far as series carry it (the unique_id is rebuilt from the
    labels; meta beyond the ``--meta-label`` values and the build message are not in series)."""
    found: dict[str, dict[str, Any]] = {}
    labels_of: dict[str, Mapping[str, str]] = {}
    for name, labels, value in series:
        if name not in PER_MODEL_METRICS:
            continue
        model = labels.get("model", "")
        values = found.setdefault(model, {})
        labels_of.setdefault(model, labels)
        if name == BUILD_STATUS:
            if value == 1.0:
                values["build_status"] = labels.get("status", "")
        elif name == FRESHNESS_STATUS:
            if value == 1.0:
                values["freshness_status"] = labels.get("status", "")
        else:
            values[_FIELDS[name]] = value
    out: list[ModelCheck] = []
    for model, values in found.items():
        labels = labels_of[model]
        try:
            build = values.pop("build_status", None)
            fresh = values.pop("freshness_status", None)
            build_status = None if build is None else BuildStatus(build)
            freshness_status = None if fresh is None else Status(fresh)
        except ValueError:
            continue
        resource_type = labels.get("resource_type", "model")
        package = labels.get("package", "")
        out.append(
            ModelCheck(
                unique_id=f"{resource_type}.{package}.{model}",
                model=model,
                package=package,
                database=labels.get("database", ""),
                schema=labels.get("schema", ""),
                identifier=labels.get("identifier", ""),
                resource_type=resource_type,
                build_status=build_status,
                freshness_status=freshness_status,
                meta_values=tuple(labels.get(k, "") for k in meta_labels),
                **values,
            )
        )
    return tuple(sorted(out, key=lambda c: (c.model, c.unique_id)))


def render_models(run: ModelRun) -> str:
    """The exposition text of the model series of ``run``."""
    from dbt_prom_bridge.exposition import render_families

    return render_families(model_families(run))
