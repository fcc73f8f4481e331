"""The fast reader of ``manifest.json`` and ``sources.json``: the whole file decoded at once by
msgspec's C decoder, keeping only what the bridge reads.

A 10,000-source manifest is 24 MB of JSON, nearly all of it what the bridge never looks at
(columns, descriptions, macros, the node graph). ``json.load`` builds every one of those objects;
here msgspec skips them while decoding, and builds only the ``metadata`` object and, per source,
the keys :func:`dbt_prom_bridge.artifacts._source_def` reads (:data:`SOURCE_NODE_KEYS`). The
result is the same reduced document ``json.load`` would give with the other keys deleted, so the
same ``parse_manifest`` / ``parse_sources`` turn it into records, with the same checks and
messages.

Used for files up to :data:`MAX_BYTES` (the file is read whole); bigger ones go through the
streaming reader (:mod:`dbt_prom_bridge.jsonstream`), whose memory does not grow with the file.
Anything msgspec does not decode exactly like Python's ``json`` (invalid UTF-8, ``NaN``, a source
that is not an object...) returns None, and the caller falls back to the other readers, whose
messages say what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

#: Files up to this size are decoded whole (the bytes plus the reduced document stay well under
#: the 100,000-source memory budget); bigger ones are streamed.
MAX_BYTES = 64 * 1024 * 1024

#: The keys of a manifest source node the bridge reads (nothing else is decoded).
SOURCE_NODE_KEYS: tuple[str, ...] = (
    "name",
    "package_name",
    "source_name",
    "database",
    "schema",
    "identifier",
    "loaded_at_field",
    "loaded_at_query",
    "freshness",
    "config",
    "meta",
    "source_meta",
)

_UNSET = msgspec.UNSET

# A Struct per reduced shape: unknown keys are skipped by the decoder, absent ones stay UNSET
# (and are left out of the document, as in json.load's).
_SourceNode = msgspec.defstruct(
    "_SourceNode", [(k, Any, _UNSET) for k in SOURCE_NODE_KEYS], forbid_unknown_fields=False
)
_Manifest = msgspec.defstruct(
    "_Manifest",
    [("metadata", Any, _UNSET), ("sources", dict[str, _SourceNode] | msgspec.UnsetType, _UNSET)],  # type: ignore[valid-type]
)
_Sources = msgspec.defstruct(
    "_Sources", [("metadata", Any, _UNSET), ("results", Any, _UNSET), ("elapsed_time", Any, _UNSET)]
)
_MANIFEST = msgspec.json.Decoder(_Manifest)
_SOURCES = msgspec.json.Decoder(_Sources)


def _fields(struct: Any) -> dict[str, Any]:
    return {k: v for k in struct.__struct_fields__ if (v := getattr(struct, k)) is not _UNSET}


def _versioned(doc: dict[str, Any]) -> bool:
    """A document of the versioned layouts (dbt >= 0.19); the legacy ones are described from
    keys this reader does not keep, so they are left to the other readers."""
    meta = doc.get("metadata")
    return isinstance(meta, dict) and isinstance(meta.get("dbt_schema_version"), str)


def _read(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def manifest_doc(path: Path) -> dict[str, Any] | None:
    """``manifest.json`` reduced to ``metadata`` and the read keys of each source; None when the
    file is too big, unreadable, or not decoded exactly as ``json`` would decode it."""
    raw = _read(path)
    if raw is None:
        return None
    try:
        decoded = _MANIFEST.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    doc = _fields(decoded)
    if not _versioned(doc):
        return None
    if "sources" in doc:
        doc["sources"] = {uid: _fields(node) for uid, node in doc["sources"].items()}
    return doc


def sources_doc(path: Path) -> dict[str, Any] | None:
    """``sources.json`` reduced to ``metadata``, ``results`` and ``elapsed_time`` (as
    :func:`manifest_doc`)."""
    raw = _read(path)
    if raw is None:
        return None
    try:
        doc = _fields(_SOURCES.decode(raw))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return doc if _versioned(doc) else None
