"""Annotation text, written once against :class:`Renderer`: as Go-template snippets for the rule
file (:class:`GoText`), or as the plain text Prometheus renders for one alert (:class:`PlainText`,
what the promtool tests expect)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import quote_plus

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.rules.options import RulesOptions
from dbt_prom_bridge.rules_syntax import (
    go_text,
)


class Renderer:
    """Writes annotation text: as a Go template for the rule file (:class:`GoText`), or as the text
    Prometheus will produce from it for a given alert (:class:`PlainText`, used by the promtool
    tests). The annotation functions below are written once against this interface."""

    def label(self, name: str) -> str:
        raise NotImplementedError

    def urlquery(self, name: str) -> str:
        raise NotImplementedError

    def age(self) -> str:
        raise NotImplementedError

    def threshold(self, metric: str) -> str:
        raise NotImplementedError

    def literal(self, text: str) -> str:
        raise NotImplementedError

    def if_label(self, name: str, then: str, otherwise: str) -> str:
        raise NotImplementedError


class GoText(Renderer):
    """Go-template snippets. ``thresholds`` (per-source mode) are written as literal text; without
    them (dynamic mode) the threshold is read from the pushed series with the ``query`` function."""

    def __init__(self, opts: RulesOptions, thresholds: Mapping[str, float] | None = None) -> None:
        self.opts = opts
        self.thresholds = thresholds

    def label(self, name: str) -> str:
        return f"{{{{ $labels.{name} }}}}"

    def urlquery(self, name: str) -> str:
        return f"{{{{ $labels.{name} | urlquery }}}}"

    def age(self) -> str:
        return "{{ $value | humanizeDuration }}"

    def _query(self, metric: str) -> str:
        """``query (...)``: the alert's own source's ``metric`` (labels quoted by Go's %q)."""
        selector = "{project=%q,target=%q,source_name=%q,table_name=%q}"  # Go printf verbs
        expr = (
            f"last_over_time({metric}{selector}[{format_duration(self.opts.lookback)}])"
            if self.opts.lookback
            else metric + selector
        )
        return (
            f'query (printf "{expr}" $labels.project $labels.target $labels.source_name $labels.table_name)'
        )

    def threshold(self, metric: str) -> str:
        if self.thresholds is not None:
            return humanize_duration(self.thresholds[metric])
        return (
            f"{{{{ with {self._query(metric)} }}}}{{{{ . | first | value | humanizeDuration }}}}{{{{ end }}}}"
        )

    def if_series(self, metric: str, then: str, otherwise: str) -> str:
        """``then`` when the alert's source has a ``metric`` series (evaluated per active alert only)."""
        return f"{{{{ with {self._query(metric)} }}}}{then}{{{{ else }}}}{otherwise}{{{{ end }}}}"

    def literal(self, text: str) -> str:
        return go_text(text)

    def if_label(self, name: str, then: str, otherwise: str) -> str:
        return f"{{{{ if $labels.{name} }}}}{then}{{{{ else }}}}{otherwise}{{{{ end }}}}"


class PlainText(Renderer):
    """What Prometheus renders for one alert: its labels, value and the thresholds it compares with."""

    def __init__(self, labels: Mapping[str, str], value: float, thresholds: Mapping[str, float]) -> None:
        self.labels = labels
        self.value = value
        self.thresholds = thresholds

    def label(self, name: str) -> str:
        return self.labels.get(name, "")

    def urlquery(self, name: str) -> str:
        return quote_plus(self.labels.get(name, ""), safe="")

    def age(self) -> str:
        return humanize_duration(self.value)

    def threshold(self, metric: str) -> str:
        return humanize_duration(self.thresholds[metric]) if metric in self.thresholds else ""

    def literal(self, text: str) -> str:
        return text

    def if_label(self, name: str, then: str, otherwise: str) -> str:
        return then if self.labels.get(name) else otherwise


def humanize_duration(value: float) -> str:
    """Prometheus's ``humanizeDuration`` template function (Go), for the texts tests expect."""
    if math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    if value == 0:
        return "0s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        v = abs(value)
        whole = int(v)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g4(v)}s"
    prefix = ""
    v = value
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_go_g4(v)}{prefix}s"


def _go_g4(value: float) -> str:
    """Go's ``%.4g`` (same as C's for these magnitudes)."""
    return f"{value:.4g}"
