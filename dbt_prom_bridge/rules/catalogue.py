"""The alert catalogue: names, severities, which rules are project-wide, and each alert's
summary/description/runbook/dashboard annotations (runbooks in docs/alerts.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.exposition import (
    ERROR_AFTER,
    WARN_AFTER,
)
from dbt_prom_bridge.rules.options import Mode, RulesOptions
from dbt_prom_bridge.rules.render import Renderer, humanize_duration

WARN = "DbtSourceFreshnessWarn"
ERROR = "DbtSourceFreshnessError"
NO_DATA = "DbtSourceNoData"
RUNTIME_ERROR = "DbtSourceFreshnessRuntimeError"
NOT_RUN = "DbtSourceFreshnessNotRun"
NOT_CHECKED = "DbtSourceFreshnessNotChecked"
LATER_THAN_USUAL = "DbtSourceLaterThanUsual"
BUDGET_BURN = "DbtSourceFreshnessBudgetBurn"
RUN_FAILED = "DbtFreshnessRunFailed"
BRIDGE_STALE = "DbtFreshnessBridgeStale"
PUSH_FAILING = "DbtFreshnessPushFailing"
#: Per-source alerts, in the order they appear in a rule group.
SOURCE_ALERTS: tuple[str, ...] = (WARN, ERROR, NO_DATA, RUNTIME_ERROR, NOT_RUN, NOT_CHECKED)
#: Per-source alerts over the history Prometheus holds (recording rules; the same in both modes).
HISTORY_ALERTS: tuple[str, ...] = (LATER_THAN_USUAL, BUDGET_BURN)
#: Run-level ("meta") alerts.
RUN_ALERTS: tuple[str, ...] = (RUN_FAILED, BRIDGE_STALE, PUSH_FAILING)
ALERTS: tuple[str, ...] = (*SOURCE_ALERTS, *HISTORY_ALERTS, *RUN_ALERTS)


def anchor(alert: str) -> str:
    """The stable anchor of an alert's runbook section in docs/alerts.md (its heading, lower-cased)."""
    return alert.lower()


def severity(alert: str, opts: RulesOptions, has_error_after: bool = True) -> str:
    if alert in (ERROR, RUNTIME_ERROR, RUN_FAILED, BRIDGE_STALE):
        return opts.severity_error
    if alert == NO_DATA:
        return opts.severity_error if has_error_after else opts.severity_warn
    return opts.severity_warn


def literal_state_rules(opts: RulesOptions) -> bool:
    """Whether the no-data/runtime-error/not-run/not-checked rules are written per source.

    Only per-source mode with a selection: the rule file must then cover exactly the selected
    sources. Otherwise they are a constant number of project-wide rules in both modes (they
    involve no threshold), with the meta labels coming from the pushed series.
    """
    return opts.mode is Mode.PER_SOURCE and bool(opts.select or opts.exclude)


def project_wide(alert: str, opts: RulesOptions) -> bool:
    """True when the rule of this source alert is project-wide: its labels (meta) and its
    ``runbook_url`` then come from the pushed series, not from literals."""
    if alert in HISTORY_ALERTS:
        return True
    if alert not in SOURCE_ALERTS:
        return False
    if opts.mode is Mode.DYNAMIC:
        return True
    return alert not in (WARN, ERROR) and not literal_state_rules(opts)


def _where(r: Renderer) -> str:
    return f"project {r.label('project')}, target {r.label('target')}"


def _table(r: Renderer) -> str:
    return f"{r.label('source_name')}.{r.label('table_name')}"


def _threshold_texts(kind: str, metric: str) -> tuple[Callable[[Renderer], str], Callable[[Renderer], str]]:
    def summary(r: Renderer) -> str:
        return f"dbt source {_table(r)} is older than its {kind}"

    def description(r: Renderer) -> str:
        return (
            f"The newest row of {_table(r)} ({_where(r)}) was loaded {r.age()} ago, more than its "
            f"dbt {kind} of {r.threshold(metric)}."
        )

    return summary, description


