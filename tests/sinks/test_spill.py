"""Spill files (format, atomic writes, no secrets) and the replay loop (order, outcomes, locking)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.codec import run_from_json, run_to_json
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.deliver import spill_one
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.model import Status, Threshold
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.http import DeliveryError
from dbt_prom_bridge.sinks.pushgateway import Pushgateway
from dbt_prom_bridge.sinks.spill import (
    FORMAT,
    PUSHED,
    SUPERSEDED,
    Destination,
    RunSpilled,
    SpilledRun,
)
from tests.reliability.runs import T0, check, failed, run

DEST = Destination(
    "pushgateway", "http://gw:9091", "dbt_source_freshness", (("project", "shop"), ("target", "dev"))
)


def test_run_records_round_trip_exactly() -> None:
    original = run(
        tables=("a", "b"),
        meta_labels=("owner",),
        warnings=("w1",),
        checks=(
            check("s", "a", meta_values=("team-a",), meta=(("owner", "team-a"), ("x", '{"k":1}'))),
            check("s", "b", Status.RUNTIME_ERROR, loaded=None, checked=None, error="column x does not exist"),
            check(
                "s",
                "c",
                Status.ERROR,
                loaded=None,
                has_data=False,
                warn_after=None,
                error_after=Threshold(2, "day"),
            ),
        ),
    )
    text = json.dumps(run_to_json(original))
    assert run_from_json(json.loads(text)) == original
    assert run_from_json(json.loads(json.dumps(run_to_json(failed())))) == failed()


label_text = st.text(max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.tuples(label_text, label_text), min_size=0, max_size=5, unique=True),
    project=label_text,
    target=label_text,
    loaded=st.one_of(st.none(), st.floats(min_value=-1e10, max_value=1e11, allow_nan=False)),
)
def test_round_trip_of_arbitrary_text_and_numbers(
    names: list[tuple[str, str]], project: str, target: str, loaded: float | None
) -> None:
    checks = tuple(check(s, t, loaded=loaded, project=project) for s, t in names)
    original = run(project=project, target=target, checks=checks)
    assert run_from_json(json.loads(json.dumps(run_to_json(original)))) == original


def test_spill_file_is_atomic_private_and_secret_free(tmp_path: Path) -> None:
    dest = replace(DEST, url="http://bob:hunter2@gw:9091/base?token=t0k3n")
    path = spill.spill_run(
        tmp_path / "spill", run(), dest, "HTTP 500 from http://gw:9091/base", now=lambda: T0 + 5
    )
    assert path.parent == tmp_path / "spill"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "hunter2" not in text and "t0k3n" not in text and "bob" not in text
    doc = json.loads(text)
    assert doc["format"] == FORMAT and doc["created_at"] == T0 + 5
    assert doc["destination"] == {
        "kind": "pushgateway",
        "url": "http://gw:9091/base",
        "job": "dbt_source_freshness",
        "grouping_key": [["project", "shop"], ["target", "dev"]],
    }
    entry = spill.read_entry(path)
    assert entry.run == run() and entry.when == T0 and entry.reason.startswith("HTTP 500")


def test_file_names_sort_by_run_time(tmp_path: Path) -> None:
    late = spill.spill_run(tmp_path, run(at=T0 + 100), DEST, "x")
    early = spill.spill_run(tmp_path, run(at=T0), DEST, "x")
    failed_now = spill.spill_run(tmp_path, failed(), DEST, "x", now=lambda: T0 + 50)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [early.name, failed_now.name, late.name]
    assert [e.path for e in spill.scan(tmp_path).entries] == [early, failed_now, late]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"format": "dbt-prom-spill/v1", "run": ', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a spill file"),
        (b'{"format": "dbt-prom-spill/v9"}', "written by a newer dbt-prom-bridge"),
        (b'{"format": "something-else"}', "not a dbt-prom spill file"),
        (b'{"format": "dbt-prom-spill/v1", "created_at": 1}', "incomplete spill file"),
    ],
)
def test_unreadable_files_are_reported_and_kept(tmp_path: Path, content: bytes, problem: str) -> None:
    good = spill.spill_run(tmp_path, run(), DEST, "x")
    bad = tmp_path / "zz-bad.json"
    bad.write_bytes(content)
    (tmp_path / ".tmp-half-written.json").write_bytes(b"{")
    found = spill.scan(tmp_path)
    assert [e.path for e in found.entries] == [good]
    assert [(u.path, problem in u.problem) for u in found.unreadable] == [(bad, True)]

    report = spill.replay(tmp_path, {"pushgateway": lambda e: PUSHED})
    assert [e.path for e in report.pushed] == [good]
    assert report.remaining == 1 and bad.exists() and not good.exists()


def test_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert spill.scan(tmp_path / "nope").entries == ()
    report = spill.replay(tmp_path / "nope", {})
    assert report.remaining == 0 and report.attempted == 0


def test_replay_goes_oldest_first_and_removes_what_it_delivered(tmp_path: Path) -> None:
    other = replace(DEST, grouping_key=(("project", "shop"), ("target", "prod")))
    paths = {
        "dev-2": spill.spill_run(tmp_path, run(at=T0 + 20), DEST, "x"),
        "prod-1": spill.spill_run(tmp_path, run(at=T0 + 10, target="prod"), other, "x"),
        "dev-1": spill.spill_run(tmp_path, run(at=T0), DEST, "x"),
        "dev-3": spill.spill_run(tmp_path, run(at=T0 + 30), DEST, "x"),
    }
    order: list[str] = []

    def handler(entry: SpilledRun) -> spill.Outcome:
        order.append(f"{entry.run.target}@{entry.when - T0:.0f}")
        return SUPERSEDED if entry.when == T0 + 20 else PUSHED

    report = spill.replay(tmp_path, {"pushgateway": handler})
    assert order == ["dev@0", "prod@10", "dev@20", "dev@30"]
    assert [e.path for e in report.superseded] == [paths["dev-2"]]
    assert len(report.pushed) == 3 and report.remaining == 0
    assert list(tmp_path.glob("*.json")) == []


def test_a_retryable_failure_stops_that_destination_and_keeps_the_rest(tmp_path: Path) -> None:
    elsewhere = replace(DEST, url="http://other:9091")
    first = spill.spill_run(tmp_path, run(at=T0), DEST, "x")
    second = spill.spill_run(tmp_path, run(at=T0 + 10), DEST, "x")
    third = spill.spill_run(tmp_path, run(at=T0 + 20), elsewhere, "x")
    calls: list[Path] = []

    def handler(entry: SpilledRun) -> spill.Outcome:
        calls.append(entry.path)
        if entry.destination.url == DEST.url:
            raise DeliveryError("cannot reach http://gw:9091", retryable=True)
        return PUSHED

    report = spill.replay(tmp_path, {"pushgateway": handler})
    assert calls == [first, third]  # the second was not even tried: its gateway is down
    assert [e.path for e, _ in report.failed] == [first]
    assert [e.path for e in report.untried] == [second]
    assert [e.path for e in report.pushed] == [third]
    assert first.exists() and second.exists() and not third.exists()
    assert report.remaining == 2


def test_a_permanent_failure_keeps_only_that_entry(tmp_path: Path) -> None:
    first = spill.spill_run(tmp_path, run(at=T0), DEST, "x")
    second = spill.spill_run(tmp_path, run(at=T0 + 10), DEST, "x")

    def handler(entry: SpilledRun) -> spill.Outcome:
        if entry.path == first:
            raise DeliveryError("HTTP 400 from http://gw:9091: bad", status=400)
        return PUSHED

    report = spill.replay(tmp_path, {"pushgateway": handler})
    assert [e.path for e, _ in report.failed] == [first] and [e.path for e in report.pushed] == [second]
    assert first.exists() and not second.exists()


def test_an_entry_no_destination_can_take_is_kept_and_the_replay_goes_on(tmp_path: Path) -> None:
    bad = spill.spill_run(tmp_path, run(at=T0), replace(DEST, grouping_key=(("a b", "c"),)), "x")
    good = spill.spill_run(tmp_path, run(at=T0 + 10), DEST, "x")

    def handler(entry: SpilledRun) -> spill.Outcome:
        if entry.path == bad:
            raise UsageError("--grouping-key 'a b' is not a valid Prometheus label name")
        return PUSHED

    report = spill.replay(tmp_path, {"pushgateway": handler})
    assert [e.path for e, _ in report.failed] == [bad] and [e.path for e in report.pushed] == [good]
    assert report.down == {} and bad.exists() and not good.exists()


def test_unknown_kinds_and_filtered_entries_are_kept(tmp_path: Path) -> None:
    rw = spill.spill_run(tmp_path, run(), replace(DEST, kind="remote_write", job=None), "x")
    skipped = spill.spill_run(tmp_path, run(at=T0 + 1), replace(DEST, url="http://b:1"), "x")
    report = spill.replay(
        tmp_path, {"pushgateway": lambda e: PUSHED}, select=lambda e: e.destination.url != "http://b:1"
    )
    assert {e.path for e in report.untried} == {rw, skipped}
    assert rw.exists() and skipped.exists()


def test_replay_lock_excludes_other_processes(tmp_path: Path) -> None:
    spill.spill_run(tmp_path, run(), DEST, "x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from dbt_prom_bridge.sinks.spill import locked\n"
            "with locked(Path(sys.argv[1])):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(30)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(spill.Busy):
            spill.replay(tmp_path, {"pushgateway": lambda e: PUSHED}, wait=False)
        assert len(list(tmp_path.glob("*.json"))) == 1
    finally:
        holder.kill()
        holder.wait(10)
    report = spill.replay(tmp_path, {"pushgateway": lambda e: PUSHED}, wait=False)
    assert len(report.pushed) == 1


def test_spilling_into_an_unwritable_place_says_the_run_is_lost(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    gateway = GatewayConfig(url="http://u:secret@gw:9091")
    err = spill_one(run(), Pushgateway(gateway), blocker / "spill", PushError("HTTP 500 from http://gw:9091"))
    assert not isinstance(err, RunSpilled)
    assert "could not be saved" in str(err) and "it is lost" in str(err)
    assert "secret" not in str(err)


def test_spill_failed_push_records_the_grouping_key(tmp_path: Path) -> None:
    gateway = GatewayConfig(url="http://u:secret@gw:9091/", job="j", grouping_key=(("region", "eu"),))
    err = spill_one(run(), Pushgateway(gateway), tmp_path, PushError("boom", status=503), now=time.time)
    assert isinstance(err, RunSpilled) and err.status == 503 and err.exit_code == 4
    entry = spill.read_entry(err.path)
    assert entry.destination == Destination(
        "pushgateway", "http://gw:9091/", "j", (("project", "shop"), ("target", "dev"), ("region", "eu"))
    )
    assert str(err) == f"boom; the run was saved to {err.path}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_spill_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError):
            spill.spill_run(ro, run(), DEST, "x")
    finally:
        ro.chmod(0o700)


# -- the spill dir is untrusted input ------------------------------------------------------------

DBT_PROM = str(Path(sys.executable).parent / "dbt-prom")


def _hostile_dir(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A spill dir holding one good entry next to a FIFO, a socket, a symlink to another user's
    record and another user's file, all named *.json; ``{name: expected problem}``."""
    import socket

    directory = tmp_path / "spill"
    good = spill.spill_run(directory, run(), DEST, "x")
    os.mkfifo(directory / "fifo.json")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(directory / "sock.json"))
    sock.close()
    elsewhere = tmp_path / "elsewhere"
    theirs = spill.spill_run(elsewhere, run(at=T0 + 1), DEST, "x")
    (directory / "link.json").symlink_to(theirs)
    expected = {
        "fifo.json": "not a regular file",
        "sock.json": "not a regular file",
        "link.json": "symbolic link",
    }
    if os.geteuid() == 0:  # only root can give a file away
        other = spill.spill_run(elsewhere, run(at=T0 + 2), DEST, "x")
        os.replace(other, directory / "other-user.json")
        os.chown(directory / "other-user.json", 65534, 65534)
        expected["other-user.json"] = "another user"
    return directory, good, expected


