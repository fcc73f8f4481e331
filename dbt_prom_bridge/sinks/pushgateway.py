"""Pushgateway sink.

Grouping: one group per ``job`` + ``project`` + ``target`` (+ ``--grouping-key`` labels), so
projects and targets never overwrite each other.

- A full run replaces its group (HTTP PUT): sources removed from the project disappear.
- A partial run (``--select``/``--exclude``) reads the group first and carries over the
  sources it did not check, then replaces the group with the union (so a selection never
  erases other sources' series).
- A run where dbt could not run POSTs only ``run_success`` (0) and ``build_info``: POST
  replaces just those families, so the last good per-source series stay.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import FAILURE_METRICS, RUN_TIMESTAMP, checks_from_series, render
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks.http import HttpClient

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def grouping_labels(run: FreshnessRun, gateway: GatewayConfig) -> tuple[tuple[str, str], ...]:
    """The grouping key of ``run`` without ``job``: project, target, then ``--grouping-key`` labels."""
    labels: dict[str, str] = {"project": run.project, "target": run.target}
    for key, value in gateway.grouping_key:
        if key in ("job", "project", "target"):
            raise UsageError(f"--grouping-key {key}=... is set by dbt-prom-bridge itself; pick another label")
        labels[key] = value
    return tuple(labels.items())


def _segment(value: str) -> tuple[str, str]:
    """Pushgateway path encoding: plain when safe, ``@base64`` when empty or containing ``/``."""
    if value == "" or "/" in value:
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
        """The ``run_timestamp_seconds`` the group holds (None when absent)."""
        group = self.group(labels)
        if group is None:
            return None
        for _name, _labels, value in group_series(group, (RUN_TIMESTAMP,)):
            return value
        return None

    def push(self, run: FreshnessRun) -> PushOutcome:
        labels = grouping_labels(run, self.config)
        path = group_path(self.config.job, labels)
        url = self.client.display_url + path
        headers = {"Content-Type": CONTENT_TYPE}
        if not run.success:
            body = render(run, only=FAILURE_METRICS).encode()
            self.client.request("POST", path, body, headers)
            return PushOutcome("POST", url, run)
        carried = 0
        if run.partial:
            run, carried = self._merge(run, labels)
        self.client.request("PUT", path, render(run).encode(), headers)
        return PushOutcome("PUT", url, run, carried)

    def _merge(self, run: FreshnessRun, labels: Sequence[tuple[str, str]]) -> tuple[FreshnessRun, int]:
        group = self.group(labels)
        if group is None:
            return run, 0
        held = checks_from_series(group_series(group), run.meta_labels)
        fresh = {(c.source_name, c.table_name) for c in run.checks}
        kept = [c for key, c in held.items() if (key[2], key[3]) not in fresh]
        merged = tuple(sorted((*run.checks, *kept), key=lambda c: (c.source_name, c.table_name, c.unique_id)))
        return replace(run, checks=merged), len(kept)

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
            except (KeyError, TypeError, ValueError):
                continue
            yield name, labels, value
