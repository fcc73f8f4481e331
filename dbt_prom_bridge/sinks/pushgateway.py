"""Pushgateway sink: newest-wins per source in one group per job + project + target.

Grouping: one group per ``job`` + ``project`` + ``target`` (+ ``--grouping-key`` labels), so
projects and targets never overwrite each other. A Pushgateway can only replace a whole group
(PUT), so every push is a read-merge-write of the group (:func:`dbt_prom_bridge.state.merge`):
the gateway ends holding, for every source, the newest check of it; a run changes only the
sources it checked; a run with nothing newer pushes nothing.

Reading the group cheaply. The gateway has no per-group read (``/api/v1/metrics`` and ``/metrics``
return every group: 240 MB of JSON with 100,000 sources held). So each push also writes a
``dbt_prom_bridge_state_revision`` series (a random number) into the group, and keeps what it
wrote in a local state cache (:mod:`dbt_prom_bridge.sinks.statecache`) beside the spill files.
Before the next push it reads only the revisions from the gateway's ``/metrics`` text (families
come sorted by name, and ``dbt_prom_bridge_*`` comes before ``dbt_source_*``, so the read stops
early): when the group's revision is the cached one, the cache *is* the group. Otherwise (another
host pushed, the cache is gone, the gateway restarted) it reads the group's series from the
``/metrics`` stream, keeping only this group's lines, and joins them with the cache (newest check
of each source wins, so a gateway that lost its groups gets them back).

Concurrency. Pushes of one host to one group hold a lock in the state directory around the
read-merge-write. After writing, the revision is read back; if another host wrote in between, the
push merges again on top of what that host wrote (at most :data:`ROUNDS` times).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from dbt_prom_bridge import state
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.exposition import (
    BUILD_INFO,
    HELP,
    PER_SOURCE_METRICS,
    RUN_DURATION,
    RUN_SUCCESS,
    RUN_TIMESTAMP,
    STATE_REVISION,
    escape_label_value,
    format_value,
    held_from_series,
    iter_text,
)
from dbt_prom_bridge.model import SOURCE_LABELS, FreshnessRun, validate_grouping_key
from dbt_prom_bridge.nodes import MODEL_LABELS, PER_MODEL_METRICS
from dbt_prom_bridge.redact import redact_url
from dbt_prom_bridge.sinks.base import Delivered
from dbt_prom_bridge.sinks.http import HttpClient, StreamedBody
from dbt_prom_bridge.sinks.spill import Destination, group_lock
from dbt_prom_bridge.sinks.statecache import StateCache

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KIND = "pushgateway"
#: Read-merge-write rounds when another host keeps writing the same group in between.
ROUNDS = 3
_CHUNK = 1 << 16
#: Bytes per piece of a request body, sent as it is rendered.
_SEND_CHUNK = 1 << 20


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


# -- reading the gateway's /metrics text -------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
_UNESCAPE = re.compile(r"\\(.)")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_sample(line: str) -> tuple[str, dict[str, str], float] | None:
    """``(name, labels, value)`` of one exposition sample line with labels; None if it is not one."""
    match = _SAMPLE.match(line)
    if match is None:
        return None
    name, body, raw = match.groups()
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        label = _LABEL.match(body, pos)
        if label is None:
            return None
        labels[label.group(1)] = _unescape(label.group(2))
        pos = label.end()
    try:
        return name, labels, float(raw)
    except ValueError:
        return None


def iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of a response body, read in chunks (the body of a big gateway is never held whole)."""
    rest = b""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from lines
    if rest:
        yield rest


def _family_of(line: bytes) -> bytes:
    if line.startswith(b"# "):
        parts = line.split(b" ", 3)
        return parts[2] if len(parts) > 2 else b""
    end = len(line)
    for sep in (b"{", b" "):
        at = line.find(sep)
        if 0 <= at < end:
            end = at
    return line[:end]


def _wanted(labels: Mapping[str, str], group: Mapping[str, str], allowed: frozenset[str]) -> bool:
    """A series of exactly this group: its labels match, and it has no label another grouping
    key would add (a group with one more grouping label is another group)."""
    for key, value in group.items():
        if labels.get(key) != value:
            return False
    return all(k in group or k in allowed for k in labels)


def read_revision(stream: BinaryIO, group: Mapping[str, str]) -> float | None:
    """The ``dbt_prom_bridge_state_revision`` of ``group`` in a ``/metrics`` stream; stops reading
    once past that family (families come sorted by name)."""
    name = STATE_REVISION.encode()
    seen = False
    for line in iter_lines(stream):
        family = _family_of(line)
        if family == name:
            seen = True
            if line.startswith(b"#"):
                continue
            sample = parse_sample(line.decode("utf-8", "replace"))
            if sample is not None and _wanted(sample[1], group, frozenset(("instance",))):
                return sample[2]
        elif seen or (family and family > name and not line.startswith(b"#")):
            return None
    return None


_RUN_LEVEL = (RUN_TIMESTAMP, RUN_DURATION, RUN_SUCCESS, BUILD_INFO)


def read_group(
    stream: BinaryIO, group: Mapping[str, str], run: FreshnessRun
) -> tuple[FreshnessRun | None, float | None]:
    """What ``group`` holds in a ``/metrics`` stream, as a held state (None when it holds no
    dbt-prom data), and its revision. Only this group's lines are parsed."""
    names = {n.encode() for n in (*PER_SOURCE_METRICS, *PER_MODEL_METRICS, *_RUN_LEVEL, STATE_REVISION)}
    needles = [f'{k}="{escape_label_value(v)}"'.encode() for k, v in group.items()]
    allowed = frozenset(
        ("instance", "status", "version", "dbt_version", *SOURCE_LABELS, *MODEL_LABELS, *run.meta_labels)
    )
    series: list[tuple[str, dict[str, str], float]] = []
    revision = None
    for line in iter_lines(stream):
        if line.startswith(b"#") or _family_of(line) not in names:
            continue
        if not all(n in line for n in needles):
            continue
        sample = parse_sample(line.decode("utf-8", "replace"))
        if sample is None or not _wanted(sample[1], group, allowed):
            continue
        if sample[0] == STATE_REVISION:
            revision = sample[2]
        else:
            series.append(sample)
    return held_from_series(series, run.project, run.target, run.meta_labels), revision


