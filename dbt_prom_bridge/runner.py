"""Run ``dbt source freshness`` in-process: the only module that imports dbt (lazily, ~2 s).

Why in-process rather than reading ``target/sources.json`` after a ``dbt`` subprocess:

- runtime errors (a failing freshness query) are in dbt's in-memory results but dropped from
  ``sources.json`` (dbt 1.8 to 1.12);
- when dbt cannot run at all (database down, bad profile) it leaves the *previous*
  ``sources.json`` in place; the result here comes from this invocation's memory, never from a
  file it did not write;
- the parsed manifest is kept between runs of one :class:`DbtFreshnessRunner` (the ``serve``
  loop), and re-parsed only when the project's files change.

dbt's console log is silenced (``--log-level none``, unless ``DBT_LOG_LEVEL`` is set, as in dbt)
and anything dbt still prints goes to stderr: stdout stays for data (``push --dry-run``).
dbt's file log (``logs/dbt.log``) is written as usual. Progress comes through ``on_event``, one
line per source as dbt checks it.

Works with the dbtRunner API of dbt-core 1.5+ (tested with 1.8 to 1.12): results are read by
attribute, never through dbt's artifact classes, whose module paths moved between versions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbt_prom_bridge import dbtproject
from dbt_prom_bridge.artifacts import parse_manifest, parse_sources, write_runtime_errors
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.errors import ArtifactError, DbtConfigError, DbtRunError
from dbt_prom_bridge.model import Manifest, SourcesArtifact
from dbt_prom_bridge.redact import scrubbed_argv

SOURCES_SCHEMA = "https://schemas.getdbt.com/dbt/sources/v3.json"
MANIFEST_SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"
MIN_DBT = (1, 5)
INSTALL_HINT = (
    "install dbt with your adapter, e.g. `pip install 'dbt-core>=1.8' dbt-postgres`, or run "
    "`dbt source freshness` yourself and pass --no-run"
)
#: Directories under a project that are never part of its definition (fingerprinting skips them).
_NOT_PROJECT_DIRS = frozenset({"target", "logs", ".git", ".venv", "__pycache__", "node_modules"})
_PROJECT_SUFFIXES = frozenset({".yml", ".yaml", ".sql", ".py", ".csv", ".md", ".jinja", ".sqlfluff"})
#: Files dbt itself writes into the project dir: not definitions (``.user.yml`` is dbt's
#: anonymous user id, created by the first run).
_NOT_PROJECT_FILES = frozenset({".user.yml"})
_INVOCATION = re.compile(rb'"invocation_id"\s*:\s*"([^"]+)"')
_STATUS_WORDS = {"pass": "PASS", "warn": "WARN", "error": "ERROR STALE", "runtime error": "RUNTIME ERROR"}


@dataclass(frozen=True)
class RunnerOutcome:
    """What one ``dbt source freshness`` invocation produced."""

    artifact: SourcesArtifact
    manifest: Manifest | None
    project: str
    target: str
    #: Wall seconds spent parsing the project (0 when the cached manifest was reused).
    parse_seconds: float = 0.0
    #: Wall seconds of the freshness invocation itself.
    freshness_seconds: float = 0.0
    manifest_reused: bool = False
    #: Where dbt wrote this invocation's sources.json (None when it did not write one).
    sources_json: Path | None = None


# -- importing dbt ----------------------------------------------------------------------------


def installed_dbt_version() -> str | None:
    """dbt-core's version from the package metadata (does not import dbt)."""
    try:
        return importlib.metadata.version("dbt-core")
    except importlib.metadata.PackageNotFoundError:
        return None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _dbt_runner_class() -> Any:
    """``dbt.cli.main.dbtRunner``, or a :class:`DbtRunError` saying how to get a usable dbt."""
    version = installed_dbt_version()
    if version is None:
        raise DbtRunError(
            f"dbt-core is not installed in this Python environment ({sys.executable}); {INSTALL_HINT}"
        )
    if _version_tuple(version) < MIN_DBT:
        raise DbtRunError(
            f"dbt-core {version} has no in-process runner (dbtRunner arrived in 1.5); upgrade to "
            "dbt-core >= 1.8, or run `dbt source freshness` yourself and pass --no-run"
        )
    try:
        from dbt.cli.main import dbtRunner
    except ImportError as exc:
        raise DbtRunError(f"cannot import dbt-core {version}: {exc}; {INSTALL_HINT}") from None
    return dbtRunner


