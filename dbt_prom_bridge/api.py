"""Library entry points: what the CLI commands call, usable from Python (Airflow, Dagster...).

>>> from dbt_prom_bridge import api
>>> run = api.load_run(DbtOptions(project_dir=Path("my_project")), ArtifactOptions(no_run=True))

Nothing here prints; results come back as records and failures as :class:`DbtPromError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_prom_bridge import dbtproject
from dbt_prom_bridge.artifacts import (
    check_age,
    check_not_future,
    check_times_not_future,
    missing_from_manifest,
    read_manifest,
    read_sources,
)
from dbt_prom_bridge.config import (
    ArtifactOptions,
    DbtOptions,
    GatewayConfig,
    RemoteWriteConfig,
    RunOptions,
)
from dbt_prom_bridge.deliver import DeliveryReport, deliver, gateway_sink, remote_write_sink
from dbt_prom_bridge.deliver import replay as _replay
from dbt_prom_bridge.errors import ArtifactError, DbtRunError, StaleArtifactError, UsageError
from dbt_prom_bridge.model import FreshnessRun, Manifest, RunContext, build_run, failed_run

if TYPE_CHECKING:
    from dbt_prom_bridge.runner import DbtFreshnessRunner
from dbt_prom_bridge.redact import scrubbed_argv
from dbt_prom_bridge.sinks.spill import ReplayReport

__all__ = [
    "DeliveryReport",
    "collect",
    "deliver",
    "load_run",
    "replay",
    "run_freshness",
]


@dataclass(frozen=True)
class ArtifactPaths:
    sources_json: Path
    manifest: Path | None


def artifact_paths(dbt: DbtOptions, art: ArtifactOptions) -> ArtifactPaths:
    """Resolve ``--sources-json`` / ``--manifest`` / ``--artifacts-dir`` / the project's target dir."""
    base = art.artifacts_dir or dbtproject.artifacts_dir(dbt)
    sources = art.sources_json or base / "sources.json"
    if art.manifest is not None:
        return ArtifactPaths(sources, art.manifest)
    candidate = (art.sources_json.parent if art.sources_json and not art.artifacts_dir else base) / (
        "manifest.json"
    )
    return ArtifactPaths(sources, candidate if candidate.exists() else None)


def load_manifest(path: Path | None) -> Manifest | None:
    return read_manifest(path) if path is not None else None


def run_context(dbt: DbtOptions, opts: RunOptions, project: str | None = None) -> RunContext:
    return RunContext(
        target=dbtproject.target_name(dbt),
        project=project,
        meta_labels=opts.meta_labels,
        partial=dbt.partial,
    )


def load_run(
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    now: Callable[[], float] = time.time,
) -> FreshnessRun:
    """``--no-run``: build a run from artifacts a previous dbt invocation left.

    Refuses an artifact older than ``art.max_artifact_age`` unless ``art.allow_stale``.
    Without a manifest, configured-but-missing (``not_run``) sources cannot be detected; the
    run carries a warning saying so.
    """
    paths = artifact_paths(dbt, art)
    artifact = read_sources(paths.sources_json)
    check_not_future(artifact, str(paths.sources_json), now())
    if not art.allow_stale:
        check_age(artifact.generated_at, str(paths.sources_json), art.max_artifact_age, now())
    manifest = load_manifest(paths.manifest)
    warnings: tuple[str, ...] = ()
    missing = missing_from_manifest(artifact, manifest) if manifest is not None else None
    if missing is not None:
        warnings = (missing,)
    if manifest is None:
        warnings = (
            "no manifest.json found: sources that are configured but missing from sources.json "
            "(not_run, or runtime errors dbt left out) cannot be detected; pass --manifest",
        )
    unknown_target = dbtproject.unknown_target_warning(dbt)
    if unknown_target is not None:
        warnings = (*warnings, unknown_target)
    info = dbtproject.project_info(dbt)
    context = replace(run_context(dbt, opts), extra_warnings=warnings)
    if context.project is None and manifest is None and info.name and _has_project(dbt):
        context = replace(context, project=info.name)
    run = build_run(artifact, manifest, context)
    if artifact.skipped_non_sources:
        # dbt Fusion's freshness.json: `dbt freshness` checked models too.
        run = with_models(run, dbt, art, opts, freshness=paths.sources_json, now=now)
    return run


def _has_project(dbt: DbtOptions) -> bool:
    return (dbt.project_dir / "dbt_project.yml").exists()