def _stale_texts(opts: RulesOptions) -> tuple[Callable[[Renderer], str], Callable[[Renderer], str]]:
    stale = humanize_duration(opts.stale_after)
    window = f" in the last {format_duration(opts.lookback)}" if opts.lookback else ""

    def summary(r: Renderer) -> str:
        return r.if_label(
            "target",
            f"No dbt source freshness run of {r.label('project')} ({r.label('target')}) for {r.age()}",
            f"No dbt source freshness run of {r.label('project')} in Prometheus",
        )

    def description(r: Renderer) -> str:
        return r.if_label(
            "target",
            f"The last dbt source freshness run of {_where(r)} was {r.age()} ago, more than "
            f"--stale-after {stale}: its freshness alerts are evaluated on old results. Check the "
            "scheduler that runs dbt-prom push (cron, Airflow, dbt-prom serve).",
            f"Prometheus has no dbt source freshness run of project {r.label('project')}{window}: nothing "
            "pushes it, or the Pushgateway lost its groups (restarted without persistence). Check the "
            "scheduler that runs dbt-prom push.",
        )

    return summary, description


def _not_checked_texts(opts: RulesOptions) -> tuple[Callable[[Renderer], str], Callable[[Renderer], str]]:
    stale = humanize_duration(opts.stale_after)

    def summary(r: Renderer) -> str:
        return f"dbt source {_table(r)} is left out of the freshness runs"

    def description(r: Renderer) -> str:
        return (
            f"The last dbt source freshness check of {_table(r)} ({_where(r)}) is {r.age()} older than "
            f"the newest run of its project, more than --stale-after {stale}: the schedule that "
            "selects it has stopped or no longer selects it. Its alerts are evaluated on its last check."
        )

    return summary, description


#: The recorded "usual" age the later-than-usual alert compares with (its text names it).
USUAL = "dbt_source_freshness:usual_age_seconds"
#: The period of the error budget the burn rates refer to, seconds (30 days).
SLO_PERIOD = 30 * 86400


def _usual_texts(opts: RulesOptions) -> tuple[Callable[[Renderer], str], Callable[[Renderer], str]]:
    factor = f"{opts.usual_factor:g}"
    window = format_duration(opts.usual_window)

    def summary(r: Renderer) -> str:
        return f"dbt source {_table(r)} is later than usual"

    def description(r: Renderer) -> str:
        return (
            f"The newest row of {_table(r)} ({_where(r)}) was loaded {r.age()} ago, more than {factor} "
            f"times the longest it went without new data in the last {window} ({r.threshold(USUAL)})."
        )

    return summary, description


@dataclass(frozen=True)
class Burn:
    """One speed of the multi-window multi-burn-rate alerts (as Sloth generates them)."""

    speed: str
    factor: float
    long_window: int
    short_window: int


#: Page when a 30-day budget would be gone in ~2 days, ticket when in ~5 days.
BURNS: tuple[Burn, ...] = (Burn("fast", 14.4, 3600, 300), Burn("slow", 6.0, 21600, 1800))


def _burn_texts(burn: Burn) -> tuple[Callable[[Renderer], str], Callable[[Renderer], str]]:
    long, short = format_duration(burn.long_window), format_duration(burn.short_window)
    empty = humanize_duration(SLO_PERIOD / burn.factor)

    def summary(r: Renderer) -> str:
        return f"dbt source {_table(r)} is burning its freshness error budget ({burn.speed})"

    def description(r: Renderer) -> str:
        return (
            f"Over both the last {long} and the last {short}, {_table(r)} ({_where(r)}) was past its "
            f"error_after {burn.factor:g} times as often as its freshness objective allows: at this "
            f"rate its 30-day error budget is spent in {empty}."
        )

    return summary, description


