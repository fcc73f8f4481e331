"""``promtool test rules`` files proving the generated alerts (``dbt-prom rules --tests``).

For every source alert the test shows it silent at its threshold and firing just after it
(``for`` included), and resolving (or kept firing for ``keep_firing_for``) once the data is
fresh again; then the no-data, runtime-error and not-run states, and the run-level alerts.

Thresholds of days would need days of evaluations, so each scenario is placed relative to a
crossing time ``T0`` a few intervals into the test: a source whose threshold is X gets
``max_loaded_at = T0 - X``, so its age reaches X exactly at ``T0``. The series look like a push
(every label, the meta labels, ``job``); with ``lookback`` (remote write) they are sparse, as
remote-written samples are.

What each check expects is computed by a small model of Prometheus's alerting (the rule
conditions over the input series, ``for``, ``keep_firing_for``, and the annotation texts through
:class:`~dbt_prom_bridge.rules.render.PlainText`); promtool then checks the real rules against it.
The model is written once and is the same for both modes: the same test passes on per-source
and dynamic rules (the equivalence test in tests/rules uses exactly that).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dbt_prom_bridge.calendar import Calendar, deadline, pauses
from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.exposition import (
    CHECKED_AT,
    ERROR_AFTER,
    HAS_DATA,
    MAX_LOADED_AT,
    RUN_SUCCESS,
    RUN_TIMESTAMP,
    STATUS,
    WARN_AFTER,
)
from dbt_prom_bridge.model import SourceDef, Status
from dbt_prom_bridge.rules.build import DEADLINES
from dbt_prom_bridge.rules.catalogue import (
    BRIDGE_STALE,
    BUDGET_BURN,
    BURNS,
    ERROR,
    LATER_THAN_USUAL,
    NO_DATA,
    NOT_CHECKED,
    NOT_RUN,
    PUSH_FAILING,
    RUN_FAILED,
    RUNTIME_ERROR,
    SOURCE_ALERTS,
    USUAL,
    WARN,
    Burn,
    alert_annotations,
    literal_state_rules,
    project_wide,
    severity,
)
from dbt_prom_bridge.rules.history import ERROR_DEADLINE, PEAK_RANGE, source_objective
from dbt_prom_bridge.rules.options import RulesOptions
from dbt_prom_bridge.rules.promql import PUSH_FAILURE_TIME, PUSH_TIME, number
from dbt_prom_bridge.rules.render import PlainText, humanize_duration
from dbt_prom_bridge.rules.selection import ProjectSources, source_calendar
from dbt_prom_bridge.rules.templates import HEADER, header, render_template
from dbt_prom_bridge.rules_syntax import comment_text, promql_string

#: Prometheus's default lookback for instant selectors.
INSTANT_LOOKBACK = 300
#: The ``target`` label of the test series when the rules match every target.
TEST_TARGET = "prod"

Values = list[float | None]


@dataclass
class Series:
    metric: str
    labels: dict[str, str]
    values: Values

    def text(self) -> str:
        inner = ", ".join(f"{k}={promql_string(v)}" for k, v in sorted(self.labels.items()))
        return f"{self.metric}{{{inner}}}"


@dataclass
class Expected:
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]


@dataclass
class Check:
    eval_time: str
    alertname: str
    alerts: list[Expected]


@dataclass
class TestGroup:
    comment: str
    series: list[dict[str, str]]
    checks: list[Check]


@dataclass
class _State:
    active_at: int
    firing: bool = False
    keep_since: int | None = None
    value: float = 0.0


Key = tuple[tuple[str, str], ...]
#: An alert condition over the scenario: step -> {alert labels: value} of the active alerts.
Condition = Callable[[int], dict[Key, float]]


@dataclass
class Scenario:
    """Series over ``steps + 1`` evaluation steps of ``interval`` seconds, and the conditions."""

    interval: int
    steps: int
    opts: RulesOptions
    series: list[Series] = field(default_factory=list)
    conditions: dict[str, list[Condition]] = field(default_factory=dict)
    #: Per alert label set: the thresholds its text names and its own runbook (meta.runbook_url).
    context: dict[Key, tuple[Mapping[str, float], str | None]] = field(default_factory=dict)
    #: Per alert label set of a source with a business calendar: it, and its deadline series.
    calendars: dict[Key, tuple[Calendar, Mapping[str, Series]]] = field(default_factory=dict)
    _firing: dict[str, list[dict[Key, float]]] = field(default_factory=dict)
    #: Step -> the recorded usual age (the later-than-usual text names it).
    usual: dict[int, float] = field(default_factory=dict)
    #: The burn speed of each budget burn alert.
    burns: dict[Key, Burn] = field(default_factory=dict)

    def condition(self, alert: str, fn: Condition) -> None:
        self.conditions.setdefault(alert, []).append(fn)

    # -- series ---------------------------------------------------------------------------------
    def add(self, metric: str, labels: Mapping[str, str], values: Values) -> Series:
        item = Series(metric, {k: v for k, v in labels.items() if v}, values)
        self.series.append(item)
        return item

    def visible(self, item: Series | None, step: int) -> float | None:
        """What a selector reads at ``step``: the newest sample within the lookback window."""
        if item is None:
            return None
        window = self.opts.lookback or INSTANT_LOOKBACK
        for k in range(step, -1, -1):
            if (step - k) * self.interval > window:
                return None
            if item.values[k] is not None:
                return item.values[k]
        return None

    # -- model of the alerting rule manager ---------------------------------------------------------
    def firing(self, alert: str, step: int) -> dict[Key, float]:
        """The firing alerts (labels -> value of their last active evaluation) at ``step``."""
        if alert not in self._firing:
            self._firing[alert] = self._simulate(self.conditions.get(alert, []))
        return self._firing[alert][step]

    def _simulate(self, conditions: Sequence[Condition]) -> list[dict[Key, float]]:
        """Prometheus's alert state machine: pending until ``for`` has passed since the alert became
        active, firing after; an alert that stops matching is dropped, or kept firing for
        ``keep_firing_for`` from the first evaluation it no longer matched."""
        states: dict[Key, _State] = {}
        hold = int(self.opts.for_seconds)
        keep = int(self.opts.keep_firing_for or 0)
        out: list[dict[Key, float]] = []
        for k in range(self.steps + 1):
            ts = k * self.interval
            active: dict[Key, float] = {}
            for fn in conditions:
                active.update(fn(k))
            for labels, value in active.items():
                state = states.get(labels)
                if state is None:
                    state = states[labels] = _State(active_at=ts)
                state.keep_since = None
                state.value = value
                if not state.firing and ts - state.active_at >= hold:
                    state.firing = True
            for labels in list(states):
                if labels in active:
                    continue
                state = states[labels]
                if state.firing and keep:
                    if state.keep_since is None:
                        state.keep_since = ts
                    if ts - state.keep_since < keep:
                        continue
                del states[labels]
            out.append({labels: s.value for labels, s in states.items() if s.firing})
        return out

    def expected(self, alert: str, step: int) -> list[Expected]:
        out = []
        for labels, value in sorted(self.firing(alert, step).items()):
            thresholds, runbook = self.context.get(labels, ({}, None))
            if alert == LATER_THAN_USUAL:
                thresholds = {USUAL: self.usual[step]}
            calendar, deadlines = self.calendars.get(labels, (None, {}))
            # Annotations are those of the alert's last active evaluation (keep_firing_for).
            active = self.last_active(alert, labels, step) if deadlines else step
            seen = {name: self.visible(item, active) for name, item in deadlines.items()}
            text = PlainText(
                dict(labels),
                value,
                thresholds,
                calendar,
                {name: v for name, v in seen.items() if v is not None},
            )
            notes = alert_annotations(
                alert,
                text,
                self.opts,
                runbook=runbook,
                dynamic_runbook=project_wide(alert, self.opts),
                burn=self.burns.get(labels),
            )
            out.append(Expected(tuple((k, v) for k, v in labels if k != "alertname"), notes))
        return out

    def last_active(self, alert: str, labels: Key, step: int) -> int:
        """The last step up to ``step`` where ``alert`` was active for ``labels``."""
        for k in range(step, -1, -1):
            if any(labels in fn(k) for fn in self.conditions.get(alert, [])):
                return k
        return step

    def rendered_series(self) -> list[dict[str, str]]:
        return [{"series": s.text(), "samples": values_text(s.values)} for s in self.series]


def values_text(values: Values) -> str:
    """promtool's expanding notation: ``v+0xN`` for repeats, ``_xN`` for gaps."""
    tokens: list[str] = []
    k = 0
    while k < len(values):
        value = values[k]
        run = 1
        while k + run < len(values) and values[k + run] == value:
            run += 1
        if value is None:
            tokens.append("_" if run == 1 else f"_x{run}")
        else:
            text = number(value)
            tokens.append(text if run == 1 else f"{text}+0x{run - 1}")
        k += run
    return " ".join(tokens)


