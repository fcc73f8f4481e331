"""Readers for dbt's ``sources.json`` and ``manifest.json``.

Tolerant of unknown keys, strict about the ones they need, and every refusal is one line that
names the file, what was found, and what to do.

Supported ``sources.json`` layouts: schema ``sources/v1`` (dbt 0.19-0.20), ``sources/v2``
(0.21), ``sources/v3`` (1.0-1.12 and dbt Fusion's capitalised variant) and Fusion's
``freshness/v0``. The pre-0.19 layouts (no ``metadata.dbt_schema_version``) are refused.
``manifest.json``: schemas ``manifest/v1`` to ``manifest/v12``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dbt_prom_bridge import jsonstream
from dbt_prom_bridge.errors import ArtifactError, StaleArtifactError, ThresholdError
from dbt_prom_bridge.model import (
    FreshnessResult,
    Manifest,
    SourceDef,
    SourcesArtifact,
    Status,
    Threshold,
    meta_value,
    parse_status,
    split_unique_id,
)

SOURCES_VERSIONS: Mapping[str, tuple[int, ...]] = {"sources": (1, 2, 3), "freshness": (0,)}
MANIFEST_VERSIONS: tuple[int, ...] = tuple(range(1, 13))
_SCHEMA = re.compile(r"/dbt/([a-z_-]+)/v(\d+)(?:\.json)?/?$")
_FRACTION = re.compile(r"(\.\d{6})\d+")
#: A UTF-16 surrogate on its own: JSON can escape one (``"\\ud800"``), but it is not text and no
#: UTF-8 output (a label, a file, a terminal) can carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """``value`` with lone surrogates replaced by U+FFFD (valid text everywhere it goes)."""
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


def _opt_text(value: object) -> str | None:
    return _text(value) if isinstance(value, str) else None


#: Every timestamp before this is dbt's "no data" sentinel (0001-01-01), never a real load time.
_SENTINEL_BEFORE = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)


def load_json(path: Path, what: str, hint: str) -> Any:
    """Read a JSON file; every way it can be unreadable becomes one clear line."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{what} not found at {path}; {hint}") from None
    except IsADirectoryError:
        raise ArtifactError(f"{what} path {path} is a directory, not a file") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise ArtifactError(f"{what} {path} is empty; {hint}")
    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise ArtifactError(f"{what} {path} is not UTF-8 text; is it really a dbt artifact?") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{what} {path} is not valid JSON (truncated or corrupt at line {exc.lineno}, "
            f"column {exc.colno}); {hint}"
        ) from None
    except RecursionError:
        raise ArtifactError(f"{what} {path} is nested too deeply to be a dbt artifact") from None


