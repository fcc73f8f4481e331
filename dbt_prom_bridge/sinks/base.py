"""The one sink interface: every destination (Pushgateway, remote write, textfile) is a
:class:`Sink`, so delivery, spill and replay are written once (:mod:`dbt_prom_bridge.deliver`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks.spill import Destination
from dbt_prom_bridge.state import Merged


@dataclass(frozen=True)
class Delivered:
    """What one destination holds after a run was delivered to it."""

    #: Where (a URL without credentials, or a file path).
    url: str
    #: What the destination holds now for the run's project/target (newest check of every source).
    run: FreshnessRun
    #: What the run changed there.
    merged: Merged
    #: False when nothing of the run was newer than what the destination held: nothing was sent.
    pushed: bool = True

    @property
    def carried_over(self) -> int:
        return self.merged.kept


class Sink(Protocol):
    """A destination of runs."""

    #: The spill files' ``destination.kind`` this sink replays.
    kind: str

    def destination(self, run: FreshnessRun) -> Destination:
        """Where ``run`` goes (no credentials: it is written into spill files)."""
        ...

    def for_destination(self, destination: Destination) -> Sink:
        """This sink, delivering to a spilled entry's destination (its job, grouping key...)."""
        ...

    def push(self, run: FreshnessRun, force: bool = False) -> Delivered:
        """Deliver ``run`` (newest check of each source wins unless ``force``); raises
        :class:`~dbt_prom_bridge.errors.PushError` when it cannot."""
        ...

    def same_endpoint(self, destination: Destination) -> bool:
        """Whether a spilled entry was meant for this sink's endpoint (credentials are only ever
        sent to the endpoint the user named)."""
        ...
