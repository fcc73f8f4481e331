"""The records a rule file is made of: alerting rules, recording rules, groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.rules.options import RulesOptions


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    for_: str | None = None
    keep_firing_for: str | None = None


@dataclass(frozen=True)
class Record:
    """A recording rule (the later-than-usual and SLO alerts read them)."""

    record: str
    expr: str
    #: The project's label (the series have it already): tells the records of projects apart.
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule | Record, ...]
    #: The group's own evaluation interval (Prometheus duration); None: Prometheus's global one.
    interval: str | None = None


def make_rule(
    alert: str, expr: str, labels: Mapping[str, str], notes: tuple[tuple[str, str], ...], opts: RulesOptions
) -> Rule:
    return Rule(
        alert=alert,
        expr=expr,
        labels=tuple(sorted(labels.items())),
        annotations=notes,
        for_=format_duration(opts.for_seconds) if opts.for_seconds else None,
        keep_firing_for=format_duration(opts.keep_firing_for) if opts.keep_firing_for else None,
    )
