"""Pushgateway sink.

Grouping: one group per ``job`` + ``project`` + ``target`` (+ ``--grouping-key`` labels), so
projects and targets never overwrite each other.

- A full run replaces its group (HTTP PUT): sources removed from the project disappear.
- A partial run (``--select``/``--exclude``) reads the group first and carries over the
  sources it did not check, then replaces the group with the union (so a selection never
  erases other sources' series).
- A run where dbt could not run POSTs only ``run_success`` (0) and ``build_info``: POST
  replaces just those families, so the last good per-source series stay.
- :meth:`Pushgateway.replay` delivers a spilled run later without ever replacing newer data: a
  run newer than the group's ``run_timestamp`` is pushed as above; an older one only updates
  the sources whose held values are older than its own (per-source ``checked_timestamp``),
  keeping the group's run-level series; when nothing of it is newer it is superseded.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.errors import PushError
from dbt_prom_bridge.exposition import (
    BUILD_INFO,
    FAILURE_METRICS,
    PER_SOURCE_METRICS,
    RUN_DURATION,
    RUN_SUCCESS,
    RUN_TIMESTAMP,
    SOURCES,
    Family,
    checks_from_series,
    families,
    render,
    render_bytes,
    render_families,
)
from dbt_prom_bridge.model import RUN_LABELS, FreshnessRun, SourceCheck, validate_grouping_key
from dbt_prom_bridge.sinks.http import HttpClient
from dbt_prom_bridge.sinks.spill import group_lock

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def grouping_labels(run: FreshnessRun, gateway: GatewayConfig) -> tuple[tuple[str, str], ...]:
    """The grouping key of ``run`` without ``job``: project, target, then ``--grouping-key`` labels."""
    return (
        ("project", run.project),
        ("target", run.target),
        *validate_grouping_key(gateway.grouping_key, run.meta_labels),
    )


def _segment(value: str) -> tuple[str, str]:
    """Pushgateway path encoding: plain when safe, ``@base64`` when empty, containing ``/``, or
    a dot segment (``.``/``..``, which the gateway's router cleans away with a redirect)."""
    if value in ("", ".", "..") or "/" in value:
        return "@base64", base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "="
    return "", urllib.parse.quote(value, safe="")


def group_path(job: str, labels: Sequence[tuple[str, str]]) -> str:
    suffix, value = _segment(job)
    path = f"/metrics/job{suffix}/{value}"
    for key, raw in labels:
        suffix, value = _segment(raw)
        path += f"/{key}{suffix}/{value}"
    return path


@dataclass(frozen=True)
class PushOutcome:
    """What the gateway now holds for the group, and how it got there."""

    method: str
    url: str
    run: FreshnessRun
    carried_over: int = 0


class Pushgateway:
    """A Pushgateway reached through :class:`HttpClient` (auth, TLS, retries)."""

    def __init__(self, gateway: GatewayConfig, client: HttpClient | None = None) -> None:
        self.config = gateway
        self.client = client or HttpClient(
            gateway.url, gateway.auth, gateway.timeout, gateway.retries, gateway.backoff
        )

    def groups(self) -> list[Mapping[str, Any]]:
        """Every group the gateway holds (``GET /api/v1/metrics``)."""
        resp = self.client.request("GET", "/api/v1/metrics")
        try:
            doc = json.loads(resp.body)
        except ValueError:
            raise PushError(
                f"{self.client.display_url} answered /api/v1/metrics with non-JSON; is it a Pushgateway?"
            ) from None
        data = doc.get("data") if isinstance(doc, Mapping) else None
        return [g for g in data if isinstance(g, Mapping)] if isinstance(data, list) else []

    def group(self, labels: Sequence[tuple[str, str]]) -> Mapping[str, Any] | None:
        want = {"job": self.config.job, **dict(labels)}
        for group in self.groups():
            have = group.get("labels")
            if isinstance(have, Mapping) and dict(have) == want:
                return group
        return None

    def run_timestamp(self, labels: Sequence[tuple[str, str]]) -> float | None:
        """The ``run_timestamp_seconds`` the group holds (None when absent).

        Found in the gateway's ``/metrics`` text by its metric name, rather than by decoding every
        group from ``/api/v1/metrics`` (with 100,000 sources held that JSON is 240 MB and takes
        14 s and over 1 GB to decode; the text scan keeps only the matching lines).
        """
        body = self.client.request("GET", "/metrics").body
        return held_run_timestamp(body, {"job": self.config.job, **dict(labels)})

    def push(self, run: FreshnessRun, lock_dir: Path | None = None) -> PushOutcome:
        """Push ``run``. With ``lock_dir``, a partial run's read-merge-write holds a lock there, so
        two selected runs of this host for the same group never lose each other's update."""
        labels = grouping_labels(run, self.config)
        path = group_path(self.config.job, labels)
        url = self.client.display_url + path
        headers = {"Content-Type": CONTENT_TYPE}
        if not run.success:
            body = render(run, only=FAILURE_METRICS).encode()
            self.client.request("POST", path, body, headers)
            return PushOutcome("POST", url, run)
        carried = 0
        with group_lock(lock_dir if run.partial else None, url):
            if run.partial:
                run, carried = self._merge(run, labels)
            self.client.request("PUT", path, render_bytes(run), headers)
        return PushOutcome("PUT", url, run, carried)

    def _merge(self, run: FreshnessRun, labels: Sequence[tuple[str, str]]) -> tuple[FreshnessRun, int]:
        group = self.group(labels)
        if group is None:
            return run, 0
        return carry_over(run, group)

    def replay(self, run: FreshnessRun, when: float, lock_dir: Path | None = None) -> PushOutcome | None:
        """Deliver a spilled ``run`` whose time is ``when``, never replacing newer data.

        Returns None when the group already holds this run or newer data for all its sources
        (superseded: nothing pushed). ``lock_dir`` as in :meth:`push`.
        """
        labels = grouping_labels(run, self.config)
        url = self.client.display_url + group_path(self.config.job, labels)
        with group_lock(lock_dir, url):
            return self._replay(run, when, labels)

    def _replay(
        self, run: FreshnessRun, when: float, labels: Sequence[tuple[str, str]]
    ) -> PushOutcome | None:
        path = group_path(self.config.job, labels)
        url = self.client.display_url + path
        headers = {"Content-Type": CONTENT_TYPE}
        group = self.group(labels)
        held_ts = group_run_timestamp(group) if group is not None else None
        if not run.success:
            if held_ts is not None and held_ts >= when:
                return None
            self.client.request("POST", path, render(run, only=FAILURE_METRICS).encode(), headers)
            return PushOutcome("POST", url, run)
        if group is None or held_ts is None or when > held_ts:
            carried = 0
            if run.partial and group is not None:
                run, carried = carry_over(run, group)
            self.client.request("PUT", path, render_bytes(run), headers)
            return PushOutcome("PUT", url, run, carried)
        merged = merge_older(run, group, held_ts, when)
        if merged is None:
            return None
        body, merged_run, kept = merged
        self.client.request("PUT", path, body.encode(), headers)
        return PushOutcome("PUT", url, merged_run, kept)

    def delete(self, run: FreshnessRun) -> None:
        self.client.request("DELETE", group_path(self.config.job, grouping_labels(run, self.config)))


def group_series(
    group: Mapping[str, Any], names: Sequence[str] | None = None
) -> Iterator[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` for the metric families of one ``/api/v1/metrics`` group."""
    for name, fam in group.items():
        if names is not None and name not in names:
            continue
        if not isinstance(fam, Mapping) or not isinstance(fam.get("metrics"), list):
            continue
        for metric in fam["metrics"]:
            try:
                value = float(metric["value"])
                labels = {str(k): str(v) for k, v in metric.get("labels", {}).items()}
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                continue
            yield name, labels, value


def held_run_timestamp(text: bytes, group: Mapping[str, str]) -> float | None:
    """The ``run_timestamp_seconds`` of the group with exactly these labels in a gateway's
    ``/metrics`` text (its series carry the grouping labels, and ``instance=""``)."""
    from prometheus_client.parser import text_string_to_metric_families

    pattern = re.compile(rb"^" + re.escape(RUN_TIMESTAMP.encode()) + rb"\{[^\n]*$", re.MULTILINE)
    for match in pattern.finditer(text):
        line = match.group(0).decode("utf-8", "replace")
        try:
            samples = [s for fam in text_string_to_metric_families(line + "\n") for s in fam.samples]
        except (ValueError, TypeError, IndexError):  # a line this parser cannot read: not ours
            continue
        for sample in samples:
            labels = {k: v for k, v in sample.labels.items() if not (k == "instance" and v == "")}
            if labels == group:
                return float(sample.value)
    return None


def group_run_timestamp(group: Mapping[str, Any]) -> float | None:
    for _name, _labels, value in group_series(group, (RUN_TIMESTAMP,)):
        return value
    return None


def carry_over(run: FreshnessRun, group: Mapping[str, Any]) -> tuple[FreshnessRun, int]:
    """A partial ``run`` plus the sources ``group`` holds that it did not check."""
    held = checks_from_series(group_series(group), run.meta_labels)
    fresh = {(c.source_name, c.table_name) for c in run.checks}
    kept = [c for key, c in held.items() if (key[2], key[3]) not in fresh]
    merged = tuple(sorted((*run.checks, *kept), key=_order))
    return replace(run, checks=merged), len(kept)


def _order(check: SourceCheck) -> tuple[str, str, str]:
    return (check.source_name, check.table_name, check.unique_id)


#: Label names of the run-level series, as pushed (the gateway adds job/instance/grouping labels).
_RUN_LEVEL: Mapping[str, tuple[str, ...]] = {
    RUN_TIMESTAMP: RUN_LABELS,
    RUN_DURATION: RUN_LABELS,
    RUN_SUCCESS: RUN_LABELS,
    BUILD_INFO: (*RUN_LABELS, "version", "dbt_version"),
}


def merge_older(
    run: FreshnessRun, group: Mapping[str, Any], held_ts: float, when: float
) -> tuple[str, FreshnessRun, int] | None:
    """Merge a run that is not newer than the group's run (``when <= held_ts``).

    Only sources the group holds with an *older* check than ``run``'s are updated (a source's
    time is its ``checked_timestamp``, else the run's time); sources the group does not hold are
    not brought back (the newer run did not have them); the run-level series stay the group's.
    Returns ``(exposition text, merged run, sources kept from the group)``, or None when
    nothing in ``run`` is newer.
    """
    held = {(k[2], k[3]): c for k, c in checks_from_series(group_series(group), run.meta_labels).items()}
    merged = dict(held)
    updated = 0
    for check in run.checks:
        mine = held.get(check.key)
        if mine is None:
            continue
        held_time = mine.checked_at if mine.checked_at is not None else held_ts
        run_time = check.checked_at if check.checked_at is not None else when
        if run_time > held_time:
            merged[check.key] = check
            updated += 1
    if not updated:
        return None
    merged_run = replace(run, checks=tuple(sorted(merged.values(), key=_order)), partial=True)
    per_source = families(merged_run, only=(*PER_SOURCE_METRICS, SOURCES))
    run_level: list[Family] = []
    for name, label_names in _RUN_LEVEL.items():
        rows = [
            (tuple(labels.get(n, "") for n in label_names), value)
            for _n, labels, value in group_series(group, (name,))
        ]
        if rows:
            run_level.append(Family(name, label_names, rows))
    return render_families([*per_source, *run_level]), merged_run, len(merged) - updated