def _key(labels: Mapping[str, str], alert: str, rule_labels: Mapping[str, str]) -> Key:
    merged = {k: v for k, v in labels.items() if v}
    merged.update({k: v for k, v in rule_labels.items() if v})
    merged["alertname"] = alert
    return tuple(sorted(merged.items()))


class Builder:
    """Builds the scenarios of one project."""

    def __init__(self, project: ProjectSources, opts: RulesOptions, others: Sequence[str] = ()) -> None:
        self.project = project
        #: The other projects of the same rule file: their runs are fresh in the run-level scenarios.
        self.others = tuple(others)
        self.opts = opts = project.options(opts)
        self.interval = eval_interval(opts)
        self.target = sorted(opts.target_labels)[0] if opts.target_labels else TEST_TARGET
        #: Samples every ``sample_every`` seconds: dense, or sparse like remote write.
        self.sample_every = self.interval
        if opts.lookback:
            half = int(opts.lookback // 2)
            self.sample_every = max(self.interval, half - half % self.interval)
        self.t0 = 2 * self.interval

    # -- labels -----------------------------------------------------------------------------------
    def run_labels(self) -> dict[str, str]:
        return {"project": self.project.project, "target": self.target, "job": self.opts.job}

    def source_labels(self, source: SourceDef) -> dict[str, str]:
        labels = {
            **self.run_labels(),
            "source_name": source.source_name,
            "table_name": source.table_name,
            "database": source.database,
            "schema": source.schema,
            "identifier": source.identifier,
        }
        for key in self.opts.meta_labels:
            labels[key] = source.meta_get(key)
        return labels

    def rule_labels(self, alert: str, source: SourceDef | None) -> dict[str, str]:
        """The labels a rule sets (they override the series' labels; always the same values here)."""
        out = {"project": self.project.project}
        if source is None:
            return {**out, "severity": severity(alert, self.opts)}
        out["severity"] = severity(alert, self.opts, has_error_after=source.error_after is not None)
        if not project_wide(alert, self.opts):
            out.update(source_name=source.source_name, table_name=source.table_name)
            out.update({k: source.meta_get(k) for k in self.opts.meta_labels if source.meta_get(k)})
        return out

    # -- series helpers -----------------------------------------------------------------------------
    def steps_until(self, last: int) -> int:
        return last // self.interval

    def timeline(
        self, steps: int, value_at: Callable[[int], float | None], changes: Iterable[int] = ()
    ) -> Values:
        """Values per step; with lookback only every ``sample_every`` seconds (and at ``changes``)."""
        change_steps = {c // self.interval for c in changes}
        out: Values = []
        for k in range(steps + 1):
            ts = k * self.interval
            sampled = ts % self.sample_every == 0 or k in change_steps
            out.append(value_at(ts) if sampled else None)
        return out

    def constant(self, steps: int, value: float) -> Values:
        return self.timeline(steps, lambda _: value)

    def switch(self, steps: int, at: int, before: float | None, after: float | None) -> Values:
        """``before`` until ``at`` seconds, then ``after``; ``None`` before means "loaded now"."""

        def value(ts: int) -> float | None:
            if ts < at:
                return float(ts) if before is None else before
            return after

        return self.timeline(steps, value, (at,))

    def thresholds(self, source: SourceDef) -> dict[str, float]:
        out: dict[str, float] = {}
        if source.warn_after is not None:
            out[WARN_AFTER] = float(source.warn_after.seconds)
        if source.error_after is not None:
            out[ERROR_AFTER] = float(source.error_after.seconds)
        return out

    # -- scenarios ----------------------------------------------------------------------------------
    def crossing(self, metric: str) -> TestGroup:
        """Every source whose ``metric`` threshold is set crosses it at T0; fresh data at T_rec."""
        opts, i = self.opts, self.interval
        hold, keep = int(opts.for_seconds), int(opts.keep_firing_for or 0)
        fire = self.t0 + i + hold
        recover = fire + i
        times = sorted({self.t0, self.t0 + hold, fire, recover, *((recover + keep,) if keep else ())})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, opts)
        kind = "warn_after" if metric == WARN_AFTER else "error_after"
        for source in self.project.sources:
            labels = self.source_labels(source)
            th = self.thresholds(source)
            crosses = metric in th
            offset = th[metric] if crosses else 0.0
            base = self.t0 - offset

            def loaded(ts: int, base: float = base, crosses: bool = crosses) -> float:
                return float(recover) if crosses and ts >= recover else base

            mla = sc.add(MAX_LOADED_AT, labels, self.timeline(steps, loaded, (recover,)))
            has_data = sc.add(HAS_DATA, labels, self.timeline(steps, lambda _: 1.0))
            passing = sc.add(
                STATUS, {**labels, "status": Status.PASS.value}, self.timeline(steps, lambda _: 1.0)
            )
            for name, seconds in sorted(th.items()):
                sc.add(name, labels, self.constant(steps, seconds))
            # As pushed: each deadline is max_loaded_at + threshold (a calendar's is later; see calendar()).
            deadlines = {
                DEADLINES[name]: sc.add(
                    DEADLINES[name],
                    labels,
                    self.timeline(steps, lambda ts, s=seconds: loaded(ts) + s, (recover,)),  # type: ignore[misc]
                )
                for name, seconds in sorted(th.items())
            }
            self._source_candidates(
                sc, source, labels, mla, has_data, {Status.PASS.value: passing}, deadlines=deadlines
            )
        checks = self._checks(sc, times, SOURCE_ALERTS)
        return TestGroup(
            f"{kind}: each source's data reaches its {kind} at {format_duration(self.t0)}, fires "
            f"{format_duration(hold)} (for) after, is fresh again at {format_duration(recover)}",
            sc.rendered_series(),
            checks,
        )

    def state(self, alert: str) -> TestGroup:
        """Every source passes until T0, then has no data / a runtime error / is not run."""
        opts, i = self.opts, self.interval
        hold = int(opts.for_seconds)
        start = self.t0
        times = sorted({start - i, *((start + hold - i,) if hold >= i else ()), start + hold})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, opts)
        new_status = {NO_DATA: Status.ERROR, RUNTIME_ERROR: Status.RUNTIME_ERROR, NOT_RUN: Status.NOT_RUN}[
            alert
        ]
        for source in self.project.sources:
            labels = self.source_labels(source)
            th = self.thresholds(source)
            # Fresh data (loaded at the evaluation time) until T0, then no max_loaded_at at all.
            mla = sc.add(MAX_LOADED_AT, labels, self.switch(steps, start, None, None))
            has_data = sc.add(
                HAS_DATA, labels, self.switch(steps, start, 1.0, 0.0 if alert == NO_DATA else 1.0)
            )
            passing = sc.add(
                STATUS, {**labels, "status": Status.PASS.value}, self.switch(steps, start, 1.0, 0.0)
            )
            now = sc.add(STATUS, {**labels, "status": new_status.value}, self.switch(steps, start, 0.0, 1.0))
            for name, seconds in sorted(th.items()):
                sc.add(name, labels, self.constant(steps, seconds))
            statuses = {Status.PASS.value: passing, new_status.value: now}
            self._source_candidates(sc, source, labels, mla, has_data, statuses)
        what = {NO_DATA: "has no data", RUNTIME_ERROR: "has a runtime error", NOT_RUN: "is not run"}[alert]
        return TestGroup(
            f"{alert}: every source passes, then {what} from {format_duration(start)}",
            sc.rendered_series(),
            self._checks(sc, times, SOURCE_ALERTS),
        )

    def _source_candidates(
        self,
        sc: Scenario,
        source: SourceDef,
        labels: dict[str, str],
        mla: Series,
        has_data: Series,
        statuses: Mapping[str, Series],
        checked: tuple[Series, Series] | None = None,
        deadlines: Mapping[str, Series] | None = None,
    ) -> None:
        """The alert conditions of one source; ``checked``: its check time and its run's timestamp."""
        th = self.thresholds(source)
        runbook = source.meta_get("runbook_url") or None
        clean = {k: v for k, v in labels.items() if v}
        calendar = source_calendar(source)

        for alert, metric in ((WARN, WARN_AFTER), (ERROR, ERROR_AFTER)):
            if metric not in th:
                continue
            key = _key(clean, alert, self.rule_labels(alert, source))
            sc.context[key] = (th, runbook)
            due = (deadlines or {}).get(DEADLINES[metric])
            if calendar is not None:
                sc.calendars[key] = (calendar, deadlines or {})

            def cond(
                k: int, key: Key = key, limit: float = th[metric], due: Series | None = due
            ) -> dict[Key, float]:
                loaded = sc.visible(mla, k)
                if loaded is None:
                    return {}
                age = k * sc.interval - loaded
                # the rule: older than the threshold unless the pushed deadline is not yet past
                until = sc.visible(due, k)
                if until is not None and until >= k * sc.interval:
                    return {}
                return {key: age} if age > limit else {}

            sc.condition(alert, cond)

        nodata_key = _key(clean, NO_DATA, self.rule_labels(NO_DATA, source))
        sc.context[nodata_key] = (th, runbook)
        sc.condition(NO_DATA, lambda k: {nodata_key: 0.0} if sc.visible(has_data, k) == 0 else {})
        for alert, status in ((RUNTIME_ERROR, Status.RUNTIME_ERROR), (NOT_RUN, Status.NOT_RUN)):
            item = statuses.get(status.value)
            key = _key({**clean, "status": status.value}, alert, self.rule_labels(alert, source))
            sc.context[key] = (th, runbook)

            def state_cond(k: int, item: Series | None = item, key: Key = key) -> dict[Key, float]:
                return {key: 1.0} if sc.visible(item, k) == 1 else {}

            sc.condition(alert, state_cond)
        if checked is None:
            return
        check_series, run_series = checked
        not_checked = _key(clean, NOT_CHECKED, self.rule_labels(NOT_CHECKED, source))
        sc.context[not_checked] = (th, runbook)
        stale = self.opts.stale_after

        def left_out(k: int) -> dict[Key, float]:
            check, run = sc.visible(check_series, k), sc.visible(run_series, k)
            if check is None or run is None or run - check <= stale:
                return {}
            return {not_checked: run - check}

        sc.condition(NOT_CHECKED, left_out)

    def _checks(self, sc: Scenario, times: Sequence[int], alerts: Sequence[str]) -> list[Check]:
        return [
            Check(format_duration(t), alert, sc.expected(alert, t // sc.interval))
            for t in times
            for alert in alerts
        ]

    def not_checked(self) -> TestGroup:
        """Runs of the project keep arriving; every source was last checked ``stale_after`` before
        the run at T0, and is checked again at T_rec."""
        opts, i = self.opts, self.interval
        hold, keep = int(opts.for_seconds), int(opts.keep_firing_for or 0)
        fire = self.t0 + i + hold
        recover = fire + i
        times = sorted({self.t0, self.t0 + hold, fire, recover, *((recover + keep,) if keep else ())})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, opts)
        run_ts = sc.add(RUN_TIMESTAMP, self.run_labels(), self.timeline(steps, float))
        self.other_runs(sc, steps)
        base = self.t0 - opts.stale_after
        for source in self.project.sources:
            labels = self.source_labels(source)
            mla = sc.add(MAX_LOADED_AT, labels, self.timeline(steps, float))
            has_data = sc.add(HAS_DATA, labels, self.constant(steps, 1.0))
            passing = sc.add(STATUS, {**labels, "status": Status.PASS.value}, self.constant(steps, 1.0))
            for name, seconds in sorted(self.thresholds(source).items()):
                sc.add(name, labels, self.constant(steps, seconds))

            def check_time(ts: int) -> float:
                return float(ts) if ts >= recover else base

            check = sc.add(CHECKED_AT, labels, self.timeline(steps, check_time, (recover,)))
            statuses = {Status.PASS.value: passing}
            self._source_candidates(sc, source, labels, mla, has_data, statuses, (check, run_ts))
        return TestGroup(
            f"{NOT_CHECKED}: runs arrive, but every source's last check is --stale-after older than "
            f"the run at {format_duration(self.t0)}; checked again at {format_duration(recover)}",
            sc.rendered_series(),
            self._checks(sc, times, SOURCE_ALERTS),
        )

    # -- run-level ------------------------------------------------------------------------------------
    def run_failed(self) -> TestGroup:
        i, hold = self.interval, int(self.opts.for_seconds)
        start = self.t0
        times = sorted({start - i, *((start + hold - i,) if hold >= i else ()), start + hold})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)
        labels = self.run_labels()
        success = sc.add(
            RUN_SUCCESS, labels, self.timeline(steps, lambda ts: 1.0 if ts < start else 0.0, (start,))
        )
        sc.add(RUN_TIMESTAMP, labels, self.timeline(steps, float))
        key = _key(labels, RUN_FAILED, self.rule_labels(RUN_FAILED, None))
        sc.condition(RUN_FAILED, lambda k: {key: 0.0} if sc.visible(success, k) == 0 else {})
        return TestGroup(
            f"{RUN_FAILED}: dbt could not run from {format_duration(start)} (run_success 0)",
            sc.rendered_series(),
            self._checks(sc, times, (RUN_FAILED,)),
        )

    def bridge_stale(self) -> TestGroup:
        i, hold = self.interval, int(self.opts.for_seconds)
        keep = int(self.opts.keep_firing_for or 0)
        stale = self.opts.stale_after
        fire = self.t0 + i + hold
        recover = fire + i
        times = sorted({self.t0, self.t0 + hold, fire, recover, *((recover + keep,) if keep else ())})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)
        labels = self.run_labels()
        base = self.t0 - stale
        run_ts = sc.add(
            RUN_TIMESTAMP,
            labels,
            self.timeline(steps, lambda ts: float(recover) if ts >= recover else base, (recover,)),
        )
        sc.add(RUN_SUCCESS, labels, self.timeline(steps, lambda _: 1.0))
        self.other_runs(sc, steps)
        key = _key(labels, BRIDGE_STALE, self.rule_labels(BRIDGE_STALE, None))

        def cond(k: int) -> dict[Key, float]:
            last = sc.visible(run_ts, k)
            if last is None:
                return {}
            age = k * i - last
            return {key: age} if age > stale else {}

        sc.condition(BRIDGE_STALE, cond)
        return TestGroup(
            f"{BRIDGE_STALE}: the last run reaches --stale-after at {format_duration(self.t0)}, "
            f"a new run arrives at {format_duration(recover)}",
            sc.rendered_series(),
            self._checks(sc, times, (BRIDGE_STALE,)),
        )

    def other_runs(self, sc: Scenario, steps: int) -> None:
        """Fresh runs of the file's other projects, so their own DbtFreshnessBridgeStale stays quiet."""
        for name in self.others:
            sc.add(RUN_TIMESTAMP, {**self.run_labels(), "project": name}, self.timeline(steps, float))

    def bridge_absent(self) -> TestGroup:
        i, hold = self.interval, int(self.opts.for_seconds)
        times = sorted({*((hold - i,) if hold >= i else ()), hold})
        steps = self.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)
        # Only other projects' runs exist: this project's is absent.
        other = {**self.run_labels(), "project": self.project.project + "_other"}
        sc.add(RUN_TIMESTAMP, other, self.timeline(steps, float))
        self.other_runs(sc, steps)
        absent_labels = {"project": self.project.project}
        if len(set(self.opts.target_labels)) == 1:
            absent_labels["target"] = self.target
        key = _key(absent_labels, BRIDGE_STALE, self.rule_labels(BRIDGE_STALE, None))
        sc.condition(BRIDGE_STALE, lambda k: {key: 1.0})
        return TestGroup(
            f"{BRIDGE_STALE}: no run of the project at all",
            sc.rendered_series(),
            self._checks(sc, times, (BRIDGE_STALE,)),
        )

    def push_failing(self) -> TestGroup:
        i, hold = self.interval, int(self.opts.for_seconds)
        start = self.t0
        times = sorted({start - i, *((start + hold - i,) if hold >= i else ()), start + hold})
        steps = self.steps_until(times[-1])
        # The Pushgateway's series are scraped, never remote-written: dense.
        sc = Scenario(i, steps, self.opts)
        labels = self.run_labels()
        dense = [float(k * i) for k in range(steps + 1)]
        pushed = sc.add(PUSH_TIME, labels, [v if v < start else float(start - i) for v in dense])
        failed = sc.add(PUSH_FAILURE_TIME, labels, [0.0 if v < start else float(start) for v in dense])
        sc.add(RUN_TIMESTAMP, labels, self.timeline(steps, float))
        key = _key(labels, PUSH_FAILING, self.rule_labels(PUSH_FAILING, None))

        def cond(k: int) -> dict[Key, float]:
            f, p = sc.visible(failed, k), sc.visible(pushed, k)
            return {key: f} if f is not None and p is not None and f > p else {}

        sc.condition(PUSH_FAILING, cond)
        return TestGroup(
            f"{PUSH_FAILING}: pushes of job {self.opts.job} are rejected from {format_duration(start)}",
            sc.rendered_series(),
            self._checks(sc, times, (PUSH_FAILING,)),
        )

    def calendar(self) -> list[TestGroup]:
        """Sources with a business calendar, loaded before a weekend, a holiday and a DST change."""
        out: list[TestGroup] = []
        for source in self.project.sources:
            calendar = source_calendar(source)
            th = self.thresholds(source)
            if calendar is None or not th:
                continue
            metric = WARN_AFTER if WARN_AFTER in th else ERROR_AFTER
            for what, loaded in calendar_loads(calendar, th[metric]):
                out.append(self.calendar_case(source, calendar, metric, what, loaded))
        return out

    def calendar_case(
        self, source: SourceDef, calendar: Calendar, metric: str, what: str, loaded: float
    ) -> TestGroup:
        """Real dates moved so the deadline falls at T0: quiet one interval before (although the
        data is far older than the threshold), firing ``for`` after it."""
        i, hold = self.interval, int(self.opts.for_seconds)
        th = self.thresholds(source)
        due = deadline(calendar, loaded, th[metric])
        shift = due - self.t0
        fire = self.t0 + i + hold
        times = sorted({self.t0 - i, self.t0 + hold, fire})
        steps = self.steps_until(fire)
        sc = Scenario(i, steps, self.opts)
        labels = self.source_labels(source)
        mla = sc.add(MAX_LOADED_AT, labels, self.constant(steps, loaded - shift))
        has_data = sc.add(HAS_DATA, labels, self.constant(steps, 1.0))
        passing = sc.add(STATUS, {**labels, "status": Status.PASS.value}, self.constant(steps, 1.0))
        deadlines: dict[str, Series] = {}
        for name, seconds in sorted(th.items()):
            sc.add(name, labels, self.constant(steps, seconds))
            value = deadline(calendar, loaded, seconds) - shift
            deadlines[DEADLINES[name]] = sc.add(DEADLINES[name], labels, self.constant(steps, value))
        self._source_candidates(
            sc, source, labels, mla, has_data, {Status.PASS.value: passing}, deadlines=deadlines
        )
        kind = "warn_after" if metric == WARN_AFTER else "error_after"
        return TestGroup(
            f"{source.source_name}.{source.table_name} on {calendar.describe()}: loaded "
            f"{calendar.local_text(loaded)}, {what}; its {kind} deadline {calendar.local_text(due)} "
            f"is at {format_duration(self.t0)} here: quiet before although "
            f"{humanize_duration(due - loaded)} old, fires {format_duration(hold)} (for) after",
            sc.rendered_series(),
            self._checks(sc, times, (WARN, ERROR)),
        )

    # -- history: later than usual, SLO burn rates (dense samples, days of evaluations) -----------
    def _history(self, sc: Scenario, source: SourceDef, alert: str, extra: Mapping[str, str] = {}) -> Key:
        labels = {k: v for k, v in self.source_labels(source).items() if v}
        return _key(labels, alert, {**self.rule_labels(alert, source), **extra})

    def usual(self, kind: str) -> TestGroup:
        """``hourly``: hourly loads for a day more than the window, then none; ``daily``: daily
        loads, checked 20h into a day; ``young``: hourly loads for only 2 days, then none."""
        opts, i = self.opts, self.interval
        hold = int(opts.for_seconds)
        window = int(opts.usual_window)
        day = 86400
        if kind == "young":
            start, stop = window - day, window + day
            end = stop + day
        elif kind == "hourly":
            start, stop = 0, window + day
            end = stop + 3 * 3600 + hold
        else:
            start, stop = 0, window + 3 * day
            end = window + day + 20 * 3600
        cadence = day if kind == "daily" else 3600
        steps = end // i
        sc = Scenario(i, steps, opts)

        def loaded(k: int) -> float | None:
            ts = k * i
            if ts < start:
                return None
            return float(min(ts, stop) // cadence * cadence)

        mla = [loaded(k) for k in range(steps + 1)]
        age = [None if v is None else k * i - v for k, v in enumerate(mla)]
        recent = _window_max(age, PEAK_RANGE // i)
        peaks: list[float | None] = [
            m if m is not None and a is not None and m > a else None for m, a in zip(recent, age, strict=True)
        ]
        usual = _window_max(peaks, window // i)
        back = window // i
        reach = INSTANT_LOOKBACK // i

        def active(k: int) -> float | None:
            a, u = age[k], usual[k]
            seen = k >= back and any(
                age[j] is not None for j in range(max(0, k - back - reach), k - back + 1)
            )
            if a is None or u is None or not seen:
                return None
            return a if a > opts.usual_factor * u and a > opts.usual_floor else None

        for source in self.project.sources:
            sc.add(MAX_LOADED_AT, self.source_labels(source), list(mla))
            key = self._history(sc, source, LATER_THAN_USUAL)
            sc.context[key] = ({}, source.meta_get("runbook_url") or None)

            def cond(k: int, key: Key = key) -> dict[Key, float]:
                value = active(k)
                return {} if value is None else {key: value}

            sc.condition(LATER_THAN_USUAL, cond)
        sc.usual = {k: u for k, u in enumerate(usual) if u is not None}
        fire = next((k for k in range(steps + 1) if sc.firing(LATER_THAN_USUAL, k)), None)
        times = {stop + 3600, end}
        if fire is not None:
            times |= {(fire - 1) * i, fire * i}
        if kind == "daily":
            times = {window + day + 20 * 3600, window + day + 3600}
        what = {
            "hourly": "hourly loads stop",
            "daily": "daily loads, checked at hour 20 of a day",
            "young": "hourly loads with only 2 days of history stop",
        }[kind]
        return TestGroup(
            f"{LATER_THAN_USUAL}: {what} at {format_duration(stop)}",
            sc.rendered_series(),
            self._checks(sc, sorted(times), (LATER_THAN_USUAL,)),
        )

    def burn(self, speed: str) -> TestGroup:
        """``fast``: every source is past its error deadline from 1h30m on; ``slow``: one
        evaluation in ten, for 6h."""
        opts, i = self.opts, self.interval
        hold = int(opts.for_seconds)
        bad_from = 5400
        end = bad_from + (3600 if speed == "fast" else 5 * 3600) + hold
        steps = end // i
        sc = Scenario(i, steps, opts)

        def deadline(k: int) -> float:
            ts = k * i
            bad = ts >= bad_from and (speed == "fast" or k % 10 == 0)
            return float(ts - 1 if bad else ts + 3600)

        deadlines = [deadline(k) for k in range(steps + 1)]
        within = [1.0 if d >= k * i else 0.0 for k, d in enumerate(deadlines)]
        ratios = {
            w: _window_mean(within, w // i)
            for w in {b.long_window for b in BURNS} | {b.short_window for b in BURNS}
        }
        burn = next(b for b in BURNS if b.speed == speed)
        for source in self.project.sources:
            labels = self.source_labels(source)
            sc.add(ERROR_DEADLINE, labels, list(deadlines))
            for name, seconds in sorted(self.thresholds(source).items()):
                sc.add(name, labels, self.constant(steps, seconds))
            objective = source_objective(source, opts)
            if objective is None or source.error_after is None:
                continue
            budget = 1 - objective
            for b in BURNS:
                sev = opts.severity_error if b.speed == "fast" else opts.severity_warn
                key = self._history(sc, source, BUDGET_BURN, {"burn": b.speed, "severity": sev})
                sc.context[key] = ({}, source.meta_get("runbook_url") or None)
                sc.burns[key] = b

                def cond(k: int, key: Key = key, b: Burn = b, budget: float = budget) -> dict[Key, float]:
                    rates = [(1 - ratios[w][k]) / budget for w in (b.long_window, b.short_window)]
                    return {key: rates[0]} if all(r > b.factor for r in rates) else {}

                sc.condition(BUDGET_BURN, cond)
        fire = next((k for k in range(steps + 1) if sc.firing(BUDGET_BURN, k)), None)
        times = {bad_from - i, end}
        if fire is not None:
            times |= {(fire - 1) * i, fire * i}
        return TestGroup(
            f"{BUDGET_BURN} ({burn.speed}): every source is past its error_after "
            f"{'from' if speed == 'fast' else 'one evaluation in ten from'} {format_duration(bad_from)}",
            sc.rendered_series(),
            self._checks(sc, sorted(times), (BUDGET_BURN,)),
        )

    def all(self) -> list[TestGroup]:
        """Every scenario but the later-than-usual ones (see :func:`render_usual_tests`)."""
        groups = [self.crossing(WARN_AFTER), self.crossing(ERROR_AFTER)]
        groups += [self.state(alert) for alert in (NO_DATA, RUNTIME_ERROR, NOT_RUN)]
        groups.append(self.not_checked())
        groups += [self.run_failed(), self.bridge_stale(), self.bridge_absent(), self.push_failing()]
        objectives = (source_objective(s, self.opts) for s in self.project.sources)
        if not literal_state_rules(self.opts) and any(o is not None for o in objectives):
            groups += [self.burn("fast"), self.burn("slow")]
        groups += self.calendar()
        for group in groups:
            group.comment = comment_text(f"{self.project.project} - {group.comment}")
        return groups


#: Calendar scenarios take their dates from this year on (fixed: generated tests are deterministic).
CALENDAR_REFERENCE = 1767225600.0  # 2026-01-01T00:00:00Z


def calendar_loads(calendar: Calendar, seconds: float) -> list[tuple[str, float]]:
    """Load times half a threshold before the calendar's first pause over a weekend (a day it does
    not run), over a public holiday, and over a change of UTC offset (DST)."""
    found: dict[str, float] = {}
    zone = calendar.zone
    for start, end in itertools.islice(pauses(calendar, CALENDAR_REFERENCE), 3000):
        first = datetime.fromtimestamp(start, zone).date()
        last = datetime.fromtimestamp(end, zone).date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        if any(d.weekday() not in calendar.days for d in days):
            found.setdefault("paused over a weekend", start)
        if any(d.weekday() in calendar.days and calendar.is_holiday(d) for d in days):
            found.setdefault("paused over a public holiday", start)
        if datetime.fromtimestamp(start, zone).utcoffset() != datetime.fromtimestamp(end, zone).utcoffset():
            found.setdefault("paused over a change of UTC offset", start)
        if len(found) == 3 or start - CALENDAR_REFERENCE > 2 * 366 * 86400:
            break
    return [(what, start - seconds / 2) for what, start in sorted(found.items(), key=lambda kv: kv[1])]


def _window_max(values: Sequence[float | None], width: int) -> list[float | None]:
    """Per index k: the max of ``values[k - width .. k]`` (a closed range, as Prometheus 2.x), None
    when they are all None."""
    out: list[float | None] = []
    queue: deque[tuple[int, float]] = deque()
    for k, value in enumerate(values):
        if value is not None:
            while queue and queue[-1][1] <= value:
                queue.pop()
            queue.append((k, value))
        while queue and queue[0][0] < k - width:
            queue.popleft()
        out.append(queue[0][1] if queue else None)
    return out


def _window_mean(values: Sequence[float], width: int) -> list[float]:
    """Per index k: the mean of ``values[k - width .. k]`` (``avg_over_time`` of a dense series)."""
    out: list[float] = []
    total = 0.0
    for k, value in enumerate(values):
        total += value
        if k - width - 1 >= 0:
            total -= values[k - width - 1]
        out.append(total / (min(k, width) + 1))
    return out


def eval_interval(opts: RulesOptions) -> int:
    """The test's evaluation interval: 1m, or finer when ``for``/``keep_firing_for`` need it."""
    out = 60
    for seconds in (opts.for_seconds, opts.keep_firing_for or 0):
        out = math.gcd(out, int(seconds)) if seconds else out
    return max(out, 1)


def render_tests(
    projects: Sequence[ProjectSources],
    opts: RulesOptions,
    rule_file: str,
    command: str,
    rules_name: str,
    extra: Mapping[str, Sequence[TestGroup]] | None = None,
) -> str:
    """The promtool test file for the rules of ``projects`` (``rule_file``: relative to the test file).

    ``extra``: per project, more scenarios (the model alerts), after that project's own."""
    groups: list[TestGroup] = []
    names = [p.project for p in projects]
    for project in projects:
        groups.extend(Builder(project, opts, [n for n in names if n != project.project]).all())
        groups.extend((extra or {}).get(project.project, ()))
    checks = sum(len(g.checks) for g in groups)
    head = [
        HEADER[2:],
        f"Regenerate with: {command}",
        "",
        f"promtool unit tests of {rules_name} ({opts.mode.value} mode): {len(groups)} scenario(s), "
        f"{checks} check(s). Run: promtool test rules <this file>",
    ]
    tests = [
        {
            "comment": g.comment,
            "series": g.series,
            "checks": [
                {
                    "eval_time": c.eval_time,
                    "alertname": c.alertname,
                    "alerts": [{"labels": a.labels, "annotations": a.annotations} for a in c.alerts],
                }
                for c in g.checks
            ],
        }
        for g in groups
    ]
    return render_template(
        "rule_tests.yml.j2",
        header=header(head),
        rule_file=rule_file,
        interval=format_duration(eval_interval(opts)),
        tests=tests,
    )


#: Evaluation interval of the later-than-usual tests: 8+ days of evaluations of the whole file.
USUAL_INTERVAL = 300


def render_usual_tests(projects: Sequence[ProjectSources], opts: RulesOptions, rule_file: str) -> str:
    """promtool tests of DbtSourceLaterThanUsual over 8+ days: an hourly source that stops, a daily
    source at hour 20, a source with 2 days of history. Evaluated every 5m (the peak detection
    needs two evaluations within 5m: Prometheus 2.x ranges include both ends)."""
    interval = USUAL_INTERVAL
    for seconds in (opts.for_seconds, opts.keep_firing_for or 0):
        interval = math.gcd(interval, int(seconds)) if seconds else interval
    groups: list[TestGroup] = []
    for project in projects:
        builder = Builder(project, opts)
        builder.interval = builder.sample_every = interval
        groups.extend(builder.usual(kind) for kind in ("hourly", "daily", "young"))
    tests = [
        {
            "comment": comment_text(g.comment),
            "series": g.series,
            "checks": [
                {
                    "eval_time": c.eval_time,
                    "alertname": c.alertname,
                    "alerts": [{"labels": a.labels, "annotations": a.annotations} for a in c.alerts],
                }
                for c in g.checks
            ],
        }
        for g in groups
    ]
    return render_template(
        "rule_tests.yml.j2",
        header=header([HEADER[2:], "", f"promtool tests of {LATER_THAN_USUAL}"]),
        rule_file=rule_file,
        interval=format_duration(interval),
        tests=tests,
    )
