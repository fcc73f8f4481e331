"""A Grafana dashboard generated from the same manifest and thresholds as the alert rules.

Built with Grafana's typed ``grafana-foundation-sdk`` builders and serialised deterministically
(sorted keys, fixed panel ids, fixed layout), so the file can be committed and drift-checked
like the rule files (``dbt-prom dashboard --check``).

Panels:

- Overview: sources per status (pass, warn, error, runtime_error, not_run, and "no data"),
  and run health: age of the last run, its duration, ``run_success``, the last push and
  groups whose last push failed (the Pushgateway's ``push_time_seconds`` /
  ``push_failure_time_seconds``).
- Age trend of every selected source, and age relative to its ``error_after``.
- A status table: one line per source with status, age, thresholds, the time left until its
  warn and error deadlines (negative: late for that long; business calendars included), and owner.
- One stat panel per source, grouped in one row per dbt source, showing the data's age with
  that source's own ``warn_after`` / ``error_after`` as colour thresholds.

Template variables: datasource, project, target, source_name, and one per ``meta_labels`` key
(``owner`` by default). Every label value that comes from dbt is written into PromQL through
:func:`promql_string`, so a hostile source name can neither break the query nor be expanded by
Grafana as a ``$variable``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dbt_prom_bridge.calendar import Calendar, calendar_from_meta
from dbt_prom_bridge.config import DEFAULT_JOB, format_duration
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.exposition import (
    CHECK_DURATION,
    CHECKED_AT,
    ERROR_AFTER,
    ERROR_DEADLINE,
    HAS_DATA,
    MAX_LOADED_AT,
    RUN_DURATION,
    RUN_SUCCESS,
    RUN_TIMESTAMP,
    SOURCES,
    STATUS,
    WARN_AFTER,
    WARN_DEADLINE,
)
from dbt_prom_bridge.model import (
    STATUSES,
    Manifest,
    SourceDef,
    Status,
    manifest_project,
    validate_meta_labels,
)

#: Status colours shared by the counts, the table and the mappings.
STATUS_COLOURS: Mapping[str, str] = {
    Status.PASS.value: "green",
    Status.WARN.value: "orange",
    Status.ERROR.value: "red",
    Status.RUNTIME_ERROR.value: "purple",
    Status.NOT_RUN.value: "text",
    "no data": "dark-red",
}
#: Above this many sources, the per-source rows start collapsed (Grafana then queries a row's
#: panels only when it is opened).
COLLAPSE_ABOVE = 24
SOURCE_KEYS = ("project", "target", "source_name", "table_name")


@dataclass(frozen=True)
class DashboardOptions:
    """How to build the dashboard; everything else comes from the manifest."""

    title: str = "dbt source freshness"
    #: Stable dashboard uid; by default derived from the project name.
    uid: str | None = None
    #: dbt ``meta`` keys pushed as labels (``--meta-label``): each becomes a template variable.
    meta_labels: tuple[str, ...] = ("owner",)
    #: Pushgateway job label, for the push health panels.
    job: str = DEFAULT_JOB
    #: When the last run counts as too old (red), as in ``dbt-prom rules --stale-after``.
    stale_after: float = 7200.0
    refresh: str = "1m"
    time_from: str = "now-24h"
    #: Override the project name (the ``project`` label); default: the manifest's.
    project: str | None = None


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal for ``value``, safe inside a Grafana query.

    Escapes what PromQL needs (backslash, double quote, newline and other control characters)
    and writes ``$`` and ``[`` as ``\\x24`` / ``\\x5b`` so Grafana's variable interpolation
    (``$var``, ``${var}``, ``[[var]]``) never touches a dbt name. PromQL reads both back as
    the same characters.
    """
    out = ['"']
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char in "$[" or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def check_uid(uid: str) -> str:
    """Refuse a ``--uid`` Grafana would reject (at most 40 letters, digits, ``-`` and ``_``)."""
    if not _UID.match(uid):
        raise UsageError(
            f"--uid {uid!r} is not a Grafana dashboard uid: use 1 to 40 letters, digits, - and _"
        )
    return uid


def default_uid(project: str) -> str:
    """A short, stable, URL-safe uid per project (Grafana allows 40 characters)."""
    return "dbt-freshness-" + hashlib.sha256(project.encode()).hexdigest()[:12]


