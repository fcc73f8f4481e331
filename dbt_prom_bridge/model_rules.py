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
from dbt_prom_bridge.rules_syntax import go_text, promql_string

BUILD_LATE = "DbtModelBuildLate"
BUILD_FAILED = "DbtModelBuildFailed"
NOT_BUILT = "DbtModelNotBuilt"
MODEL_ALERTS: tuple[str, ...] = (BUILD_LATE, BUILD_FAILED, NOT_BUILT)
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/dbt-prom-bridge/dbt-prom-bridge/blob/main/docs/models.md"
MODES = ("per-model", "dynamic")
_JOIN = "on (project, target, model)"
#: A comparison joined ``on`` some labels keeps only those; ``group_left`` keeps the left side's.
_COMPARE = f"{_JOIN} group_left"


@dataclass(frozen=True)
class ModelRuleOptions:
    project: str
    mode: str = "per-model"
    for_: str = "5m"
    meta_labels: tuple[str, ...] = ()
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"model rule mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.project:
            raise UsageError("model rules need the project name (the manifest's project_name)")


def _sel(base: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={promql_string(v)}" for k, v in base.items()) + "}"


def _annotations(alert: str, summary: str, description: str, opts: ModelRuleOptions) -> dict[str, str]:
    out = {"summary": summary, "description": description}
    if opts.runbook_base_url:
        out["runbook_url"] = go_text(f"{opts.runbook_base_url}#{alert.lower()}")
    return out


_WHERE = "(project {{ $labels.project }}, target {{ $labels.target }})"


def _late(severity: str, threshold: str, opts: ModelRuleOptions, seconds: float | None) -> dict[str, str]:
    limit = f"its {threshold} of {format_duration(seconds)}" if seconds is not None else f"its {threshold}"
    return _annotations(
        BUILD_LATE,
        "dbt model {{ $labels.model }} has not built successfully for {{ $value | humanizeDuration }}",
        f"The last successful build of {{{{ $labels.model }}}} {_WHERE} ended "
        f"{{{{ $value | humanizeDuration }}}} ago, more than {limit} ({severity}). Its data is as "
        "old as that build: check the last runs of the job that builds it.",
        opts,
    )


def _failed(opts: ModelRuleOptions) -> dict[str, str]:
    return _annotations(
        BUILD_FAILED,
        "dbt model {{ $labels.model }} failed to build",
        f"The last build of {{{{ $labels.model }}}} {_WHERE} ended in error; the relation keeps the data "
        "of its last successful build, and models depending on it were skipped. run_results.json of "
        "that run has dbt's message.",
        opts,
    )


def _not_built(opts: ModelRuleOptions) -> dict[str, str]:
    return _annotations(
        NOT_BUILT,
        "dbt model {{ $labels.model }} has a build threshold but was never built",
        f"{{{{ $labels.model }}}} {_WHERE} declares a build cadence (freshness.build_after or meta "
        "dbt_prom), but no run reported building it: no job selects it, or its runs are not pushed.",
        opts,
    )


def _rule(
    alert: str, expr: str, severity: str, labels: Mapping[str, str], ann: dict[str, str], for_: str
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {**{k: go_text(v) for k, v in sorted(labels.items())}, "severity": severity},
        "annotations": dict(sorted(ann.items())),
    }


def _per_model(models: Sequence[ModelDef], opts: ModelRuleOptions) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for mdef in sorted(models, key=lambda m: m.model):
        if not mdef.has_thresholds:
            continue
        match = {"project": opts.project, "model": mdef.model}
        meta = dict(mdef.meta)
        labels = {"project": opts.project, "model": mdef.model}
        labels.update({k: meta[k] for k in opts.meta_labels if meta.get(k)})
        age = f"time() - {LAST_SUCCESS}{_sel(match)}"
        for severity, name, seconds in (
            ("warning", "warn_after", mdef.warn_after),
            ("critical", "error_after", mdef.error_after),
        ):
            if seconds is not None:
                rules.append(
                    _rule(
                        BUILD_LATE,
                        f"{age} > {seconds:g}",
                        severity,
                        labels,
                        _late(severity, name, opts, seconds),
                        opts.for_,
                    )
                )
        configured = WARN_AFTER if mdef.warn_after is not None else ERROR_AFTER
        rules.append(
            _rule(
                NOT_BUILT,
                f"{configured}{_sel(match)} unless {_JOIN} {BUILT_AT}{_sel(match)}",
                "warning",
                labels,
                _not_built(opts),
                opts.for_,
            )
        )
    return rules


def _dynamic(opts: ModelRuleOptions) -> list[dict[str, Any]]:
    match = {"project": opts.project}
    age = f"(time() - {LAST_SUCCESS}{_sel(match)})"
    labels = {"project": opts.project}
    return [
        _rule(
            BUILD_LATE,
            f"{age} > {_COMPARE} {WARN_AFTER}{_sel(match)}",
            "warning",
            labels,
            _late("warning", "warn_after", opts, None),
            opts.for_,
        ),
        _rule(
            BUILD_LATE,
            f"{age} > {_COMPARE} {ERROR_AFTER}{_sel(match)}",
            "critical",
            labels,
            _late("critical", "error_after", opts, None),
            opts.for_,
        ),
        _rule(
            NOT_BUILT,
            f"({WARN_AFTER}{_sel(match)} or {ERROR_AFTER}{_sel(match)}) "
            f"unless {_JOIN} {BUILT_AT}{_sel(match)}",
            "warning",
            labels,
            _not_built(opts),
            opts.for_,
        ),
    ]


def model_rule_groups(models: Iterable[ModelDef], opts: ModelRuleOptions) -> list[dict[str, Any]]:
    """The rule groups (YAML-ready) for the models of one project."""
    mine = [m for m in models if m.package == opts.project] or list(models)
    failed = _rule(
        BUILD_FAILED,
        f"{BUILD_STATUS}{_sel({'project': opts.project, 'status': 'error'})} == 1",
        "warning",
        {"project": opts.project},
        _failed(opts),
        opts.for_,
    )
    rules = _per_model(mine, opts) if opts.mode == "per-model" else _dynamic(opts)
    return [{"name": f"dbt-models/{opts.project}", "rules": [failed, *rules]}]


def render_model_rules(groups: list[dict[str, Any]], command: str = "") -> str:
    """The rule file: a GENERATED header, then the groups (deterministic YAML)."""
    header = "# GENERATED by dbt-prom-bridge -- DO NOT EDIT.\n"
    if command:
        header += f"# Regenerate with: {command}\n"
    body = yaml.safe_dump({"groups": groups}, sort_keys=False, allow_unicode=True, width=1 << 16)
    return header + body
