"""Library entry points: what the CLI commands call, usable from Python (Airflow, Dagster...).

>>> from dbt_prom_bridge import api
>>> run = api.load_run(DbtOptions(project_dir=Path("my_project")), ArtifactOptions(no_run=True))

Nothing here prints; results come back as records and failures as :class:`DbtPromError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    DeliveryOptions,
    GatewayConfig,
    RemoteWriteConfig,
    RunOptions,
)
from dbt_prom_bridge.errors import ArtifactError, DbtRunError, PushError, UsageError
from dbt_prom_bridge.model import FreshnessRun, Manifest, RunContext, build_run, failed_run

if TYPE_CHECKING:
    from dbt_prom_bridge.runner import DbtFreshnessRunner
from dbt_prom_bridge.redact import redact_url, scrubbed_argv
from dbt_prom_bridge.sinks import spill
from dbt_prom_bridge.sinks.spill import Destination, ReplayReport


@dataclass(frozen=True)
class ArtifactPaths:
    sources_json: Path
    manifest: Path | None
    #: True when the manifest was named explicitly (then it must exist).
    manifest_required: bool


def artifact_paths(dbt: DbtOptions, art: ArtifactOptions) -> ArtifactPaths:
    """Resolve ``--sources-json`` / ``--manifest`` / ``--artifacts-dir`` / the project's target dir."""
    base = art.artifacts_dir or dbtproject.artifacts_dir(dbt)
    sources = art.sources_json or base / "sources.json"
    if art.manifest is not None:
        return ArtifactPaths(sources, art.manifest, True)
    candidate = (art.sources_json.parent if art.sources_json and not art.artifacts_dir else base) / (
        "manifest.json"
    )
    return ArtifactPaths(sources, candidate if candidate.exists() else None, False)


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


@dataclass(frozen=True)
class DeliveryReport:
    """What was delivered where. ``run`` is what the gateway now holds (merged for partial runs)."""

    run: FreshnessRun
    destinations: tuple[str, ...]
    carried_over: int = 0
    #: Spilled runs replayed after this push succeeded (None when nothing was pending).
    replayed: ReplayReport | None = None
    #: The same for the remote write endpoint.
    replayed_remote: ReplayReport | None = None


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


def check_not_already_pushed(run: FreshnessRun, gateway: GatewayConfig) -> None:
    """Refuse (``--no-run``) an artifact that is not newer than the run the gateway holds.

    A cron job re-reading an old sources.json would otherwise re-push it and make stale data
    look freshly checked. ``--force`` skips this.
    """
    from dbt_prom_bridge.artifacts import human_duration
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway, grouping_labels

    if run.generated_at is None:
        return
    try:
        held = Pushgateway(replace(gateway, retries=0)).run_timestamp(grouping_labels(run, gateway))
    except PushError:
        # The gateway cannot be asked (down, auth...): the push below retries, fails the same
        # way and spills the run; replay never lets it replace a newer run.
        return
    if held is None:
        return
    if run.generated_at == held:
        raise ArtifactError(
            f"this sources.json (invocation {run.invocation_id or '?'}) was already pushed to this "
            "grouping key; run `dbt source freshness` again, or pass --force to push it anyway"
        )
    if run.generated_at < held:
        raise ArtifactError(
            f"this sources.json is {human_duration(held - run.generated_at)} older than the run the "
            "gateway holds for this grouping key; pushing it would replace newer data "
            "(--force to do it anyway)"
        )


def deliver(
    run: FreshnessRun, delivery: DeliveryOptions, now: Callable[[], float] = time.time
) -> DeliveryReport:
    """Send ``run`` to every configured destination.

    When the gateway push fails for good and ``delivery.spill_dir`` is set, the run is saved
    there and :class:`~dbt_prom_bridge.sinks.spill.RunSpilled` (a ``PushError``, exit 4) is
    raised; without a spill dir the ``PushError`` itself. Runs spilled earlier for the same
    gateway are replayed first (``delivery.auto_replay``); when that finds the gateway down,
    the new run is spilled at once instead of waiting through a second round of retries.
    """
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway

    if not run.success and not run.project:
        # dbt could not read the project (wrong --project-dir...): run_success 0 would land in a
        # new project="" group, not the project's own (which goes stale and alerts as such).
        return DeliveryReport(run, ())
    destinations: list[str] = []
    held = run
    carried = 0
    failures: list[PushError] = []
    if delivery.textfile is not None:
        from dbt_prom_bridge.sinks import textfile

        try:
            written = textfile.write(run, delivery.textfile)
        except PushError as exc:  # the gateway and remote write still get the run
            failures.append(exc)
        else:
            held, carried = written.run, written.carried_over
            destinations.append(str(written.path))
    replayed = None
    if delivery.gateway is not None:
        if delivery.spill_dir is not None and delivery.auto_replay:
            replayed = replay_pending(delivery.gateway, delivery.spill_dir)
        down = gateway_down(replayed)
        try:
            if down is not None:
                raise down
            outcome = Pushgateway(delivery.gateway).push(run, lock_dir=delivery.spill_dir)
        except PushError as exc:
            if delivery.spill_dir is None:
                failures.append(exc)
            else:
                failures.append(spill_failed_push(run, delivery.gateway, delivery.spill_dir, exc, now))
        else:
            held, carried = outcome.run, outcome.carried_over
            destinations.append(outcome.url)
    replayed_remote = None
    if delivery.remote_write is not None:
        try:
            url, replayed_remote = push_remote_write(
                run, delivery.remote_write, delivery.spill_dir, delivery.auto_replay, now
            )
        except PushError as exc:
            failures.append(exc)
        else:
            destinations.append(url)
    if failures:
        error = _combined(failures)
        if destinations:
            error = _noted(error, f"delivered to {', '.join(destinations)} all the same")
        raise error
    return DeliveryReport(held, tuple(destinations), carried, replayed, replayed_remote)


