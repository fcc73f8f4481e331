"""The model alerts in ``dbt-prom rules``: :mod:`dbt_prom_bridge.rules.model_rules` with the command's
options, as rule groups of the rule file, and the promtool scenarios proving them.

Scenarios (the same test passes on per-model and dynamic rules), each checking every model
alert at each of its times, with expectations from the alerting model of
:class:`~dbt_prom_bridge.rules.tests.Scenario`:

- late (``warn_after``, then ``error_after``): each model with that threshold last built
  successfully that long before ``T0``; DbtModelBuildLate fires ``for`` later (with the other
  severity too where its threshold is also passed) and resolves when the model builds again;
- failed: the models build, then their build ends in error from ``T0``; DbtModelBuildFailed
  fires ``for`` later and resolves with the next successful build;
- never built: the models with a threshold push it but no build until ``T_rec``; DbtModelNotBuilt
  fires after ``for`` and resolves with the first build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dbt_prom_bridge.config import format_duration
from dbt_prom_bridge.nodes import (
    BUILD_STATUS,
    BUILD_STATUSES,
    BUILT_AT,
    ERROR_AFTER,
    LAST_SUCCESS,
    MODEL_LABELS,
    WARN_AFTER,
    BuildStatus,
    ModelDef,
)
from dbt_prom_bridge.rules import options as rules_options
from dbt_prom_bridge.rules.model_rules import (
    BUILD_FAILED,
    BUILD_LATE,
    DEFAULT_GROUP,
    DEFAULT_RUNBOOK_BASE_URL,
    MODEL_ALERTS,
    NOT_BUILT,
    ModelRuleOptions,
    model_annotations,
    model_rule_groups,
    own_models,
)
from dbt_prom_bridge.rules.options import Mode, RulesOptions
from dbt_prom_bridge.rules.render import PlainText
from dbt_prom_bridge.rules.rule import Group, Rule
from dbt_prom_bridge.rules.selection import ProjectSources
from dbt_prom_bridge.rules.tests import Builder, Check, Expected, Key, Scenario, Series, TestGroup, _key

#: The threshold series of each level of DbtModelBuildLate.
LEVELS: tuple[tuple[str, str], ...] = (("warn_after", WARN_AFTER), ("error_after", ERROR_AFTER))


@dataclass(frozen=True)
class ProjectModels:
    """The models, seeds and snapshots a project's manifest declares."""

    #: The ``project`` label.
    project: str
    #: The manifest's own package (its models get per-model rules).
    package: str
    models: tuple[ModelDef, ...]
    #: This project's ``--meta-label`` keys when they differ from the command's (a projects file).
    meta_labels: tuple[str, ...] | None = None


def model_options(project: ProjectModels, opts: RulesOptions) -> ModelRuleOptions:
    """The command's options as they apply to the model rules of ``project``.

    The runbooks of the model alerts are in docs/models.md: the default ``--runbook-base-url``
    (docs/alerts.md) becomes that page; another base URL is used as given (anchors are the
    lower-cased alert names, as for the source alerts). ``--group-name`` X names the model group
    ``X-models/<project>`` (``dbt-models`` by default)."""
    runbook = opts.runbook_base_url
    if runbook == rules_options.DEFAULT_RUNBOOK_BASE_URL:
        runbook = DEFAULT_RUNBOOK_BASE_URL
    group = DEFAULT_GROUP if opts.group_name == rules_options.DEFAULT_GROUP else f"{opts.group_name}-models"
    return ModelRuleOptions(
        project=project.project,
        mode="dynamic" if opts.mode is Mode.DYNAMIC else "per-model",
        for_=format_duration(opts.for_seconds) if opts.for_seconds else "",
        meta_labels=project.meta_labels if project.meta_labels is not None else opts.meta_labels,
        runbook_base_url=runbook,
        severity_warn=opts.severity_warn,
        severity_error=opts.severity_error,
        keep_firing_for=format_duration(opts.keep_firing_for) if opts.keep_firing_for else None,
        target_labels=opts.target_labels,
        lookback=format_duration(opts.lookback) if opts.lookback else None,
        group_name=group,
        package=project.package,
    )


def model_groups(project: ProjectModels, opts: RulesOptions) -> list[Group]:
    """The model rule group of ``project``, as records of the rule file."""
    out = []
    for group in model_rule_groups(project.models, model_options(project, opts)):
        rules = tuple(
            Rule(
                alert=r["alert"],
                expr=r["expr"],
                labels=tuple(r["labels"].items()),
                annotations=tuple(r["annotations"].items()),
                for_=r.get("for"),
                keep_firing_for=r.get("keep_firing_for"),
            )
            for r in group["rules"]
        )
        out.append(Group(group["name"], rules))
    return out