def run_freshness(
    dbt: DbtOptions,
    opts: RunOptions = RunOptions(),
    on_event: Callable[[str], None] | None = None,
) -> FreshnessRun:
    """Run ``dbt source freshness`` in-process and build the run from what dbt returned.

    Runtime errors (which sources.json leaves out) come from the in-process results. When dbt
    cannot run at all, returns a run with ``success=False`` and ``error`` set (the caller
    pushes it so ``run_success`` drops to 0, then exits 3).
    """
    from dbt_prom_bridge.runner import DbtFreshnessRunner

    runner = DbtFreshnessRunner(dbt)
    return runner_run(runner, dbt, opts, on_event)


def runner_run(
    runner: DbtFreshnessRunner,
    dbt: DbtOptions,
    opts: RunOptions,
    on_event: Callable[[str], None] | None = None,
) -> FreshnessRun:
    """One run through an existing :class:`~dbt_prom_bridge.runner.DbtFreshnessRunner` (``serve``)."""
    context = run_context(dbt, opts)
    try:
        with scrubbed_argv():
            outcome = runner.run(on_event=on_event)
    except DbtRunError as exc:
        return failed_freshness_run(
            dbt, opts, str(exc), target=runner.target_name or context.target, dbt_version=runner.dbt_version
        )
    context = replace(context, target=outcome.target, project=outcome.project)
    return build_run(outcome.artifact, outcome.manifest, context)


def failed_freshness_run(
    dbt: DbtOptions,
    opts: RunOptions,
    error: str,
    target: str | None = None,
    dbt_version: str | None = None,
) -> FreshnessRun:
    """The run-level failure of ``dbt``'s project (``run_success`` 0): dbt could not run, or
    a wrapped ``dbt source freshness`` failed without writing a new sources.json."""
    context = run_context(dbt, opts)
    if target is not None:
        context = replace(context, target=target)
    info = dbtproject.project_info(dbt)
    if not info.name:
        context = replace(context, extra_warnings=(NAMELESS_FAILURE,))
    return failed_run(context, info.name or "", error, dbt_version=dbt_version)


def sources_json_stamp(dbt: DbtOptions, art: ArtifactOptions) -> tuple[int, int, int] | None:
    """What identifies the sources.json ``--no-run`` would read, as written (None: absent), to
    tell whether a command wrote it anew."""
    return file_stamp(artifact_paths(dbt, art).sources_json)


def project_manifest(dbt: DbtOptions) -> Manifest:
    """The project's manifest, parsed in-process (``rules``/``dashboard`` without ``--manifest``)."""
    if not (dbt.project_dir / "dbt_project.yml").exists():
        raise UsageError(
            f"no dbt_project.yml in {dbt.project_dir}; pass --project-dir, or --manifest PATH "
            "(a manifest.json from `dbt parse`)"
        )
    from dbt_prom_bridge.runner import parse_project

    return parse_project(dbt)


#: Why a failed run of a project whose name could not be read is not delivered.
NAMELESS_FAILURE = (
    "nothing is pushed: the project's dbt_project.yml could not be read, so there is no project "
    "group to mark failed"
)


def collect(
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    on_event: Callable[[str], None] | None = None,
) -> FreshnessRun:
    """The run a ``push``/``status`` is about: from artifacts (``--no-run``) or a fresh dbt run,
    with the model builds of ``art.run_results`` when given (alone, with ``--no-run`` and no
    sources.json: a ``dbt build`` that checked no source freshness)."""
    if art.run_results is not None and art.no_run and art.sources_json is None:
        # Builds and freshness checks often share a target dir: a sources.json that is absent
        # or stale does not stop the models of a fresh run_results.json.
        sources_json = artifact_paths(dbt, art).sources_json
        if not sources_json.exists():
            return models_only_run(dbt, art, opts, run_results=art.run_results)
        try:
            run = load_run(dbt, art, opts)
        except StaleArtifactError as exc:
            only = models_only_run(dbt, art, opts, run_results=art.run_results)
            return replace(only, warnings=(f"{exc}: pushing the models only", *only.warnings))
    elif art.no_run:
        run = load_run(dbt, art, opts)
    elif art.sources_json is not None:
        raise ArtifactError("--sources-json only makes sense with --no-run")
    else:
        run = run_freshness(dbt, opts, on_event)
    if run.success and run.partial and not run.checks:
        # A typo in a cron job's selection must not refresh run_timestamp with nothing checked.
        raise UsageError(
            f"--select/--exclude ({' '.join((*dbt.select, *dbt.exclude))}) matched no source with "
            "freshness configured, so nothing was checked or pushed; select sources as "
            "source:NAME or source:NAME.TABLE (`dbt ls --resource-type source` lists them)"
        )
    return with_models(run, dbt, art, opts, run_results=art.run_results)