TEXTS: Mapping[str, tuple[Callable[[Renderer], str], Callable[[Renderer], str]]] = {
    WARN: _threshold_texts("warn_after", WARN_AFTER),
    ERROR: _threshold_texts("error_after", ERROR_AFTER),
    NO_DATA: (
        lambda r: f"dbt source {_table(r)} has no data",
        lambda r: (
            f"dbt found no rows in {_table(r)} ({_where(r)}): the table is empty or its freshness "
            "filter matches nothing, so the age of its data is unknown and dbt counts it as stale."
        ),
    ),
    RUNTIME_ERROR: (
        lambda r: f"dbt could not check the freshness of {_table(r)}",
        lambda r: (
            f"dbt source freshness failed on {_table(r)} ({_where(r)}) with a runtime error (a missing "
            "loaded_at_field column, a broken loaded_at_query, missing permissions...). Its freshness "
            "is unknown until it is fixed; `dbt-prom status` shows dbt's message."
        ),
    ),
    NOT_RUN: (
        lambda r: f"dbt source {_table(r)} has never been checked",
        lambda r: (
            f"{_table(r)} ({_where(r)}) has freshness configured, but no dbt source freshness run "
            "pushed so far has checked it (every run left it out with --select/--exclude, or dbt "
            "dropped it after an error), so the age of its data is unknown."
        ),
    ),
    RUN_FAILED: (
        lambda r: f"dbt source freshness could not run for {r.label('project')} ({r.label('target')})",
        lambda r: (
            f"The last dbt source freshness run of {_where(r)} failed before checking any source "
            "(connection, profile or project error; dbt-prom exit code 3): the source alerts are "
            "based on the run before it. The log of the job running dbt-prom push has dbt's error."
        ),
    ),
    PUSH_FAILING: (
        lambda r: f"Pushes of {r.label('project')} ({r.label('target')}) to the Pushgateway are failing",
        lambda r: (
            f"The Pushgateway rejected the last push of job {r.label('job')}, {_where(r)} "
            "(push_failure_time_seconds is newer than push_time_seconds), so it still serves the "
            "previous metrics. The log of dbt-prom push has the error (exit code 4); failed runs "
            "are kept for `dbt-prom replay`."
        ),
    ),
}


def alert_annotations(
    alert: str,
    r: Renderer,
    opts: RulesOptions,
    runbook: str | None = None,
    dynamic_runbook: bool = False,
    burn: Burn | None = None,
) -> tuple[tuple[str, str], ...]:
    """summary, description, runbook_url, dashboard_url (sorted by key) of one alert."""
    if alert == BRIDGE_STALE:
        summary, description = _stale_texts(opts)
    elif alert == NOT_CHECKED:
        summary, description = _not_checked_texts(opts)
    elif alert == LATER_THAN_USUAL:
        summary, description = _usual_texts(opts)
    elif alert == BUDGET_BURN:
        assert burn is not None, "a budget burn alert has a burn speed"
        summary, description = _burn_texts(burn)
    else:
        summary, description = TEXTS[alert]
    out: dict[str, str] = {"summary": summary(r), "description": description(r)}
    default = f"{opts.runbook_base_url}#{anchor(alert)}" if opts.runbook_base_url else ""
    # Whether the annotation exists is decided by the rule, not by its rendered text: Prometheus
    # keeps an annotation that renders empty.
    # With runbook_url among the meta labels, source alerts always carry the annotation (possibly
    # empty), in both modes alike.
    per_source = alert in SOURCE_ALERTS or alert in HISTORY_ALERTS
    pushed = "runbook_url" in opts.meta_labels and per_source
    if dynamic_runbook and pushed:
        out["runbook_url"] = r.if_label("runbook_url", r.label("runbook_url"), r.literal(default))
    elif dynamic_runbook:
        if default:
            out["runbook_url"] = r.literal(default)
    elif runbook or default or pushed:
        out["runbook_url"] = r.literal(runbook or default)
    if opts.dashboard_url:
        base = opts.dashboard_url
        sep = "&" if "?" in base else "?"
        params = f"var-project={r.urlquery('project')}&var-target={r.urlquery('target')}"
        if per_source:
            params += f"&var-source_name={r.urlquery('source_name')}"
        out["dashboard_url"] = r.literal(base + sep) + params
    return tuple(sorted(out.items()))
