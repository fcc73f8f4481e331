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
from dbt_prom_bridge.errors import ArtifactError, DbtRunError, UsageError
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
    return build_run(artifact, manifest, context)


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
    try:
        st = artifact_paths(dbt, art).sources_json.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


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
    """The run a ``push``/``status`` is about: from artifacts (``--no-run``) or a fresh dbt run."""
    if art.no_run:
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
    return run


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
