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

Sample timestamps: every sample of one push carries the *push time*, not a time from dbt. The
values (``max_loaded_at``, ``checked_timestamp``, ``run_timestamp``) already say when things
happened; the sample time says when the bridge reported them, as a scrape of a gateway would. A
dbt time would break ingestion: receivers refuse samples older than their head block (Prometheus:
about an hour behind its newest sample; Mimir: ``out_of_order_time_window``) and samples older
than the newest one of the same series, and ``--no-run`` artifacts may be an hour old, a replayed
spill much older. A replayed run is stamped with the time its delivery was first attempted (the
spill entry's ``created_at``): when newer samples already reached the store, it refuses the old
ones as out of order, and the entry is dropped as superseded, exactly the "never over newer data"
rule of the gateway replay.

What is sent: a full run, every family. A partial (``--select``) run: its sources and the run-level
series, but not ``dbt_source_freshness_sources`` (counts of the selection only; the store keeps
the last full run's counts). A run where dbt could not run: ``run_success`` 0 and ``build_info``
only, so the last per-source samples stay the newest.

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
from typing import Any

from dbt_prom_bridge.config import RemoteWriteConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import (
    FAILURE_METRICS,
    HELP,
    PER_SOURCE_METRICS,
    RUN_METRICS,
    SOURCES,
    Family,
    iter_families,
)
from dbt_prom_bridge.model import FreshnessRun, SourceCheck, validate_grouping_key
from dbt_prom_bridge.sinks.http import DeliveryError, HttpClient

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
#: Sources whose series are encoded together (bounds the label-set cache at 100,000 sources).
CHUNK_SOURCES = 1000
#: What receivers answer when samples are older than what they hold (Prometheus, Thanos, Mimir,
#: Cortex): the data is superseded, sending it again cannot help.
_SUPERSEDED = re.compile(
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


def families_to_send(run: FreshnessRun) -> tuple[str, ...]:
    """The metric families a push of ``run`` sends (see the module docstring)."""
    if not run.success:
        return FAILURE_METRICS
    if run.partial:
        return tuple(n for n in (*PER_SOURCE_METRICS, *RUN_METRICS) if n != SOURCES)
    return (*PER_SOURCE_METRICS, *RUN_METRICS)


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
    timestamp_ms: int,
    metadata: bool = True,
) -> Iterator[Batch]:
    """The ``WriteRequest`` bodies of one push of ``run``, at most ``config.batch`` series each.

    Pure: no I/O. The first request also carries the families' ``HELP``/type metadata.
    """
    if config.batch < 1:
        raise UsageError("--remote-write-batch must be at least 1")
    msgs = messages()
    extra = extra_labels(run, config)
    wanted = families_to_send(run)
    per_source = tuple(n for n in wanted if n in PER_SOURCE_METRICS)
    run_level = tuple(n for n in wanted if n not in PER_SOURCE_METRICS)
    request = msgs.WriteRequest()
    if metadata:
        for name in wanted:
            request.metadata.add(type=_GAUGE, metric_family_name=name, help=HELP[name])
    count = 0
    for scope in _scopes(run, per_source, run_level):
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
                series.samples.add(value=value, timestamp=timestamp_ms)
                count += 1
                if count >= config.batch:
                    yield Batch(request.SerializeToString(), count)
                    request = msgs.WriteRequest()
                    count = 0
    if count or len(request.metadata):
        yield Batch(request.SerializeToString(), count)


def _scopes(
    run: FreshnessRun, per_source: tuple[str, ...], run_level: tuple[str, ...]
) -> Iterator[Iterator[Family]]:
    """The families to send, a few sources at a time (each scope gets a fresh template cache)."""
    if per_source:
        for chunk in _chunks(run.checks, CHUNK_SOURCES):
            yield iter_families(replace(run, checks=tuple(chunk)), per_source, chunk=len(chunk))
    if run_level:
        yield iter_families(run, run_level)


@dataclass(frozen=True)
class RemoteWriteOutcome:
    """What one push sent."""

    url: str
    series: int
    requests: int
    timestamp_ms: int


class RemoteWrite:
    """A remote-write endpoint reached through :class:`HttpClient` (auth, TLS, retries)."""

    def __init__(self, config: RemoteWriteConfig, client: HttpClient | None = None) -> None:
        self.config = config
        self.client = client or HttpClient(
            config.url, config.auth, config.timeout, config.retries, config.backoff
        )

    @property
    def display_url(self) -> str:
        return self.client.display_url

    def push(
        self, run: FreshnessRun, when: float | None = None, now: Callable[[], float] = time.time
    ) -> RemoteWriteOutcome:
        """Send ``run``, every sample stamped ``when`` (default: now). Raises :class:`PushError`
        (a :class:`~dbt_prom_bridge.sinks.http.DeliveryError`) when a request fails for good;
        requests sent before it stay written."""
        stamp = round((now() if when is None else when) * 1000)
        series = requests = 0
        for batch in batches(run, self.config, stamp):
            body = compress(batch.body)
            try:
                self.client.request("POST", "", body, HEADERS)
            except DeliveryError as exc:
                if not requests:
                    raise
                raise DeliveryError(
                    f"{exc} (request {requests + 1}; {series} series of this run were already written)",
                    status=exc.status,
                    retryable=exc.retryable,
                ) from None
            series += batch.series
            requests += 1
        return RemoteWriteOutcome(self.display_url, series, requests, stamp)


def superseded(exc: PushError) -> bool:
    """True when the receiver refused samples for being older than what it holds (400/409)."""
    return exc.status in (400, 409) and bool(_SUPERSEDED.search(str(exc)))
