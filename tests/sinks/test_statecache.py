"""The per-destination state cache: what was written is what is read back (sources, models,
hostile text), and anything else (cut short, another group's, an older format, garbage) reads as
"no cache", never as an error or a wrong state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbt_prom_bridge import state
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks.statecache import StateCache
from tests.reliability.runs import T0, run
from tests.state.test_models_state import model, models_only

GROUP = (("project", "shop"), ("target", "dev"))


def held_state() -> FreshnessRun:
    big = state.initial(run(T0, tables=[f"t{i}" for i in range(2500)]))
    hostile = model("m", meta=(("x", '"]},\n\u2028'),), message="line\nbreak")
    return state.merge(big, models_only(T0, hostile)).state


def cache(tmp_path: Path, url: str = "http://gw") -> StateCache:
    found = StateCache.for_group(tmp_path, url, "job", GROUP)
    assert found is not None
    return found


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    held = held_state()
    c = cache(tmp_path)
    c.save(42.0, held)
    got = c.load()
    assert got is not None and got.revision == 42.0 and got.state == held
    lines = c.path.read_bytes().splitlines()
    assert len(lines) == 1 + 2500  # one line per check: read back one at a time
    assert oct(c.path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("damage", ["cut", "garbage", "empty", "old format", "row layout"])
def test_a_damaged_or_foreign_file_is_no_cache(damage: str, tmp_path: Path) -> None:
    c = cache(tmp_path)
    c.save(7.0, held_state())
    raw = c.path.read_bytes()
    if damage == "cut":
        c.path.write_bytes(raw[: len(raw) // 2].rsplit(b"\n", 1)[0] + b"\n")
    elif damage == "garbage":
        c.path.write_bytes(raw[:100] + b"\x00\xff" + raw[100:])
    elif damage == "empty":
        c.path.write_bytes(b"")
    else:
        first, rest = raw.split(b"\n", 1)
        doc = json.loads(first)
        if damage == "old format":
            doc["format"] = "dbt-prom-state/v1"
        else:
            doc["state"]["check_fields"] = ["unique_id", "no_such_field"]
        c.path.write_bytes(json.dumps(doc).encode() + b"\n" + rest)
    assert c.load() is None


def test_another_groups_file_is_no_cache(tmp_path: Path) -> None:
    mine, other = cache(tmp_path), cache(tmp_path, "http://other")
    mine.save(1.0, held_state())
    other.path.parent.mkdir(parents=True, exist_ok=True)
    other.path.write_bytes(mine.path.read_bytes())  # a copied file: its key says whose it is
    assert other.load() is None and mine.load() is not None
