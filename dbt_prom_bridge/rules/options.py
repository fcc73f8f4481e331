"""How to turn dbt's thresholds into rules: the options of ``dbt-prom rules``, checked once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from dbt_prom_bridge.config import DEFAULT_JOB, format_duration
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import validate_meta_labels
from dbt_prom_bridge.rules_syntax import (
    check_text,
)

DEFAULT_GROUP = "dbt-freshness"
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/dbt-prom-bridge/dbt-prom-bridge/blob/main/docs/alerts.md"


class Mode(str, Enum):
    PER_SOURCE = "per-source"
    DYNAMIC = "dynamic"

    def __str__(self) -> str:
        return self.value


class SplitBy(str, Enum):
    NONE = "none"
    PROJECT = "project"

    def __str__(self) -> str:
        return self.value


#: The longest --history-interval: the later-than-usual peak detection needs two evaluations in 5m.
MAX_HISTORY_INTERVAL = 150


@dataclass(frozen=True)
class RulesOptions:
    """How to turn dbt's thresholds into rules (everything else comes from the manifests)."""

    mode: Mode = Mode.PER_SOURCE
    #: ``for`` of every alert, seconds.
    for_seconds: float = 300.0
    #: ``keep_firing_for`` of every alert (Prometheus >= 2.42), seconds; None leaves it out.
    keep_firing_for: float | None = None
    #: Prefix of the rule group names: ``<group>/<project>`` (+ ``/<source_name>`` per source).
    group_name: str = DEFAULT_GROUP
    severity_warn: str = "warning"
    severity_error: str = "critical"
    #: DbtFreshnessBridgeStale fires when the last run is older than this, seconds.
    stale_after: float = 7200.0
    #: Pushgateway job of the pushes (DbtFreshnessPushFailing).
    job: str = DEFAULT_JOB
    #: dbt ``meta`` keys pushed as labels (``--meta-label``).
    meta_labels: tuple[str, ...] = ()
    #: Runbook links: ``<base>#<anchor>`` unless the source's ``meta.runbook_url`` says otherwise.
    #: Empty: no runbook_url annotation for alerts without a ``meta.runbook_url``.
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    #: Grafana dashboard URL; alerts link to it with ``var-project``/``var-target``/``var-source_name``.
    dashboard_url: str | None = None
    #: Only alert on series with one of these ``target`` labels (default: every target).
    target_labels: tuple[str, ...] = ()
    #: Read every series through ``last_over_time(...[lookback])`` (remote write), seconds.
    lookback: float | None = None
    #: The ``project`` label, when it differs from the manifest's project name (one manifest only).
    project: str | None = None
    #: ``source:NAME[.TABLE]`` patterns (shell wildcards), as dbt's ``--select``/``--exclude``.
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Refuse (exit 2) a threshold that cannot become a rule instead of warning and skipping it.
    strict: bool = False
    #: DbtSourceLaterThanUsual: an age over ``usual_factor`` x the largest age reached in the last
    #: ``usual_window`` seconds (once that much history exists), never under ``usual_floor`` seconds.
    usual_factor: float = 1.5
    usual_window: float = 604800.0
    usual_floor: float = 900.0
    #: Freshness objective of every source without ``meta.dbt_prom.slo`` (None: only those with one).
    slo: float | None = None
    #: Also the model alerts (DbtModelBuildLate/Failed, DbtModelNotBuilt) of the manifests' models.
    models: bool = True
    #: Evaluate the later-than-usual and SLO rules in a group of their own at this interval,
    #: seconds (None: in the project's group, at Prometheus's interval).
    history_interval: float | None = None

    def validated(self) -> RulesOptions:
        """Check what flags alone can get wrong; returns self."""
        validate_meta_labels(self.meta_labels)
        if not self.group_name or not self.group_name.strip() or self.group_name != self.group_name.strip():
            raise UsageError("--group-name must be non-empty text without leading/trailing spaces")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.group_name) or len(self.group_name) > 200:
            raise UsageError("--group-name must be at most 200 printable characters")
        check_text(self.group_name, "--group-name")
        for flag, value in (
            ("--severity-warn", self.severity_warn),
            ("--severity-error", self.severity_error),
        ):
            if not value or any(ord(c) < 0x20 for c in value):
                raise UsageError(f"{flag} must be a non-empty label value without control characters")
            check_text(value, flag)
        if not self.job:
            raise UsageError("--job must not be empty")
        for what, seconds in (("--for", self.for_seconds), ("--keep-firing-for", self.keep_firing_for)):
            if seconds is not None and (seconds < 0 or seconds != round(seconds)):
                raise UsageError(f"{what} must be a whole number of seconds (e.g. 30s, 5m), not {seconds}")
        if self.stale_after < 1:
            raise UsageError("--stale-after must be at least 1s")
        if not (math.isfinite(self.usual_factor) and self.usual_factor >= 1):
            raise UsageError(f"--usual-factor must be a number of at least 1, not {self.usual_factor}")
        if self.usual_window < 3600 or self.usual_window != round(self.usual_window):
            raise UsageError("--usual-window must be a whole number of seconds, at least 1h")
        if self.usual_floor < 0 or self.usual_floor != round(self.usual_floor):
            raise UsageError("--usual-floor must be a whole number of seconds (e.g. 15m)")
        if self.slo is not None:
            check_objective(self.slo, "--slo")
        if self.history_interval is not None and not (
            1 <= self.history_interval <= MAX_HISTORY_INTERVAL
            and self.history_interval == round(self.history_interval)
        ):
            raise UsageError(
                "--history-interval must be a whole number of seconds from 1s to 2m30s (the later-than-usual "
                "rules need two evaluations within 5m)"
            )
        if self.lookback is not None:
            if self.lookback < 60 or self.lookback != round(self.lookback):
                raise UsageError("--lookback must be a whole number of seconds, at least 1m")
            if self.lookback < self.stale_after:
                raise UsageError(
                    f"--lookback {format_duration(self.lookback)} is shorter than --stale-after "
                    f"{format_duration(self.stale_after)}: a bridge that stops pushing would vanish from "
                    "Prometheus before it counts as stale; use a --lookback of at least --stale-after"
                )
        for value in self.target_labels:
            if not value:
                raise UsageError("--target-label must not be empty")
            check_text(value, "--target-label")
        if self.mode is Mode.DYNAMIC and (self.select or self.exclude):
            raise UsageError(
                "--select/--exclude only apply to --mode per-source: dynamic rules cover every source "
                "pushed for the project"
            )
        for pattern in (*self.select, *self.exclude):
            parse_selector(pattern)
        if self.dashboard_url is not None:
            check_text(self.dashboard_url, "--dashboard-url")
        check_text(self.runbook_base_url, "--runbook-base-url")
        return self


