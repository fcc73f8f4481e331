"""Readers of the model side of dbt's artifacts: ``run_results.json``, the models of
``manifest.json`` and the model entries of dbt Fusion's ``freshness.json``.

Tolerant of unknown keys, strict about the ones they need; every refusal is one line naming
the file, what was found and what to do (as :mod:`dbt_prom_bridge.artifacts` does for sources).

- ``run_results.json``: schemas ``run-results/v1`` (dbt 0.19) to ``v6`` (dbt 1.8 and later,
  dbt Fusion). Their result entries share the fields read here (unique_id, status, timing,
  execution_time, message). Models, seeds and snapshots are read; tests, unit tests and
  operations are counted and left out.
- ``manifest.json`` (v1-v12) ``nodes``: models, seeds and snapshots with their relation,
  ``meta`` and thresholds (``config.freshness.build_after``, dbt >= 1.10, and
  ``meta.dbt_prom.warn_after`` / ``error_after``). Streamed node by node.
- ``freshness.json`` (``freshness/v0``): the entries whose ``resource_type`` is a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbt_prom_bridge import jsonstream
from dbt_prom_bridge.artifacts import (
    MANIFEST_VERSIONS,
    epoch,
    load_json,
    parse_timestamp,
    schema_of,
)
from dbt_prom_bridge.errors import ArtifactError, ThresholdError
from dbt_prom_bridge.model import meta_value, parse_status
from dbt_prom_bridge.nodes import (
    MODEL_RESOURCE_TYPES,
    NON_BUILD_COMMANDS,
    BuildResult,
    BuildStatus,
    ModelDef,
    ModelFreshnessArtifact,
    ModelFreshnessResult,
    ModelRun,
    RunResultsArtifact,
    build_models,
    parse_build_status,
    split_node_id,
    threshold_seconds,
)

RUN_RESULTS_VERSIONS: tuple[int, ...] = tuple(range(1, 7))
_SENTINEL_BEFORE = -2208988800.0  # 1900-01-01: dbt's year-1 "no data" sentinel is before it


def _float(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    return float(raw)


def _str(node: Mapping[str, Any], key: str, default: str = "") -> str:
    value = node.get(key)
    return value if isinstance(value, str) else default


def _opt_str(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


# --- run_results.json -------------------------------------------------------------------------


def _run_results_schema(doc: Any, name: str) -> int:
    if not isinstance(doc, Mapping):
        raise ArtifactError(f"{name} is not a dbt run_results.json (found a JSON {type(doc).__name__})")
    schema = schema_of(doc)
    if schema is None:
        raise ArtifactError(
            f"{name} has no metadata.dbt_schema_version; it is not a run_results.json of dbt >= 0.19"
        )
    kind, version = schema
    if kind != "run-results":
        raise ArtifactError(f"{name} has schema {kind}/v{version}; expected a run_results.json")
    if version not in RUN_RESULTS_VERSIONS:
        raise ArtifactError(
            f"{name} has schema run-results/v{version}; this version of dbt-prom-bridge reads "
            f"run-results v1-v{max(RUN_RESULTS_VERSIONS)}: upgrade dbt-prom-bridge"
        )
    return version


def _completed_at(timing: object, where: str) -> float | None:
    """End of the ``execute`` step (else of the last step with an end), Unix seconds."""
    if not isinstance(timing, list):
        return None
    ends: dict[str, float] = {}
    for step in timing:
        if isinstance(step, Mapping):
            end = epoch(parse_timestamp(step.get("completed_at"), f"{where} timing completed_at"))
            if end is not None:
                ends[str(step.get("name"))] = end
    if "execute" in ends:
        return ends["execute"]
    return max(ends.values()) if ends else None


def _build_entry(index: int, entry: object, name: str) -> BuildResult | None:
    """One ``results[index]``; None for an entry that is not a model, seed or snapshot."""
    if not isinstance(entry, Mapping):
        raise ArtifactError(f"{name}: results[{index}] is not an object")
    uid = entry.get("unique_id")
    if not isinstance(uid, str) or not uid:
        raise ArtifactError(f"{name}: results[{index}] has no unique_id")
    if uid.split(".", 1)[0] not in MODEL_RESOURCE_TYPES:
        return None
    try:
        split_node_id(uid)
        status = parse_build_status(entry.get("status"))
    except ArtifactError as exc:
        raise ArtifactError(f"{name}: results[{index}]: {exc}") from None
    message = entry.get("message")
    return BuildResult(
        unique_id=uid,
        status=status,
        completed_at=_completed_at(entry.get("timing"), f"{name}: {uid}"),
        duration=None if status is BuildStatus.SKIPPED else _float(entry.get("execution_time")),
        message=message.strip() if isinstance(message, str) and message.strip() else None,
    )


def parse_run_results(doc: Any, path: str | None = None) -> RunResultsArtifact:
    """Turn a parsed ``run_results.json`` into a :class:`RunResultsArtifact` (models only)."""
    name = path or "run_results.json"
    version = _run_results_schema(doc, name)
    raw = doc.get("results")
    if not isinstance(raw, list):
        raise ArtifactError(f"{name} (run-results/v{version}) has no 'results' list; the file is incomplete")
    args = doc.get("args")
    command = args.get("which") if isinstance(args, Mapping) else None
    command = command if isinstance(command, str) and command else None
    results: list[BuildResult] = []
    skipped = 0
    for index, entry in enumerate(raw):
        result = _build_entry(index, entry, name)
        if result is None or command in NON_BUILD_COMMANDS:
            skipped += 1
        else:
            results.append(result)
    meta = doc["metadata"]
    return RunResultsArtifact(
        schema_version=f"run-results/v{version}",
        dbt_version=_opt_str(meta, "dbt_version"),
        generated_at=epoch(parse_timestamp(meta.get("generated_at"), f"{name}: metadata.generated_at")),
        invocation_id=_opt_str(meta, "invocation_id"),
        elapsed_time=_float(doc.get("elapsed_time")),
        results=tuple(results),
        path=path,
        skipped_non_models=skipped,
        command=command,
    )


def read_run_results(path: Path) -> RunResultsArtifact:
    """Read a ``run_results.json`` (whole: a 10,000-model file is a few MB)."""
    doc = load_json(
        path, "run_results.json", "run `dbt build` (or dbt run/seed/snapshot) first, or pass its path"
    )
    return parse_run_results(doc, str(path))


# --- manifest.json models -----------------------------------------------------------------------


def _model_thresholds(
    node: Mapping[str, Any], meta: Mapping[str, Any]
) -> tuple[float | None, float | None, tuple[str, ...]]:
    problems: list[str] = []

    def parse(raw: object, what: str) -> float | None:
        try:
            return threshold_seconds(raw)
        except ThresholdError as exc:
            problems.append(f"{what} skipped: {exc}")
            return None

    config = node.get("config") if isinstance(node.get("config"), Mapping) else {}
    assert isinstance(config, Mapping)
    freshness = config.get("freshness", node.get("freshness"))
    build_after = None
    if isinstance(freshness, Mapping):
        build_after = parse(freshness.get("build_after"), "freshness.build_after")
    own = meta.get("dbt_prom")
    warn = error = None
    if isinstance(own, Mapping):
        warn = parse(own.get("warn_after"), "meta dbt_prom.warn_after")
        error = parse(own.get("error_after"), "meta dbt_prom.error_after")
    elif own is not None:
        problems.append("meta dbt_prom skipped: it is not a mapping of warn_after/error_after")
    if warn is None:
        warn = build_after
    if warn is not None and error is not None and error < warn:
        problems.append(f"error_after ({error:g} s) is shorter than warn_after ({warn:g} s)")
    return warn, error, tuple(problems)


def _model_def(uid: str, node: Mapping[str, Any], name: str) -> ModelDef:
    resource_type, package, label = split_node_id(uid)
    config = node.get("config") if isinstance(node.get("config"), Mapping) else {}
    assert isinstance(config, Mapping)
    merged: dict[str, Any] = {}
    for layer in (config.get("meta"), node.get("meta")):
        if isinstance(layer, Mapping):
            merged.update(layer)
    warn, error, problems = _model_thresholds(node, merged)
    model_name = _str(node, "name", label.split(".", 1)[0])
    version = node.get("version")
    if version is not None and not label.startswith(model_name + "."):
        label = f"{model_name}.v{version}"
    identifier = _str(node, "alias") or _str(node, "identifier") or model_name
    return ModelDef(
        unique_id=uid,
        model=label,
        package=_str(node, "package_name", package),
        database=_str(node, "database"),
        schema=_str(node, "schema"),
        identifier=identifier,
        resource_type=_str(node, "resource_type", resource_type),
        warn_after=warn,
        error_after=error,
        meta=tuple(sorted((str(k), meta_value(v)) for k, v in merged.items())),
        threshold_problems=problems,
    )


def _node_entry(uid: object, node: object, name: str) -> ModelDef | None:
    if not isinstance(uid, str) or uid.split(".", 1)[0] not in MODEL_RESOURCE_TYPES:
        return None
    if not isinstance(node, Mapping):
        raise ArtifactError(f"{name}: nodes[{uid!r}] is not an object")
    if isinstance(node.get("config"), Mapping) and node["config"].get("enabled") is False:
        return None
    try:
        return _model_def(uid, node, name)
    except ArtifactError as exc:
        raise ArtifactError(f"{name}: {exc}; the file looks edited") from None


@dataclass(frozen=True, slots=True)
class ManifestModels:
    """The models, seeds and snapshots of a ``manifest.json``."""

    project_name: str | None
    schema_version: str
    generated_at: float | None
    models: Mapping[str, ModelDef]
    path: str | None = None


def _check_manifest(doc: Mapping[str, Any], name: str) -> int:
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


def _manifest_models(
    meta: Mapping[str, Any], version: int, models: dict[str, ModelDef], path: str | None
) -> ManifestModels:
    name = path or "manifest.json"
    project = meta.get("project_name")
    return ManifestModels(
        project_name=project if isinstance(project, str) and project else None,
        schema_version=f"manifest/v{version}",
        generated_at=epoch(parse_timestamp(meta.get("generated_at"), f"{name}: metadata.generated_at")),
        models=models,
        path=path,
    )


def parse_manifest_models(doc: Any, path: str | None = None) -> ManifestModels:
    """The models of a parsed ``manifest.json``."""
    name = path or "manifest.json"
    if not isinstance(doc, Mapping):
        raise ArtifactError(f"{name} is not a dbt manifest.json (found a JSON {type(doc).__name__})")
    version = _check_manifest(doc, name)
    # dbt always writes "nodes"; a trimmed manifest without it declares no models
    nodes = doc.get("nodes", {})
    if not isinstance(nodes, Mapping):
        raise ArtifactError(f"{name}: 'nodes' is not a map; the file is incomplete")
    models: dict[str, ModelDef] = {}
    for uid, node in nodes.items():
        mdef = _node_entry(uid, node, name)
        if mdef is not None:
            models[uid] = mdef
    return _manifest_models(doc["metadata"], version, models, path)


def read_manifest_models(path: Path) -> ManifestModels:
    """The models of a ``manifest.json``, streamed node by node (or read whole when unusual)."""
    try:
        return _stream_manifest_models(path)
    except (jsonstream.Fallback, OSError, RecursionError):
        pass
    except ArtifactError:
        if jsonstream.well_formed(path):
            raise
    doc = load_json(path, "manifest.json", "run `dbt parse` (or any dbt command) first, or pass --manifest")
    return parse_manifest_models(doc, str(path))


def _stream_manifest_models(path: Path) -> ManifestModels:
    name = str(path)
    meta: Mapping[str, Any] | None = None
    version = 0
    models: dict[str, ModelDef] | None = None
    for member, key, value in jsonstream.members(path, entries=("nodes",), values=("metadata",)):
        if meta is None:
            if member != "metadata" or schema_of({"metadata": value}) is None:
                raise jsonstream.Fallback("metadata is not the first member")
            version = _check_manifest({"metadata": value}, name)
            meta = value
        elif member != "nodes":
            continue
        elif key is jsonstream.START:
            if not isinstance(value, dict):
                raise jsonstream.Fallback("nodes is not a map")
            models = {}
        elif key is None or models is None:
            raise jsonstream.Fallback("nodes is not a map")
        else:
            mdef = _node_entry(key, value, name)
            if mdef is not None:
                models[str(key)] = mdef
    if meta is None or models is None:
        raise jsonstream.Fallback("no nodes map")
    return _manifest_models(meta, version, models, name)


# --- freshness.json (dbt Fusion `dbt freshness`) ------------------------------------------------


def _freshness_entry(index: int, entry: object, name: str) -> ModelFreshnessResult | None:
    if not isinstance(entry, Mapping):
        raise ArtifactError(f"{name}: results[{index}] is not an object")
    uid = entry.get("unique_id")
    if not isinstance(uid, str) or not uid:
        raise ArtifactError(f"{name}: results[{index}] has no unique_id")
    resource_type = entry.get("resource_type")
    kind = uid.split(".", 1)[0]
    if (resource_type if isinstance(resource_type, str) else kind) not in MODEL_RESOURCE_TYPES:
        return None
    where = f"{name}: {uid}"
    try:
        split_node_id(uid)
        status = parse_status(entry.get("status"))
    except ArtifactError as exc:
        raise ArtifactError(f"{where}: {exc}") from None
    loaded = epoch(parse_timestamp(entry.get("max_loaded_at"), f"{where} max_loaded_at"))
    criteria = entry.get("criteria") if isinstance(entry.get("criteria"), Mapping) else {}
    assert isinstance(criteria, Mapping)
    problems: list[str] = []
    found: list[float | None] = []
    for key in ("warn_after", "error_after"):
        try:
            found.append(threshold_seconds(criteria.get(key)))
        except ThresholdError as exc:
            found.append(None)
            problems.append(f"{key} skipped: {exc}")
    return ModelFreshnessResult(
        unique_id=uid,
        resource_type=resource_type if isinstance(resource_type, str) else kind,
        status=status,
        max_loaded_at=None if loaded is None or loaded < _SENTINEL_BEFORE else loaded,
        snapshotted_at=epoch(parse_timestamp(entry.get("snapshotted_at"), f"{where} snapshotted_at")),
        warn_after=found[0],
        error_after=found[1],
        threshold_problems=tuple(problems),
    )


def parse_model_freshness(doc: Any, path: str | None = None) -> ModelFreshnessArtifact:
    """The model entries of a parsed ``freshness.json`` (source entries are read by
    :func:`dbt_prom_bridge.artifacts.parse_sources`)."""
    name = path or "freshness.json"
    if not isinstance(doc, Mapping):
        raise ArtifactError(f"{name} is not a dbt freshness.json (found a JSON {type(doc).__name__})")
    schema = schema_of(doc)
    if schema is None or schema[0] not in ("freshness", "sources"):
        found = "no metadata.dbt_schema_version" if schema is None else f"schema {schema[0]}/v{schema[1]}"
        raise ArtifactError(f"{name} has {found}; expected a freshness.json written by `dbt freshness`")
    kind, version = schema
    if (kind, version) not in (("freshness", 0), ("sources", 3)):
        raise ArtifactError(
            f"{name} has schema {kind}/v{version}, which this version of dbt-prom-bridge does not read "
            "for models (it reads freshness v0): upgrade dbt-prom-bridge"
        )
    raw = doc.get("results")
    if not isinstance(raw, list):
        raise ArtifactError(f"{name} ({kind}/v{version}) has no 'results' list; the file is incomplete")
    results = [r for i, e in enumerate(raw) if (r := _freshness_entry(i, e, name)) is not None]
    meta = doc["metadata"]
    return ModelFreshnessArtifact(
        schema_version=f"{kind}/v{version}",
        dbt_version=_opt_str(meta, "dbt_version"),
        generated_at=epoch(parse_timestamp(meta.get("generated_at"), f"{name}: metadata.generated_at")),
        invocation_id=_opt_str(meta, "invocation_id"),
        results=tuple(results),
        path=path,
    )


def read_model_freshness(path: Path) -> ModelFreshnessArtifact:
    doc = load_json(path, "freshness.json", "run `dbt freshness` (dbt Fusion) first, or pass its path")
    return parse_model_freshness(doc, str(path))


def load_models(
    target: str,
    *,
    run_results: Path | None = None,
    freshness: Path | None = None,
    manifest: Path | None = None,
    project: str | None = None,
    meta_labels: tuple[str, ...] = (),
    configured: bool = True,
) -> ModelRun:
    """Read whichever of the three artifacts are given and build the :class:`ModelRun`."""
    if run_results is None and freshness is None and manifest is None:
        raise ArtifactError(
            "no model artifact given: pass a run_results.json, a freshness.json or a manifest.json"
        )
    results = read_run_results(run_results) if run_results is not None else None
    fresh = read_model_freshness(freshness) if freshness is not None else None
    models = read_manifest_models(manifest) if manifest is not None else None
    return build_models(
        target,
        results,
        fresh,
        models.models if models is not None else None,
        project=project,
        manifest_project=models.project_name if models is not None else None,
        meta_labels=meta_labels,
        configured=configured,
    )


def load_models_in(
    directory: Path,
    target: str,
    *,
    project: str | None = None,
    meta_labels: tuple[str, ...] = (),
    configured: bool = True,
) -> ModelRun | None:
    """The models of whichever of ``run_results.json``, ``freshness.json`` and ``manifest.json``
    a target directory (or a fetched dbt Cloud run) holds; None when it has neither results file
    (a ``dbt source freshness`` run: nothing about models)."""
    run_results = directory / "run_results.json"
    freshness = directory / "freshness.json"
    manifest = directory / "manifest.json"
    if not run_results.is_file() and not freshness.is_file():
        return None
    return load_models(
        target,
        run_results=run_results if run_results.is_file() else None,
        freshness=freshness if freshness.is_file() else None,
        manifest=manifest if manifest.is_file() else None,
        project=project,
        meta_labels=meta_labels,
        configured=configured,
    )