def _by_name(source: SourceDef) -> tuple[str, str, str]:
    return (source.source_name, source.table_name, source.unique_id)


def freshness_sources(manifest: Manifest) -> list[SourceDef]:
    """The sources dbt checks (freshness configured), sorted as every output sorts them."""
    return sorted((s for s in manifest.sources.values() if s.has_freshness), key=_by_name)


def threshold_warnings(manifest: Manifest) -> list[str]:
    """The thresholds the dashboard cannot show (count <= 0, unknown period), per source, sorted."""
    out: list[str] = []
    for source in sorted(manifest.sources.values(), key=_by_name):
        for problem in source.threshold_problems:
            gone = "" if source.has_freshness else " (no panel: no usable threshold is left)"
            out.append(f"{source.source_name}.{source.table_name}: {problem}{gone}")
    return out


class _Builder:
    """Assembles the dashboard through the SDK builders (imported lazily: an optional extra)."""

    def __init__(self, manifest: Manifest, opts: DashboardOptions) -> None:
        try:
            from grafana_foundation_sdk.builders import dashboard as db
        except ImportError:  # pragma: no cover - depends on the install
            raise UsageError(
                "dbt-prom dashboard needs grafana-foundation-sdk: pip install 'dbt-prom-bridge[dashboard]'"
            ) from None
        from grafana_foundation_sdk.models import dashboard as dm

        if opts.uid is not None:
            check_uid(opts.uid)
        self.db = db
        self.dm = dm
        self.manifest = manifest
        self.opts = opts
        self.meta_labels = validate_meta_labels(opts.meta_labels)
        self.project = opts.project or manifest_project(manifest)
        self.sources = freshness_sources(manifest)
        #: Business calendars by unique_id (a wrong one is a CalendarError, exit 2).
        self.calendars: dict[str, Calendar] = {}
        for source in self.sources:
            calendar = calendar_from_meta(source.meta, f"{source.source_name}.{source.table_name}")
            if calendar is not None:
                self.calendars[source.unique_id] = calendar
        self.datasource = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
        self.next_id = 0

    # --- selectors -----------------------------------------------------------------------------

    def selector(self, *, per_source: bool = True) -> str:
        """Label matchers of the template variables (``{project=~"$project",...}``)."""
        parts = ['project=~"$project"', 'target=~"$target"']
        if per_source:
            parts.append('source_name=~"$source_name"')
            parts += [f'{key}=~"${key}"' for key in self.meta_labels]
        return "{" + ", ".join(parts) + "}"

    def source_selector(self, source: SourceDef) -> str:
        return (
            f'{{project={promql_string(self.project)}, target=~"$target", '
            f"source_name={promql_string(source.source_name)}, "
            f"table_name={promql_string(source.table_name)}}}"
        )

    def push_selector(self) -> str:
        return f'{{job={promql_string(self.opts.job)}, project=~"$project", target=~"$target"}}'

    # --- small builders ------------------------------------------------------------------------

    def panel_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def query(
        self, expr: str, ref: str, legend: str = "", *, instant: bool = False, table: bool = False
    ) -> Any:
        from grafana_foundation_sdk.builders import prometheus as pq
        from grafana_foundation_sdk.models import prometheus as pm

        q = pq.Dataquery().expr(expr).ref_id(ref).datasource(self.datasource)
        if legend:
            q = q.legend_format(legend)
        q = q.instant() if instant else q.range()
        if table:
            q = q.format(pm.PromQueryFormat.TABLE)
        return q

    def thresholds(self, steps: Sequence[tuple[float | None, str]]) -> Any:
        return (
            self.db.ThresholdsConfig()
            .mode(self.dm.ThresholdsMode.ABSOLUTE)
            .steps([self.dm.Threshold(value=value, color=colour) for value, colour in steps])
        )

    def value_map(self, mapping: Mapping[str, tuple[str, str]]) -> Any:
        return self.dm.ValueMap(
            options={
                key: self.dm.ValueMappingResult(text=text, color=colour, index=index)
                for index, (key, (text, colour)) in enumerate(mapping.items())
            }
        )

    def stat(self, title: str, description: str, height: int, width: int) -> Any:
        from grafana_foundation_sdk.builders import common as cb
        from grafana_foundation_sdk.builders import stat
        from grafana_foundation_sdk.models import common as cm

        return (
            stat.Panel()
            .id(self.panel_id())
            .title(title)
            .description(description)
            .datasource(self.datasource)
            .height(height)
            .span(width)
            .graph_mode(cm.BigValueGraphMode.NONE)
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
            .justify_mode(cm.BigValueJustifyMode.AUTO)
            .orientation(cm.VizOrientation.AUTO)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )

    # --- sections ------------------------------------------------------------------------------

    def overview(self, board: Any) -> None:
        board.with_row(self.db.Row("Overview").id(self.panel_id()))
        counts = (
            self.stat(
                "Sources by status",
                "How many sources are in each freshness state in the last run of the selected "
                "projects/targets. 'no data' counts sources whose table is empty or whose filter "
                "matches nothing (dbt reports them as error or warn).",
                5,
                16,
            )
            .with_target(
                self.query(
                    f"sum by (status) ({SOURCES}{self.selector(per_source=False)})",
                    "A",
                    "{{status}}",
                    instant=True,
                )
            )
            .with_target(
                self.query(
                    f"label_replace(count({HAS_DATA}{self.selector()} == 0) or vector(0), "
                    '"status", "no data", "", "")',
                    "B",
                    "{{status}}",
                    instant=True,
                )
            )
            .color_scheme(self.db.FieldColor().mode(self.dm.FieldColorModeId.FIXED).fixed_color("green"))
        )
        for status in (*(s.value for s in STATUSES), "no data"):
            counts = counts.override_by_name(
                status,
                [
                    self.dm.DynamicConfigValue(
                        id_val="color", value={"mode": "fixed", "fixedColor": STATUS_COLOURS[status]}
                    )
                ],
            )
        board.with_panel(counts)

        run_sel = self.selector(per_source=False)
        last_run = (
            self.stat(
                "Last run",
                "Time since dbt produced the last freshness result (the artifact's generated_at). "
                f"Red after {format_duration(self.opts.stale_after)}: the bridge stopped running.",
                5,
                4,
            )
            .with_target(
                self.query(
                    f"time() - max by (project, target) ({RUN_TIMESTAMP}{run_sel})",
                    "A",
                    "{{target}}",
                    instant=True,
                )
            )
            .unit("s")
            .thresholds(self.thresholds([(None, "green"), (self.opts.stale_after, "red")]))
            .no_value("never")
        )
        board.with_panel(last_run)
        success = (
            self.stat(
                "Run success",
                "1 when the last dbt source freshness run produced results, 0 when dbt could not run.",
                5,
                4,
            )
            .with_target(
                self.query(
                    f"min by (project, target) ({RUN_SUCCESS}{run_sel})", "A", "{{target}}", instant=True
                )
            )
            .mappings([self.value_map({"1": ("ok", "green"), "0": ("failed", "red")})])
            .thresholds(self.thresholds([(None, "red"), (1, "green")]))
            .no_value("no run")
        )
        board.with_panel(success)

        duration = (
            self.stat("Run duration", "Wall time of the last dbt source freshness run.", 4, 6)
            .with_target(
                self.query(
                    f"max by (project, target) ({RUN_DURATION}{run_sel})", "A", "{{target}}", instant=True
                )
            )
            .unit("s")
            .thresholds(self.thresholds([(None, "blue")]))
        )
        board.with_panel(duration)
        push_sel = self.push_selector()
        last_push = (
            self.stat(
                "Last push",
                "Time since the Pushgateway last accepted a push for the selected groups "
                "(push_time_seconds). Empty when the metrics are scraped from `dbt-prom serve`.",
                4,
                6,
            )
            .with_target(
                self.query(
                    f"time() - max by (project, target) (push_time_seconds{push_sel})",
                    "A",
                    "{{target}}",
                    instant=True,
                )
            )
            .unit("s")
            .thresholds(self.thresholds([(None, "green"), (self.opts.stale_after, "red")]))
            .no_value("no push")
        )
        board.with_panel(last_push)
        failing = (
            self.stat(
                "Failing pushes",
                "Pushgateway groups whose last push failed (push_failure_time_seconds newer than "
                "push_time_seconds): the gateway rejected the metrics and still holds older ones.",
                4,
                6,
            )
            .with_target(
                self.query(
                    f"sum(push_failure_time_seconds{push_sel} > bool push_time_seconds{push_sel})"
                    " or vector(0)",
                    "A",
                    "failing groups",
                    instant=True,
                )
            )
            .thresholds(self.thresholds([(None, "green"), (1, "red")]))
        )
        board.with_panel(failing)
        check_time = (
            self.stat(
                "Slowest check",
                "The longest time dbt spent checking one selected source in the last run.",
                4,
                6,
            )
            .with_target(
                self.query(f"max({CHECK_DURATION}{self.selector()})", "A", "slowest source", instant=True)
            )
            .unit("s")
            .thresholds(self.thresholds([(None, "blue")]))
        )
        board.with_panel(check_time)

    def source_series(self, title: str, description: str, expr: str, *, span: int, unit: str) -> Any:
        """A time series panel of one line per source, with its last value in a table legend."""
        from grafana_foundation_sdk.builders import common as cb
        from grafana_foundation_sdk.builders import timeseries
        from grafana_foundation_sdk.models import common as cm

        return (
            timeseries.Panel()
            .id(self.panel_id())
            .title(title)
            .description(description)
            .datasource(self.datasource)
            .height(8)
            .span(span)
            .with_target(self.query(expr, "A", "{{source_name}}.{{table_name}} ({{target}})"))
            .unit(unit)
            .legend(
                cb.VizLegendOptions()
                .display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs(["lastNotNull"])
            )
        )

    def trends(self, board: Any) -> None:
        from grafana_foundation_sdk.builders import common as cb
        from grafana_foundation_sdk.models import common as cm

        board.with_row(self.db.Row("Trends").id(self.panel_id()))
        sel = self.selector()
        board.with_panel(
            self.source_series(
                "Data age",
                "Age of the newest row of each source: time() - max_loaded_at. It grows between "
                "loads even when no run happens.",
                f"time() - {MAX_LOADED_AT}{sel}",
                span=12,
                unit="s",
            )
        )
        board.with_panel(
            self.source_series(
                "Age / error_after",
                "Data age as a fraction of each source's error_after: 100% is where "
                "DbtSourceFreshnessError fires. Sources without error_after are not shown.",
                f"(time() - {MAX_LOADED_AT}{sel}) / {ERROR_AFTER}{sel}",
                span=12,
                unit="percentunit",
            )
            .thresholds(self.thresholds([(None, "green"), (1, "red")]))
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE))
        )
        board.with_panel(
            self.source_series(
                "Since last check",
                "Time since each source was last checked by a run (a source a partial schedule leaves "
                "out keeps its last values, and this grows): DbtSourceFreshnessNotChecked fires when "
                "it exceeds --stale-after beyond its project's newest run.",
                f"time() - {CHECKED_AT}{sel}",
                span=24,
                unit="s",
            )
        )

    def slos(self, board: Any) -> None:
        """Freshness SLOs: the SLI per source and the error budget left (the recording rules
        `dbt-prom rules` writes; sources without an objective have no budget)."""
        from dbt_prom_bridge.rules.history import OBJECTIVE, sli_ratio

        board.with_row(self.db.Row("Freshness SLOs").id(self.panel_id()))
        sel = self.selector()
        sli = sli_ratio("30d")
        panels = (
            (
                "Freshness SLI, 30 days",
                "Fraction of the last 30 days each source was within its error_after (on its "
                "business calendar when it has one): the dbt_source_freshness:sli_ratio_30d "
                "recording rule of `dbt-prom rules`.",
                f"{sli}{sel}",
            ),
            (
                "Error budget left, 30 days",
                "Share of the 30-day error budget left for sources with a freshness objective "
                "(meta dbt_prom.slo or rules --slo): 1 - (1 - SLI) / (1 - objective). Below 0 the "
                "objective is missed; DbtSourceFreshnessBudgetBurn fires while it burns too fast.",
                f"1 - (1 - {sli}{sel}) / (1 - {OBJECTIVE}{sel})",
            ),
        )
        for title, description, expr in panels:
            board.with_panel(
                self.source_series(title, description, expr, span=12, unit="percentunit").thresholds(
                    self.thresholds([(None, "red"), (0, "green")])
                )
            )

    def status_table(self, board: Any) -> None:
        from grafana_foundation_sdk.builders import table
        from grafana_foundation_sdk.models import common as cm

        board.with_row(self.db.Row("Status").id(self.panel_id()))
        sel = self.selector()
        on = "on(" + ", ".join(SOURCE_KEYS) + ")"
        status_expr = (
            f"label_replace(({STATUS}{sel} == 1) and {on} ({HAS_DATA}{sel} == 0), "
            '"status", "no data", "", "")'
            f" or {on} ({STATUS}{sel} == 1)"
        )
        keep = [*SOURCE_KEYS, *self.meta_labels]
        values = ("Value #B", "Value #C", "Value #D", "Value #E", "Value #F")
        organize = self.dm.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True, "Value #A": True},
                "includeByName": dict.fromkeys((*keep, "status", *values), True),
                "indexByName": {name: i for i, name in enumerate((*keep, "status", *values))},
                "renameByName": {
                    "Value #B": "age",
                    "Value #C": "warn_after",
                    "Value #D": "error_after",
                    "Value #E": "until warn",
                    "Value #F": "until error",
                },
            },
        )
        until = [
            self.dm.DynamicConfigValue(id_val="unit", value="s"),
            self.dm.DynamicConfigValue(
                id_val="custom.cellOptions", value={"type": cm.TableCellDisplayMode.COLOR_TEXT.value}
            ),
            self.dm.DynamicConfigValue(
                id_val="thresholds", value=self.thresholds([(None, "red"), (0, "green")]).build()
            ),
        ]
        status_colour = self.dm.DynamicConfigValue(
            id_val="custom.cellOptions", value={"type": cm.TableCellDisplayMode.COLOR_BACKGROUND.value}
        )
        status_map = self.dm.DynamicConfigValue(
            id_val="mappings",
            value=[self.value_map({s: (s, STATUS_COLOURS[s]) for s in STATUS_COLOURS})],
        )
        seconds = [self.dm.DynamicConfigValue(id_val="unit", value="s")]
        panel = (
            table.Panel()
            .id(self.panel_id())
            .title("Sources")
            .description(
                "One line per source in the last run: status ('no data' when the table is empty or "
                "its filter matches nothing), current data age, dbt's effective thresholds, and the "
                "time left until its warn and error deadlines (negative: late for that long). A "
                "deadline counts the source's age on its business calendar when it has one, so a "
                "source can be older than its threshold and still on time over a weekend."
            )
            .datasource(self.datasource)
            .height(10)
            .span(24)
            .with_target(self.query(status_expr, "A", instant=True, table=True))
            .with_target(self.query(f"time() - {MAX_LOADED_AT}{sel}", "B", instant=True, table=True))
            .with_target(self.query(f"{WARN_AFTER}{sel}", "C", instant=True, table=True))
            .with_target(self.query(f"{ERROR_AFTER}{sel}", "D", instant=True, table=True))
            .with_target(self.query(f"{WARN_DEADLINE}{sel} - time()", "E", instant=True, table=True))
            .with_target(self.query(f"{ERROR_DEADLINE}{sel} - time()", "F", instant=True, table=True))
            .with_transformation(self.dm.DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(organize)
            .override_by_name("status", [status_colour, status_map])
            .override_by_name("age", seconds)
            .override_by_name("warn_after", seconds)
            .override_by_name("error_after", seconds)
            .override_by_name("until warn", until)
            .override_by_name("until error", until)
            .no_value("no sources in the last run")
        )
        board.with_panel(panel)

    def per_source(self, board: Any) -> None:
        collapsed = len(self.sources) > COLLAPSE_ABOVE
        by_source: dict[str, list[SourceDef]] = {}
        for source in self.sources:
            by_source.setdefault(source.source_name, []).append(source)
        for source_name, tables in by_source.items():
            row = self.db.Row(f"Source: {source_name}").id(self.panel_id())
            panels = [self.source_stat(t) for t in tables]
            if collapsed:
                for panel in panels:
                    row = row.with_panel(panel)
                board.with_row(row)
            else:
                board.with_row(row)
                for panel in panels:
                    board.with_panel(panel)

    def source_stat(self, source: SourceDef) -> Any:
        steps: list[tuple[float | None, str]] = [(None, "green")]
        parts = []
        if source.warn_after is not None:
            steps.append((source.warn_after.seconds, "orange"))
            parts.append(f"warn after {source.warn_after.human()}")
        if source.error_after is not None:
            steps.append((source.error_after.seconds, "red"))
            parts.append(f"error after {source.error_after.human()}")
        owner = source.meta_get("owner")
        description = f"{source.unique_id}: age of the newest row ({', '.join(parts)})"
        calendar = self.calendars.get(source.unique_id)
        if owner:
            description += f"; owner {owner}"
        sel = self.source_selector(source)
        if calendar is not None:
            # Its age counts on the calendar: the panel shows where the source stands against the
            # pushed deadlines (warn counts 1, error 2), not the raw age.
            description = (
                f"{source.unique_id}: on time, warn or error by its deadlines ({', '.join(parts)} counted "
                f"on its business calendar {calendar.describe()})" + (f"; owner {owner}" if owner else "")
            )
            weights = []
            if source.warn_after is not None:
                weights.append(f"(time() > bool {WARN_DEADLINE}{sel})")
            if source.error_after is not None:
                weights.append(f"2 * (time() > bool {ERROR_DEADLINE}{sel})")
            states = {"0": ("on time", "green"), "1": ("warn", "orange"), "2": ("error", "red")}
            panel = (
                self.stat(source.table_name, description, 4, 4)
                .with_target(self.query(" + ".join(weights), "A", "{{target}}", instant=True))
                .mappings([self.value_map({**states, "3": ("error", "red")})])
                .no_value("no data")
            )
        else:
            panel = (
                self.stat(source.table_name, description, 4, 4)
                .with_target(self.query(f"time() - {MAX_LOADED_AT}{sel}", "A", "{{target}}", instant=True))
                .unit("s")
                .thresholds(self.thresholds(steps))
                .no_value("no data")
            )
        runbook = source.meta_get("runbook_url")
        if runbook.startswith(("https://", "http://")):
            panel = panel.links([self.db.DashboardLink("Runbook").url(runbook).target_blank(True)])
        return panel

    def variables(self, board: Any) -> None:
        db, dm = self.db, self.dm
        board.with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))

        def query_var(name: str, label: str, query: str) -> Any:
            return (
                db.QueryVariable(name)
                .label(label)
                .datasource(self.datasource)
                .query({"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
                .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(dm.VariableSort.ALPHABETICAL_ASC)
                .include_all(True)
                .all_value(".*")
                .multi(True)
                .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            )

        board.with_variable(query_var("project", "Project", f"label_values({RUN_SUCCESS}, project)"))
        board.with_variable(
            query_var("target", "Target", f'label_values({RUN_SUCCESS}{{project=~"$project"}}, target)')
        )
        board.with_variable(
            query_var(
                "source_name",
                "Source",
                f'label_values({STATUS}{{project=~"$project", target=~"$target"}}, source_name)',
            )
        )
        for key in self.meta_labels:
            board.with_variable(
                query_var(
                    key,
                    key.replace("_", " ").capitalize(),
                    f'label_values({STATUS}{{project=~"$project", target=~"$target"}}, {key})',
                )
            )

    def build(self) -> dict[str, Any]:
        from grafana_foundation_sdk.cog.encoder import JSONEncoder

        board = (
            self.db.Dashboard(self.opts.title)
            .uid(self.opts.uid or default_uid(self.project))
            .description(
                f"dbt source freshness of project {self.project}, generated by dbt-prom-bridge from the "
                "dbt manifest (thresholds as declared in dbt). Regenerate with `dbt-prom dashboard`."
            )
            .tags(["dbt", "freshness", "dbt-prom-bridge"])
            .editable()
            .refresh(self.opts.refresh)
            .time(self.opts.time_from, "now")
            .timezone("utc")
            .tooltip(self.dm.DashboardCursorSync.CROSSHAIR)
        )
        board.annotation(
            self.db.AnnotationQuery()
            .name("dbt freshness runs")
            .datasource(self.datasource)
            .enable(True)
            .hide(False)
            .icon_color("rgba(0, 211, 255, 1)")
            .expr(f"changes({RUN_TIMESTAMP}{self.selector(per_source=False)}[2m]) > 0")
        )
        self.variables(board)
        self.overview(board)
        self.trends(board)
        self.slos(board)
        self.status_table(board)
        self.per_source(board)
        doc: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
        return doc


def build(manifest: Manifest, opts: DashboardOptions = DashboardOptions()) -> dict[str, Any]:
    """The dashboard for ``manifest`` as JSON-ready data (deterministic)."""
    return _Builder(manifest, opts).build()


def render(manifest: Manifest, opts: DashboardOptions = DashboardOptions()) -> str:
    """The dashboard JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(manifest, opts), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
