"""The streaming JSON reader: the same values as ``json.loads``, whatever the window size."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_prom_bridge import jsonstream

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(st.text(max_size=8), values, max_size=6)


def rebuild(path: Path, entries: tuple[str, ...], chunk: int, keep_all: bool = True) -> dict[str, Any]:
    """The document as :func:`jsonstream.members` reports it."""
    out: dict[str, Any] = {}
    for member, index, value in jsonstream.members(
        path, entries=entries, values=None if keep_all else (), chunk=chunk
    ):
        if index is None or index is jsonstream.START:
            out[member] = value
        elif isinstance(out[member], list):
            assert index == len(out[member])
            out[member].append(value)
        else:
            out[member][index] = value
    return out


@settings(max_examples=150, deadline=None)
@given(
    doc=documents,
    chunk=st.integers(min_value=1, max_value=64),
    layout=st.sampled_from(
        # json.dumps' default (one blank after , and :), indented, compact, and several blanks
        [
            {},
            {"indent": 1},
            {"indent": "\t"},
            {"separators": (",", ":")},
            {"separators": (" ,\n ", " \r\n: ")},
        ]
    ),
)
def test_members_give_what_json_loads_gives(tmp_path_factory: pytest.TempPathFactory, doc, chunk, layout):
    path = tmp_path_factory.mktemp("js") / "doc.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, **layout), encoding="utf-8")
    streamed = tuple(k for k, v in doc.items() if isinstance(v, (dict, list)))
    assert rebuild(path, streamed, chunk) == json.loads(path.read_bytes())


def test_a_number_cut_by_the_window_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text('{"elapsed_time": 123456.789, "results": [1, 22, 333, 4444.5e3]}')
    for chunk in range(1, 12):
        assert rebuild(path, ("results",), chunk) == {
            "elapsed_time": 123456.789,
            "results": [1, 22, 333, 4444500.0],
        }


def test_multibyte_characters_split_across_windows(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    doc = {"m": {"données": "日本語 🚀", "k": ["é" * 5, '\\"\n']}}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    for chunk in (1, 2, 3, 5):
        assert rebuild(path, ("m",), chunk) == doc


def test_unrequested_members_are_dropped_and_requested_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        json.dumps({"metadata": {"v": 1}, "nodes": {"a": [1, {"b": 2}]}, "sources": {"x": 1}, "z": 3})
    )
    events = list(jsonstream.members(path, entries=("sources",), values=("metadata",), chunk=4))
    assert events == [
        ("metadata", None, {"v": 1}),
        ("sources", jsonstream.START, {}),
        ("sources", "x", 1),
    ]


def test_a_streamed_member_that_is_not_a_container_is_one_value(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"results": null, "sources": "x"}')
    assert list(jsonstream.members(path, entries=("results", "sources"))) == [
        ("results", None, None),
        ("sources", None, "x"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"[1, 2]",
        b'"text"',
        b'{"a": 1',
        b'{"a": [1, 2}',
        b'{"a": 1} trailing',
        b'{"a": 1,}',
        b'{"a" 1}',
        b'{"a": "\xff"}',
        codecs.BOM_UTF8 + b'{"a": 1}',
        '{"a": 1}'.encode("utf-16"),
        b'{"a": [1, 2], "b": tru}',
    ],
)
def test_anything_unusual_falls_back(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    with pytest.raises(jsonstream.Fallback):
        list(jsonstream.members(path, entries=("a", "b"), chunk=3))


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(jsonstream.members(tmp_path / "absent.json"))


def test_an_empty_object_and_empty_containers(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(' { "a" : { } , "b" : [ ] } \n')
    assert rebuild(path, ("a", "b"), 2) == {"a": {}, "b": []}
    path.write_text("{}")
    assert rebuild(path, (), 1) == {}
