"""Prometheus remote write 1.0 sink: Mimir, Thanos Receive, VictoriaMetrics, Grafana Cloud, Prometheus.

Sends the series of the metric contract (:func:`dbt_prom_bridge.exposition.iter_families`) as
snappy-compressed protobuf ``WriteRequest`` messages (``POST``, ``Content-Encoding: snappy``,
``Content-Type: application/x-protobuf``, ``X-Prometheus-Remote-Write-Version: 0.1.0``), at most
``batch`` series per request, through :class:`~dbt_prom_bridge.sinks.http.HttpClient` (auth, TLS,
timeouts, retries: the same as the Pushgateway path).

Labels: the metric's own labels, plus ``job`` and the ``--grouping-key`` labels, i.e. what
Prometheus stores when it scrapes a Pushgateway with ``honor_labels: true``. No ``instance``: the
gateway gives pushed series ``instance=""``, which Prometheus stores as no label; add one with
``--grouping-key instance=...`` if you want it. As the protocol requires, labels are sorted by
name (byte order, so ``__name__`` comes first unless a ``--meta-label`` starts with an upper-case
letter) and labels with an empty value are left out (an empty value means "no label").

Sample timestamps: each source's samples carry the time of its check (dbt's ``snapshotted_at``);
run-level samples carry the run's time (``generated_at``; a run where dbt could not run, the time
it failed). A receiver keeps, per series, the newest sample: that is the newest check of each
source, the rule every destination follows (:mod:`dbt_prom_bridge.state`). Receivers refuse
samples older than the newest of their series and older than their head block (Prometheus: about
an hour behind its newest sample; Mimir: ``out_of_order_time_window``): such a refusal is reported
as samples *lost* with the receiver's reason (exit 4, the run is kept in the spill dir), never as
superseded.

What is sent. The endpoint cannot be read back, so this host keeps a state cache of what it sent
(:mod:`dbt_prom_bridge.sinks.statecache`) and sends only what the run changes: the sources whose
check is newer than the cached one (a source checked by another host's run is decided by the
receiver's sample order), ``not_run`` for configured sources never sent, and the run-level series
when the run is the newest. Nothing is sent when nothing is newer.

Protobuf: the ``prompb`` messages this needs (``WriteRequest``, ``TimeSeries``, ``Label``,
``Sample``, ``MetricMetadata``, field numbers of prometheus/prompb ``types.proto`` and
``remote.proto``) are declared at run time as a ``FileDescriptorProto`` in a private descriptor
pool. Generated ``_pb2`` modules are tied to the protobuf release that generated them (protobuf
5.26+ refuses gencode newer than the runtime); descriptors built at run time work with protobuf 4
to 7 and need no code generator in the build. Snappy (raw block format, as the protocol says) is
``cramjam.snappy.compress_raw``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from dbt_prom_bridge import state
from dbt_prom_bridge.config import RemoteWriteConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import HELP, PER_SOURCE_METRICS, RUN_METRICS, Family, iter_families
from dbt_prom_bridge.model import FreshnessRun, SourceCheck, validate_grouping_key
from dbt_prom_bridge.model_metrics import families_of_models
from dbt_prom_bridge.nodes import PER_MODEL_METRICS, ModelCheck
from dbt_prom_bridge.redact import redact_url
from dbt_prom_bridge.sinks.base import Delivered
from dbt_prom_bridge.sinks.http import DeliveryError, HttpClient
from dbt_prom_bridge.sinks.spill import Destination, group_lock
from dbt_prom_bridge.sinks.statecache import StateCache

KIND = "remote_write"

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
#: Sources whose series are encoded together (bounds the label-set cache at 100,000 sources).
CHUNK_SOURCES = 1000
#: What receivers answer when samples are older than what they hold (Prometheus, Thanos, Mimir,
#: Cortex): sending them again cannot help.
_TOO_OLD = re.compile(
    r"out[ -]of[ -]order|out of bounds|too old|too-old|duplicate sample|sample-out-of-order", re.IGNORECASE
)
#: prompb MetricMetadata.MetricType.GAUGE
_GAUGE = 2


@dataclass(frozen=True)
class Messages:
    """The prompb message classes (built once per process)."""

    WriteRequest: Any
    TimeSeries: Any
    Label: Any
    Sample: Any
    MetricMetadata: Any


def _file_descriptor() -> Any:
    """prompb's ``types.proto``/``remote.proto``, the part remote write 1.0 needs, same numbers."""
    from google.protobuf import descriptor_pb2

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="dbt_prom_bridge/prompb.proto", package="dbt_prom_bridge.prometheus", syntax="proto3"
    )
    enum = proto.enum_type.add(name="MetricType")
    for number, name in enumerate(
        ("UNKNOWN", "COUNTER", "GAUGE", "HISTOGRAM", "GAUGEHISTOGRAM", "SUMMARY", "INFO", "STATESET")
    ):
        enum.value.add(name=name, number=number)
    layout: dict[str, list[tuple[str, int, int, str | None, bool]]] = {
        "Label": [("name", 1, field.TYPE_STRING, None, False), ("value", 2, field.TYPE_STRING, None, False)],
        "Sample": [
            ("value", 1, field.TYPE_DOUBLE, None, False),
            ("timestamp", 2, field.TYPE_INT64, None, False),
        ],
        "TimeSeries": [
            ("labels", 1, field.TYPE_MESSAGE, "Label", True),
            ("samples", 2, field.TYPE_MESSAGE, "Sample", True),
        ],
        "MetricMetadata": [
            ("type", 1, field.TYPE_ENUM, "MetricType", False),
            ("metric_family_name", 2, field.TYPE_STRING, None, False),
            ("help", 4, field.TYPE_STRING, None, False),
            ("unit", 5, field.TYPE_STRING, None, False),
        ],
        "WriteRequest": [
            ("timeseries", 1, field.TYPE_MESSAGE, "TimeSeries", True),
            ("metadata", 3, field.TYPE_MESSAGE, "MetricMetadata", True),
        ],
    }
    for message, fields in layout.items():
        desc = proto.message_type.add(name=message)
        for name, number, kind, ref, repeated in fields:
            f = desc.field.add(
                name=name,
                number=number,
                type=kind,
                label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL,
            )
            if ref is not None:
                f.type_name = f".{proto.package}.{ref}"
        if message == "WriteRequest":
            desc.reserved_range.add(start=2, end=3)
    return proto