# -- the sink ----------------------------------------------------------------------------------


def new_revision() -> float:
    """A random revision, exactly representable as a float (53 bits)."""
    return float(secrets.randbits(52) | (1 << 52))


class Pushgateway:
    """A Pushgateway reached through :class:`HttpClient` (auth, TLS, retries)."""

    kind = KIND

    def __init__(
        self,
        gateway: GatewayConfig,
        client: HttpClient | None = None,
        state_dir: Path | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = gateway
        self.client = client or HttpClient(
            gateway.url, gateway.auth, gateway.timeout, gateway.retries, gateway.backoff
        )
        self.state_dir = state_dir
        self.now = now

    def labels(self, run: FreshnessRun) -> tuple[tuple[str, str], ...]:
        return grouping_labels(run, self.config)

    def destination(self, run: FreshnessRun) -> Destination:
        """Where ``run`` goes (for spill files: no credentials)."""
        return Destination(
            kind=KIND, url=redact_url(self.config.url), job=self.config.job, grouping_key=self.labels(run)
        )

    def for_destination(self, destination: Destination) -> Pushgateway:
        """This gateway, pushing to ``destination``'s job and grouping key (replay)."""
        extra = tuple((k, v) for k, v in destination.grouping_key if k not in ("project", "target"))
        config = replace(self.config, job=destination.job or self.config.job, grouping_key=extra)
        return Pushgateway(config, self.client, self.state_dir, self.now)

    def _group(self, run: FreshnessRun) -> dict[str, str]:
        return {"job": self.config.job, **dict(self.labels(run))}

    def revision(self, run: FreshnessRun) -> float | None:
        """The state revision the gateway holds for ``run``'s group (None: none)."""
        group = self._group(run)
        return self.client.fetch("/metrics", lambda s: read_revision(s, group))

    def held(self, run: FreshnessRun) -> tuple[FreshnessRun | None, float | None]:
        """What the gateway holds for ``run``'s group, read from its ``/metrics`` stream."""
        group = self._group(run)
        return self.client.fetch("/metrics", lambda s: read_group(s, group, run))

    def same_endpoint(self, destination: Destination) -> bool:
        return destination.kind == KIND and destination.url.rstrip("/") == (
            redact_url(self.config.url.strip()).rstrip("/")
        )

    def push(self, run: FreshnessRun, force: bool = False) -> Delivered:
        """Merge ``run`` into the group (newest check of each source wins) and write it."""
        labels = self.labels(run)
        path = group_path(self.config.job, labels)
        url = self.client.display_url + path
        cache = StateCache.for_group(self.state_dir, self.client.display_url, self.config.job, labels)
        with group_lock(self.state_dir, url):
            for _round in range(ROUNDS):
                outcome, revision = self._round(run, path, url, cache, force)
                # Another revision than ours: another host wrote in between; merge on top of it.
                if not outcome.pushed or self.revision(run) in (revision, None):
                    break
            return outcome

    def _round(
        self, run: FreshnessRun, path: str, url: str, cache: StateCache | None, force: bool
    ) -> tuple[Delivered, float | None]:
        marker = self.revision(run)
        cached = cache.load() if cache is not None else None
        held: FreshnessRun | None
        if cached is not None and marker is not None and cached.revision == marker:
            held, unknown = cached.state, False
        else:
            from_gateway, marker = self.held(run)
            if cached is None:
                held, unknown = from_gateway, False
            else:
                # The cache may know checks the gateway lost (restarted without persistence).
                held, unknown = state.join([cached.state, from_gateway]), True
        merged = state.merge(held, run, force=force, now=self.now())
        if not merged.changed and not unknown and marker is not None:
            if cache is not None and (cached is None or cached.revision != marker):
                cache.save(marker, merged.state)
            return Delivered(url, merged.state, merged, pushed=False), None
        revision = new_revision()
        held_now = merged.state

        def body() -> Iterator[bytes]:
            # sent as it is rendered, ~1 MB at a time: never the whole text at once
            buffer = bytearray()
            for piece in iter_text(held_now):
                buffer += piece.encode()
                if len(buffer) >= _SEND_CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
            yield bytes(buffer) + render_revision(revision).encode()

        self.client.request("PUT", path, StreamedBody.of(body), {"Content-Type": CONTENT_TYPE})
        if cache is not None:
            cache.save(revision, merged.state)
        return Delivered(url, merged.state, merged), revision

    def delete(self, run: FreshnessRun) -> None:
        """Remove the group and this host's cached state of it (the explicit way to drop series)."""
        labels = self.labels(run)
        self.client.request("DELETE", group_path(self.config.job, labels))
        cache = StateCache.for_group(self.state_dir, self.client.display_url, self.config.job, labels)
        if cache is not None:
            cache.clear()


def render_revision(revision: float) -> str:
    """The revision series (grouping labels come from the push URL)."""
    return (
        f"# HELP {STATE_REVISION} {HELP[STATE_REVISION]}\n# TYPE {STATE_REVISION} gauge\n"
        f"{STATE_REVISION} {format_value(revision)}\n"
    )