def check_objective(value: object, where: str) -> float:
    """A freshness objective: a fraction strictly between 0 and 1 (0.99 = 99% of the time fresh)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise UsageError(f"{where}: the objective must be a number between 0 and 1 exclusive (e.g. 0.99)")
    return float(value)


def parse_selector(pattern: str) -> tuple[str, str]:
    """``source:finance``, ``source:finance.transactions``, ``source:fin*`` -> (source, table) globs."""
    method, sep, value = pattern.partition(":")
    if not sep or method != "source" or not value or any(c in value for c in "+@,") or " " in value:
        raise UsageError(
            f"rules --select/--exclude {pattern!r}: only source:NAME and source:NAME.TABLE "
            "(shell wildcards allowed) are supported here, without graph operators"
        )
    source, _, table = value.partition(".")
    return source, table or "*"


@dataclass(frozen=True)
class Inputs:
    """How the manifests were obtained, for the "Regenerate with" line of the header."""

    manifests: tuple[str, ...] = ()
    artifacts_dirs: tuple[str, ...] = ()
    project_dir: str | None = None
    target: str | None = None
    vars: str | None = None
    #: ``--projects FILE``.
    projects_file: str | None = None


@dataclass(frozen=True)
class Outputs:
    """Where the files go. Without ``out``/``out_dir`` the rules go to stdout (no tests)."""

    out: Path | None = None
    out_dir: Path | None = None
    tests: Path | None = None
    tests_dir: Path | None = None
    split_by: SplitBy = SplitBy.NONE

    def validated(self) -> Outputs:
        if self.split_by is SplitBy.PROJECT:
            if self.out is not None or self.tests is not None:
                raise UsageError(
                    "--split-by project writes one file per project: use --out-dir (and --tests-dir)"
                )
            if self.out_dir is None:
                raise UsageError("--split-by project needs --out-dir DIR (one <project>.yml per project)")
        else:
            if self.out_dir is not None or self.tests_dir is not None:
                raise UsageError(
                    "--out-dir/--tests-dir go with --split-by project; otherwise use --out/--tests"
                )
            if self.tests is not None and self.out is None:
                raise UsageError("--tests needs --out: the test file refers to the rule file by its path")
            if self.tests is not None and self.out is not None and self.tests.resolve() == self.out.resolve():
                raise UsageError("--tests and --out must be different files")
        return self