def _noted(error: PushError, note: str) -> PushError:
    """``error`` with ``note`` after its cause (a spilled run keeps its spill file)."""
    if isinstance(error, spill.RunSpilled):
        cause = PushError(f"{error.cause} ({note})", status=error.status)
        return spill.RunSpilled(cause, error.path, error.directory)
    return PushError(f"{error} ({note})", status=error.status)


def _combined(failures: list[PushError]) -> PushError:
    """One error naming every destination that failed (textfile, gateway, remote write); a
    spilled run stays a ``RunSpilled`` (its replay hint)."""
    if len(failures) == 1:
        return failures[0]
    spilled = [f for f in failures if isinstance(f, spill.RunSpilled)]
    carrier = spilled[-1] if spilled else None
    text = "; and ".join(str(carrier.cause) if f is carrier else str(f) for f in failures)
    cause = PushError(text, status=failures[0].status)
    return spill.RunSpilled(cause, carrier.path, carrier.directory) if carrier is not None else cause


def push_remote_write(
    run: FreshnessRun,
    config: RemoteWriteConfig,
    spill_dir: Path | None,
    auto_replay: bool = True,
    now: Callable[[], float] = time.time,
) -> tuple[str, ReplayReport | None]:
    """Remote-write ``run`` (samples stamped now); ``(endpoint, replay report)``.

    Runs spilled earlier for the same endpoint are replayed first, oldest first, so this run's
    samples land last (a receiver refuses samples older than the newest of a series). When it
    fails for good the run is spilled (``RunSpilled``, exit 4), as on the gateway path.
    """
    from dbt_prom_bridge.sinks.remote_write import RemoteWrite

    replayed = None
    if spill_dir is not None and auto_replay:
        replayed = replay_pending_remote_write(config, spill_dir)
    down = gateway_down(replayed)
    try:
        if down is not None:
            raise down
        outcome = RemoteWrite(config).push(run, now=now)
    except PushError as exc:
        if spill_dir is None:
            raise
        raise spill_failed_remote_write(run, config, spill_dir, exc, now) from None
    return outcome.url, replayed


def remote_write_destination(run: FreshnessRun, config: RemoteWriteConfig) -> Destination:
    """Where ``run`` goes on the remote write endpoint (for spill files: no credentials)."""
    return Destination(
        kind="remote_write",
        url=redact_url(config.url),
        job=config.job,
        grouping_key=(("project", run.project), ("target", run.target), *config.labels),
    )


def spill_failed_remote_write(
    run: FreshnessRun,
    config: RemoteWriteConfig,
    spill_dir: Path,
    failure: PushError,
    now: Callable[[], float] = time.time,
) -> PushError:
    """:func:`spill_failed_push` for the remote write endpoint."""
    return _spill(run, remote_write_destination(run, config), spill_dir, failure, now)


def _spill(
    run: FreshnessRun,
    destination: Destination,
    spill_dir: Path,
    failure: PushError,
    now: Callable[[], float],
) -> PushError:
    """Save ``run`` for replay to ``destination``: a ``RunSpilled`` naming the file, or a plain
    ``PushError`` saying the run is lost when it cannot be written either."""
    try:
        path = spill.spill_run(spill_dir, run, destination, str(failure), now)
    except OSError as exc:
        return PushError(
            f"{failure}; the run could not be saved to {spill_dir} either "
            f"({exc.strerror or type(exc).__name__}), so it is lost: fix --spill-dir",
            status=failure.status,
        )
    return spill.RunSpilled(failure, path, spill_dir)


def remote_write_replayer(config: RemoteWriteConfig) -> spill.Handler:
    """Replays a spilled run to ``config.url``, stamped with the time its delivery failed.

    A receiver that already holds newer samples refuses older ones (out of order, or older than
    its head block): the entry is then superseded, never written over newer data.
    """
    from dbt_prom_bridge.sinks.remote_write import RemoteWrite, superseded

    def push(entry: spill.SpilledRun) -> spill.Outcome:
        extra = tuple((k, v) for k, v in entry.destination.grouping_key if k not in ("project", "target"))
        target = replace(config, job=entry.destination.job or config.job, labels=extra)
        try:
            RemoteWrite(target).push(entry.run, when=entry.created_at)
        except PushError as exc:
            if superseded(exc):
                return spill.SUPERSEDED
            raise
        return spill.PUSHED

    return push