# -- messages ---------------------------------------------------------------------------------

_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|CREDENTIAL|API_KEY)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")
_KEY_VALUE_SECRET = re.compile(
    r"\b(password|passwd|pwd|secret|token|private_key_passphrase)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)",
    re.IGNORECASE,
)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of env vars that look like secrets (dbt's ``DBT_ENV_SECRET_*`` and ``*PASSWORD*``...)."""
    source = os.environ if env is None else env
    return sorted(
        {
            v
            for k, v in source.items()
            if len(v) >= 3 and (k.startswith("DBT_ENV_SECRET") or _SECRET_ENV.search(k))
        },
        key=len,
        reverse=True,
    )


_SECRET_KEY = re.compile(r"(pass|secret|token|private_key|keyfile)", re.IGNORECASE)


def profile_secrets(dbt: DbtOptions) -> list[str]:
    """Literal secret values in the profiles.yml dbt will read (``password: ...`` written inline)."""
    import yaml

    path = dbtproject.profiles_dir(dbt) / "profiles.yml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if isinstance(value, (str, int)) and _SECRET_KEY.search(str(key)):
                    text = str(value)
                    if len(text) >= 3 and "{{" not in text:
                        found.add(text)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str] | None = None) -> str:
    """Remove passwords from a dbt/driver message: known secret values, URL credentials, key=value."""
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "***")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _KEY_VALUE_SECRET.sub(r"\1\2***", text)


_NOISE_LINE = re.compile(r"^(LINE \d+:|\d+\s*\||-{3,}$|\^+$)")
MAX_MESSAGE = 400


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """dbt's multi-line error text as one line, without SQL caret diagrams or code excerpts."""
    kept = [ln.strip() for ln in message.splitlines()]
    kept = [ln for ln in kept if ln and not _NOISE_LINE.match(ln)]
    out = ""
    for index, line in enumerate(kept):
        if index == 0:
            out = line
        elif index == 1 or out.endswith(":"):
            out += (" " if out.endswith(":") else ": ") + line
        else:
            out += "; " + line
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "FailedToConnect",
            "DatabaseError",
            "DbtDatabaseError",
            "OperationalError",
            "ConnectionError",
            "Database Error",
            "connection to server",
            "Connection refused",
        ),
        "is the database up and reachable with the profile's settings?",
    ),
    (
        ("DbtProfileError", "ProfileConfigError", "Could not find profile", "does not have a target"),
        "check profiles.yml (--profiles-dir, --target)",
    ),
    (("DbtProjectError", "ProjectContractError"), "check dbt_project.yml (--project-dir)"),
    (
        ("ParsingError", "CompilationError", "DbtValidationError", "YamlParseError"),
        "fix the project (`dbt parse` shows the details)",
    ),
    (("DbtUsageException", "UsageError", "BadOptionUsage", "NoSuchOption"), "check the dbt options passed"),
)


#: dbt's exceptions for how it was invoked (profile, target, flags, selectors): a mistake to
#: fix, not an outage (by class name: their modules moved between dbt versions).
CONFIG_ERRORS = frozenset(
    {
        "DbtProfileError",
        "ProfileConfigError",
        "DbtUsageException",
        "InvalidSelectorError",
        "InvalidSelectorException",
        "NoSuchOption",
        "BadOptionUsage",
        "BadParameter",
    }
)
#: ``DbtProjectError`` covers both a directory that is not a project or a profile that is not
#: there (mistakes) and a dbt_project.yml that does not validate (the project is broken: its
#: group gets ``run_success 0``); these messages tell the mistakes.
_CONFIG_MESSAGES = ("No dbt_project.yml found", "Could not find profile named", "does not exist")