class ModelTests:
    """The promtool scenarios of one project's model rules (timing as the source tests)."""

    def __init__(self, project: ProjectModels, opts: RulesOptions) -> None:
        self.mopts = model_options(project, opts)
        self.timing = Builder(ProjectSources(project.project, (), project.meta_labels), opts)
        self.opts = self.timing.opts
        self.project = project
        self.models = own_models(project.models, self.mopts)
        self.configured = [m for m in self.models if m.has_thresholds]
        self.dynamic = self.mopts.mode == "dynamic"
        #: Per alert label set: the threshold level and seconds its text names.
        self.context: dict[Key, tuple[str, float | None]] = {}

    def labels(self, mdef: ModelDef) -> dict[str, str]:
        """The labels of a pushed model series (as the Pushgateway holds them, with ``job``)."""
        values = (
            self.project.project,
            self.timing.target,
            mdef.model,
            mdef.package,
            mdef.database,
            mdef.schema,
            mdef.identifier,
            mdef.resource_type,
        )
        out = dict(zip(MODEL_LABELS, values, strict=True))
        meta = dict(mdef.meta)
        out.update({k: meta.get(k, "") for k in self.mopts.meta_labels})
        out["job"] = self.opts.job
        return out

    def rule_labels(self, alert: str, mdef: ModelDef, level: str = "warn_after") -> dict[str, str]:
        out = {"project": self.project.project, "severity": self.mopts.severity(alert, level)}
        if alert != BUILD_FAILED and not self.dynamic:
            meta = dict(mdef.meta)
            out["model"] = mdef.model
            out.update({k: meta[k] for k in self.mopts.meta_labels if meta.get(k)})
        return out

    def thresholds(self, mdef: ModelDef) -> dict[str, float]:
        found = {WARN_AFTER: mdef.warn_after, ERROR_AFTER: mdef.error_after}
        return {metric: s for metric, s in found.items() if s is not None}

    # -- conditions: the rules of model_rules, over the scenario's series ------------------------------
    def late(self, sc: Scenario, mdef: ModelDef, success: Series, labels: dict[str, str]) -> None:
        th = self.thresholds(mdef)
        clean = {k: v for k, v in labels.items() if v}
        for level, metric in LEVELS:
            if metric not in th:
                continue
            key = _key(clean, BUILD_LATE, self.rule_labels(BUILD_LATE, mdef, level))
            self.context[key] = (level, None if self.dynamic else th[metric])

            def cond(k: int, key: Key = key, limit: float = th[metric]) -> dict[Key, float]:
                built = sc.visible(success, k)
                if built is None:
                    return {}
                age = k * sc.interval - built
                return {key: age} if age > limit else {}

            sc.condition(BUILD_LATE, cond)

    def failed(self, sc: Scenario, mdef: ModelDef, error: Series, labels: dict[str, str]) -> None:
        clean = {k: v for k, v in labels.items() if v}
        key = _key(
            {**clean, "status": BuildStatus.ERROR.value}, BUILD_FAILED, self.rule_labels(BUILD_FAILED, mdef)
        )
        sc.condition(BUILD_FAILED, lambda k: {key: 1.0} if sc.visible(error, k) == 1 else {})

    def not_built(
        self,
        sc: Scenario,
        mdef: ModelDef,
        configured: Sequence[Series],
        built: Series,
        labels: dict[str, str],
    ) -> None:
        clean = {k: v for k, v in labels.items() if v}
        key = _key(clean, NOT_BUILT, self.rule_labels(NOT_BUILT, mdef))

        def cond(k: int) -> dict[Key, float]:
            values = [v for v in (sc.visible(item, k) for item in configured) if v is not None]
            if not values or sc.visible(built, k) is not None:
                return {}
            return {key: values[0]}

        sc.condition(NOT_BUILT, cond)

    # -- series ------------------------------------------------------------------------------------------
    def push(
        self, sc: Scenario, mdef: ModelDef, steps: int, status: Mapping[BuildStatus, list[float | None]]
    ) -> tuple[dict[str, str], dict[BuildStatus, Series], list[Series]]:
        """The model's thresholds and build status as pushed: its labels, status and threshold series."""
        labels = self.labels(mdef)
        thresholds = [
            sc.add(metric, labels, self.timing.constant(steps, seconds))
            for metric, seconds in self.thresholds(mdef).items()
        ]
        pushed = {
            state: sc.add(BUILD_STATUS, {**labels, "status": state.value}, status[state])
            for state in BUILD_STATUSES
            if state in status
        }
        return labels, pushed, thresholds

    def checks(self, sc: Scenario, times: Sequence[int]) -> list[Check]:
        out = []
        for t in times:
            step = t // sc.interval
            for alert in MODEL_ALERTS:
                expected = []
                for labels, value in sorted(sc.firing(alert, step).items()):
                    level, seconds = self.context.get(labels, ("", None))
                    text = PlainText(dict(labels), value, {})
                    notes = model_annotations(alert, text, self.mopts, level, seconds)
                    expected.append(
                        Expected(tuple((k, v) for k, v in labels if k != "alertname"), tuple(notes.items()))
                    )
                out.append(Check(format_duration(t), alert, expected))
        return out

    def _times(self, start: int) -> tuple[list[int], int]:
        """Check times around a condition that holds from ``start`` and clears at the returned step time."""
        i, hold = self.timing.interval, int(self.opts.for_seconds)
        keep = int(self.opts.keep_firing_for or 0)
        fire = start + hold
        recover = fire + i
        times = {
            start,
            fire,
            recover,
            *((fire - i,) if hold >= i else ()),
            *((recover + keep,) if keep else ()),
        }
        return sorted(t for t in times if t >= 0), recover

    # -- scenarios -----------------------------------------------------------------------------------------
    def late_scenario(self, level: str, metric: str) -> TestGroup:
        """Each model with ``metric`` last built successfully ``metric`` before T0 (its age reaches
        the threshold at T0: ``>`` fires one interval later); it builds again at T_rec."""
        t0, i = self.timing.t0, self.timing.interval
        times, recover = self._times(t0 + i)
        times = sorted({t0, *times})
        steps = self.timing.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)
        fine = {BuildStatus.SUCCESS: self.timing.constant(steps, 1.0)}
        fine.update(
            {s: self.timing.constant(steps, 0.0) for s in BUILD_STATUSES if s is not BuildStatus.SUCCESS}
        )
        for mdef in self.configured:
            labels, _, _ = self.push(sc, mdef, steps, fine)
            base = t0 - self.thresholds(mdef).get(metric, 0.0)

            def built(ts: int, base: float = base) -> float:
                return float(recover) if ts >= recover else base

            values = self.timing.timeline(steps, built, (recover,))
            success = sc.add(LAST_SUCCESS, labels, values)
            sc.add(BUILT_AT, labels, list(values))
            self.late(sc, mdef, success, labels)
        return TestGroup(
            f"{level}: each model's last successful build reaches its {level} at {format_duration(t0)}, "
            f"it builds again at {format_duration(recover)}",
            sc.rendered_series(),
            self.checks(sc, times),
        )

    def failed_scenario(self) -> TestGroup:
        """The models build successfully until T0, then every build ends in error until T_rec."""
        t0, i = self.timing.t0, self.timing.interval
        times, recover = self._times(t0)
        times = sorted({t0 - i, *times})
        steps = self.timing.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)

        def broken(ts: int) -> bool:
            return t0 <= ts < recover

        def flag(on: bool) -> list[float | None]:
            return self.timing.timeline(steps, lambda ts: 1.0 if broken(ts) is on else 0.0, (t0, recover))

        status = {BuildStatus.SUCCESS: flag(False), BuildStatus.ERROR: flag(True)}
        status[BuildStatus.SKIPPED] = self.timing.constant(steps, 0.0)
        for mdef in self.configured or self.models[:1]:
            labels, pushed, _ = self.push(sc, mdef, steps, status)
            last = self.timing.timeline(steps, lambda ts: float(t0 - i if broken(ts) else ts), (t0, recover))
            success = sc.add(LAST_SUCCESS, labels, last)
            sc.add(BUILT_AT, labels, self.timing.timeline(steps, float))
            self.failed(sc, mdef, pushed[BuildStatus.ERROR], labels)
            self.late(sc, mdef, success, labels)
        return TestGroup(
            f"{BUILD_FAILED}: the models build until {format_duration(t0)}, then fail until "
            f"{format_duration(recover)}",
            sc.rendered_series(),
            self.checks(sc, times),
        )

    def not_built_scenario(self) -> TestGroup:
        """Each model with a threshold pushes it, but no build until T_rec (then it builds)."""
        i = self.timing.interval
        times, recover = self._times(0)
        steps = self.timing.steps_until(times[-1])
        sc = Scenario(i, steps, self.opts)

        def after(value: float) -> list[float | None]:
            return self.timing.timeline(steps, lambda ts: value if ts >= recover else None, (recover,))

        status = {
            BuildStatus.SUCCESS: after(1.0),
            BuildStatus.ERROR: after(0.0),
            BuildStatus.SKIPPED: after(0.0),
        }
        for mdef in self.configured:
            labels, _, configured = self.push(sc, mdef, steps, status)
            stamps = self.timing.timeline(steps, lambda ts: float(ts) if ts >= recover else None, (recover,))
            success = sc.add(LAST_SUCCESS, labels, stamps)
            built = sc.add(BUILT_AT, labels, list(stamps))
            self.not_built(sc, mdef, configured, built, labels)
            self.late(sc, mdef, success, labels)
        return TestGroup(
            f"{NOT_BUILT}: the models with a threshold are never built until {format_duration(recover)}",
            sc.rendered_series(),
            self.checks(sc, times),
        )

    def all(self) -> list[TestGroup]:
        if not self.models:
            return []
        groups = [
            self.late_scenario(level, metric)
            for level, metric in LEVELS
            if any(metric in self.thresholds(m) for m in self.configured)
        ]
        groups.append(self.failed_scenario())
        if self.configured:
            groups.append(self.not_built_scenario())
        for group in groups:
            group.comment = f"{self.project.project} - models - {group.comment}"
        return groups


def model_tests(project: ProjectModels, opts: RulesOptions) -> list[TestGroup]:
    """The promtool scenarios proving the model rules of ``project`` (none without models)."""
    return ModelTests(project, opts).all()
