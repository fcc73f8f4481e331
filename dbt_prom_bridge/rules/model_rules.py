"""Prometheus alert rules for models, from the thresholds the manifest declares (and promtool
tests proving them). Self-contained: the rule file it writes sits next to the source rules.

============================ ======================= ==============================================
DbtModelBuildLate            warning / critical      last successful build older than warn_after /
                                                     error_after (``build_after`` or meta dbt_prom)
DbtModelBuildFailed          warning                 the model's last build ended in error
DbtModelNotBuilt             warning                 a threshold is declared, no build was ever seen
============================ ======================= ==============================================

Both modes of the source rules: ``per-model`` writes each threshold as a literal and copies the
manifest's meta labels; ``dynamic`` is a constant number of rules comparing with the pushed
``dbt_model_freshness_*_after_seconds`` series. On the same series both fire the same alerts.
Ages are computed in PromQL (``time() - last success``): an alert fires even when nothing is
pushed any more. Runbooks: docs/models.md, anchored by the lower-cased alert name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.nodes import (
    BUILD_STATUS,
    BUILT_AT,
    ERROR_AFTER,
    LAST_SUCCESS,
    WARN_AFTER,
    ModelDef,
)
from dbt_prom_bridge.rules.options import RulesOptions
from dbt_prom_bridge.rules.promql import label_selector, over_lookback
from dbt_prom_bridge.rules.render import GoText, Renderer
from dbt_prom_bridge.rules_syntax import go_text

BUILD_LATE = "DbtModelBuildLate"
BUILD_FAILED = "DbtModelBuildFailed"
NOT_BUILT = "DbtModelNotBuilt"
MODEL_ALERTS: tuple[str, ...] = (BUILD_LATE, BUILD_FAILED, NOT_BUILT)
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/dbt-prom-bridge/dbt-prom-bridge/blob/main/docs/models.md"
MODES = ("per-model", "dynamic")
DEFAULT_GROUP = "dbt-models"
_JOIN = "on (project, target, model)"
#: A comparison joined ``on`` some labels keeps only those; ``group_left`` keeps the left side's.
_COMPARE = f"{_JOIN} group_left"
#: Annotations as Go templates (only its label/age/literal methods are used: no options needed).
_GO = GoText(RulesOptions())


@dataclass(frozen=True)
class ModelRuleOptions:
    """How to write the model rules (``dbt-prom rules`` maps its own options onto these)."""

    project: str
    mode: str = "per-model"
    #: ``for`` of every alert (a Prometheus duration); "" or "0s": none.
    for_: str = "5m"
    meta_labels: tuple[str, ...] = ()
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    severity_warn: str = "warning"
    severity_error: str = "critical"
    #: ``keep_firing_for`` of every alert (Prometheus >= 2.42); None: none.
    keep_firing_for: str | None = None
    #: Only alert on series with one of these ``target`` labels (default: every target).
    target_labels: tuple[str, ...] = ()
    #: Read every series through ``last_over_time(...[lookback])`` (remote write); None: instant.
    lookback: str | None = None
    #: The rule group is ``<group_name>/<project>``.
    group_name: str = DEFAULT_GROUP
    #: The dbt package whose models get per-model rules (default: ``project``; differs when the
    #: ``project`` label is renamed).
    package: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"model rule mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.project:
            raise UsageError("model rules need the project name (the manifest's project_name)")

    def severity(self, alert: str, level: str = "warn_after") -> str:
        """The ``severity`` label of ``alert`` (``level``: the threshold of a DbtModelBuildLate)."""
        return self.severity_error if alert == BUILD_LATE and level == "error_after" else self.severity_warn


def _sel(opts: ModelRuleOptions, extra: Mapping[str, str] | None = None) -> str:
    return label_selector(opts.project, opts.target_labels, (extra or {}).items())


def _series(metric: str, selector: str, opts: ModelRuleOptions) -> str:
    return over_lookback(metric, selector, opts.lookback)


def model_annotations(
    alert: str, r: Renderer, opts: ModelRuleOptions, level: str = "", seconds: float | None = None
) -> dict[str, str]:
    """The annotations of a model alert, written against ``r``: Go templates for the rule file
    (:class:`~dbt_prom_bridge.rules.render.GoText`) or the text Prometheus renders for one alert
    (:class:`~dbt_prom_bridge.rules.render.PlainText`, what the promtool tests expect).
    ``level``/``seconds``: the threshold a DbtModelBuildLate compares with (seconds: per-model)."""
    model, where = r.label("model"), f"(project {r.label('project')}, target {r.label('target')})"
    if alert == BUILD_LATE:
        limit = f"its {level} of {format_duration(seconds)}" if seconds is not None else f"its {level}"
        summary = f"dbt model {model} has not built successfully for {r.age()}"
        description = (
            f"The last successful build of {model} {where} ended {r.age()} ago, more than "
            + r.literal(f"{limit} ({opts.severity(alert, level)}).")
            + " Its data is as old as that build: check the last runs of the job that builds it."
        )
    elif alert == BUILD_FAILED:
        summary = f"dbt model {model} failed to build"
        description = (
            f"The last build of {model} {where} ended in error; the relation keeps the data of its "
            "last successful build, and models depending on it were skipped. run_results.json of "
            "that run has dbt's message."
        )
    else:
        summary = f"dbt model {model} has a build threshold but was never built"
        description = (
            f"{model} {where} declares a build cadence (freshness.build_after or meta dbt_prom), but no "
            "run reported building it: no job selects it, or its runs are not pushed."
        )
    out = {"summary": summary, "description": description}
    if opts.runbook_base_url:
        out["runbook_url"] = r.literal(f"{opts.runbook_base_url}#{alert.lower()}")
    return dict(sorted(out.items()))


def _rule(
    alert: str,
    expr: str,
    severity: str,
    labels: Mapping[str, str],
    ann: dict[str, str],
    opts: ModelRuleOptions,
) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": alert, "expr": expr}
    if opts.for_ and opts.for_ != "0s":
        out["for"] = opts.for_
    if opts.keep_firing_for and opts.keep_firing_for != "0s":
        out["keep_firing_for"] = opts.keep_firing_for
    out["labels"] = {**{k: go_text(v) for k, v in sorted(labels.items())}, "severity": go_text(severity)}
    out["annotations"] = ann
    return out


def own_models(models: Iterable[ModelDef], opts: ModelRuleOptions) -> list[ModelDef]:
    """The models of the project's own package (all of them when none is), sorted by name."""
    every = sorted(models, key=lambda m: (m.model, m.unique_id))
    package = opts.package or opts.project
    return [m for m in every if m.package == package] or every