@cache
def messages() -> Messages:
    """The message classes, from a private descriptor pool (protobuf 4-7)."""
    try:
        from google.protobuf import descriptor_pool, message_factory
    except ImportError:
        raise UsageError(
            "remote write needs protobuf and cramjam: pip install 'dbt-prom-bridge[remote-write]'"
        ) from None
    pool = descriptor_pool.DescriptorPool()
    proto = _file_descriptor()
    pool.Add(proto)

    def cls(name: str) -> Any:
        desc = pool.FindMessageTypeByName(f"{proto.package}.{name}")
        get = getattr(message_factory, "GetMessageClass", None)
        if get is not None:
            return get(desc)
        factory: Any = message_factory.MessageFactory(pool)  # protobuf < 4.22
        return factory.GetPrototype(desc)

    return Messages(*(cls(n) for n in ("WriteRequest", "TimeSeries", "Label", "Sample", "MetricMetadata")))


def compress(data: bytes) -> bytes:
    """Snappy block format (not the framed stream format), as remote write requires."""
    try:
        import cramjam
    except ImportError:
        raise UsageError(
            "remote write needs protobuf and cramjam: pip install 'dbt-prom-bridge[remote-write]'"
        ) from None
    return bytes(cramjam.snappy.compress_raw(data))


def extra_labels(run: FreshnessRun, config: RemoteWriteConfig) -> tuple[tuple[str, str], ...]:
    """``job`` and the ``--grouping-key`` labels every series of ``run`` carries."""
    return (("job", config.job), *validate_grouping_key(config.labels, run.meta_labels))


@dataclass(frozen=True)
class Batch:
    """One encoded ``WriteRequest`` (not compressed yet)."""

    body: bytes
    series: int


