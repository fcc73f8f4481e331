"""Alerts over the history Prometheus holds: "later than usual" and freshness SLOs.

Both are recording rules over the pushed series only (no extra store), the same in both modes,
a constant number of rules per project (plus one objective record per distinct objective):

- later than usual: the age ``time() - max_loaded_at`` is recorded every evaluation; at an
  evaluation where it dropped (a newer load arrived), the age it had reached is recorded as a
  *peak*; the usual age is the largest peak of the window. The alert compares the current age
  with ``factor`` x that, once the recorded age has a window of history, never under the floor.
- SLOs: a 0/1 indicator ``time() <= error deadline`` (the deadline series is calendar-aware, so
  is the SLI) averaged over 5m, 30m, 1h and 6h windows directly; 1d from 24 hourly values and
  7d/30d from daily values (subqueries), so a 30-day ratio reads 30 samples, not 43,200.
  Multi-window multi-burn-rate alerts as Sloth generates them (14.4x over 1h and 5m, 6x over 6h
  and 30m), for every source with an objective.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.exposition import ERROR_AFTER, MAX_LOADED_AT
from dbt_prom_bridge.model import SourceDef
from dbt_prom_bridge.rules.catalogue import (
    BUDGET_BURN,
    BURNS,
    LATER_THAN_USUAL,
    USUAL,
    alert_annotations,
    severity,
)
from dbt_prom_bridge.rules.options import RulesOptions, check_objective
from dbt_prom_bridge.rules.promql import matchers, number, series
from dbt_prom_bridge.rules.render import GoText
from dbt_prom_bridge.rules.rule import Record, Rule, make_rule
from dbt_prom_bridge.rules_syntax import go_text

#: The instant a source becomes ``error`` if no newer data lands (pushed by the bridge; for a
#: source without a calendar ``max_loaded_at + error_after``).
ERROR_DEADLINE = "dbt_source_freshness_error_deadline_timestamp_seconds"

AGE = "dbt_source_freshness:age_seconds"
PEAK = "dbt_source_freshness:age_peak_seconds"
WITHIN = "dbt_source_freshness:within_error_after"
OBJECTIVE = "dbt_source_freshness:slo_objective"
#: A load is detected when the age recorded in the last PEAK_RANGE seconds was higher than now:
#: Prometheus must evaluate the rules at least twice in that time (every 2m30s or more often).
PEAK_RANGE = 300
#: The windows of the recorded SLI ratios.
SLI_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "6h", "1d", "7d", "30d")


def sli_ratio(window: str) -> str:
    """The recorded SLI of ``window``: the fraction of it the source was within ``error_after``."""
    return f"dbt_source_freshness:sli_ratio_{window}"


def usual_rules(project: str, opts: RulesOptions) -> list[Rule | Record]:
    sel = matchers(project, opts)
    age, peak = AGE + sel, PEAK + sel
    window = format_duration(opts.usual_window)
    alert = make_rule(
        LATER_THAN_USUAL,
        f"{age} > {opts.usual_factor:g} * {USUAL}{sel} and {age} > {number(opts.usual_floor)} "
        f"and {age} offset {window}",
        {"project": go_text(project), "severity": severity(LATER_THAN_USUAL, opts)},
        alert_annotations(LATER_THAN_USUAL, GoText(opts), opts, dynamic_runbook=True),
        opts,
    )
    return [
        record(AGE, f"time() - {series(MAX_LOADED_AT, sel, opts)}", project),
        record(PEAK, f"max_over_time({age}[{format_duration(PEAK_RANGE)}]) > {age}", project),
        record(USUAL, f"max_over_time({peak}[{window}])", project),
        alert,
    ]


def source_objective(source: SourceDef, opts: RulesOptions) -> float | None:
    """``meta.dbt_prom.slo`` of the source, else ``--slo`` (None: no objective)."""
    raw = source.meta_get("dbt_prom")
    where = f"source {source.source_name}.{source.table_name}: meta dbt_prom.slo"
    if raw:
        try:
            declared = json.loads(raw)
        except ValueError:
            declared = None
        if isinstance(declared, dict) and "slo" in declared:
            return check_objective(declared["slo"], where)
    return opts.slo


def objective_record(project: str, sources: Sequence[SourceDef], opts: RulesOptions) -> Record | None:
    """The objective of every source that has one, as ``error_after * 0 + objective`` (so it
    carries the source's labels): one ``or`` term per distinct declared objective, then the
    ``--slo`` default, which ``or`` only adds for the sources not already covered."""
    by_value: dict[float, list[SourceDef]] = {}
    for source in sources:
        if source.error_after is None:
            continue
        objective = source_objective(source, opts)
        if objective is not None and objective != opts.slo:
            by_value.setdefault(objective, []).append(source)
    terms = [f"({_any(project, members, opts)}) * 0 + {number(v)}" for v, members in sorted(by_value.items())]
    if opts.slo is not None:
        terms.append(f"{series(ERROR_AFTER, matchers(project, opts), opts)} * 0 + {number(opts.slo)}")
    if not terms:
        return None
    return record(OBJECTIVE, " or ".join(f"({term})" if len(terms) > 1 else term for term in terms), project)


def record(name: str, expr: str, project: str) -> Record:
    return Record(name, expr, (("project", go_text(project)),))


def _any(project: str, sources: Sequence[SourceDef], opts: RulesOptions) -> str:
    def one(s: SourceDef) -> str:
        extra = (("source_name", s.source_name), ("table_name", s.table_name))
        return series(ERROR_AFTER, matchers(project, opts, extra), opts)

    return " or ".join(one(s) for s in sources)


def slo_rules(project: str, sources: Sequence[SourceDef], opts: RulesOptions) -> list[Rule | Record]:
    sel = matchers(project, opts)
    deadline = series(ERROR_DEADLINE, sel, opts)
    out: list[Rule | Record] = [record(WITHIN, f"{deadline} >= bool time()", project)]
    for window in ("5m", "30m", "1h", "6h"):
        out.append(record(sli_ratio(window), f"avg_over_time({WITHIN}{sel}[{window}])", project))
    out.append(record(sli_ratio("1d"), f"avg_over_time({sli_ratio('1h')}{sel}[1d:1h])", project))
    for window in ("7d", "30d"):
        out.append(record(sli_ratio(window), f"avg_over_time({sli_ratio('1d')}{sel}[{window}:1d])", project))
    objective_rule = objective_record(project, sources, opts)
    if objective_rule is None:
        return out
    out.append(objective_rule)
    objective = OBJECTIVE + sel
    go = GoText(opts)
    for burn in BURNS:
        long, short = format_duration(burn.long_window), format_duration(burn.short_window)
        rate = "(1 - {ratio}) / (1 - {objective}) > {factor}"
        expr = " and ".join(
            rate.format(ratio=sli_ratio(w) + sel, objective=objective, factor=f"{burn.factor:g}")
            for w in (long, short)
        )
        sev = opts.severity_error if burn.speed == "fast" else opts.severity_warn
        labels = {"project": go_text(project), "severity": sev, "burn": burn.speed}
        notes = alert_annotations(BUDGET_BURN, go, opts, dynamic_runbook=True, burn=burn)
        out.append(make_rule(BUDGET_BURN, expr, labels, notes, opts))
    return out


def history_rules(project: str, sources: Sequence[SourceDef], opts: RulesOptions) -> list[Rule | Record]:
    return [*usual_rules(project, opts), *slo_rules(project, sources, opts)]
