"""Read a big JSON object member by member, and its big maps/lists entry by entry.

A dbt manifest with 100,000 sources is ~230 MB of JSON; ``json.load`` turns it into ~1.3 GB of
Python objects, of which the bridge needs a few fields per source. :func:`members` walks the
top-level object with the standard library's C decoder (``JSONDecoder.raw_decode`` on a sliding
window of the file), yields the members it is asked for, and yields the entries of the big
ones one at a time, so the caller can turn each entry into a small record and drop it. Members it
is not asked for are consumed entry by entry and dropped. Memory stays at a window (4 MiB) plus
what the caller keeps.

It only reads what ``json.loads`` reads (same decoder, same numbers and strings); anything it is
not sure about (a BOM or UTF-16, invalid UTF-8, a syntax error, a top level that is not an
object) raises :class:`Fallback`, and the caller reads the file the ordinary way, which gives
the precise error message.

Why this reader, and one reader for every size (docs/performance.md, "The JSON reader"): on
synthetic dbt artifacts it is faster than both alternatives at every size measured. Reading
manifest.json + sources.json, CPU seconds: 10,000 sources, this reader 0.35-0.42, ijson 3.6 with
its C backend (yajl2_c) 0.40-0.51, ``json.load`` 0.55-0.65; 100,000 sources, 3.8, 6.1 and 9.4
(and 1.26 GB for ``json.load``); 1,000 sources, a tie with reading whole. ``json.load`` loses even
when memory is no concern because it keeps every object of the file alive; ijson's C parser is
no faster than the standard library's C decoder driven from here, would add a compiled
dependency, and gives numbers another way (``Decimal`` unless ``use_float``), so the records
would no longer be exactly what ``json.loads`` gives. Choosing the reader by file size would
gain nothing.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any, Final

CHUNK: Final = 1 << 22
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+-]*")
_NUMBER_CHARS: Final = frozenset("0123456789.eE+-")
_BLANKS: Final = frozenset(" \t\n\r")
_DECODER = json.JSONDecoder()
#: The C string scanner ``json`` itself uses (not in the type stubs).
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class Fallback(Exception):
    """The streaming reader stops; read the file with ``json.loads`` instead."""


#: The ``index`` of the first event of a streamed member: it carries an empty dict or list.
START: Final = object()


class _Window:
    """A sliding window of decoded text over a UTF-8 file."""

    def __init__(self, stream: IO[bytes], chunk: int) -> None:
        self.stream = stream
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.pos = 0
        self.eof = False
        self.first = True

    def fill(self) -> None:
        """Drop what was consumed; append at least a chunk (or as much as is left: doubling)."""
        if self.eof:
            raise Fallback("unexpected end of file")
        size = max(self.chunk, len(self.text) - self.pos)
        raw = self.stream.read(size)
        if self.first:
            self.first = False
            if raw.startswith(codecs.BOM_UTF8) or b"\x00" in raw[:4]:
                raise Fallback("BOM or UTF-16/32 text")
        try:
            new = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise Fallback("not UTF-8") from None
        if not raw:
            self.eof = True
        self.text = self.text[self.pos :] + new
        self.pos = 0

    def peek(self) -> str:
        """The next non-blank character (consumed blanks), or "" at the end of the file."""
        text, pos = self.text, self.pos
        # fast path: the next character, or the one after a single blank (dbt writes ", " and ": ")
        if pos + 1 < len(text):
            char = text[pos]
            if char not in _BLANKS:
                return char
            char = text[pos + 1]
            if char not in _BLANKS:
                self.pos = pos + 1
                return char
        while True:
            self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if self.eof:
                return ""
            self.fill()

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise Fallback(f"expected {char!r}")
        self.pos += 1

    def string(self) -> str:
        if self.peek() != '"':
            raise Fallback("expected a string")
        while True:
            try:
                value, end = _scanstring(self.text, self.pos + 1, True)
            except json.JSONDecodeError:
                if self.eof:
                    raise Fallback("bad string") from None
                self.fill()
                continue
            self.pos = end
            return value

    def value(self) -> Any:
        """One JSON value, refilling the window until the value is complete."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.eof:
                    raise Fallback("bad value") from None
                self.fill()
                continue
            # A number may go on past the window ("12" of "12.5e3"): read on unless what follows
            # it ends inside the window.
            if (
                not self.eof
                and (end >= len(self.text) or self.text[end] in _NUMBER_CHARS)
                and _NUMBER_TAIL.match(self.text, end).end() >= len(self.text)  # type: ignore[union-attr]
            ):
                self.fill()
                continue
            self.pos = end
            return value


def _entries(window: _Window, close: str, keyed: bool) -> Iterator[tuple[str | int, Any]]:
    """The entries of the map/list whose opening bracket was just consumed."""
    if window.peek() == close:
        window.pos += 1
        return
    index = 0
    while True:
        if keyed:
            key: str | int = window.string()
            window.expect(":")
        else:
            key = index
        yield key, window.value()
        index += 1
        sep = window.peek()
        window.pos += 1
        if sep == close:
            return
        if sep != ",":
            raise Fallback(f"expected ',' or {close!r}")


def members(
    path: Path,
    entries: Collection[str] = (),
    values: Collection[str] | None = None,
    chunk: int = CHUNK,
) -> Iterator[tuple[str, object, Any]]:
    """Events ``(member, index, value)`` for the top-level object in ``path``, in file order.

    - a member in ``entries`` whose value is a map or list: ``(member, START, {} or [])``, then
      ``(member, key or position, entry)`` for each entry;
    - a member in ``values`` (or in ``entries`` but not a map/list): ``(member, None, value)``;
    - any other member is read and dropped, entry by entry (``values=None`` keeps them all).

    Raises :class:`Fallback` (possibly after some events) when the file is not plain UTF-8 JSON
    with an object at the top; OSError when it cannot be opened or read.
    """
    with path.open("rb") as stream:
        window = _Window(stream, chunk)
        window.expect("{")
        if window.peek() == "}":
            window.pos += 1
        else:
            while True:
                member = window.string()
                window.expect(":")
                opening = window.peek()
                if member in entries and opening in ("{", "["):
                    window.pos += 1
                    keyed = opening == "{"
                    yield member, START, {} if keyed else []
                    for key, entry in _entries(window, "}" if keyed else "]", keyed):
                        yield member, key, entry
                elif values is None or member in values:
                    yield member, None, window.value()
                elif opening in ("{", "["):
                    window.pos += 1
                    for _entry in _entries(window, "}" if opening == "{" else "]", opening == "{"):
                        pass
                else:
                    window.value()
                sep = window.peek()
                window.pos += 1
                if sep == "}":
                    break
                if sep != ",":
                    raise Fallback("expected ',' or '}'")
        if window.peek() != "":
            raise Fallback("data after the top-level object")


def well_formed(path: Path) -> bool:
    """True when ``path`` is JSON with an object at the top that this reader reads (checked with
    bounded memory). A reader that refuses an entry mid-stream asks this first, so a file that is
    also corrupt further on gets the corrupt-JSON message, as with ``json.loads``."""
    try:
        for _event in members(path, values=()):
            pass
    except (Fallback, OSError, RecursionError):
        return False
    return True