def _per_model(models: Sequence[ModelDef], opts: ModelRuleOptions) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for mdef in models:
        if not mdef.has_thresholds:
            continue
        sel = _sel(opts, {"model": mdef.model})
        meta = dict(mdef.meta)
        labels = {"project": opts.project, "model": mdef.model}
        labels.update({k: meta[k] for k in opts.meta_labels if meta.get(k)})
        age = f"time() - {_series(LAST_SUCCESS, sel, opts)}"
        for level, seconds in (("warn_after", mdef.warn_after), ("error_after", mdef.error_after)):
            if seconds is not None:
                rules.append(
                    _rule(
                        BUILD_LATE,
                        f"{age} > {seconds:g}",
                        opts.severity(BUILD_LATE, level),
                        labels,
                        model_annotations(BUILD_LATE, _GO, opts, level, seconds),
                        opts,
                    )
                )
        configured = WARN_AFTER if mdef.warn_after is not None else ERROR_AFTER
        rules.append(
            _rule(
                NOT_BUILT,
                f"{_series(configured, sel, opts)} unless {_JOIN} {_series(BUILT_AT, sel, opts)}",
                opts.severity(NOT_BUILT),
                labels,
                model_annotations(NOT_BUILT, _GO, opts),
                opts,
            )
        )
    return rules


def _dynamic(opts: ModelRuleOptions) -> list[dict[str, Any]]:
    sel = _sel(opts)
    age = f"(time() - {_series(LAST_SUCCESS, sel, opts)})"
    labels = {"project": opts.project}
    late = [
        _rule(
            BUILD_LATE,
            f"{age} > {_COMPARE} {_series(metric, sel, opts)}",
            opts.severity(BUILD_LATE, level),
            labels,
            model_annotations(BUILD_LATE, _GO, opts, level),
            opts,
        )
        for level, metric in (("warn_after", WARN_AFTER), ("error_after", ERROR_AFTER))
    ]
    configured = f"({_series(WARN_AFTER, sel, opts)} or {_series(ERROR_AFTER, sel, opts)})"
    return [
        *late,
        _rule(
            NOT_BUILT,
            f"{configured} unless {_JOIN} {_series(BUILT_AT, sel, opts)}",
            opts.severity(NOT_BUILT),
            labels,
            model_annotations(NOT_BUILT, _GO, opts),
            opts,
        ),
    ]


def model_rule_groups(models: Iterable[ModelDef], opts: ModelRuleOptions) -> list[dict[str, Any]]:
    """The rule groups (YAML-ready) for the models of one project."""
    failed = _rule(
        BUILD_FAILED,
        f"{_series(BUILD_STATUS, _sel(opts, {'status': 'error'}), opts)} == 1",
        opts.severity(BUILD_FAILED),
        {"project": opts.project},
        model_annotations(BUILD_FAILED, _GO, opts),
        opts,
    )
    rules = _per_model(own_models(models, opts), opts) if opts.mode == "per-model" else _dynamic(opts)
    return [{"name": f"{opts.group_name}/{opts.project}", "rules": [failed, *rules]}]


def render_model_rules(groups: list[dict[str, Any]], command: str = "") -> str:
    """The rule file: a GENERATED header, then the groups (deterministic YAML)."""
    header = "# GENERATED by dbt-prom-bridge -- DO NOT EDIT.\n"
    if command:
        header += f"# Regenerate with: {command}\n"
    body = yaml.safe_dump({"groups": groups}, sort_keys=False, allow_unicode=True, width=1 << 16)
    return header + body
