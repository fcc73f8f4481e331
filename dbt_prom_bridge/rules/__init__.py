"""Prometheus alert rules generated from the freshness thresholds declared in dbt.

dbt is the single source of truth: :func:`generate` turns the sources of one or more manifests
into a rule file (and, optionally, a ``promtool test rules`` file proving every alert), rendered
through the jinja2 templates in ``templates/`` with every value quoted by
:mod:`dbt_prom_bridge.rules_syntax`. Output is byte-for-byte deterministic, so it can be
committed and drift-checked (``dbt-prom rules --check``).

Alerts (names fixed; runbooks in docs/alerts.md, anchored by the lower-cased name; the history
alerts of :mod:`~.history` come after the per-source ones):

============================== ========== =======================================================
DbtSourceFreshnessWarn         warning    age of the newest row > effective ``warn_after``
DbtSourceFreshnessError        critical   age of the newest row > effective ``error_after``
DbtSourceNoData                by config  dbt found no rows (critical when ``error_after`` is set)
DbtSourceFreshnessRuntimeError critical   dbt could not check the source
DbtSourceFreshnessNotRun       warning    configured, never checked by any run pushed so far
DbtSourceFreshnessNotChecked   warning    last check --stale-after older than the newest run
DbtSourceLaterThanUsual        warning    age > factor x the largest age of the last window
DbtSourceFreshnessBudgetBurn   by speed   freshness SLO error budget burning (fast/slow)
DbtFreshnessRunFailed          critical   ``run_success`` is 0
DbtFreshnessBridgeStale        critical   no run for ``--stale-after`` (or no run at all)
DbtFreshnessPushFailing        warning    the Pushgateway rejected the last push of ``--job``
============================== ========== =======================================================

Semantics, decided once for both modes:

- Ages are computed in PromQL (``time() - max_loaded_at``), so an alert fires when data ages
  past its threshold even if nothing is pushed any more. ``>`` as dbt (``age > threshold``).
- ``Warn`` keeps firing while ``Error`` fires for the same source (both conditions hold);
  Alertmanager inhibits the warning (ops/alertmanager/alertmanager.yml). Making ``Warn``
  resolve when ``Error`` starts would send a misleading "resolved" and leave a gap of ``for``.
- A source without data, with a runtime error or not run has no ``max_loaded_at`` series, so
  it never fires ``Warn``/``Error``; it has its own alert instead.
- Rules are scoped to the project (the ``project`` label) and match every ``target`` (dev,
  prod... share the thresholds declared in dbt) unless ``target_labels`` restricts them.
- ``per-source`` mode writes each threshold as a literal (a threshold change is a diff in the
  ops repo) and copies the ``meta_labels`` from the manifest as literal labels; ``dynamic``
  mode is a constant number of rules comparing the age with the pushed
  ``*_after_seconds`` series, and takes meta labels from the pushed series (push with the same
  ``--meta-label``). On the same data both give the same alerts, labels and annotations.
- ``lookback``: for remote write (samples are not re-scraped, so they leave instant queries
  after Prometheus's 5 minute lookback) every series is read through ``last_over_time(...[w])``.

Modules: :mod:`~.options` (flags, checked once), :mod:`~.selection` (which sources),
:mod:`~.promql`, :mod:`~.render` (annotation text as Go templates or plain text),
:mod:`~.catalogue` (alert names, severities, texts), :mod:`~.build` (rule groups),
:mod:`~.tests` (promtool tests), :mod:`~.generate` (the files). This module is the public API.
"""

from dbt_prom_bridge.rules.build import groups
from dbt_prom_bridge.rules.catalogue import (
    ALERTS,
    BRIDGE_STALE,
    BUDGET_BURN,
    ERROR,
    HISTORY_ALERTS,
    LATER_THAN_USUAL,
    NO_DATA,
    NOT_CHECKED,
    NOT_RUN,
    PUSH_FAILING,
    RUN_ALERTS,
    RUN_FAILED,
    RUNTIME_ERROR,
    SOURCE_ALERTS,
    WARN,
    alert_annotations,
    anchor,
    severity,
)
from dbt_prom_bridge.rules.generate import Generated, GeneratedFile, command_line, generate
from dbt_prom_bridge.rules.options import (
    DEFAULT_GROUP,
    DEFAULT_RUNBOOK_BASE_URL,
    Inputs,
    Mode,
    Outputs,
    RulesOptions,
    SplitBy,
)
from dbt_prom_bridge.rules.render import GoText, PlainText, humanize_duration
from dbt_prom_bridge.rules.rule import Group, Record, Rule
from dbt_prom_bridge.rules.selection import Plan, ProjectSources, plan
from dbt_prom_bridge.rules.templates import HEADER

__all__ = [
    "ALERTS",
    "BRIDGE_STALE",
    "BUDGET_BURN",
    "DEFAULT_GROUP",
    "DEFAULT_RUNBOOK_BASE_URL",
    "ERROR",
    "HEADER",
    "HISTORY_ALERTS",
    "LATER_THAN_USUAL",
    "NOT_CHECKED",
    "NOT_RUN",
    "NO_DATA",
    "PUSH_FAILING",
    "RUNTIME_ERROR",
    "RUN_ALERTS",
    "RUN_FAILED",
    "SOURCE_ALERTS",
    "WARN",
    "Generated",
    "GeneratedFile",
    "GoText",
    "Group",
    "Inputs",
    "Mode",
    "Outputs",
    "PlainText",
    "Plan",
    "ProjectSources",
    "Record",
    "Rule",
    "RulesOptions",
    "SplitBy",
    "alert_annotations",
    "anchor",
    "command_line",
    "generate",
    "groups",
    "humanize_duration",
    "plan",
    "severity",
]