class _Encoder:
    """Turns family rows into ``TimeSeries``: one label-set template per source and label-name
    tuple, copied (in C) for each of its series, then ``__name__`` and ``status`` filled in."""

    def __init__(self, msgs: Messages, extra: Sequence[tuple[str, str]]) -> None:
        self.msgs = msgs
        self.extra = tuple(extra)
        #: label names -> label values (without status) -> (template, __name__ index, status index)
        self.tables: dict[tuple[str, ...], dict[tuple[str, ...], tuple[Any, int, int]]] = {}

    def table(self, names: tuple[str, ...]) -> dict[tuple[str, ...], tuple[Any, int, int]]:
        return self.tables.setdefault(names, {})

    def template(self, names: tuple[str, ...], values: tuple[str, ...], split: int) -> tuple[Any, int, int]:
        pairs = [(n, v) for n, v in zip(names[:split], values, strict=True) if v]
        pairs += self.extra
        pairs.append(("__name__", ""))
        if split < len(names):
            pairs.append((names[split], ""))
        pairs.sort()
        label = self.msgs.Label
        template = self.msgs.TimeSeries(labels=[label(name=n, value=v) for n, v in pairs])
        order = [n for n, _v in pairs]
        status_at = order.index(names[split]) if split < len(names) else -1
        found = (template, order.index("__name__"), status_at)
        self.tables[names][values] = found
        return found


def _chunks(checks: Sequence[SourceCheck], size: int) -> Iterator[Sequence[SourceCheck]]:
    for start in range(0, len(checks), size):
        yield checks[start : start + size]


def batches(
    run: FreshnessRun,
    config: RemoteWriteConfig,
    run_time_ms: int,
    metadata: bool = True,
    run_level: bool = True,
) -> Iterator[Batch]:
    """The ``WriteRequest`` bodies that send ``run``'s checks and (``run_level``) its run-level
    series, at most ``config.batch`` series each.

    Pure: no I/O. Each source's samples carry its check time (``run_time_ms`` when it has none);
    run-level samples carry ``run_time_ms``. The first request also carries the families'
    ``HELP``/type metadata.
    """
    if config.batch < 1:
        raise UsageError("--remote-write-batch must be at least 1")
    msgs = messages()
    extra = extra_labels(run, config)
    levels = RUN_METRICS if run_level else ()
    request = msgs.WriteRequest()
    if metadata:
        model_names = PER_MODEL_METRICS if run.models else ()
        for name in (*PER_SOURCE_METRICS, *model_names, *levels):
            request.metadata.add(type=_GAUGE, metric_family_name=name, help=HELP[name])
    count = 0
    for scope, stamp in _scopes(run, levels, run_time_ms):
        encoder = _Encoder(msgs, extra)
        for fam in scope:
            name, names = fam.name, fam.label_names
            split = len(names) - 1 if names and names[-1] == "status" else len(names)
            state_set = split < len(names)
            table = encoder.table(names)
            for values, value in fam.rows:
                base = values[:split] if state_set else values
                found = table.get(base) or encoder.template(names, base, split)
                series = request.timeseries.add()
                series.CopyFrom(found[0])
                labels = series.labels
                labels[found[1]].value = name
                if state_set:
                    labels[found[2]].value = values[split]
                series.samples.add(value=value, timestamp=stamp)
                count += 1
                if count >= config.batch:
                    yield Batch(request.SerializeToString(), count)
                    request = msgs.WriteRequest()
                    count = 0
    if count or len(request.metadata):
        yield Batch(request.SerializeToString(), count)


def _stamp(check: SourceCheck, run_time_ms: int) -> int:
    return run_time_ms if check.checked_at is None else round(check.checked_at * 1000)


def _scopes(
    run: FreshnessRun, run_level: tuple[str, ...], run_time_ms: int
) -> Iterator[tuple[Iterator[Family], int]]:
    """The families to send with their sample time: the checks a few at a time (those with the
    same check time together; each scope gets a fresh template cache), then the run-level ones."""
    for chunk in _chunks(run.checks, CHUNK_SOURCES):
        by_time: dict[int, list[SourceCheck]] = {}
        for check in chunk:
            by_time.setdefault(_stamp(check, run_time_ms), []).append(check)
        for stamp, checks in by_time.items():
            one = replace(run, checks=tuple(checks))
            yield iter_families(one, PER_SOURCE_METRICS, chunk=len(checks)), stamp
    by_model_time: dict[int, list[ModelCheck]] = {}
    for model in run.models:
        seen = [t for t in (model.built_at, model.freshness_checked_at) if t is not None]
        by_model_time.setdefault(round(max(seen) * 1000) if seen else run_time_ms, []).append(model)
    for stamp, models in by_model_time.items():
        yield iter(families_of_models(run.project, run.target, run.meta_labels, models)), stamp
    if run_level:
        yield iter_families(run, run_level), run_time_ms