def is_config_error(exc: BaseException) -> bool:
    """True when dbt refused its configuration or arguments: an unknown target, a missing
    profiles.yml or profile, a directory that is not a dbt project, a malformed selector (exit
    2, nothing pushed), as opposed to a database it cannot reach or a project it cannot read or
    compile (exit 3, ``run_success 0`` for the project's group)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & CONFIG_ERRORS:
        return True
    return "DbtProjectError" in names and any(m in str(exc) for m in _CONFIG_MESSAGES)


def describe_exception(
    exc: BaseException, action: str = "dbt source freshness", secrets: Sequence[str] | None = None
) -> str:
    """One line for the user: what dbt said (secrets scrubbed) and what to check."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = one_line(scrub(str(exc), secrets)).rstrip(".") or type(exc).__name__
    return _with_hint(action, text, names)


def _with_hint(action: str, text: str, names: set[str]) -> str:
    hint = next((h for keys, h in _HINTS if names & set(keys) or any(k in text for k in keys)), None)
    message = f"{action} failed: {text}"
    return f"{message}; {hint}" if hint else message


def run_level_failure(result: Any, secrets: Sequence[str] | None = None) -> str | None:
    """The message of a freshness result that belongs to no source, or None when every result
    has one. dbt 1.8 reports a database it cannot reach this way (a result without a node, next
    to a runtime error per source) when it runs on a parsed manifest without populating its
    cache; later versions raise instead. Either way, dbt could not run."""
    for item in getattr(result, "results", ()):
        if getattr(item, "node", None) is None:
            text = one_line(scrub(str(getattr(item, "message", "") or ""), secrets))
            return _with_hint("dbt source freshness", text or "a result without a source", set())
    return None


# -- progress ---------------------------------------------------------------------------------


def progress_line(data: Any) -> str:
    """``[3/10] WARN  events.clicks (0.07s)`` from a ``LogFreshnessResult`` event's data."""
    status = str(getattr(data, "status", "") or "").strip().lower()
    word = _STATUS_WORDS.get(status, status.upper() or "?")
    total = int(getattr(data, "total", 0) or 0)
    index = int(getattr(data, "index", 0) or 0)
    width = len(str(total)) if total else 1
    secs = float(getattr(data, "execution_time", 0.0) or 0.0)
    return (
        f"[{index:>{width}}/{total}] {word:<13} {getattr(data, 'source_name', '?')}."
        f"{getattr(data, 'table_name', '?')} ({secs:.2f}s)"
    )


class _Events:
    """dbt event callback: progress lines to ``on_event``, and what we learn about the run."""

    def __init__(self, on_event: Callable[[str], None] | None) -> None:
        self.on_event = on_event
        self.target: str | None = None
        self.lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        try:
            name = msg.info.name
            if name == "LogFreshnessResult" and self.on_event is not None:
                line = progress_line(msg.data)
                with self.lock:
                    self.on_event(line)
            elif name == "ConcurrencyLine":
                self.target = str(msg.data.target_name) or self.target
        except Exception:  # a broken progress sink must never break dbt's run
            self.on_event = None


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """dbt's console logger binds ``sys.stdout`` when each invocation starts: point it at stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# -- converting dbt's in-memory objects to our records -------------------------------------------


def _iso(value: Any) -> str | None:
    if not isinstance(value, dt.datetime):
        return None if value is None else str(value)
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.isoformat()


def _enum(value: Any) -> Any:
    return getattr(value, "value", value)


def _threshold(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {"count": getattr(raw, "count", None), "period": _enum(getattr(raw, "period", None))}


def _freshness(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {
        "warn_after": _threshold(getattr(raw, "warn_after", None)),
        "error_after": _threshold(getattr(raw, "error_after", None)),
        "filter": getattr(raw, "filter", None),
    }


def result_entry(result: Any) -> dict[str, Any]:
    """One in-memory freshness result as a ``sources.json`` v3 entry, runtime errors included."""
    node = result.node
    status = str(_enum(result.status))
    entry: dict[str, Any] = {
        "unique_id": node.unique_id,
        "status": status,
        "execution_time": getattr(result, "execution_time", None),
        "thread_id": getattr(result, "thread_id", None),
    }
    if status == "runtime error":
        message = getattr(result, "message", None)
        entry["error"] = one_line(scrub(str(message))) if message else None
        return entry
    entry.update(
        max_loaded_at=_iso(getattr(result, "max_loaded_at", None)),
        snapshotted_at=_iso(getattr(result, "snapshotted_at", None)),
        max_loaded_at_time_ago_in_s=getattr(result, "age", None),
        criteria=_freshness(getattr(node, "freshness", None)),
    )
    return entry


def artifact_from_result(result: Any, path: Path | None = None) -> SourcesArtifact:
    """dbt's in-memory ``FreshnessResult`` as a :class:`SourcesArtifact` (one reader for both)."""
    meta = getattr(result, "metadata", None)
    doc = {
        "metadata": {
            "dbt_schema_version": getattr(meta, "dbt_schema_version", None) or SOURCES_SCHEMA,
            "dbt_version": getattr(meta, "dbt_version", None) or installed_dbt_version(),
            "generated_at": _iso(getattr(meta, "generated_at", None)),
            "invocation_id": getattr(meta, "invocation_id", None),
        },
        "results": [result_entry(r) for r in getattr(result, "results", ())],
        "elapsed_time": getattr(result, "elapsed_time", None),
    }
    return parse_sources(doc, str(path) if path is not None else None)


