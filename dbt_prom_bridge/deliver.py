"""Delivering a run: every destination is a :class:`~dbt_prom_bridge.sinks.base.Sink`, and one
path spills what could not be delivered and replays it later.

For each sink of a push: first the runs spilled earlier for the same endpoint are replayed (oldest
first, through the same newest-wins merge, so a replay never replaces newer data), then the run is
pushed. A sink that fails for good gets the run spilled (``--spill-dir``): the error is a
:class:`~dbt_prom_bridge.sinks.spill.RunSpilled` (exit 4) naming the file. The other sinks still
get the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dbt_prom_bridge import state
from dbt_prom_bridge.config import DeliveryOptions, GatewayConfig, RemoteWriteConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.base import Delivered, Sink
from dbt_prom_bridge.sinks.spill import ReplayReport


def gateway_sink(config: GatewayConfig, state_dir: Path | None) -> Sink:
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway

    return Pushgateway(config, state_dir=state_dir)


def remote_write_sink(config: RemoteWriteConfig, state_dir: Path | None) -> Sink:
    from dbt_prom_bridge.sinks.remote_write import RemoteWrite

    return RemoteWrite(config, state_dir=state_dir)


def sinks_for(delivery: DeliveryOptions) -> list[Sink]:
    """The sinks of ``delivery``, in delivery order: textfile, Pushgateway, remote write."""
    out: list[Sink] = []
    if delivery.textfile is not None:
        from dbt_prom_bridge.sinks.textfile import Textfile

        out.append(Textfile(delivery.textfile))
    if delivery.gateway is not None:
        out.append(gateway_sink(delivery.gateway, delivery.spill_dir))
    if delivery.remote_write is not None:
        out.append(remote_write_sink(delivery.remote_write, delivery.spill_dir))
    return out


@dataclass(frozen=True)
class DeliveryReport:
    """What was delivered where."""

    #: What the first destination holds now (or the run on an empty destination).
    run: FreshnessRun
    deliveries: tuple[Delivered, ...] = ()
    #: Spilled runs replayed before the push, per endpoint URL (only where some were pending).
    replayed: Mapping[str, ReplayReport] = field(default_factory=dict)

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(d.url for d in self.deliveries)


def deliver(
    run: FreshnessRun,
    delivery: DeliveryOptions,
    force: bool = False,
    now: Callable[[], float] = time.time,
    sinks: Sequence[Sink] | None = None,
) -> DeliveryReport:
    """Send ``run`` to every configured destination (see the module docstring)."""
    if not run.success and not run.project:
        # dbt could not read the project (wrong --project-dir...): run_success 0 would land in a
        # new project="" group, not the project's own (which goes stale and alerts as such).
        return DeliveryReport(state.merge(None, run).state, (), {})
    chosen = list(sinks) if sinks is not None else sinks_for(delivery)
    deliveries: list[Delivered] = []
    replayed: dict[str, ReplayReport] = {}
    failures: list[PushError] = []
    for sink in chosen:
        report = None
        if delivery.spill_dir is not None and delivery.auto_replay:
            report = replay_pending(sink, delivery.spill_dir)
            if report is not None:
                replayed[sink.destination(run).url] = report
        try:
            down = endpoint_down(report)
            if down is not None:
                raise down
            deliveries.append(sink.push(run, force=force))
        except PushError as exc:
            failures.append(
                exc if delivery.spill_dir is None else spill_one(run, sink, delivery.spill_dir, exc, now)
            )
    if failures:
        error = _combined(failures)
        if deliveries:
            error = _noted(error, f"delivered to {', '.join(d.url for d in deliveries)} all the same")
        raise error
    held = deliveries[0].run if deliveries else state.merge(None, run).state
    return DeliveryReport(held, tuple(deliveries), replayed)


def spill_one(
    run: FreshnessRun, sink: Sink, spill_dir: Path, failure: PushError, now: Callable[[], float] = time.time
) -> PushError:
    """Save ``run`` for replay to ``sink``'s destination: a ``RunSpilled`` naming the file, or a
    plain ``PushError`` saying the run is lost when it cannot be written either."""
    try:
        path = spill.spill_run(spill_dir, run, sink.destination(run), str(failure), now)
    except OSError as exc:
        return PushError(
            f"{failure}; the run could not be saved to {spill_dir} either "
            f"({exc.strerror or type(exc).__name__}), so it is lost: fix --spill-dir",
            status=failure.status,
        )
    return spill.RunSpilled(failure, path, spill_dir)


def _noted(error: PushError, note: str) -> PushError:
    """``error`` with ``note`` after its cause (a spilled run keeps its spill file)."""
    if isinstance(error, spill.RunSpilled):
        cause = PushError(f"{error.cause} ({note})", status=error.status)
        return spill.RunSpilled(cause, error.path, error.directory)
    return PushError(f"{error} ({note})", status=error.status)


def _combined(failures: list[PushError]) -> PushError:
    """One error naming every destination that failed; a spilled run stays a ``RunSpilled``."""
    if len(failures) == 1:
        return failures[0]
    spilled = [f for f in failures if isinstance(f, spill.RunSpilled)]
    carrier = spilled[-1] if spilled else None
    text = "; and ".join(str(carrier.cause) if f is carrier else str(f) for f in failures)
    cause = PushError(text, status=failures[0].status)
    return spill.RunSpilled(cause, carrier.path, carrier.directory) if carrier is not None else cause


def endpoint_down(report: ReplayReport | None) -> PushError | None:
    """The error that stopped a replay because the endpoint is down (retryable), if any."""
    if report is None or not report.down:
        return None
    return PushError(next(iter(report.down.values())))


def replayer(sink: Sink) -> spill.Handler:
    """Delivers one spilled entry through ``sink`` (to the entry's own job and grouping key)."""

    def push(entry: spill.SpilledRun) -> spill.Outcome:
        delivered = sink.for_destination(entry.destination).push(entry.run)
        return spill.PUSHED if delivered.pushed else spill.SUPERSEDED

    return push


def replay(spill_dir: Path, sinks: Iterable[Sink], wait: bool = True) -> ReplayReport:
    """Deliver the runs spilled for the endpoints of ``sinks`` (oldest first, never over newer
    data). Credentials are only ever sent to their own endpoint: entries spilled for another
    endpoint are left untried."""
    chosen = list(sinks)
    handlers = {sink.kind: replayer(sink) for sink in chosen}

    def select(entry: spill.SpilledRun) -> bool:
        return any(sink.same_endpoint(entry.destination) for sink in chosen)

    try:
        return spill.replay(spill_dir, handlers, select=select, wait=wait)
    except OSError as exc:
        raise UsageError(
            f"cannot use the spill dir {spill_dir}: {exc.strerror or exc}; check its permissions"
        ) from None


def replay_pending(sink: Sink, spill_dir: Path) -> ReplayReport | None:
    """Before a push: replay what earlier pushes to the same endpoint spilled, oldest first, so
    the new run lands on top of them (a cron job recovers by itself). None when nothing is
    pending there, or another process is replaying."""
    if not spill.entries_for(spill_dir, lambda e: sink.same_endpoint(e.destination)):
        return None
    try:
        return replay(spill_dir, [sink], wait=False)
    except (spill.Busy, UsageError):
        return None
