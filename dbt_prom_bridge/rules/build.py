"""Rule groups of one project: literal per-source rules, or dynamic rules over the pushed
thresholds; state and run-level rules shared by both modes."""

from __future__ import annotations

from functools import lru_cache

from dbt_prom_bridge.calendar import Calendar
from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.exposition import (
    CHECKED_AT,
    ERROR_AFTER,
    ERROR_DEADLINE,
    HAS_DATA,
    MAX_LOADED_AT,
    RUN_SUCCESS,
    RUN_TIMESTAMP,
    STATUS,
    WARN_AFTER,
    WARN_DEADLINE,
)
from dbt_prom_bridge.model import SourceDef, Status
from dbt_prom_bridge.rules.catalogue import (
    BRIDGE_STALE,
    ERROR,
    NO_DATA,
    NOT_CHECKED,
    NOT_RUN,
    PUSH_FAILING,
    RUN_FAILED,
    RUNTIME_ERROR,
    WARN,
    alert_annotations,
    literal_state_rules,
    severity,
)
from dbt_prom_bridge.rules.history import history_rules
from dbt_prom_bridge.rules.options import Mode, RulesOptions
from dbt_prom_bridge.rules.promql import PUSH_FAILURE_TIME, PUSH_TIME, matchers, number, series, source_extra
from dbt_prom_bridge.rules.render import CalendarGroups, GoText
from dbt_prom_bridge.rules.rule import Group, Rule, make_rule
from dbt_prom_bridge.rules.selection import ProjectSources, source_calendar
from dbt_prom_bridge.rules_syntax import (
    go_text,
    promql_string,
)

_RUNTIME = ("status", Status.RUNTIME_ERROR.value)
_NOT_RUN = ("status", Status.NOT_RUN.value)


@lru_cache(maxsize=4096)
def _source_notes(
    alert: str,
    thresholds: tuple[tuple[str, float], ...],
    runbook: str | None,
    opts: RulesOptions,
    calendar: Calendar | None = None,
) -> tuple[tuple[str, str], ...]:
    """Annotations of a per-source rule (shared by every source with the same thresholds/runbook/calendar)."""
    return alert_annotations(alert, GoText(opts, dict(thresholds), calendar=calendar), opts, runbook)


#: The deadline series pushed for each threshold.
DEADLINES = {WARN_AFTER: WARN_DEADLINE, ERROR_AFTER: ERROR_DEADLINE}


def late(age: str, threshold: str, deadline: str) -> str:
    """Older than the threshold and, where the deadline is pushed, past it: ``time() > deadline``
    decides for sources with a business calendar (their deadline is never earlier than
    ``max_loaded_at + threshold``); a push without deadlines falls back to the age."""
    return f"{age} > {threshold} unless {deadline} >= time()"