def source_doc(node: Any) -> dict[str, Any]:
    """The manifest.json fields of one ``SourceDefinition`` that :func:`parse_manifest` reads."""
    config = getattr(node, "config", None)
    config_meta = getattr(config, "meta", None)
    return {
        "package_name": getattr(node, "package_name", None),
        "source_name": node.source_name,
        "name": node.name,
        "identifier": getattr(node, "identifier", None),
        "schema": getattr(node, "schema", None),
        "database": getattr(node, "database", None),
        "freshness": _freshness(getattr(node, "freshness", None)),
        "loaded_at_field": getattr(node, "loaded_at_field", None),
        "loaded_at_query": getattr(node, "loaded_at_query", None),
        "meta": dict(getattr(node, "meta", None) or {}),
        "source_meta": dict(getattr(node, "source_meta", None) or {}),
        "config": {"meta": dict(config_meta)} if isinstance(config_meta, Mapping) else {},
    }


def manifest_from_dbt(manifest: Any, path: Path | None = None) -> Manifest:
    """Our :class:`Manifest` record from dbt's in-memory manifest (sources only: cheap)."""
    meta = getattr(manifest, "metadata", None)
    doc = {
        "metadata": {
            "dbt_schema_version": getattr(meta, "dbt_schema_version", None) or MANIFEST_SCHEMA,
            "dbt_version": getattr(meta, "dbt_version", None),
            "generated_at": _iso(getattr(meta, "generated_at", None)),
            "invocation_id": getattr(meta, "invocation_id", None),
            "project_name": getattr(meta, "project_name", None),
        },
        "sources": {uid: source_doc(node) for uid, node in manifest.sources.items()},
    }
    return parse_manifest(doc, str(path) if path is not None else None)


def written_by(path: Path, invocation_id: str | None) -> bool:
    """True when the artifact at ``path`` carries ``invocation_id`` (dbt writes metadata first)."""
    if not invocation_id:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    match = _INVOCATION.search(head)
    return match is not None and match.group(1).decode() == invocation_id


# -- the runner -------------------------------------------------------------------------------


def dbt_args(dbt: DbtOptions, command: Sequence[str]) -> list[str]:
    """dbt's own argv for ``command`` from :class:`DbtOptions`, with dbt's flag names."""
    args = [*command, "--project-dir", str(dbt.project_dir)]
    if dbt.profiles_dir is not None:
        args += ["--profiles-dir", str(dbt.profiles_dir)]
    if dbt.target:
        args += ["--target", dbt.target]
    if dbt.vars:
        args += ["--vars", dbt.vars]
    if dbt.target_path:
        args += ["--target-path", dbt.target_path]
    if "DBT_LOG_LEVEL" not in os.environ:
        args += ["--log-level", "none"]
        if "DBT_LOG_LEVEL_FILE" not in os.environ:
            # --log-level would also silence the file log; keep dbt's default there
            args += ["--log-level-file", "debug"]
    return args