def _same_endpoint(entry: spill.SpilledRun, kind: str, url: str) -> bool:
    return entry.destination.kind == kind and entry.destination.url.rstrip("/") == (
        redact_url(url.strip()).rstrip("/")
    )


def replay_remote_write(spill_dir: Path, config: RemoteWriteConfig, wait: bool = True) -> ReplayReport:
    """Deliver the runs spilled for ``config.url`` (oldest first); other entries are left untried."""
    return replay(spill_dir, None, wait=wait, remote_write=config)


def replay_pending_remote_write(config: RemoteWriteConfig, spill_dir: Path) -> ReplayReport | None:
    """Before a remote write: replay what earlier ones to the same endpoint spilled."""
    if not spill.entries_for(spill_dir, lambda e: _same_endpoint(e, "remote_write", config.url)):
        return None
    try:
        return replay_remote_write(spill_dir, config, wait=False)
    except (spill.Busy, UsageError):
        return None


def gateway_down(report: ReplayReport | None) -> PushError | None:
    """The error that stopped a replay because the gateway is down (retryable), if any."""
    if report is None or not report.down:
        return None
    return PushError(next(iter(report.down.values())))


def gateway_destination(run: FreshnessRun, gateway: GatewayConfig) -> Destination:
    """Where ``run`` goes on ``gateway`` (for spill files: no credentials)."""
    from dbt_prom_bridge.sinks.pushgateway import grouping_labels

    return Destination(
        kind="pushgateway",
        url=redact_url(gateway.url),
        job=gateway.job,
        grouping_key=grouping_labels(run, gateway),
    )


def spill_failed_push(
    run: FreshnessRun,
    gateway: GatewayConfig,
    spill_dir: Path,
    failure: PushError,
    now: Callable[[], float] = time.time,
) -> PushError:
    """Save ``run`` for replay after ``failure``; the error to raise says where it went.

    Returns a :class:`~dbt_prom_bridge.sinks.spill.RunSpilled`, or a plain :class:`PushError`
    saying the run is lost when it cannot be written either.
    """
    return _spill(run, gateway_destination(run, gateway), spill_dir, failure, now)


def _same_gateway(entry: spill.SpilledRun, url: str) -> bool:
    return _same_endpoint(entry, "pushgateway", url)


def replay(
    spill_dir: Path,
    gateway: GatewayConfig | None,
    handlers: Mapping[str, spill.Handler] | None = None,
    wait: bool = True,
    remote_write: RemoteWriteConfig | None = None,
) -> ReplayReport:
    """Deliver the runs spilled for ``gateway.url`` and/or ``remote_write.url`` (oldest first,
    never over newer data).

    Each config gives the URL, credentials, timeout and retries; each entry keeps its own job and
    grouping key. Credentials are only ever sent to their URL: entries spilled for another gateway
    or endpoint are left untried. ``handlers`` adds replayers for other destination kinds.
    """
    from dbt_prom_bridge.sinks.pushgateway import Pushgateway

    def push(entry: spill.SpilledRun) -> spill.Outcome:
        assert gateway is not None
        extra = tuple((k, v) for k, v in entry.destination.grouping_key if k not in ("project", "target"))
        config = replace(gateway, job=entry.destination.job or gateway.job, grouping_key=extra)
        outcome = Pushgateway(config).replay(entry.run, entry.when, lock_dir=spill_dir)
        return spill.PUSHED if outcome is not None else spill.SUPERSEDED

    def select(entry: spill.SpilledRun) -> bool:
        kind = entry.destination.kind
        if kind == "pushgateway":
            return gateway is not None and _same_gateway(entry, gateway.url)
        if kind == "remote_write":
            return remote_write is not None and _same_endpoint(entry, kind, remote_write.url)
        return True

    chosen: dict[str, spill.Handler] = {}
    if gateway is not None:
        chosen["pushgateway"] = push
    if remote_write is not None:
        chosen["remote_write"] = remote_write_replayer(remote_write)
    try:
        return spill.replay(spill_dir, {**chosen, **(handlers or {})}, select=select, wait=wait)
    except OSError as exc:
        raise UsageError(
            f"cannot use the spill dir {spill_dir}: {exc.strerror or exc}; check its permissions"
        ) from None


def replay_pending(gateway: GatewayConfig, spill_dir: Path) -> ReplayReport | None:
    """Before a push: replay what earlier pushes to the same gateway spilled, oldest first, so
    the new run lands last, on top of them (a cron job recovers by itself).

    Returns None when nothing is pending for this gateway, or another process is replaying.
    """
    if not spill.entries_for(spill_dir, lambda e: _same_gateway(e, gateway.url)):
        return None
    try:
        return replay(spill_dir, gateway, wait=False)
    except (spill.Busy, UsageError):
        return None