def not_checked_expr(project: str, opts: RulesOptions, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """Sources whose last check is more than ``stale_after`` older than the newest run of their
    project and target: runs of other selections arrive, this source is left out of them (a bridge
    that stopped altogether is DbtFreshnessBridgeStale's). The value is how long it was left out."""
    checked = series(CHECKED_AT, matchers(project, opts, extra), opts)
    run_ts = series(RUN_TIMESTAMP, matchers(project, opts), opts)
    return (
        f"max by (project, target) ({run_ts}) - on (project, target) group_right {checked} "
        f"> {number(opts.stale_after)}"
    )


def per_source_rules(project: str, source: SourceDef, opts: RulesOptions) -> list[Rule]:
    """The rules of one source with its thresholds and meta labels as literals."""
    sel = matchers(project, opts, source_extra(source))
    labels: dict[str, str] = {
        "project": go_text(project),
        "source_name": go_text(source.source_name),
        "table_name": go_text(source.table_name),
    }
    for key in opts.meta_labels:
        value = source.meta_get(key)
        if value:
            labels[key] = go_text(value)
    thresholds: dict[str, float] = {}
    if source.warn_after is not None:
        thresholds[WARN_AFTER] = float(source.warn_after.seconds)
    if source.error_after is not None:
        thresholds[ERROR_AFTER] = float(source.error_after.seconds)
    shared = tuple(sorted(thresholds.items()))
    runbook = source.meta_get("runbook_url") or None
    age = f"time() - {series(MAX_LOADED_AT, sel, opts)}"
    calendar = source_calendar(source)
    out: list[Rule] = []
    for alert, metric in ((WARN, WARN_AFTER), (ERROR, ERROR_AFTER)):
        if metric in thresholds:
            expr = f"{age} > {number(thresholds[metric])}"
            if calendar is not None:
                expr = late(age, number(thresholds[metric]), series(DEADLINES[metric], sel, opts))
            out.append(
                make_rule(
                    alert,
                    expr,
                    {**labels, "severity": severity(alert, opts)},
                    _source_notes(alert, shared, runbook, opts, calendar),
                    opts,
                )
            )
    if not literal_state_rules(opts):
        return out
    extra = source_extra(source)
    exprs = {
        NO_DATA: f"{series(HAS_DATA, sel, opts)} == 0",
        RUNTIME_ERROR: f"{series(STATUS, matchers(project, opts, (*extra, _RUNTIME)), opts)} == 1",
        NOT_RUN: f"{series(STATUS, matchers(project, opts, (*extra, _NOT_RUN)), opts)} == 1",
        NOT_CHECKED: not_checked_expr(project, opts, extra),
    }
    for alert, expr in exprs.items():
        sev = severity(alert, opts, has_error_after=ERROR_AFTER in thresholds)
        notes = _source_notes(alert, shared, runbook, opts)
        out.append(make_rule(alert, expr, {**labels, "severity": sev}, notes, opts))
    return out


def threshold_rules(project: str, opts: RulesOptions, calendars: CalendarGroups = ()) -> list[Rule]:
    """Dynamic mode: Warn and Error compare each pushed source's age with its pushed thresholds,
    and with its pushed deadline where there is one (:func:`late`)."""
    sel = matchers(project, opts)
    go = GoText(opts, calendars=calendars)
    age = f"time() - {series(MAX_LOADED_AT, sel, opts)}"
    return [
        make_rule(
            alert,
            late(age, series(metric, sel, opts), series(DEADLINES[metric], sel, opts)),
            {"project": go_text(project), "severity": severity(alert, opts)},
            alert_annotations(alert, go, opts, dynamic_runbook=True),
            opts,
        )
        for alert, metric in ((WARN, WARN_AFTER), (ERROR, ERROR_AFTER))
    ]


def state_rules(project: str, opts: RulesOptions) -> list[Rule]:
    """No data, runtime error, not run: a constant number of project-wide rules.

    The no-data severity follows dbt, which reports a source without rows as ``error`` when it
    has an ``error_after`` and as ``warn`` otherwise. The rule reads only ``has_data``; the label
    template looks the source's ``error_after`` up for each active alert, which costs far less
    than joining every source's threshold at every evaluation.
    """
    sel = matchers(project, opts)
    go = GoText(opts)
    has_data = series(HAS_DATA, sel, opts)
    no_data_severity = go.if_series(
        ERROR_AFTER, go_text(severity(NO_DATA, opts, True)), go_text(severity(NO_DATA, opts, False))
    )

    def notes(alert: str) -> tuple[tuple[str, str], ...]:
        return alert_annotations(alert, go, opts, dynamic_runbook=True)

    def status(value: Status) -> str:
        return series(STATUS, matchers(project, opts, (("status", value.value),)), opts)

    return [
        make_rule(
            NO_DATA,
            f"{has_data} == 0",
            {"project": go_text(project), "severity": no_data_severity},
            notes(NO_DATA),
            opts,
        ),
        make_rule(
            RUNTIME_ERROR,
            f"{status(Status.RUNTIME_ERROR)} == 1",
            {"project": go_text(project), "severity": severity(RUNTIME_ERROR, opts)},
            notes(RUNTIME_ERROR),
            opts,
        ),
        make_rule(
            NOT_RUN,
            f"{status(Status.NOT_RUN)} == 1",
            {"project": go_text(project), "severity": severity(NOT_RUN, opts)},
            notes(NOT_RUN),
            opts,
        ),
        make_rule(
            NOT_CHECKED,
            not_checked_expr(project, opts),
            {"project": go_text(project), "severity": severity(NOT_CHECKED, opts)},
            notes(NOT_CHECKED),
            opts,
        ),
    ]


def run_rules(project: str, opts: RulesOptions) -> list[Rule]:
    """Run-level alerts of one project (the same in both modes)."""
    sel = matchers(project, opts)
    go = GoText(opts)
    run_ts = series(RUN_TIMESTAMP, sel, opts)
    absent = (
        f"absent_over_time({RUN_TIMESTAMP}{sel}[{format_duration(opts.lookback)}])"
        if opts.lookback
        else f"absent({RUN_TIMESTAMP}{sel})"
    )
    push_sel = "{" + f"job={promql_string(opts.job)}, " + sel[1:]
    return [
        make_rule(
            RUN_FAILED,
            f"{series(RUN_SUCCESS, sel, opts)} == 0",
            {"project": go_text(project), "severity": severity(RUN_FAILED, opts)},
            alert_annotations(RUN_FAILED, go, opts),
            opts,
        ),
        make_rule(
            BRIDGE_STALE,
            f"time() - {run_ts} > {number(opts.stale_after)} or {absent}",
            {"project": go_text(project), "severity": severity(BRIDGE_STALE, opts)},
            alert_annotations(BRIDGE_STALE, go, opts),
            opts,
        ),
        make_rule(
            PUSH_FAILING,
            f"{PUSH_FAILURE_TIME}{push_sel} > {PUSH_TIME}{push_sel}",
            {"project": go_text(project), "severity": severity(PUSH_FAILING, opts)},
            alert_annotations(PUSH_FAILING, go, opts),
            opts,
        ),
    ]


def groups(project: ProjectSources, opts: RulesOptions) -> list[Group]:
    """The rule groups of one project.

    dynamic: one group ``<group>/<project>``. per-source: that group holds the run-level and
    state rules, then one group ``<group>/<project>/<source_name>`` per dbt source with the
    threshold rules of its tables (Prometheus evaluates groups concurrently). The project's group
    ends with the later-than-usual and SLO rules (not in a per-source --select/--exclude file:
    they cover the whole project), or, with ``--history-interval``, they are a group of their own,
    ``<group>/<project>#history``, evaluated at that interval.
    """
    opts = project.options(opts)
    base = f"{opts.group_name}/{project.project}"
    name = project.project
    history = () if literal_state_rules(opts) else tuple(history_rules(name, project.sources, opts))
    own: list[Group] = []
    if history and opts.history_interval is not None:
        # "#" cannot follow the base in a per-source group's name ("<base>/<source_name>")
        own.append(Group(f"{base}#history", history, format_duration(opts.history_interval)))
        history = ()
    if opts.mode is Mode.DYNAMIC:
        calendars = project.calendar_groups()
        dynamic = (*threshold_rules(name, opts, calendars), *state_rules(name, opts), *run_rules(name, opts))
        return [Group(base, (*dynamic, *history)), *own]
    shared = () if literal_state_rules(opts) else tuple(state_rules(name, opts))
    out = [Group(base, (*shared, *run_rules(name, opts), *history)), *own]
    by_source: dict[str, list[Rule]] = {}
    for source in project.sources:
        by_source.setdefault(source.source_name, []).extend(per_source_rules(name, source, opts))
    out.extend(
        Group(f"{base}/{source}", tuple(rules)) for source, rules in sorted(by_source.items()) if rules
    )
    return out