def test_only_regular_files_of_this_user_are_read(tmp_path: Path) -> None:
    directory, good, expected = _hostile_dir(tmp_path)
    found = spill.scan(directory)
    assert [e.path for e in found.entries] == [good]
    problems = {u.path.name: u.problem for u in found.unreadable}
    assert set(problems) == set(expected)
    for name, fragment in expected.items():
        assert fragment in problems[name], problems[name]
    report = spill.replay(directory, {"pushgateway": lambda e: PUSHED})
    assert [e.path for e in report.pushed] == [good]
    assert all((directory / name).is_symlink() or (directory / name).exists() for name in expected)


def test_a_fifo_never_blocks_push_or_replay_list(tmp_path: Path) -> None:
    """The real command: a FIFO named *.json used to hang every later `push` and `replay --list`."""
    directory, good, _ = _hostile_dir(tmp_path)
    proc = subprocess.run(
        [DBT_PROM, "replay", "--list", "--spill-dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert good.name in proc.stdout
    assert "fifo.json: not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_temporary_files_of_killed_writes_are_cleaned_up(tmp_path: Path) -> None:
    spill.spill_run(tmp_path, run(), DEST, "x")
    old, fresh = tmp_path / ".tmp-killed.json", tmp_path / ".tmp-in-progress.json"
    old_atomic = tmp_path / ".20251229T092000000000Z-pushgateway-x.json.k1ll3d.tmp"
    old.write_bytes(b'{"format": "dbt-prom-spill/v1", "ru')
    old_atomic.write_bytes(b"{")
    fresh.write_bytes(b"{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(old_atomic, (an_hour_ago, an_hour_ago))
    os.mkfifo(tmp_path / ".tmp-fifo")
    os.utime(tmp_path / ".tmp-fifo", (an_hour_ago, an_hour_ago), follow_symlinks=False)
    found = spill.scan(tmp_path)
    assert len(found.entries) == 1 and found.unreadable == ()
    assert not old.exists() and not old_atomic.exists() and fresh.exists()  # a write in progress stays
    assert (tmp_path / ".tmp-fifo").exists()  # only regular files are deleted


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["run"].__setitem__("generated_at", 1e300), "is not a time"),
        (lambda d: d.__setitem__("created_at", float("nan")), "is not a time"),
        (lambda d: d["run"].__setitem__("elapsed", float("inf")), "number"),
        (lambda d: d["run"]["checks"][0].__setitem__("max_loaded_at", -5.0), "is not a time"),
        (lambda d: d["run"]["checks"][0].__setitem__("checked_at", 10**400), "incomplete spill file"),
        (lambda d: d["run"]["checks"][0].__setitem__("duration", float("-inf")), "number"),
        (
            lambda d: d["run"]["checks"][0].__setitem__("warn_after", {"count": 10**30, "period": "day"}),
            "threshold",
        ),
        (
            lambda d: d["run"]["checks"][0].__setitem__("warn_after", {"count": 1, "period": "fortnight"}),
            "threshold",
        ),
        (lambda d: d["run"].__setitem__("checks", [{"unique_id": []}]), "incomplete spill file"),
        (lambda d: d.__setitem__("destination", "gw"), "incomplete spill file"),
    ],
    ids=[
        "generated_at 1e300",
        "NaN created_at",
        "inf elapsed",
        "negative time",
        "huge int",
        "-inf duration",
        "huge threshold",
        "unknown period",
        "bad check",
        "bad destination",
    ],
)
def test_absurd_values_are_reported_not_an_internal_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spill.spill_run(tmp_path, run(), DEST, "x")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))  # NaN/Infinity as Python writes them; 10**400 as digits
    found = spill.scan(tmp_path)
    assert found.entries == ()
    ((bad, why),) = [(u.path, u.problem) for u in found.unreadable]
    assert bad == path and problem in why
    from tests.fixtures_dbt import run_cli

    code, _, err = run_cli(
        ["replay", "--spill-dir", str(tmp_path), "--gateway", "http://127.0.0.1:9"], capsys
    )
    assert code == 4 and "Traceback" not in err and problem in err


def test_discard_deletes_one_entry_by_name_or_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures_dbt import run_cli

    first = spill.spill_run(tmp_path, run(at=T0), DEST, "x")
    second = spill.spill_run(tmp_path, run(at=T0 + 3600), DEST, "x")
    code, _, err = run_cli(["replay", "--spill-dir", str(tmp_path), "--discard", first.name], capsys)
    assert code == 0 and f"discarded {first.name}" in err
    assert not first.exists() and second.exists()
    code, _, err = run_cli(["replay", "--spill-dir", str(tmp_path), "--discard", second.name[:20]], capsys)
    assert code == 0 and not second.exists()
    code, _, err = run_cli(["replay", "--spill-dir", str(tmp_path), "--discard", "nope"], capsys)
    assert code == 2 and "no spilled run" in err
