"""PromQL building blocks: literals, label matchers, selectors (instant or ``last_over_time``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.model import SourceDef
from dbt_prom_bridge.rules.options import RulesOptions
from dbt_prom_bridge.rules_syntax import (
    promql_string,
    re2_escape,
)

#: The Pushgateway's own per-group series (PushFailing compares them).
PUSH_TIME = "push_time_seconds"
PUSH_FAILURE_TIME = "push_failure_time_seconds"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def matchers(project: str, opts: RulesOptions, extra: Sequence[tuple[str, str]] = ()) -> str:
    """``{project="p", target=..., k="v"}`` with every value a quoted PromQL literal."""
    return label_selector(project, opts.target_labels, extra)


def label_selector(project: str, target_labels: Iterable[str], extra: Iterable[tuple[str, str]] = ()) -> str:
    """:func:`matchers` from the project and ``--target-label`` values alone (the model rules'
    options are not :class:`RulesOptions`)."""
    parts = [f"project={promql_string(project)}"]
    targets = sorted(set(target_labels))
    if len(targets) == 1:
        parts.append(f"target={promql_string(targets[0])}")
    elif targets:
        parts.append(f"target=~{promql_string('|'.join(re2_escape(t) for t in targets))}")
    parts.extend(f"{name}={promql_string(value)}" for name, value in extra)
    return "{" + ", ".join(parts) + "}"


def series(metric: str, selector: str, opts: RulesOptions) -> str:
    """An instant selector, or ``last_over_time`` over the lookback window (remote write)."""
    return over_lookback(metric, selector, format_duration(opts.lookback) if opts.lookback else None)


def over_lookback(metric: str, selector: str, lookback: str | None) -> str:
    """:func:`series` with the lookback as a Prometheus duration (None: an instant selector)."""
    if lookback:
        return f"last_over_time({metric}{selector}[{lookback}])"
    return metric + selector


def source_extra(source: SourceDef) -> tuple[tuple[str, str], ...]:
    return (("source_name", source.source_name), ("table_name", source.table_name))