@dataclass(frozen=True)
class RemoteWriteOutcome:
    """What one push sent."""

    series: int
    requests: int


class RemoteWrite:
    """A remote-write endpoint reached through :class:`HttpClient` (auth, TLS, retries)."""

    kind = KIND

    def __init__(
        self,
        config: RemoteWriteConfig,
        client: HttpClient | None = None,
        state_dir: Path | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.client = client or HttpClient(
            config.url, config.auth, config.timeout, config.retries, config.backoff
        )
        self.state_dir = state_dir
        self.now = now

    @property
    def display_url(self) -> str:
        return self.client.display_url

    def destination(self, run: FreshnessRun) -> Destination:
        return Destination(
            kind=KIND,
            url=redact_url(self.config.url),
            job=self.config.job,
            grouping_key=(("project", run.project), ("target", run.target), *self.config.labels),
        )

    def for_destination(self, destination: Destination) -> RemoteWrite:
        extra = tuple((k, v) for k, v in destination.grouping_key if k not in ("project", "target"))
        config = replace(self.config, job=destination.job or self.config.job, labels=extra)
        return RemoteWrite(config, self.client, self.state_dir, self.now)

    def same_endpoint(self, destination: Destination) -> bool:
        return destination.kind == KIND and destination.url.rstrip("/") == (
            redact_url(self.config.url.strip()).rstrip("/")
        )

    def push(self, run: FreshnessRun, force: bool = False) -> Delivered:
        """Send what ``run`` changes (see the module docstring). Raises :class:`PushError` (a
        :class:`~dbt_prom_bridge.sinks.http.DeliveryError`) when a request fails for good;
        requests sent before it stay written."""
        key = (("project", run.project), ("target", run.target), *extra_labels(run, self.config))
        store = StateCache.for_group(self.state_dir, self.display_url, "", key)
        url = self.display_url
        with group_lock(self.state_dir, f"remote_write {url} {key}"):
            cached = store.load() if store is not None else None
            merged = state.merge(cached.state if cached else None, run, force=force, now=self.now())
            if not merged.changed:
                return Delivered(url, merged.state, merged, pushed=False)
            updated, models = set(merged.updated), set(merged.models_updated)
            delta = replace(
                merged.state,
                checks=tuple(c for c in merged.state.checks if c.key in updated),
                models=tuple(m for m in merged.state.models if m.key in models),
            )
            when = run.generated_at if run.success and run.generated_at is not None else self.now()
            self.send(delta, round(when * 1000), run_level=merged.run_level_changed)
            if store is not None:
                store.save(0.0, merged.state)
        return Delivered(url, merged.state, merged)

    def send(self, run: FreshnessRun, run_time_ms: int, run_level: bool = True) -> RemoteWriteOutcome:
        """Send ``run``'s series as they are (no state): see :func:`batches`."""
        series = requests = 0
        for batch in batches(run, self.config, run_time_ms, run_level=run_level):
            body = compress(batch.body)
            try:
                self.client.request("POST", "", body, HEADERS)
            except DeliveryError as exc:
                done = f"; {series} series of this run were already written" if requests else ""
                lost = (
                    "; the receiver holds newer samples or refuses samples this old: these are lost"
                    if too_old(exc)
                    else ""
                )
                raise DeliveryError(
                    f"{exc} (request {requests + 1}{done}){lost}",
                    status=exc.status,
                    retryable=exc.retryable,
                ) from None
            series += batch.series
            requests += 1
        return RemoteWriteOutcome(series, requests)


def too_old(exc: PushError) -> bool:
    """True when the receiver refused samples for being older than what it holds (400/409)."""
    return exc.status in (400, 409) and bool(_TOO_OLD.search(str(exc)))