def schema_of(doc: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(kind, version)`` from ``metadata.dbt_schema_version``, e.g. ``("sources", 3)``."""
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    raw = meta.get("dbt_schema_version")
    if not isinstance(raw, str):
        return None
    match = _SCHEMA.search(raw.strip())
    if match is None:
        return ("unknown:" + raw[:80], -1)
    return match.group(1), int(match.group(2))


def parse_timestamp(raw: object, what: str) -> dt.datetime | None:
    """dbt/Fusion ISO timestamps (``Z`` or offset, 0-9 fraction digits); naive means UTC."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ArtifactError(f"{what} {raw!r} is not a timestamp string")
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(r"\1", text)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ArtifactError(f"{what} {raw!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def epoch(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _float(raw: object) -> float | None:
    """An optional number (a duration, an age): None when absent or not a finite float (NaN,
    Infinity, or an integer too large for one, all of which JSON can hold)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        value = float(raw)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _thresholds(
    criteria: Mapping[str, Any], where: str
) -> tuple[Threshold | None, Threshold | None, tuple[str, ...]]:
    found: list[Threshold | None] = []
    problems: list[str] = []
    for key in ("warn_after", "error_after"):
        try:
            found.append(_threshold(criteria.get(key)))
        except ThresholdError as exc:
            found.append(None)
            problems.append(f"{key} skipped: {exc}")
    return found[0], found[1], tuple(problems)


#: Parsed thresholds by raw ``(count, period)``: 100,000 sources share a handful of them.
_PARSED_THRESHOLDS: dict[tuple[object, object], Threshold | None] = {}
#: Equal strings and meta tuples read from one big artifact, kept once (see :func:`_shared`).
_SHARED: dict[object, object] = {}
_T = TypeVar("_T", str, tuple[tuple[str, str], ...])


#: The largest threshold count read (a billion days is far beyond any data's life; larger
#: counts do not fit the numbers metrics and rules carry).
MAX_THRESHOLD_COUNT = 10**9


def _threshold(raw: object) -> Threshold | None:
    """:func:`_parse_threshold`, shared: equal thresholds become one object."""
    if isinstance(raw, dict) and len(raw) == 2:
        count, period = raw.get("count"), raw.get("period")
        if type(count) in (int, type(None)) and type(period) in (str, type(None)):
            key = (count, period)
            if key in _PARSED_THRESHOLDS:
                return _PARSED_THRESHOLDS[key]
            value = _parse_threshold(raw)
            if len(_PARSED_THRESHOLDS) < 1024:
                _PARSED_THRESHOLDS[key] = value
            return value
    return _parse_threshold(raw)


def _parse_threshold(raw: object) -> Threshold | None:
    try:
        value = Threshold.parse(raw)
    except OverflowError:  # a count like 1e400 (JSON holds it, a float does not)
        raise ThresholdError("threshold count is too large to be a number") from None
    if value is not None and value.count > MAX_THRESHOLD_COUNT:
        shown = value.count if value.count < 10**30 else f"of {len(str(value.count))} digits"
        raise ThresholdError(f"threshold count {shown} is larger than {MAX_THRESHOLD_COUNT}")
    return value


def _shared(value: _T) -> _T:
    """One object per distinct value (source names, schemas, meta repeat across tables)."""
    found = _SHARED.get(value)
    if found is not None:
        return found  # type: ignore[return-value]
    if len(_SHARED) >= 1 << 16:
        _SHARED.clear()
    _SHARED[value] = value
    return value


def _describe_legacy(doc: Mapping[str, Any]) -> str:
    if isinstance(doc.get("sources"), Mapping):
        return "the dbt <= 0.17 layout (a 'sources' map keyed by unique_id, no metadata)"
    if "logs" in doc or (isinstance(doc.get("results"), list) and "generated_at" in doc):
        return "the dbt 0.18-era layout (sources v0: results embedding nodes, no metadata)"
    keys = ", ".join(sorted(str(k) for k in doc)[:6]) or "no keys"
    return f"no metadata.dbt_schema_version (top-level keys: {keys})"


def parse_sources(doc: Any, path: str | None = None) -> SourcesArtifact:
    """Turn a parsed ``sources.json`` document into a :class:`SourcesArtifact`."""
    name = path or "sources.json"
    kind, version = _sources_schema(doc, name)
    results_raw = doc.get("results")
    if not isinstance(results_raw, list):
        raise ArtifactError(f"{name} ({kind}/v{version}) has no 'results' list; the file is incomplete")
    results: list[FreshnessResult] = []
    skipped = 0
    for index, entry in enumerate(results_raw):
        result = _result_entry(index, entry, name)
        if result is None:
            skipped += 1
        else:
            results.append(result)
    return _sources_artifact(doc, kind, version, results, skipped, path)


def _sources_schema(doc: Any, name: str) -> tuple[str, int]:
    """Check that ``doc`` is a sources.json this reader reads; its ``(kind, version)``."""
    if not isinstance(doc, Mapping):
        raise ArtifactError(f"{name} is not a dbt sources.json (found a JSON {type(doc).__name__})")
    schema = schema_of(doc)
    if schema is None:
        raise ArtifactError(
            f"{name} has {_describe_legacy(doc)}, which is not supported; "
            "re-run `dbt source freshness` with dbt >= 0.19"
        )
    kind, version = schema
    if kind in {"manifest", "run-results", "catalog"}:
        raise ArtifactError(f"{name} is a {kind}.json (schema {kind}/v{version}), not a sources.json")
    if kind not in SOURCES_VERSIONS:
        raise ArtifactError(f"{name} has unknown schema {kind!r}; expected a dbt sources.json")
    if version not in SOURCES_VERSIONS[kind]:
        newest = max(SOURCES_VERSIONS[kind])
        hint = (
            "upgrade dbt-prom-bridge"
            if version > newest
            else "re-run `dbt source freshness` with dbt >= 0.19"
        )
        raise ArtifactError(
            f"{name} has schema {kind}/v{version}, which this version of dbt-prom-bridge does not "
            f"read (it reads sources v1-v3 and freshness v0); {hint}"
        )
    return kind, version


def _result_entry(index: int, entry: object, name: str) -> FreshnessResult | None:
    """One ``results[index]``; None for a non-source entry (Fusion also reports models)."""
    if not isinstance(entry, Mapping):
        raise ArtifactError(f"{name}: results[{index}] is not an object")
    uid = _opt_text(entry.get("unique_id"))
    if not uid:
        raise ArtifactError(f"{name}: results[{index}] has no unique_id")
    resource_type = entry.get("resource_type")
    if resource_type not in (None, "source") or (resource_type is None and uid.startswith("model.")):
        return None
    try:
        split_unique_id(uid)
    except ArtifactError as exc:
        raise ArtifactError(f"{name}: results[{index}]: {exc}; the file looks edited or scrubbed") from None
    return _result(entry, uid, name)


def _sources_artifact(
    doc: Mapping[str, Any],
    kind: str,
    version: int,
    results: list[FreshnessResult],
    skipped: int,
    path: str | None,
) -> SourcesArtifact:
    name = path or "sources.json"
    meta = doc["metadata"]
    results, warnings = _one_per_unique_id(results, name)
    return SourcesArtifact(
        schema_version=f"{kind}/v{version}",
        dbt_version=_opt_text(meta.get("dbt_version")),
        generated_at=epoch(parse_timestamp(meta.get("generated_at"), f"{name}: metadata.generated_at")),
        invocation_id=_opt_text(meta.get("invocation_id")),
        elapsed_time=_float(doc.get("elapsed_time")),
        results=tuple(results),
        path=path,
        skipped_non_sources=skipped,
        warnings=warnings,
    )


def _one_per_unique_id(
    results: list[FreshnessResult], name: str
) -> tuple[list[FreshnessResult], tuple[str, ...]]:
    """One result per ``unique_id`` (dbt writes each once; an edited or concatenated file may
    not): the newest check is kept (the later entry on a tie), and a warning names it."""
    index: dict[str, int] = {}
    kept: list[FreshnessResult] = []
    dropped: dict[str, int] = {}
    for result in results:
        at = index.get(result.unique_id)
        if at is None:
            index[result.unique_id] = len(kept)
            kept.append(result)
            continue
        dropped[result.unique_id] = dropped.get(result.unique_id, 0) + 1
        held = kept[at].snapshotted_at
        if held is None or (result.snapshotted_at is not None and result.snapshotted_at >= held):
            kept[at] = result
    warnings = []
    for uid, count in dropped.items():
        result = kept[index[uid]]
        checked = result.snapshotted_at
        when = "the last one"
        if checked is not None and math.isfinite(checked):
            when = f"checked at {dt.datetime.fromtimestamp(checked, dt.timezone.utc):%Y-%m-%d %H:%M:%SZ}"
        warnings.append(
            f"{name}: {uid} appears {count + 1} times; kept the newest ({result.status.value}, {when}), "
            "ignored the other(s)"
        )
    return kept, tuple(warnings)


def missing_from_manifest(artifact: SourcesArtifact, manifest: Manifest) -> str | None:
    """A warning naming the artifact's sources the manifest does not declare (another version of
    the project): their database, schema, identifier and meta labels are unknown (empty)."""
    missing = [r.unique_id for r in artifact.results if r.unique_id not in manifest.sources]
    if not missing or len(missing) == len(artifact.results):
        return None  # all missing: another project, which build_run refuses
    shown = ", ".join(".".join(uid.split(".")[2:]) for uid in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"{len(missing)} source(s) of {artifact.path or 'sources.json'} are not in the manifest "
        f"{manifest.path or ''}: {shown}{more}; their database, schema and meta labels are empty: "
        "pass the manifest.json of the same dbt run (or run `dbt parse`)"
    )


def _result(entry: Mapping[str, Any], uid: str, name: str) -> FreshnessResult:
    status = _status(entry.get("status", entry.get("state")), uid, name)
    if status is Status.RUNTIME_ERROR:
        error = entry.get("error")
        return FreshnessResult(
            unique_id=uid,
            status=status,
            execution_time=_float(entry.get("execution_time")),
            error=_text(str(error)) if error is not None else None,
        )
    where = f"{name}: {uid}"
    loaded = parse_timestamp(entry.get("max_loaded_at"), f"{where} max_loaded_at")
    snapshotted = parse_timestamp(entry.get("snapshotted_at"), f"{where} snapshotted_at")
    if loaded is None:
        max_loaded_at, has_data = None, None
    elif loaded < _SENTINEL_BEFORE:
        max_loaded_at, has_data = None, False
    else:
        max_loaded_at, has_data = loaded.timestamp(), True
    criteria = entry.get("criteria")
    if isinstance(criteria, Mapping):
        warn_after, error_after, problems = _thresholds(criteria, where)
        flt = criteria.get("filter")
        has_criteria = True
    else:
        warn_after = error_after = None
        problems = ()
        flt = None
        has_criteria = False
    error = entry.get("error")
    return FreshnessResult(
        unique_id=uid,
        status=status,
        max_loaded_at=max_loaded_at,
        has_data=has_data,
        snapshotted_at=epoch(snapshotted),
        age_seconds=_float(entry.get("max_loaded_at_time_ago_in_s", entry.get("age"))),
        warn_after=warn_after,
        error_after=error_after,
        filter=_opt_text(flt),
        execution_time=_float(entry.get("execution_time")),
        error=_text(str(error)) if error else None,
        has_criteria=has_criteria,
        threshold_problems=problems,
    )


def _status(raw: object, uid: str, name: str) -> Status:
    try:
        return parse_status(raw)
    except ArtifactError as exc:
        raise ArtifactError(f"{name}: {uid}: {exc}") from None


def read_sources(path: Path) -> SourcesArtifact:
    """Read a ``sources.json``: streamed result by result (see :mod:`dbt_prom_bridge.jsonstream`),
    or whole when the file is unusual (then every refusal has its precise message).

    The runtime errors an in-process run recorded next to it (:data:`RUNTIME_ERRORS_FILE`) are
    added back when that file belongs to the same dbt invocation.
    """
    return with_runtime_errors(_read_sources(path), path.parent / RUNTIME_ERRORS_FILE)


def _read_sources(path: Path) -> SourcesArtifact:
    try:
        return _stream_sources(path)
    except (jsonstream.Fallback, OSError, RecursionError):
        pass
    except ArtifactError:
        if jsonstream.well_formed(path):
            raise
    doc = load_json(
        path,
        "sources.json",
        "run `dbt source freshness` first, or pass --sources-json / --artifacts-dir",
    )
    return parse_sources(doc, str(path))


#: Written by an in-process run next to the sources.json it wrote: the runtime errors dbt keeps
#: out of sources.json (dbt 1.8 to 1.12), with dbt's message, for ``status`` and ``--no-run``.
RUNTIME_ERRORS_FILE = "dbt-prom-runtime-errors.json"
RUNTIME_ERRORS_FORMAT = "dbt-prom-runtime-errors/v1"
#: Larger than any real record of runtime errors: a bigger file is not read.
_MAX_RUNTIME_ERRORS_BYTES = 64 << 20


def write_runtime_errors(directory: Path, artifact: SourcesArtifact) -> Path | None:
    """Record ``artifact``'s runtime errors next to its sources.json, atomically (temporary file,
    rename), tagged with its invocation id. Best effort: None when it cannot be written."""
    from dbt_prom_bridge import fsutil

    if not artifact.invocation_id:
        return None
    doc = {
        "format": RUNTIME_ERRORS_FORMAT,
        "invocation_id": artifact.invocation_id,
        "results": [
            {"unique_id": r.unique_id, "error": r.error, "execution_time": r.execution_time}
            for r in artifact.results
            if r.status is Status.RUNTIME_ERROR
        ],
    }
    final = directory / RUNTIME_ERRORS_FILE
    try:
        fsutil.write_atomic(final, json.dumps(doc, indent=1))
    except OSError:
        return None
    return final


def with_runtime_errors(artifact: SourcesArtifact, side_file: Path) -> SourcesArtifact:
    """``artifact`` plus the runtime errors ``side_file`` records for the same invocation (those
    sources.json leaves out); unchanged when the file is absent, unreadable or of another run."""
    if not artifact.invocation_id:
        return artifact
    try:
        if side_file.stat().st_size > _MAX_RUNTIME_ERRORS_BYTES:
            return artifact
        doc = json.loads(side_file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return artifact
    if (
        not isinstance(doc, dict)
        or doc.get("format") != RUNTIME_ERRORS_FORMAT
        or doc.get("invocation_id") != artifact.invocation_id
        or not isinstance(doc.get("results"), list)
    ):
        return artifact
    have = {r.unique_id for r in artifact.results}
    added: list[FreshnessResult] = []
    for entry in doc["results"]:
        uid = _opt_text(entry.get("unique_id")) if isinstance(entry, dict) else None
        if uid is None or uid in have:
            continue
        try:
            split_unique_id(uid)
        except ArtifactError:
            continue
        have.add(uid)
        error = entry.get("error")
        added.append(
            FreshnessResult(
                unique_id=uid,
                status=Status.RUNTIME_ERROR,
                execution_time=_float(entry.get("execution_time")),
                error=_opt_text(error),
            )
        )
    if not added:
        return artifact
    from dataclasses import replace

    return replace(artifact, results=(*artifact.results, *added))


def _stream_sources(path: Path) -> SourcesArtifact:
    name = str(path)
    head: dict[str, Any] = {}
    schema: tuple[str, int] | None = None
    results: list[FreshnessResult] = []
    skipped = 0
    for member, index, value in jsonstream.members(path, entries=("results",)):
        if schema is None:
            if member != "metadata" or schema_of({"metadata": value}) is None:
                raise jsonstream.Fallback("metadata is not the first member")
            schema = _sources_schema({"metadata": value}, name)
        if index is None or index is jsonstream.START:
            head[member] = value
        else:
            assert isinstance(index, int)
            result = _result_entry(index, value, name)
            if result is None:
                skipped += 1
            else:
                results.append(result)
    if schema is None or not isinstance(head.get("results"), list):
        raise jsonstream.Fallback("no results list")
    return _sources_artifact(head, schema[0], schema[1], results, skipped, name)


def parse_manifest(doc: Any, path: str | None = None) -> Manifest:
    """Turn a parsed ``manifest.json`` into a :class:`Manifest` (sources only)."""
    name = path or "manifest.json"
    version = _manifest_schema(doc, name)
    sources_raw = doc.get("sources")
    if not isinstance(sources_raw, Mapping):
        raise ArtifactError(f"{name} has no 'sources' map; the file is incomplete")
    sources: dict[str, SourceDef] = {}
    for uid, node in sources_raw.items():
        sources[_text(uid)] = _source_entry(_text(uid), node, name)
    return _manifest(doc["metadata"], version, sources, path)


def _manifest_schema(doc: Any, name: str) -> int:
    """Check that ``doc`` is a manifest this reader reads; its schema version."""
    if not isinstance(doc, Mapping):
        raise ArtifactError(f"{name} is not a dbt manifest.json (found a JSON {type(doc).__name__})")
    schema = schema_of(doc)
    if schema is None:
        raise ArtifactError(f"{name} has no metadata.dbt_schema_version; it is not a dbt manifest.json")
    kind, version = schema
    if kind != "manifest":
        raise ArtifactError(f"{name} has schema {kind}/v{version}; expected a manifest.json")
    if version not in MANIFEST_VERSIONS:
        raise ArtifactError(
            f"{name} has schema manifest/v{version}; this version of dbt-prom-bridge reads "
            f"manifest v1-v{max(MANIFEST_VERSIONS)}: upgrade dbt-prom-bridge"
        )
    return version


def _source_entry(uid: str, node: object, name: str) -> SourceDef:
    if not isinstance(node, Mapping):
        raise ArtifactError(f"{name}: sources[{uid!r}] is not an object")
    return _source_def(uid, node, name)


def _manifest(
    meta: Mapping[str, Any], version: int, sources: dict[str, SourceDef], path: str | None
) -> Manifest:
    name = path or "manifest.json"
    project = _opt_text(meta.get("project_name"))
    return Manifest(
        project_name=project or None,
        schema_version=f"manifest/v{version}",
        dbt_version=_opt_text(meta.get("dbt_version")),
        generated_at=epoch(parse_timestamp(meta.get("generated_at"), f"{name}: metadata.generated_at")),
        invocation_id=_opt_text(meta.get("invocation_id")),
        sources=sources,
        path=path,
    )


def _str(node: Mapping[str, Any], key: str, default: str = "") -> str:
    value = node.get(key)
    return _text(value) if isinstance(value, str) else default


def _source_def(uid: str, node: Mapping[str, Any], name: str) -> SourceDef:
    package, src, table = split_unique_id(uid)
    freshness = node.get("freshness")
    config = node.get("config") if isinstance(node.get("config"), Mapping) else {}
    if freshness is None and isinstance(config, Mapping) and "freshness" in config:
        freshness = config.get("freshness")
    if isinstance(freshness, Mapping):
        warn_after, error_after, problems = _thresholds(freshness, f"{name}: {uid}")
        flt = freshness.get("filter")
    else:
        warn_after = error_after = None
        problems = ()
        flt = None
    meta: dict[str, str] = {}
    for layer in (
        node.get("source_meta"),
        config.get("meta") if isinstance(config, Mapping) else None,
        node.get("meta"),
    ):
        if isinstance(layer, Mapping):
            meta.update({_text(str(k)): _text(meta_value(v)) for k, v in layer.items()})
    table_name = _str(node, "name", table)
    return SourceDef(
        unique_id=uid,
        package=_shared(_str(node, "package_name", package)),
        source_name=_shared(_str(node, "source_name", src)),
        table_name=table_name,
        database=_shared(_str(node, "database")),
        schema=_shared(_str(node, "schema")),
        identifier=_str(node, "identifier", table_name),
        warn_after=warn_after,
        error_after=error_after,
        filter=_opt_text(flt),
        loaded_at_field=_opt_text(node.get("loaded_at_field")),
        loaded_at_query=_opt_text(node.get("loaded_at_query")),
        meta=_shared(tuple(sorted(meta.items()))),
        threshold_problems=problems,
    )


def read_manifest(path: Path) -> Manifest:
    """Read a ``manifest.json``: only its metadata and sources, streamed source by source (a
    100,000-source manifest is ~230 MB of JSON), or whole when the file is unusual."""
    try:
        return _stream_manifest(path)
    except (jsonstream.Fallback, OSError, RecursionError):
        pass
    except ArtifactError:
        if jsonstream.well_formed(path):
            raise
    doc = load_json(path, "manifest.json", "run `dbt parse` (or any dbt command) first, or pass --manifest")
    return parse_manifest(doc, str(path))


def _stream_manifest(path: Path) -> Manifest:
    name = str(path)
    meta: Mapping[str, Any] | None = None
    version = 0
    sources: dict[str, SourceDef] | None = None
    for member, key, value in jsonstream.members(path, entries=("sources",), values=("metadata",)):
        if meta is None:
            if member != "metadata" or schema_of({"metadata": value}) is None:
                raise jsonstream.Fallback("metadata is not the first member")
            version = _manifest_schema({"metadata": value}, name)
            meta = value
        elif member != "sources":
            continue
        elif key is jsonstream.START:
            if not isinstance(value, dict):
                raise jsonstream.Fallback("sources is not a map")
            sources = {}
        elif key is None or sources is None:
            raise jsonstream.Fallback("sources is not a map")
        else:
            assert isinstance(key, str)
            sources[_text(key)] = _source_entry(_text(key), value, name)
    if meta is None or sources is None:
        raise jsonstream.Fallback("no sources map")
    return _manifest(meta, version, sources, name)


RERUN_FRESHNESS = "re-run `dbt source freshness`"


def check_age(
    generated_at: float | None, path: str, max_age: float, now: float, rerun: str = RERUN_FRESHNESS
) -> None:
    """Refuse an artifact older than ``max_age`` seconds (``--no-run`` mode)."""
    if generated_at is None:
        raise ArtifactError(
            f"{path} has no metadata.generated_at, so its age is unknown; "
            "pass --allow-stale-artifact to use it anyway"
        )
    age = now - generated_at
    if age > max_age:
        raise StaleArtifactError(
            f"{path} was generated {human_duration(age)} ago, older than --max-artifact-age "
            f"{human_duration(max_age)}; {rerun}, raise --max-artifact-age, "
            "or pass --allow-stale-artifact"
        )


#: How far ahead of this host's clock an artifact's times may be (clocks of two hosts differ).
MAX_CLOCK_SKEW = 300.0


def check_not_future(artifact: SourcesArtifact, path: str, now: float, skew: float = MAX_CLOCK_SKEW) -> None:
    """Refuse an artifact whose ``generated_at`` or any check time (``snapshotted_at``) lies more
    than ``skew`` seconds ahead of ``now``.

    Pushed, such a run would look newer than every legitimate run after it: they would be refused
    as "older" and replays dropped, until the clock caught up (years, for a mistyped date).
    """
    times = [("metadata.generated_at", artifact.generated_at)]
    times += [(f"the check of {r.unique_id}", r.snapshotted_at) for r in artifact.results]
    check_times_not_future(times, path, now, skew)


def check_times_not_future(
    times: Iterable[tuple[str, float | None]],
    path: str,
    now: float,
    skew: float = MAX_CLOCK_SKEW,
    rerun: str = "run `dbt source freshness` again",
) -> None:
    """:func:`check_not_future` for any artifact's ``(what, when)`` times."""
    for what, when in times:
        if when is not None and (not math.isfinite(when) or when - now > skew):
            ahead = human_duration(when - now) if math.isfinite(when) else "infinitely"
            raise ArtifactError(
                f"{path}: {what} is {ahead} in the future (this host's clock says "
                f"{dt.datetime.fromtimestamp(now, dt.timezone.utc):%Y-%m-%d %H:%M:%SZ}); pushing it "
                f"would make every later run look older; fix the clock of the host that ran dbt "
                f"(or this one) and {rerun}"
            )


def human_duration(seconds: float) -> str:
    """``93784`` -> ``1d2h``; short, for messages and tables (whole seconds)."""
    if math.isnan(seconds):
        return "?"
    sign = "-" if seconds < 0 else ""
    if abs(seconds) >= 86400 * 365 * 100:
        return f"{sign}{abs(seconds) / (86400 * 365.25):.0f}y"
    s = round(abs(seconds))  # whole seconds first: 119.6 s is 2m00s, never 1m60s
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s" if s < 600 else f"{sign}{s // 60}m"
    if s < 86400:
        return f"{sign}{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{sign}{s // 86400}d{(s % 86400) // 3600}h"
