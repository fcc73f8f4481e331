"""Spill and replay: a run that could not be delivered is kept on disk and delivered later.

When every retry of a push has failed, the *run records* (not the rendered text) are written to a
spill directory (``--spill-dir`` / ``DBT_PROM_SPILL_DIR``, default ``<dbt target dir>/dbt-prom-spill``).
Keeping the records lets replay re-render them for whichever destination they were meant for, and
merge them with what that destination holds by then (a Pushgateway partial-run merge, or remote
write samples stamped with the run's own time).

File format ``dbt-prom-spill/v1``: one JSON file per undelivered (run, destination), written
atomically (temporary file in the same directory, fsync, rename; mode 0600), never holding a secret
(the URL is stored without user info or query string, no auth of any kind, error texts scrubbed)::

    {
      "format": "dbt-prom-spill/v1",
      "producer": "dbt-prom-bridge 0.1.0",
      "created_at": 1767262965.5,            # when delivery gave up (Unix seconds)
      "reason": "HTTP 500 from http://gw:9091: ... after 4 attempts",
      "destination": {
        "kind": "pushgateway",               # or "remote_write"
        "url": "https://gw:9091",            # redact_url(): no credentials, no query
        "job": "dbt_source_freshness",       # the Pushgateway job (null for remote write)
        "grouping_key": [["project", "p"], ["target", "dev"], ["region", "eu"]]
      },
      "run": { ...FreshnessRun, see dbt_prom_bridge.codec.run_to_json()... }
    }

File names sort by the run's time: ``<YYYYmmddTHHMMSSffffffZ>-<kind>-<key hash>-<random>.json``.

API for every sink (the Pushgateway, and remote write, which spills and replays the same way):

- :class:`Destination` (kind, url, job, grouping_key) says where a run was going;
  :meth:`Destination.key` groups entries that replace each other.
- :func:`spill_run` ``(directory, run, destination, reason) -> Path`` writes one entry; a sink
  that gave up raises :class:`RunSpilled` (a ``PushError``: exit 4) naming the file.
- :func:`scan` ``(directory) -> Scan`` lists readable entries (:class:`SpilledRun`, oldest first)
  and unreadable files (kept, reported).
- :func:`replay` ``(directory, handlers, select=None, wait=True) -> ReplayReport`` delivers entries
  oldest first per destination key. ``handlers`` maps a destination kind to a callable that takes
  a :class:`SpilledRun` and returns :data:`PUSHED` or :data:`SUPERSEDED` (the destination already
  holds this run or newer data: nothing pushed), or raises :class:`~dbt_prom_bridge.errors.PushError`.
  Pushed and superseded entries are deleted; failed ones are kept. A *retryable* failure (see
  :class:`~dbt_prom_bridge.sinks.http.DeliveryError`) stops the replay for that destination URL
  (it is down; the other entries are kept untried). Replays hold an exclusive lock on the directory
  (``.lock``, ``flock``) so two processes never replay the same entries at once.
- The run is encoded by :mod:`dbt_prom_bridge.codec` (the records' one codec).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import math
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dbt_prom_bridge import __version__, fsutil
from dbt_prom_bridge.codec import run_from_json, run_to_json
from dbt_prom_bridge.errors import DbtPromError, PushError
from dbt_prom_bridge.model import PERIOD_SECONDS, FreshnessRun
from dbt_prom_bridge.redact import printable, redact_url

FORMAT = "dbt-prom-spill/v1"
DEFAULT_DIR_NAME = "dbt-prom-spill"
LOCK_NAME = ".lock"

Outcome = Literal["pushed", "superseded"]
PUSHED: Outcome = "pushed"
SUPERSEDED: Outcome = "superseded"
#: Delivers one spilled run; returns PUSHED or SUPERSEDED, raises PushError when it fails.
Handler = Callable[["SpilledRun"], Outcome]


# -- entries ---------------------------------------------------------------------------------


class RunSpilled(PushError):
    """Delivery failed for good and the run was saved to ``path`` for replay (exit 4)."""

    def __init__(self, cause: PushError, path: Path, directory: Path) -> None:
        super().__init__(f"{cause}; the run was saved to {path}", status=cause.status)
        self.cause = cause
        self.path = path
        self.directory = directory


@dataclass(frozen=True)
class Destination:
    """Where a spilled run was going. ``url`` never holds credentials (see :func:`redact_url`)."""

    kind: str
    url: str
    job: str | None = None
    #: The whole grouping key except ``job`` (project, target, then ``--grouping-key`` labels).
    grouping_key: tuple[tuple[str, str], ...] = ()

    def key(self) -> tuple[str, str, str | None, tuple[tuple[str, str], ...]]:
        """Entries with the same key replace each other at the destination."""
        return (self.kind, self.url, self.job, self.grouping_key)

    def describe(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.grouping_key)
        job = f" job={self.job}" if self.job else ""
        return f"{self.kind} {self.url}{job} {{{labels}}}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "job": self.job,
            "grouping_key": [list(kv) for kv in self.grouping_key],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Destination:
        return cls(
            kind=str(raw["kind"]),
            url=str(raw["url"]),
            job=None if raw.get("job") is None else str(raw["job"]),
            grouping_key=tuple((str(k), str(v)) for k, v in raw.get("grouping_key", ())),
        )


@dataclass(frozen=True)
class SpilledRun:
    """One spill file, read back."""

    path: Path
    run: FreshnessRun
    destination: Destination
    created_at: float
    reason: str

    @property
    def when(self) -> float:
        """The run's time: dbt's generated_at, or when delivery failed (dbt could not run)."""
        return self.run.generated_at if self.run.generated_at is not None else self.created_at

    def describe(self) -> str:
        stamp = dt.datetime.fromtimestamp(self.when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        kind = "failed run" if not self.run.success else "partial run" if self.run.partial else "run"
        return f"{self.path.name} ({kind} of {self.run.project}/{self.run.target} at {stamp})"


@dataclass(frozen=True)
class Unreadable:
    path: Path
    problem: str


@dataclass(frozen=True)
class Scan:
    entries: tuple[SpilledRun, ...]
    unreadable: tuple[Unreadable, ...] = ()


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _key_hash(destination: Destination) -> str:
    text = json.dumps(destination.to_json(), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def spill_run(
    directory: Path,
    run: FreshnessRun,
    destination: Destination,
    reason: str,
    now: Callable[[], float] = time.time,
) -> Path:
    """Write ``run`` for ``destination`` atomically into ``directory``; returns the file.

    Raises ``OSError`` when it cannot (the caller reports that the run is lost).
    """
    created = now()
    safe = Destination(
        destination.kind, redact_url(destination.url), destination.job, destination.grouping_key
    )
    doc = {
        "format": FORMAT,
        "producer": f"dbt-prom-bridge {__version__}",
        "created_at": created,
        "reason": reason,
        "destination": safe.to_json(),
        "run": run_to_json(run),
    }
    data = json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
    directory.mkdir(parents=True, exist_ok=True)
    when = run.generated_at if run.generated_at is not None else created
    name = f"{_stamp(when)}-{safe.kind}-{_key_hash(safe)}-{uuid.uuid4().hex[:8]}.json"
    final = directory / name
    fsutil.write_atomic(final, data, mode=0o600)
    return final


#: A spill file larger than this is not read (a 100,000-source run spills ~60 MB).
MAX_ENTRY_BYTES = 1 << 30
#: A temporary file older than this was left by a write that was killed (a write takes ms).
STALE_TEMPORARY = 600.0
#: Times outside [0, 9999-12-31] cannot be a run's (and do not fit a date).
_LATEST = 253402300799.0


def _open_private(path: Path) -> int:
    """Open ``path`` for reading only if it is a regular file of this user, never following a
    symbolic link and never blocking (a FIFO opened for reading waits for a writer); returns the
    descriptor, or raises ``ValueError`` saying why it is skipped. ``lstat`` first (nothing is
    opened that is not a regular file), then ``fstat`` of what was opened (it may have been
    swapped in between)."""
    try:
        first = path.lstat()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    if stat.S_ISLNK(first.st_mode):
        raise ValueError("a symbolic link, which is never followed; skipped")
    if not stat.S_ISREG(first.st_mode):
        raise ValueError("not a regular file (a pipe, socket or device); skipped")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("a symbolic link, which is never followed; skipped") from None
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a pipe, socket or device); skipped")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise ValueError(f"owned by another user (uid {st.st_uid}), so not trusted; skipped")
        if st.st_size > MAX_ENTRY_BYTES:
            raise ValueError(f"{st.st_size} bytes, larger than any spilled run; skipped")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_private(path: Path) -> bytes:
    fd = _open_private(path)
    try:
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_ENTRY_BYTES:
                raise ValueError("larger than any spilled run; skipped")
        return b"".join(chunks)
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _check_values(entry: SpilledRun) -> None:
    """Refuse numbers no run can hold (an edited or corrupted file): times that are not finite or
    not in [0, 9999], durations that are not finite, thresholds no dbt accepts."""

    def when(value: float | None, what: str) -> None:
        if value is not None and not (math.isfinite(value) and 0 <= value <= _LATEST):
            raise ValueError(f"{what} {value!r} is not a time (an edited or corrupted file)")

    def finite(value: float | None, what: str) -> None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{what} {value!r} is not a number (an edited or corrupted file)")

    when(entry.created_at, "created_at")
    when(entry.run.generated_at, "run.generated_at")
    finite(entry.run.elapsed, "run.elapsed")
    for check in entry.run.checks:
        where = f"{check.source_name}.{check.table_name}"
        when(check.max_loaded_at, f"{where} max_loaded_at")
        when(check.checked_at, f"{where} checked_at")
        finite(check.duration, f"{where} duration")
        finite(check.age_seconds, f"{where} age_seconds")
        for threshold in (check.warn_after, check.error_after):
            if threshold is not None and (
                not 0 < threshold.count <= 10**9 or threshold.period not in PERIOD_SECONDS
            ):
                raise ValueError(
                    f"{where} threshold {threshold.count} {threshold.period} is not a dbt threshold"
                )


def read_entry(path: Path) -> SpilledRun:
    """Read one spill file; raises ``ValueError`` with a one-line reason when it cannot, or when
    it is not a regular file owned by this user (see :func:`scan`)."""
    raw = _read_private(path)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("not valid JSON (truncated or edited)") from None
    if not isinstance(doc, Mapping):
        raise ValueError("not a spill file (no JSON object)")
    fmt = doc.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("dbt-prom-spill/"):
            raise ValueError(
                f"format {printable(fmt)[:40]} was written by a newer dbt-prom-bridge; upgrade to replay it"
            )
        raise ValueError(f"not a dbt-prom spill file (format {printable(repr(fmt))[:60]})")
    try:
        entry = SpilledRun(
            path=path,
            run=run_from_json(doc["run"]),
            destination=Destination.from_json(doc["destination"]),
            created_at=float(doc["created_at"]),
            reason=str(doc.get("reason", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        detail = printable(f"{type(exc).__name__}: {exc}")[:200]
        raise ValueError(f"incomplete spill file ({detail})") from None
    _check_values(entry)
    return entry


def _is_spill_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _is_temporary(name: str) -> bool:
    """A temporary file of an atomic write (``.NAME.XXXX.tmp``, or the older ``.tmp-XXXX.json``)."""
    return name.startswith(".tmp-") or (name.startswith(".") and name.endswith(".tmp"))


def remove_stale_temporaries(directory: Path, now: Callable[[], float] = time.time) -> list[Path]:
    """Delete the temporary files of writes that were killed (:func:`_is_temporary`, this user's
    regular files, older than :data:`STALE_TEMPORARY`); returns them. A write in progress is younger."""
    removed: list[Path] = []
    try:
        names = [e.name for e in os.scandir(directory) if _is_temporary(e.name)]
    except OSError:
        return removed
    for name in names:
        path = directory / name
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
            continue
        if now() - st.st_mtime > STALE_TEMPORARY:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def scan(directory: Path) -> Scan:
    """Every spill file in ``directory``: readable ones oldest first, and the unreadable ones.

    The directory is untrusted: only regular files owned by this user are read, symbolic links
    are never followed, and pipes, sockets and devices are never opened in a way that can block;
    everything else is reported as unreadable (kept, never deleted). Temporary files that killed
    writes left behind are deleted.
    """
    if not directory.is_dir():
        return Scan(())
    remove_stale_temporaries(directory)
    entries: list[SpilledRun] = []
    bad: list[Unreadable] = []
    try:
        names = sorted(e.name for e in os.scandir(directory) if _is_spill_name(e.name))
    except OSError as exc:
        return Scan((), (Unreadable(directory, f"cannot list it: {exc.strerror or exc}"),))
    for name in names:
        path = directory / name
        try:
            entries.append(read_entry(path))
        except ValueError as exc:
            bad.append(Unreadable(path, str(exc)))
    entries.sort(key=lambda e: (e.when, e.created_at, e.path.name))
    return Scan(tuple(entries), tuple(bad))


def find(directory: Path, ident: str) -> Path:
    """The spill file ``ident`` names: its file name, or a prefix of it that only it has (as
    ``replay --list`` shows them). Raises :class:`~dbt_prom_bridge.errors.UsageError`."""
    from dbt_prom_bridge.errors import UsageError

    name = Path(ident).name
    try:
        names = sorted(e.name for e in os.scandir(directory) if _is_spill_name(e.name))
    except OSError as exc:
        raise UsageError(f"cannot list the spill dir {directory}: {exc.strerror or exc}") from None
    if name in names:
        return directory / name
    matches = [n for n in names if n.startswith(name)] if name else []
    if len(matches) == 1:
        return directory / matches[0]
    if matches:
        raise UsageError(
            f"{ident!r} names {len(matches)} spilled runs in {directory}; give more of the file name "
            "(`dbt-prom replay --list` shows them)"
        )
    raise UsageError(f"no spilled run {ident!r} in {directory}; `dbt-prom replay --list` shows them")


def discard(directory: Path, ident: str) -> Path:
    """Delete the spill file ``ident`` names (see :func:`find`), readable or not; returns it."""
    from dbt_prom_bridge.errors import UsageError

    with locked(directory):
        path = find(directory, ident)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(f"cannot delete {path}: {exc.strerror or exc}") from None
    return path


def retarget(entry: SpilledRun, url: str) -> SpilledRun:
    """Point ``entry`` at another URL (``replay --to``), rewriting its file atomically. Only the
    destination's URL changes, stored without credentials or query string."""
    raw = json.loads(_read_private(entry.path).decode("utf-8"))
    safe = redact_url(url.strip())
    raw["destination"]["url"] = safe
    data = json.dumps(raw, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
    fsutil.write_atomic(entry.path, data, mode=0o600)
    return replace(entry, destination=replace(entry.destination, url=safe))


def remove(entry: SpilledRun) -> None:
    with contextlib.suppress(FileNotFoundError):
        entry.path.unlink()


# -- locking ---------------------------------------------------------------------------------


class Busy(Exception):
    """Another process holds the spill directory's lock."""


@contextlib.contextmanager
def locked(
    directory: Path, wait: bool = True, timeout: float = 600.0, name: str = LOCK_NAME
) -> Iterator[None]:
    """Exclusive lock ``directory/name`` across processes and threads (``flock``; a no-op where
    unavailable).

    ``wait=False`` raises :class:`Busy` at once when another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    # never through a symbolic link planted in the directory (O_CREAT would follow it)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if not wait or time.monotonic() > deadline:
                    raise Busy(str(directory)) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def group_lock(directory: Path | None, key: str) -> Iterator[None]:
    """Serialize read-merge-write cycles on one destination group (``key``) among the processes
    of this host sharing ``directory``. Best effort: without a usable directory (None, read-only)
    or after waiting 2 minutes, the cycle runs unlocked rather than not at all."""
    if directory is None:
        yield
        return
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    lock = locked(directory, wait=True, timeout=120.0, name=f".lock-group-{digest}")
    try:
        lock.__enter__()
    except (OSError, Busy):
        yield
        return
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


# -- replay ----------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    """What a replay did. Everything not pushed or superseded is still on disk."""

    pushed: list[SpilledRun] = field(default_factory=list)
    superseded: list[SpilledRun] = field(default_factory=list)
    failed: list[tuple[SpilledRun, str]] = field(default_factory=list)
    #: Not attempted: their destination was down (a retryable failure earlier in this replay),
    #: no handler knows their kind, or the caller's filter left them out.
    untried: list[SpilledRun] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    #: Destinations found down, ``(kind, url) -> reason``: a retryable failure stopped their replay.
    down: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return len(self.failed) + len(self.untried) + len(self.unreadable)

    @property
    def attempted(self) -> int:
        return len(self.pushed) + len(self.superseded) + len(self.failed)


def _retryable(exc: DbtPromError) -> bool:
    return bool(getattr(exc, "retryable", False))


def replay(
    directory: Path,
    handlers: Mapping[str, Handler],
    select: Callable[[SpilledRun], bool] | None = None,
    wait: bool = True,
) -> ReplayReport:
    """Deliver the spilled runs in ``directory``: oldest first per destination key.

    ``select`` limits which entries are attempted (the others count as untried). ``wait=False``
    raises :class:`Busy` instead of waiting when another process is replaying the directory.
    """
    report = ReplayReport()
    with locked(directory, wait=wait):
        found = scan(directory)
        report.unreadable.extend(found.unreadable)
        down = report.down
        for entry in found.entries:
            handler = handlers.get(entry.destination.kind)
            if handler is None or (select is not None and not select(entry)):
                report.untried.append(entry)
                continue
            where = (entry.destination.kind, entry.destination.url)
            if where in down:
                report.untried.append(entry)
                continue
            try:
                outcome = handler(entry)
            except DbtPromError as exc:  # a PushError, or an entry no destination can take (UsageError)
                report.failed.append((entry, str(exc)))
                if _retryable(exc):
                    down[where] = str(exc)
                continue
            remove(entry)
            (report.pushed if outcome == PUSHED else report.superseded).append(entry)
    return report


def entries_for(directory: Path, select: Callable[[SpilledRun], bool]) -> Sequence[SpilledRun]:
    """The readable entries ``select`` accepts (no lock: a listing only)."""
    return [e for e in scan(directory).entries if select(e)]