def freshness_speedups(env: Mapping[str, str] | None = None) -> list[str]:
    """dbt flags that make ``source freshness`` on an already parsed manifest cheaper.

    ``--no-write-json``: dbt would rewrite manifest.json (unchanged since the parse, ~0.2 s on
    the sample project) after every run; sources.json is written from the result instead
    (:func:`write_sources_json`). ``--no-populate-cache``: dbt would list every source schema's
    relations before the run; freshness queries never look them up (and an adapter that does
    falls back to a direct query). A user who sets ``DBT_WRITE_JSON`` or ``DBT_POPULATE_CACHE``
    keeps dbt's behaviour for that flag.
    """
    env = os.environ if env is None else env
    out: list[str] = []
    if "DBT_WRITE_JSON" not in env:
        out.append("--no-write-json")
    if "DBT_POPULATE_CACHE" not in env:
        out.append("--no-populate-cache")
    return out


def write_sources_json(result: Any, path: Path) -> None:
    """Write dbt's ``sources.json`` for a freshness result, with dbt's own writer and format.

    Best effort: the metrics come from the result in memory, so a target dir that cannot be
    written (where dbt itself would crash after the run) costs only the file; no file then
    claims this invocation and :attr:`RunnerOutcome.sources_json` is None.
    """
    write = getattr(result, "write", None)
    if write is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(str(path))
    except (OSError, TypeError, ValueError):
        return


def selection_args(dbt: DbtOptions) -> list[str]:
    out: list[str] = []
    for sel in dbt.select:
        out += ["--select", sel]
    for exc in dbt.exclude:
        out += ["--exclude", exc]
    return out


def project_fingerprint(project_dir: Path, skip: Sequence[Path] = ()) -> str:
    """A digest of the project's definition files (names, sizes, mtimes): changes mean re-parse."""
    digest = hashlib.sha256()
    skipped = {p.resolve() for p in skip}
    root = project_dir.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in _NOT_PROJECT_DIRS and (here / d).resolve() not in skipped
        )
        for name in sorted(filenames):
            path = here / name
            if path.suffix not in _PROJECT_SUFFIXES or name in _NOT_PROJECT_FILES:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass
class _Cache:
    dbt_manifest: Any = None
    record: Manifest | None = None
    fingerprint: str | None = None
    env: str | None = None


def _dbt_env() -> str:
    """A digest of the environment: a project's ``env_var()`` calls can read any variable."""
    return hashlib.sha256(repr(sorted(os.environ.items())).encode()).hexdigest()


