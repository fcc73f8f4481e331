"""fsutil.write_atomic: the one way the bridge writes a file (textfile, spill, rules, dashboard)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbt_prom_bridge import fsutil


def test_writes_text_and_bytes(tmp_path: Path) -> None:
    fsutil.write_atomic(tmp_path / "a.txt", "é\n")
    fsutil.write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "a.txt").read_bytes() == "é\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_replaces_by_rename_so_a_reader_of_the_old_file_never_sees_a_mix(tmp_path: Path) -> None:
    target = tmp_path / "rules.yml"
    target.write_text("old\n")
    held = tmp_path / "reader-view"
    os.link(target, held)  # what a reader that opened the old file keeps seeing
    fsutil.write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert held.read_text() == "old\n", "the old inode was written in place"


def test_mode_explicit_kept_or_from_umask(tmp_path: Path) -> None:
    fsutil.write_atomic(tmp_path / "secret", "x", mode=0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    existing = tmp_path / "kept"
    existing.write_text("x")
    existing.chmod(0o640)
    fsutil.write_atomic(existing, "y")
    assert existing.stat().st_mode & 0o777 == 0o640
    old = os.umask(0o027)
    try:
        fsutil.write_atomic(tmp_path / "fresh", "z")
    finally:
        os.umask(old)
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o640
    assert os.umask(old) == old, "the process umask is left as it was"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    with pytest.raises(OSError):
        fsutil.write_atomic(target, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir-in-the-way"]
    with pytest.raises(FileNotFoundError):
        fsutil.write_atomic(tmp_path / "missing" / "f", "x")


def test_read_text_or_none(tmp_path: Path) -> None:
    assert fsutil.read_text_or_none(tmp_path / "nope") is None
    (tmp_path / "f").write_text("t")
    assert fsutil.read_text_or_none(tmp_path / "f") == "t"
    (tmp_path / "bad").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnicodeDecodeError):
        fsutil.read_text_or_none(tmp_path / "bad")
