"""Frozen configuration built from flags, then ``DBT_PROM_*`` / dbt env vars, then defaults.

The CLI fills these from click options (each option names its env var); library users build
them directly. Secrets are wrapped in :class:`Secret` so they never print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model import FailOn

DEFAULT_JOB = "dbt_source_freshness"
DEFAULT_MAX_ARTIFACT_AGE = 3600.0


#: Every secret value this process has held (from flags, env vars, files, URLs): whatever prints
#: an unexpected error or traceback masks them (see :func:`known_secrets`).
_KNOWN_SECRETS: set[str] = set()


def known_secrets(min_length: int = 3) -> list[str]:
    """The values of every :class:`Secret` built in this process, longest first (shorter ones are
    left out: masking every ``a`` of a message hides more than it protects)."""
    return sorted((s for s in _KNOWN_SECRETS if len(s) >= min_length), key=len, reverse=True)


@dataclass(frozen=True)
class Secret:
    """A password or token: ``str()``/``repr()`` never show it; ``reveal()`` does. Every value is
    remembered (:func:`known_secrets`) so that even a bug's traceback cannot print it."""

    _value: str = field(repr=False)

    def __post_init__(self) -> None:
        if self._value:
            _KNOWN_SECRETS.add(self._value)
            stripped = self._value.strip()
            if stripped and stripped != self._value:
                _KNOWN_SECRETS.add(stripped)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __bool__(self) -> bool:
        return bool(self._value)

    @classmethod
    def from_sources(cls, value: str | None, file: Path | None, what: str) -> Secret | None:
        """The secret from a value (flag/env) or a file (first line, stripped)."""
        if value and file:
            raise UsageError(f"give the {what} either directly or as a file, not both")
        if file is not None:
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read the {what} file {file}: {exc.strerror or exc}") from None
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                _KNOWN_SECRETS.add(raw.decode("utf-8", "replace").strip())
                raise UsageError(f"the {what} file {file} is not UTF-8 text") from None
            if not text:
                raise UsageError(f"the {what} file {file} is empty")
            return cls(text)
        return cls(value) if value else None


@dataclass(frozen=True)
class DbtOptions:
    """dbt's own options, with dbt's names and meaning."""

    project_dir: Path = Path()
    profiles_dir: Path | None = None
    target: str | None = None
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    vars: str | None = None
    #: dbt's --target-path / DBT_TARGET_PATH (where artifacts go), relative to the project.
    target_path: str | None = None

    @property
    def partial(self) -> bool:
        return bool(self.select or self.exclude)


@dataclass(frozen=True)
class ArtifactOptions:
    """Where to read artifacts from in ``--no-run`` mode (and where dbt writes them)."""

    no_run: bool = False
    artifacts_dir: Path | None = None
    sources_json: Path | None = None
    manifest: Path | None = None
    max_artifact_age: float = DEFAULT_MAX_ARTIFACT_AGE
    allow_stale: bool = False
    #: Push an artifact whose run is not newer than what the gateway holds.
    force: bool = False
    #: A ``run_results.json`` whose model, seed and snapshot builds are pushed too.
    run_results: Path | None = None
    #: ``run_results`` was found (written by ``run``'s COMMAND), not named by the user: one that
    #: reports no build (``dbt test``, ``dbt docs generate``) is left out instead of refused.
    run_results_found: bool = False


@dataclass(frozen=True)
class HttpAuth:
    """Authentication and TLS for the Pushgateway / remote-write endpoint."""

    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class GatewayConfig:
    """Where and how to push."""

    url: str
    job: str = DEFAULT_JOB
    #: Extra grouping-key labels (``--grouping-key``), in addition to job/project/target.
    grouping_key: tuple[tuple[str, str], ...] = ()
    auth: HttpAuth = HttpAuth()
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0


#: Series per remote-write request (Prometheus's own ``max_samples_per_send`` default).
DEFAULT_REMOTE_WRITE_BATCH = 2000


@dataclass(frozen=True)
class RemoteWriteConfig:
    """Where and how to remote-write (Prometheus remote write 1.0: Mimir, Thanos, VictoriaMetrics...)."""

    url: str
    #: The ``job`` label every series carries (as a Pushgateway scrape would give it).
    job: str = DEFAULT_JOB
    #: Extra labels on every series (``--grouping-key``: the labels a gateway group would add).
    labels: tuple[tuple[str, str], ...] = ()
    auth: HttpAuth = HttpAuth()
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0
    #: Series per request (``--remote-write-batch``).
    batch: int = DEFAULT_REMOTE_WRITE_BATCH


@dataclass(frozen=True)
class RunOptions:
    """What a freshness run reports and how (labels, gates)."""

    meta_labels: tuple[str, ...] = ()
    fail_on: FailOn = FailOn.NEVER


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
#: The longest duration Prometheus accepts (an int64 of nanoseconds, about 292 years).
MAX_DURATION = (2**63 - 1) / 1e9


def parse_duration(text: str, what: str = "duration", allow_zero: bool = False) -> float:
    """``90s``, ``5m``, ``1h30m``, ``2d`` -> seconds, as Prometheus reads durations.

    A unit is required (``2`` could mean seconds or minutes), zero is refused unless
    ``allow_zero`` (a zero timeout or interval cannot work), and so is anything longer than
    Prometheus's own limit (about 292 years). Every refusal is a :class:`UsageError` (exit 2).
    """
    import re

    raw = text.strip()
    example = "a duration with a unit, like 90s, 5m, 1h30m or 2d"
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        raise UsageError(f"{what} {text!r} has no unit; give {example} (e.g. {raw}s)")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        raise UsageError(f"{what} {text!r} is not {example}")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds > MAX_DURATION:
        raise UsageError(f"{what} {text!r} is longer than any duration Prometheus accepts (about 292y)")
    if seconds <= 0 and not allow_zero:
        raise UsageError(f"{what} {text!r} must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest Prometheus duration (``7200`` -> ``2h``), for rule files."""
    whole = round(seconds)
    if whole <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            out += f"{whole // size}{unit}"
            whole %= size
    return out


@dataclass(frozen=True)
class DeliveryOptions:
    """Where a run goes: any of a Pushgateway and a node_exporter textfile, or stdout (dry run)."""

    gateway: GatewayConfig | None = None
    textfile: Path | None = None
    #: Prometheus remote write endpoint (``--remote-write``).
    remote_write: RemoteWriteConfig | None = None
    dry_run: bool = False
    #: Where runs that could not be delivered are kept for ``dbt-prom replay``.
    spill_dir: Path | None = None
    #: After a successful push, replay what earlier failed pushes to the same gateway spilled.
    auto_replay: bool = True
