"""Writing files atomically: every file the bridge writes (textfile, spill entries, rule files,
dashboards) goes through :func:`write_atomic`, so a reader (node_exporter, Prometheus, replay, git)
sees the old file or the new one, never a part of it, even when the process dies mid-write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _default_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 minus the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: str | bytes | Iterable[bytes], mode: int | None = None) -> None:
    """Write ``data`` (text, bytes, or pieces of bytes written one after the other, so a big file
    is never held whole) to ``path`` through a temporary file in the same directory, fsync and
    rename.

    ``mode``: the file's permissions; by default those of the file it replaces, or what a plain
    ``open()`` would give a new file (0o666 minus the umask). The directory must exist. Raises
    ``OSError`` (the temporary file is removed); callers turn it into their own one-line error.
    """
    directory = path.parent
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = _default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    temp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, str):
                handle.write(data.encode("utf-8"))
            elif isinstance(data, (bytes, bytearray)):
                handle.write(data)
            else:
                for piece in data:
                    handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(mode)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (best effort: not every filesystem can)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_text_or_none(path: Path) -> str | None:
    """``path``'s text (UTF-8), or None when it does not exist. Raises ``OSError`` /
    ``UnicodeDecodeError`` when it exists but cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
