"""This host's copy of what it last wrote to a destination group, so a push need not read the
whole Pushgateway back (see :mod:`dbt_prom_bridge.sinks.pushgateway`).

One file per (gateway URL, job, grouping key) in the state directory (the spill directory):
``state/<hash>.json``, mode 0600, written atomically, holding the revision written with it and the
held state encoded by :mod:`dbt_prom_bridge.codec` (checks as rows). It is only ever a cache: a
missing, unreadable or foreign file means "read the gateway", never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dbt_prom_bridge import __version__, fsutil
from dbt_prom_bridge.codec import check_to_row, run_from_json, run_to_json
from dbt_prom_bridge.model import FreshnessRun

FORMAT = "dbt-prom-state/v1"
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
        try:
            with self.path.open("rb") as handle:
                doc = json.load(handle)
            if doc.get("format") != FORMAT or doc.get("key") != self.key:
                return None
            revision = float(doc["revision"])
            if not math.isfinite(revision):
                return None
            return Cached(revision, run_from_json(doc["state"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None

    def save(self, revision: float, state: FreshnessRun) -> None:
        """Write the cache; a failure only costs the next push a read of the gateway."""
        head = run_to_json(replace(state, checks=()), rows=True)
        marker = f"dbt-prom-checks-{secrets.token_hex(16)}"  # stands for the checks; no value can be it
        head["checks"] = marker
        doc = {
            "format": FORMAT,
            "producer": f"dbt-prom-bridge {__version__}",
            "key": self.key,
            "revision": revision,
            "state": head,
        }
        before, after = _dumps(doc).split(_dumps(marker), 1)

        def pieces() -> Iterator[bytes]:
            # the checks one row at a time: 100,000 of them are never held as one text
            yield (before + "[").encode()
            batch: list[str] = []
            for index, check in enumerate(state.checks):
                batch.append(("," if index else "") + _dumps(check_to_row(check)))
                if len(batch) >= 1000:
                    yield "".join(batch).encode()
                    batch = []
            yield ("".join(batch) + "]" + after).encode()

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
