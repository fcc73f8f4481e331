"""This host's copy of what it last wrote to a destination group, so a push need not read the
whole Pushgateway back (see :mod:`dbt_prom_bridge.sinks.pushgateway`).

One file per (gateway URL, job, grouping key) in the state directory (the spill directory):
``state/<hash>.json``, mode 0600, written atomically, holding the revision written with it and the
held state encoded by :mod:`dbt_prom_bridge.codec`: a first JSON line with everything but the
checks, then one line per check (a row). It is only ever a cache: a
missing, unreadable or foreign file means "read the gateway", never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dbt_prom_bridge import __version__, fsutil
from dbt_prom_bridge.codec import check_from_row, check_to_row, run_from_json, run_to_json
from dbt_prom_bridge.model import FreshnessRun

FORMAT = "dbt-prom-state/v2"
#: Where in the state (spill) directory the caches live, apart from the spill files.
STATE_SUBDIR = "state"


@dataclass(frozen=True)
class Cached:
    revision: float
    state: FreshnessRun


@dataclass(frozen=True)
class StateCache:
    path: Path
    #: What the file is about (checked on load: a hash collision or a copied file is ignored).
    key: str

    @classmethod
    def for_group(
        cls, directory: Path | None, url: str, job: str, labels: Sequence[tuple[str, str]]
    ) -> StateCache | None:
        if directory is None:
            return None
        key = json.dumps([url.rstrip("/"), job, [list(kv) for kv in labels]], ensure_ascii=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        return cls(directory / STATE_SUBDIR / f"{digest}.json", key)

    def load(self) -> Cached | None:
        """The cached state, decoded line by line (None: absent, unreadable, or another file)."""
        try:
            with self.path.open("rb") as handle:
                doc = json.loads(handle.readline())
                if doc.get("format") != FORMAT or doc.get("key") != self.key:
                    return None
                revision = float(doc["revision"])
                if not math.isfinite(revision):
                    return None
                head = run_from_json(doc["state"])
                checks = tuple(check_from_row(json.loads(line)) for line in handle)
            if len(checks) != doc["checks"]:
                return None  # cut short
            return Cached(revision, replace(head, checks=checks))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def save(self, revision: float, state: FreshnessRun) -> None:
        """Write the cache (a first line with everything but the checks, then one line per check:
        100,000 checks are written and read back one at a time); a failure only costs the next
        push a read of the gateway."""
        doc = {
            "format": FORMAT,
            "producer": f"dbt-prom-bridge {__version__}",
            "key": self.key,
            "revision": revision,
            "checks": len(state.checks),
            "state": run_to_json(replace(state, checks=()), rows=True),
        }

        def pieces() -> Iterator[bytes]:
            yield (_dumps(doc) + "\n").encode()
            batch: list[str] = []
            for check in state.checks:
                batch.append(_dumps(check_to_row(check)) + "\n")
                if len(batch) >= 1000:
                    yield "".join(batch).encode()
                    batch = []
            yield "".join(batch).encode()

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_atomic(self.path, pieces(), mode=0o600)
        except OSError:
            self.clear()

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