def run_results_path(dbt: DbtOptions, art: ArtifactOptions) -> Path:
    """The ``run_results.json`` a dbt command of the project writes (beside sources.json)."""
    return artifact_paths(dbt, art).sources_json.parent / "run_results.json"


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What identifies ``path`` as written (None: absent), to tell whether a command wrote it anew."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def with_models(
    run: FreshnessRun,
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    run_results: Path | None = None,
    freshness: Path | None = None,
    now: Callable[[], float] = time.time,
) -> FreshnessRun:
    """``run`` carrying the models, seeds and snapshots of a ``run_results.json`` (their builds)
    and/or a dbt Fusion ``freshness.json`` (their freshness), labelled from the project's
    manifest when there is one. The files are refused like a sources.json: future-dated, or
    older than ``art.max_artifact_age`` unless ``art.allow_stale``."""
    from dbt_prom_bridge.model_artifacts import read_manifest_models, read_model_freshness, read_run_results
    from dbt_prom_bridge.nodes import build_models, validate_model_meta_labels

    if run_results is None and freshness is None:
        return run
    validate_model_meta_labels(opts.meta_labels)
    results = read_run_results(run_results) if run_results is not None else None
    if results is not None and not results.builds:
        if art.run_results_found:  # `dbt test`, `dbt docs generate`...: no model news
            return run
        raise ArtifactError(
            f"{run_results} was written by `dbt {results.command}`, which builds nothing; pass the "
            "run_results.json of a dbt build, run, seed or snapshot"
        )
    manifest_path = artifact_paths(dbt, art).manifest
    found = read_manifest_models(manifest_path) if manifest_path is not None else None
    models = build_models(
        run.target,
        results,
        read_model_freshness(freshness) if freshness is not None else None,
        found.models if found is not None else None,
        project=run.project or None,
        manifest_project=found.project_name if found is not None else None,
        meta_labels=opts.meta_labels,
    )
    path = str(run_results or freshness)
    rerun = "run dbt again"
    times = [("metadata.generated_at", models.generated_at)]
    for m in models.checks:
        times += [(f"the build of {m.unique_id}", m.built_at)]
        times += [(f"the check of {m.unique_id}", m.freshness_checked_at)]
    check_times_not_future(times, path, now(), rerun=rerun)
    if not art.allow_stale:
        check_age(models.generated_at, path, art.max_artifact_age, now(), rerun=rerun)
    if not models.checks and art.run_results_found:
        return run
    if not models.checks:
        raise ArtifactError(
            f"{path} reports no model, seed or snapshot and the manifest configures none with a "
            "threshold: nothing to push about models; pass the run_results.json of a dbt build/run"
        )
    return replace(
        run,
        project=run.project or models.project,
        models=models.checks,
        models_complete=found is not None,
        declared_models=tuple(sorted({m.model for m in found.models.values()})) if found is not None else (),
        warnings=(*run.warnings, *models.warnings),
    )


def models_only_run(
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    run_results: Path | None = None,
    freshness: Path | None = None,
    now: Callable[[], float] = time.time,
) -> FreshnessRun:
    """A run with model results only (the artifacts of a ``dbt build`` with no source
    freshness run): it changes the models it reports and nothing about sources."""
    empty = FreshnessRun(
        project="",
        target=dbtproject.target_name(dbt),
        checks=(),
        generated_at=None,
        elapsed=None,
        success=True,
        meta_labels=opts.meta_labels,
        sources_checked=False,
    )
    run = with_models(empty, dbt, art, opts, run_results, freshness, now)
    generated = max((m.seen_at for m in run.models if m.seen_at is not None), default=None)
    return replace(run, generated_at=generated)


def check_gateway(gateway: GatewayConfig) -> None:
    """Refuse (exit 2) a gateway config that cannot work, before dbt runs: a bad URL, an
    unreadable CA or client certificate, credentials that cannot go into a header."""
    from dbt_prom_bridge.sinks.http import HttpClient

    HttpClient(gateway.url, gateway.auth, gateway.timeout, gateway.retries, gateway.backoff)


def check_remote_write(config: RemoteWriteConfig) -> None:
    """:func:`check_gateway` for the remote write endpoint, and that protobuf/cramjam are installed."""
    from dbt_prom_bridge.sinks.http import HttpClient
    from dbt_prom_bridge.sinks.remote_write import compress, messages

    HttpClient(config.url, config.auth, config.timeout, config.retries, config.backoff)
    messages()
    compress(b"")


def replay(
    spill_dir: Path,
    gateway: GatewayConfig | None = None,
    remote_write: RemoteWriteConfig | None = None,
    wait: bool = True,
) -> ReplayReport:
    """Deliver the runs spilled for ``gateway`` and/or ``remote_write`` (oldest first, never
    over newer data); entries for other endpoints are left untried."""
    sinks = []
    if gateway is not None:
        sinks.append(gateway_sink(gateway, spill_dir))
    if remote_write is not None:
        sinks.append(remote_write_sink(remote_write, spill_dir))
    return _replay(spill_dir, sinks, wait=wait)