class DbtFreshnessRunner:
    """Runs ``dbt source freshness`` in this process, as often as asked (``serve`` keeps one).

    >>> outcome = DbtFreshnessRunner(DbtOptions(project_dir=Path("my_project"))).run(print)

    Raises :class:`DbtRunError` (exit 3) when dbt cannot run: not installed, a project it cannot
    compile, a database it cannot reach; :class:`DbtConfigError` (exit 2) when dbt refuses how it
    was invoked: unknown target, missing profiles.yml or profile, not a dbt project, a malformed
    selector. Stale or failing sources are results, not errors.
    """

    def __init__(self, dbt: DbtOptions) -> None:
        self.dbt = dbt
        self.dbt_version: str | None = installed_dbt_version()
        self._target: str | None = None
        self._cache = _Cache()

    @property
    def target_name(self) -> str:
        """The dbt target: what dbt reported in the last run, else dbt's lookup order."""
        return self._target or dbtproject.target_name(self.dbt)

    @property
    def artifacts_dir(self) -> Path:
        return dbtproject.artifacts_dir(self.dbt)

    def invalidate(self) -> None:
        """Forget the parsed manifest: the next run parses the project again."""
        self._cache = _Cache()

    def _fresh_cache(self) -> bool:
        cache = self._cache
        if cache.dbt_manifest is None:
            return False
        return cache.env == _dbt_env() and cache.fingerprint == project_fingerprint(
            self.dbt.project_dir, (self.artifacts_dir,)
        )

    def _invoke(self, runner_cls: Any, args: list[str], events: _Events, manifest: Any = None) -> Any:
        runner = runner_cls(manifest=manifest, callbacks=[events])
        # dbt logs sys.argv (ours: it may hold --gateway URL credentials) to logs/dbt.log.
        with _stdout_to_stderr(), scrubbed_argv():
            return runner.invoke(args)

    def parse(self) -> Manifest:
        """Parse the project in-process (``dbt parse``) and cache dbt's manifest for the next run."""
        runner_cls = _dbt_runner_class()
        fingerprint = project_fingerprint(self.dbt.project_dir, (self.artifacts_dir,))
        env = _dbt_env()
        events = _Events(None)
        res = self._invoke(runner_cls, dbt_args(self.dbt, ["parse"]), events)
        if not res.success or res.result is None or not hasattr(res.result, "sources"):
            raise self._failure(res, "dbt parse")
        path = self.artifacts_dir / "manifest.json"
        record = manifest_from_dbt(res.result, path if path.exists() else None)
        self._cache = _Cache(res.result, record, fingerprint, env)
        self._target = events.target or self._target
        return record

    def run(self, on_event: Callable[[str], None] | None = None) -> RunnerOutcome:
        """One ``dbt source freshness``; ``on_event`` gets one line per source as dbt checks it."""
        runner_cls = _dbt_runner_class()
        reused = self._fresh_cache()
        parse_seconds = 0.0
        if not reused:
            started = time.perf_counter()
            self.parse()
            parse_seconds = time.perf_counter() - started
        events = _Events(on_event)
        args = dbt_args(self.dbt, ["source", "freshness"]) + freshness_speedups() + selection_args(self.dbt)
        started = time.perf_counter()
        res = self._invoke(runner_cls, args, events, manifest=self._cache.dbt_manifest)
        freshness_seconds = time.perf_counter() - started
        result = res.result
        if result is None or not hasattr(result, "results"):
            self.invalidate()
            raise self._failure(res, "dbt source freshness")
        secrets = sorted({*secret_values(), *profile_secrets(self.dbt)}, key=len, reverse=True)
        failure = run_level_failure(result, secrets)
        if failure is not None:
            self.invalidate()
            raise DbtRunError(failure)
        self._target = events.target or self._target
        meta = getattr(result, "metadata", None)
        sources_path = self.artifacts_dir / "sources.json"
        if "--no-write-json" in args:
            write_sources_json(result, sources_path)
        ours = written_by(sources_path, getattr(meta, "invocation_id", None))
        try:
            artifact = artifact_from_result(result, sources_path if ours else None)
        except ArtifactError as exc:
            raise DbtRunError(f"dbt returned freshness results this tool cannot read: {exc}") from None
        if ours:
            # sources.json leaves runtime errors out: keep them beside it for status and --no-run
            write_runtime_errors(sources_path.parent, artifact)
        manifest = self._cache.record
        project = (
            (manifest.project_name if manifest else None) or dbtproject.project_info(self.dbt).name or ""
        )
        return RunnerOutcome(
            artifact=artifact,
            manifest=manifest,
            project=project,
            target=self.target_name,
            parse_seconds=parse_seconds,
            freshness_seconds=freshness_seconds,
            manifest_reused=reused,
            sources_json=sources_path if ours else None,
        )

    def _failure(self, res: Any, action: str) -> DbtRunError | DbtConfigError:
        """The error for a dbt invocation that failed: :class:`DbtConfigError` (exit 2, nothing
        pushed) when dbt refused its configuration, else :class:`DbtRunError` (exit 3)."""
        exc = getattr(res, "exception", None)
        if exc is None:
            return DbtRunError(
                f"{action} failed without a result or an error (see logs/dbt.log in the project)"
            )
        secrets = sorted({*secret_values(), *profile_secrets(self.dbt)}, key=len, reverse=True)
        message = describe_exception(exc, action, secrets)
        if is_config_error(exc):
            return DbtConfigError(f"{message}; nothing was pushed (a configuration error, not an outage)")
        return DbtRunError(message)


def parse_project(dbt: DbtOptions) -> Manifest:
    """``dbt parse`` in-process -> our :class:`Manifest` (for ``rules``/``dashboard`` without --manifest)."""
    return DbtFreshnessRunner(dbt).parse()
