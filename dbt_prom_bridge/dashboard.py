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
- Models (always there: the model series exist for every model a reported run built): models per
  last build status (and "not built": a threshold but no build), the failed and skipped ones with
  the time of that attempt, time since the last successful build and its ratio to the model's
  error_after (else warn_after), build durations, and the data age ``dbt freshness`` (dbt Fusion)
  finds. One line per model, from the :mod:`dbt_prom_bridge.nodes` series: no per-model panel.
- One stat panel per source, grouped in one row per dbt source, showing the data's age with
  that source's own ``warn_after`` / ``error_after`` as colour thresholds.

Template variables: datasource, project, target, source_name, and one per ``meta_labels`` key
(``owner`` by default); the model panels follow all of them but source_name. Every label value
that comes from dbt is written into PromQL through :func:`promql_string`, so a hostile source
name can neither break the query nor be expanded by Grafana as a ``$variable``.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dbt_prom_bridge import nodes
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
#: Colours of the model build states (``dbt_model_build_status``) and of "not built" (a model
#: declares a threshold and no build of it was reported: DbtModelNotBuilt).
BUILD_COLOURS: Mapping[str, str] = {
    nodes.BuildStatus.SUCCESS.value: "green",
    nodes.BuildStatus.ERROR.value: "red",
    nodes.BuildStatus.SKIPPED.value: "orange",
    "not built": "text",
}
#: Above this many sources, the per-source rows start collapsed (Grafana then queries a row's
#: panels only when it is opened).
COLLAPSE_ABOVE = 24
SOURCE_KEYS = ("project", "target", "source_name", "table_name")
#: What tells two models apart in the series (one record per ``model`` label per project/target).
MODEL_KEYS = ("project", "target", "model")
SOURCE_LEGEND = "{{source_name}}.{{table_name}} ({{target}})"
MODEL_LEGEND = "{{model}} ({{target}})"
#: Which template variables filter a selector: the run-level series (project, target), the
#: per-source ones (also source_name and the meta labels), the per-model ones (also the meta labels).
Scope = Literal["run", "source", "model"]


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
        #: A meta key named like a model label (``model``, ``package``...) cannot be a meta label
        #: of the model series (nodes.validate_model_meta_labels): it filters the sources only.
        self.model_meta_labels = tuple(k for k in self.meta_labels if k not in nodes.MODEL_LABELS)
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

    def selector(self, scope: Scope = "source", *matchers: str) -> str:
        """Label matchers of the template variables (``{project=~"$project",...}``) that apply to
        the series of ``scope``, then ``matchers`` (e.g. ``status!="success"``)."""
        parts = ['project=~"$project"', 'target=~"$target"']
        if scope == "source":
            parts.append('source_name=~"$source_name"')
            parts += [f'{key}=~"${key}"' for key in self.meta_labels]
        elif scope == "model":
            parts += [f'{key}=~"${key}"' for key in self.model_meta_labels]
        return "{" + ", ".join((*parts, *matchers)) + "}"

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

    def colour_by_name(self, panel: Any, colours: Mapping[str, str]) -> Any:
        """``panel`` with each series named like a key of ``colours`` (a status) in its colour."""
        panel = panel.color_scheme(
            self.db.FieldColor().mode(self.dm.FieldColorModeId.FIXED).fixed_color("green")
        )
        for name, colour in colours.items():
            panel = panel.override_by_name(
                name,
                [self.dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})],
            )
        return panel

    def status_cells(self, colours: Mapping[str, str]) -> list[Any]:
        """Overrides of a table's ``status`` column: each state on its colour."""
        from grafana_foundation_sdk.models import common as cm

        return [
            self.dm.DynamicConfigValue(
                id_val="custom.cellOptions", value={"type": cm.TableCellDisplayMode.COLOR_BACKGROUND.value}
            ),
            self.dm.DynamicConfigValue(
                id_val="mappings", value=[self.value_map({s: (s, c) for s, c in colours.items()})]
            ),
        ]

    def series(
        self,
        title: str,
        description: str,
        expr: str,
        *,
        span: int,
        unit: str,
        legend: str = SOURCE_LEGEND,
    ) -> Any:
        """A time series panel of one line per source (or model: ``legend``), with its last value
        in a table legend."""
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
            .with_target(self.query(expr, "A", legend))
            .unit(unit)
            .legend(
                cb.VizLegendOptions()
                .display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs(["lastNotNull"])
            )
        )

    def ratio_series(self, title: str, description: str, expr: str, *, legend: str = SOURCE_LEGEND) -> Any:
        """A :meth:`series` of a ratio to a threshold, with a red line at 100%."""
        from grafana_foundation_sdk.builders import common as cb
        from grafana_foundation_sdk.models import common as cm

        return (
            self.series(title, description, expr, span=12, unit="percentunit", legend=legend)
            .thresholds(self.thresholds([(None, "green"), (1, "red")]))
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.LINE))
        )

    def merged_table(
        self,
        title: str,
        description: str,
        key_expr: str,
        keep: Sequence[str],
        columns: Sequence[tuple[str, str]],
        *,
        height: int,
    ) -> Any:
        """A table of one line per series of ``key_expr`` (query A: its labels ``keep`` and its
        ``status`` are the first columns), then one column per ``(name, expr)`` of ``columns``
        (queries B, C...), joined on their labels by Grafana's merge transformation."""
        from grafana_foundation_sdk.builders import table

        refs = string.ascii_uppercase[1 : len(columns) + 1]
        values = [f"Value #{ref}" for ref in refs]
        order = (*keep, "status", *values)
        organize = self.dm.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True, "Value #A": True},
                "includeByName": dict.fromkeys(order, True),
                "indexByName": {name: i for i, name in enumerate(order)},
                "renameByName": {value: name for value, (name, _) in zip(values, columns, strict=True)},
            },
        )
        panel = (
            table.Panel()
            .id(self.panel_id())
            .title(title)
            .description(description)
            .datasource(self.datasource)
            .height(height)
            .with_target(self.query(key_expr, "A", instant=True, table=True))
        )
        for ref, (_, expr) in zip(refs, columns, strict=True):
            panel = panel.with_target(self.query(expr, ref, instant=True, table=True))
        return panel.with_transformation(
            self.dm.DataTransformerConfig(id_val="merge", options={})
        ).with_transformation(organize)

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
                    f"sum by (status) ({SOURCES}{self.selector('run')})",
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
        )
        board.with_panel(self.colour_by_name(counts, STATUS_COLOURS))

        run_sel = self.selector("run")
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

    def trends(self, board: Any) -> None:
        board.with_row(self.db.Row("Trends").id(self.panel_id()))
        sel = self.selector()
        board.with_panel(
            self.series(
                "Data age",
                "Age of the newest row of each source: time() - max_loaded_at. It grows between "
                "loads even when no run happens.",
                f"time() - {MAX_LOADED_AT}{sel}",
                span=12,
                unit="s",
            )
        )
        board.with_panel(
            self.ratio_series(
                "Age / error_after",
                "Data age as a fraction of each source's error_after: 100% is where "
                "DbtSourceFreshnessError fires. Sources without error_after are not shown.",
                f"(time() - {MAX_LOADED_AT}{sel}) / {ERROR_AFTER}{sel}",
            )
        )
        board.with_panel(
            self.series(
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
                self.series(title, description, expr, span=12, unit="percentunit").thresholds(
                    self.thresholds([(None, "red"), (0, "green")])
                )
            )

    def status_table(self, board: Any) -> None:
        from grafana_foundation_sdk.models import common as cm

        board.with_row(self.db.Row("Status").id(self.panel_id()))
        sel = self.selector()
        on = "on(" + ", ".join(SOURCE_KEYS) + ")"
        status_expr = (
            f"label_replace(({STATUS}{sel} == 1) and {on} ({HAS_DATA}{sel} == 0), "
            '"status", "no data", "", "")'
            f" or {on} ({STATUS}{sel} == 1)"
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
        seconds = [self.dm.DynamicConfigValue(id_val="unit", value="s")]
        panel = (
            self.merged_table(
                "Sources",
                "One line per source in the last run: status ('no data' when the table is empty or "
                "its filter matches nothing), current data age, dbt's effective thresholds, and the "
                "time left until its warn and error deadlines (negative: late for that long). A "
                "deadline counts the source's age on its business calendar when it has one, so a "
                "source can be older than its threshold and still on time over a weekend.",
                status_expr,
                [*SOURCE_KEYS, *self.meta_labels],
                [
                    ("age", f"time() - {MAX_LOADED_AT}{sel}"),
                    ("warn_after", f"{WARN_AFTER}{sel}"),
                    ("error_after", f"{ERROR_AFTER}{sel}"),
                    ("until warn", f"{WARN_DEADLINE}{sel} - time()"),
                    ("until error", f"{ERROR_DEADLINE}{sel} - time()"),
                ],
                height=10,
            )
            .span(24)
            .override_by_name("status", self.status_cells(STATUS_COLOURS))
            .override_by_name("age", seconds)
            .override_by_name("warn_after", seconds)
            .override_by_name("error_after", seconds)
            .override_by_name("until warn", until)
            .override_by_name("until error", until)
            .no_value("no sources in the last run")
        )
        board.with_panel(panel)

    def models(self, board: Any) -> None:
        """Model builds (``dbt build``/``run``/``seed``/``snapshot``) and ``dbt freshness`` of models:
        the :mod:`dbt_prom_bridge.nodes` series, filtered by project, target and the meta labels."""
        board.with_row(self.db.Row("Models").id(self.panel_id()))
        sel = self.selector("model")
        on = "on(" + ", ".join(MODEL_KEYS) + ")"
        #: The model's error_after where it declares one, else its warn_after (or build_after).
        threshold = f"({nodes.ERROR_AFTER}{sel} or {nodes.WARN_AFTER}{sel})"
        counts = (
            self.stat(
                "Models by build status",
                "How many models, seeds and snapshots of the selected projects/targets ended their "
                "last build in each state (dbt's error and partial success count as error, no-op as "
                "skipped). 'not built' counts models that declare a threshold and that no reported run "
                "built (DbtModelNotBuilt).",
                8,
                8,
            )
            .with_target(
                self.query(f"sum by (status) ({nodes.BUILD_STATUS}{sel})", "A", "{{status}}", instant=True)
            )
            .with_target(
                self.query(
                    f"label_replace(count({threshold} unless {on} {nodes.BUILT_AT}{sel}) or vector(0), "
                    '"status", "not built", "", "")',
                    "B",
                    "{{status}}",
                    instant=True,
                )
            )
        )
        board.with_panel(self.colour_by_name(counts, BUILD_COLOURS))

        not_success = self.selector("model", f"status!={promql_string(nodes.BuildStatus.SUCCESS.value)}")
        failed = f"({nodes.BUILD_STATUS}{not_success} == 1)"
        table = (
            self.merged_table(
                "Failed and skipped models",
                "Models whose last build failed (error, or partial success of a microbatch model) or was "
                "skipped (an upstream model failed, or no-op): when that attempt ended and how long ago "
                "the model last built successfully (empty: never seen succeeding). The relation still "
                "serves the data of that last success.",
                failed,
                [*MODEL_KEYS, "schema", "resource_type", *self.model_meta_labels],
                [
                    ("attempted at", f"1000 * {nodes.BUILT_AT}{sel} and {on} {failed}"),
                    ("since last success", f"time() - {nodes.LAST_SUCCESS}{sel} and {on} {failed}"),
                ],
                height=8,
            )
            .span(16)
            .override_by_name("status", self.status_cells(BUILD_COLOURS))
            .override_by_name(
                "attempted at", [self.dm.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")]
            )
            .override_by_name("since last success", [self.dm.DynamicConfigValue(id_val="unit", value="s")])
            .no_value("no failed or skipped model")
        )
        board.with_panel(table)

        board.with_panel(
            self.series(
                "Since last successful build",
                "Time since each model last built successfully: time() - last_success. It grows while "
                "the model's builds fail, are skipped or stop running.",
                f"time() - {nodes.LAST_SUCCESS}{sel}",
                span=12,
                unit="s",
                legend=MODEL_LEGEND,
            )
        )
        board.with_panel(
            self.ratio_series(
                "Build age / threshold",
                "Time since the last successful build as a fraction of the model's error_after, or of "
                "its warn_after (build_after) when it declares no error_after: 100% is where "
                "DbtModelBuildLate fires (critical with error_after, warning with warn_after only). Models "
                "without a threshold are not shown.",
                f"(time() - {nodes.LAST_SUCCESS}{sel}) / {threshold}",
                legend=MODEL_LEGEND,
            )
        )
        board.with_panel(
            self.series(
                "Build duration",
                "Time dbt spent on each model's last build (none while its last build is a skip).",
                f"{nodes.BUILD_DURATION}{sel}",
                span=12,
                unit="s",
                legend=MODEL_LEGEND,
            )
        )
        board.with_panel(
            self.series(
                "Model data age",
                "Age of the newest row of each model that `dbt freshness` (dbt Fusion) checks: "
                "time() - max_loaded_at. Empty unless dbt freshness runs.",
                f"time() - {nodes.MAX_LOADED_AT}{sel}",
                span=12,
                unit="s",
                legend=MODEL_LEGEND,
            )
        )

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
                f"dbt source freshness and model builds of project {self.project}, generated by "
                "dbt-prom-bridge from the "
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
            .expr(f"changes({RUN_TIMESTAMP}{self.selector('run')}[2m]) > 0")
        )
        self.variables(board)
        self.overview(board)
        self.trends(board)
        self.slos(board)
        self.status_table(board)
        self.models(board)
        self.per_source(board)
        doc: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
        return doc


def build(manifest: Manifest, opts: DashboardOptions = DashboardOptions()) -> dict[str, Any]:
    """The dashboard for ``manifest`` as JSON-ready data (deterministic)."""
    return _Builder(manifest, opts).build()


def render(manifest: Manifest, opts: DashboardOptions = DashboardOptions()) -> str:
    """The dashboard JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(manifest, opts), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
