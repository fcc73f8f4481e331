"""dbt Cloud (dbt platform) runs as a source of artifacts: the Administrative API v2.

A run's ``manifest.json``, ``sources.json`` and ``run_results.json`` are fetched into a
temporary directory and read by the same readers as ``--no-run`` (:func:`api.load_run`), so a
Cloud run gives exactly the metrics a local run of the same artifacts gives. Endpoints (all
``GET``, ``Authorization: Token <DBT_CLOUD_API_TOKEN>``; docs/dbt-cloud.md lists them with the
permissions they need):

- ``/api/v2/accounts/{account}/runs/{run}/``: the run, its status (``is_complete``,
  ``is_error``, ``is_cancelled``) and job;
- ``/api/v2/accounts/{account}/runs/?job_definition_id={job}&order_by=-id&limit=&offset=``: the
  job's runs, newest first, paged (``extra.pagination``), to find its latest completed run;
- ``/api/v2/accounts/{account}/jobs/{job}/``: the job's ``settings.target_name`` (the ``target``
  label, unless ``--target`` is given);
- ``/api/v2/accounts/{account}/runs/{run}/artifacts/{path}``: one artifact (the file itself).

JSON answers come in dbt Cloud's envelope ``{"status": {"code", "is_success", "user_message",
"developer_message"}, "data": ..., "extra": ...}``. 429 (honouring ``Retry-After``), 5xx,
timeouts and refused connections are retried with backoff; 401/403/404 are one line naming what
to fix (exit 2); a dbt Cloud that stays unreachable is exit 3 (dbt's results cannot be had).
Redirects are never followed (the token would go along): a moved account URL is named instead.
The token never appears in a message, a log line or a file.

Built on the standard library's ``urllib.request`` like :mod:`dbt_prom_bridge.sinks.http` (no new
dependency); it has its own small request loop because it needs what the sink client does not
expose: response headers (``Retry-After``) and API-specific error messages and exit codes.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from dbt_prom_bridge.config import ArtifactOptions, DbtOptions, RunOptions, Secret
from dbt_prom_bridge.errors import ArtifactError, DbtPromError, DbtRunError, ExitCode, UsageError
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.nodes import ModelRun
from dbt_prom_bridge.redact import Scrubber, redact_url

#: The US multi-tenant access URL (dbt's default; accounts with an account-specific access URL
#: such as ``ab123.us1.dbt.com``, other regions and single-tenant instances pass ``--dbt-cloud-host``).
DEFAULT_HOST = "cloud.getdbt.com"
TOKEN_ENV = "DBT_CLOUD_API_TOKEN"
ARTIFACTS: tuple[str, ...] = ("manifest.json", "sources.json", "run_results.json")
#: Runs per page of the runs listing (the API's maximum).
PAGE = 100
#: How many of a job's newest runs are searched for a completed one.
MAX_RUNS_SEARCHED = 1000
#: Longest wait between two attempts, whatever Retry-After or the backoff say.
MAX_WAIT = 60.0
#: dbt Cloud run status codes.
STATUS_NAMES: Mapping[int, str] = {
    1: "Queued",
    2: "Starting",
    3: "Running",
    10: "Success",
    20: "Error",
    30: "Cancelled",
}
_COMPLETE = frozenset((10, 20, 30))
_LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1"))
PERMISSIONS_HINT = (
    "give the token a permission set that can read runs and artifacts of this job's project "
    "(service token: Job Viewer, or Read-Only on legacy Team plans; or a personal access token "
    "of a user who can view the job)"
)


class CloudError(DbtPromError):
    """dbt Cloud answered, and the answer is a usage problem: bad token, permission, id, host."""

    exit_code = ExitCode.INPUT


class CloudUnavailable(DbtRunError):
    """dbt Cloud could not be asked (down, timing out, 5xx/429 after the retries): exit 3."""


@dataclass(frozen=True)
class CloudConfig:
    """Which dbt Cloud account to ask, where, and how."""

    account: int
    token: Secret
    host: str = DEFAULT_HOST
    run_id: int | None = None
    job_id: int | None = None
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0

    def __post_init__(self) -> None:
        if (self.run_id is None) == (self.job_id is None):
            raise UsageError("give one of --dbt-cloud-run RUN_ID and --dbt-cloud-job JOB_ID")


def base_url(host: str) -> str:
    """``cloud.getdbt.com`` / ``https://ab123.us1.dbt.com/`` -> ``https://host``; plain http only
    to a loopback address (a token must not cross a network in clear text)."""
    raw = host.strip().rstrip("/")
    if not raw:
        raise UsageError("--dbt-cloud-host is empty; give the account's access URL, e.g. cloud.getdbt.com")
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise UsageError(f"--dbt-cloud-host {redact_url(raw)!r} is not a host name or URL") from None
    if parts.username is not None or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise UsageError(
            f"--dbt-cloud-host {redact_url(raw)!r} must be the access URL alone (no path, "
            "credentials or query); the token comes from DBT_CLOUD_API_TOKEN"
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"--dbt-cloud-host {redact_url(raw)!r} must be an https:// access URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise UsageError(
            f"--dbt-cloud-host {redact_url(raw)!r} uses plain http: the API token would cross the "
            "network unencrypted; use https://"
        )
    return f"{parts.scheme}://{parts.netloc}"


def token_from_env(env: Mapping[str, str] | None = None) -> Secret:
    value = (env if env is not None else os.environ).get(TOKEN_ENV, "").strip()
    if not value:
        raise UsageError(
            f"no dbt Cloud API token: set {TOKEN_ENV} (a service token or personal access token)"
        )
    if any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in value):
        raise UsageError(f"{TOKEN_ENV} contains a space, line break or non-ASCII character; check its value")
    return Secret(value)


@dataclass(frozen=True)
class CloudRun:
    """A dbt Cloud run, as ``GET .../runs/{id}/`` describes it."""

    id: int
    job_id: int | None
    status: int
    is_complete: bool
    is_error: bool
    is_cancelled: bool
    finished_at: str | None = None
    href: str | None = None

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"status {self.status}")

    @property
    def failed(self) -> bool:
        return self.is_error or self.is_cancelled

    @classmethod
    def from_data(cls, data: object, where: str) -> CloudRun:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
            raise CloudError(f"dbt Cloud answered {where} without a run object; is the host a dbt Cloud?")
        status = data.get("status")
        status = status if isinstance(status, int) else -1
        job = data.get("job_definition_id", data.get("job_id"))
        return cls(
            id=data["id"],
            job_id=job if isinstance(job, int) else None,
            status=status,
            is_complete=bool(data.get("is_complete", status in _COMPLETE)),
            is_error=bool(data.get("is_error", status == 20)),
            is_cancelled=bool(data.get("is_cancelled", status == 30)),
            finished_at=data.get("finished_at") if isinstance(data.get("finished_at"), str) else None,
            href=data.get("href") if isinstance(data.get("href"), str) else None,
        )


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class _Attempt:
    status: int | None
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


class DbtCloudClient:
    """The Administrative API v2 of one account."""

    def __init__(
        self,
        config: CloudConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.base = base_url(config.host)
        self.display = redact_url(self.base)
        self._sleep = sleep
        self._clock = clock
        self.scrub = Scrubber([config.token.reveal()])
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.base.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
        self._opener = urllib.request.build_opener(*handlers)
        #: Every request path asked, in order (what a test's fake API can compare with its log).
        self.asked: list[str] = []

    def _account_path(self, rest: str) -> str:
        return f"/api/v2/accounts/{self.config.account}/{rest}"

    def _once(self, path: str, sink: BinaryIO | None = None) -> _Attempt:
        """One request. With ``sink``, a 2xx body is copied there in chunks (an artifact can be
        hundreds of MB) instead of being returned."""
        request = urllib.request.Request(
            self.base + path,
            headers={
                "Authorization": f"Token {self.config.token.reveal()}",
                "Accept": "application/json",
                "User-Agent": "dbt-prom-bridge",
            },
        )
        self.asked.append(path)
        try:
            with self._opener.open(request, timeout=self.config.timeout) as resp:
                if sink is not None and 200 <= resp.status < 300:
                    sink.seek(0)
                    sink.truncate()
                    shutil.copyfileobj(resp, sink, 1 << 20)
                    return _Attempt(resp.status, b"", dict(resp.headers.items()))
                return _Attempt(resp.status, resp.read(), dict(resp.headers.items()))
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(4096) if exc.fp is not None else b""
            except (OSError, http.client.HTTPException):
                body = b""
            headers = dict(exc.headers.items()) if exc.headers else {}
            return _Attempt(exc.code, body, headers)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError | ssl.CertificateError):
                raise CloudError(
                    f"TLS with dbt Cloud at {self.display} failed ({self.scrub(str(reason))}); check "
                    "--dbt-cloud-host and the system's CA certificates (SSL_CERT_FILE)"
                ) from None
            if isinstance(reason, (TimeoutError, socket.timeout)):
                return _Attempt(None, b"", error=f"no answer within {self.config.timeout:g}s")
            return _Attempt(None, b"", error=self.scrub(str(reason)))
        except TimeoutError:
            return _Attempt(None, b"", error=f"no answer within {self.config.timeout:g}s")
        except (http.client.HTTPException, OSError) as exc:
            return _Attempt(None, b"", error=self.scrub(str(exc)) or type(exc).__name__)

    def _message(self, attempt: _Attempt) -> str:
        """dbt Cloud's own words from an error envelope (scrubbed, one line), or ''."""
        try:
            doc = json.loads(attempt.body)
        except (ValueError, UnicodeDecodeError):
            return ""
        status = doc.get("status") if isinstance(doc, Mapping) else None
        if not isinstance(status, Mapping):
            return ""
        words = status.get("user_message") or status.get("developer_message") or ""
        return self.scrub(" ".join(str(words).split()))[:300]

    def get(
        self, path: str, what: str, missing_ok: bool = False, sink: BinaryIO | None = None
    ) -> bytes | None:
        """``GET path`` with retries: the body of a 2xx (or ``b""`` once written to ``sink``);
        None for a 404 when ``missing_ok``."""
        attempt_no = 0
        while True:
            attempt = self._once(path, sink)
            status = attempt.status
            if status is not None and 200 <= status < 300:
                return attempt.body
            said = self._message(attempt)
            detail = f" ({said})" if said else ""
            if status == 401:
                raise CloudError(
                    f"dbt Cloud at {self.display} rejected the API token (HTTP 401){detail}; check "
                    f"{TOKEN_ENV}: a valid service or personal token of account {self.config.account}"
                )
            if status == 403:
                raise CloudError(
                    f"the API token may not read {what} in dbt Cloud account {self.config.account} "
                    f"(HTTP 403){detail}; {PERMISSIONS_HINT}"
                )
            if status == 404:
                if missing_ok:
                    return None
                raise CloudError(
                    f"dbt Cloud account {self.config.account} at {self.display} has no {what} "
                    f"(HTTP 404){detail}; check the id, --dbt-cloud-account and --dbt-cloud-host"
                )
            if status is not None and 300 <= status < 400:
                location = redact_url(attempt.headers.get("Location", ""))
                to = f" to {location}" if location else ""
                raise CloudError(
                    f"dbt Cloud at {self.display} redirects{to} (HTTP {status}); pass the account's "
                    "access URL as --dbt-cloud-host (Account settings > Access URLs)"
                )
            retryable = status is None or status == 429 or status >= 500 or status == 408
            if not retryable:
                raise CloudError(f"dbt Cloud at {self.display} answered HTTP {status} to {what}{detail}")
            if attempt_no >= self.config.retries:
                cause = attempt.error or f"HTTP {status}{detail}"
                raise CloudUnavailable(
                    f"dbt Cloud at {self.display} is unavailable ({cause}, {attempt_no + 1} attempts) "
                    f"reading {what}; try again later"
                )
            wait = _retry_after(attempt.headers.get("Retry-After"), self._clock())
            if wait is None:
                wait = self.config.backoff * 2.0**attempt_no
            self._sleep(min(MAX_WAIT, max(0.0, wait)))
            attempt_no += 1

    def get_data(self, path: str, what: str) -> tuple[Any, Mapping[str, Any]]:
        """``GET`` a JSON endpoint: its envelope's ``data`` and ``extra``."""
        body = self.get(path, what)
        assert body is not None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise CloudError(
                f"dbt Cloud at {self.display} answered {what} with something that is not JSON; "
                "is --dbt-cloud-host the account's access URL?"
            ) from None
        if not isinstance(doc, Mapping) or "data" not in doc:
            raise CloudError(f"dbt Cloud at {self.display} answered {what} without the API's envelope")
        status = doc.get("status")
        if isinstance(status, Mapping) and status.get("is_success") is False:
            said = self.scrub(" ".join(str(status.get("user_message") or "").split()))[:300]
            raise CloudError(f"dbt Cloud refused {what}: {said or 'no reason given'}")
        extra = doc.get("extra")
        return doc["data"], extra if isinstance(extra, Mapping) else {}

    def run(self, run_id: int) -> CloudRun:
        data, _ = self.get_data(self._account_path(f"runs/{run_id}/"), f"run {run_id}")
        return CloudRun.from_data(data, f"run {run_id}")

    def job_runs(self, job_id: int) -> Iterator[CloudRun]:
        """The job's runs, newest first, page by page."""
        offset = 0
        while offset < MAX_RUNS_SEARCHED:
            query = urllib.parse.urlencode(
                {"job_definition_id": job_id, "order_by": "-id", "limit": PAGE, "offset": offset}
            )
            data, extra = self.get_data(self._account_path(f"runs/?{query}"), f"the runs of job {job_id}")
            if not isinstance(data, list):
                raise CloudError(f"dbt Cloud answered the runs of job {job_id} without a list")
            for item in data:
                yield CloudRun.from_data(item, f"the runs of job {job_id}")
            pagination = extra.get("pagination") if isinstance(extra.get("pagination"), Mapping) else {}
            assert isinstance(pagination, Mapping)
            total = pagination.get("total_count")
            offset += len(data)
            if not data or (isinstance(total, int) and offset >= total):
                return

    def latest_completed_run(self, job_id: int) -> CloudRun:
        """The job's newest run that ended in success or error. Cancelled runs are passed over:
        a run cancelled in the queue (a newer run superseded it, someone stopped it) has no
        artifacts and says nothing about whether dbt can run."""
        for run in self.job_runs(job_id):
            if run.is_complete and not run.is_cancelled:
                return run
        raise CloudError(
            f"dbt Cloud job {job_id} has no completed run (among its newest {MAX_RUNS_SEARCHED}); "
            "run the job, or wait for its first run to finish"
        )

    def target_name(self, job_id: int) -> str | None:
        data, _ = self.get_data(self._account_path(f"jobs/{job_id}/"), f"job {job_id}")
        settings = data.get("settings") if isinstance(data, Mapping) else None
        name = settings.get("target_name") if isinstance(settings, Mapping) else None
        return name if isinstance(name, str) and name else None

    def artifact(self, run_id: int, name: str, dest: Path) -> bool:
        """Download one artifact of the run (the file itself) to ``dest``, streamed; False (and no
        file) when the run has none of that name."""
        with dest.open("wb") as sink:
            found = self.get(
                self._account_path(f"runs/{run_id}/artifacts/{name}"),
                f"{name} of run {run_id}",
                missing_ok=True,
                sink=sink,
            )
        if found is None:
            dest.unlink()
            return False
        return True


@dataclass(frozen=True)
class FetchedRun:
    """A Cloud run and where its artifacts were written (a name absent from ``files``: the run has none)."""

    run: CloudRun
    directory: Path
    files: tuple[str, ...]
    target: str | None


def resolve_run(client: DbtCloudClient) -> CloudRun:
    """The run ``--dbt-cloud-run`` names, or the latest completed run of ``--dbt-cloud-job``."""
    config = client.config
    if config.run_id is not None:
        run = client.run(config.run_id)
        if not run.is_complete:
            raise CloudError(
                f"dbt Cloud run {run.id} is not finished ({run.status_name}); wait for it, or use "
                "--dbt-cloud-job JOB_ID for the job's latest completed run"
            )
        return run
    assert config.job_id is not None
    return client.latest_completed_run(config.job_id)


def fetch(client: DbtCloudClient, run: CloudRun, directory: Path, want_target: bool = True) -> FetchedRun:
    """Write the run's artifacts (those it has) into ``directory``."""
    files = []
    for name in ARTIFACTS:
        if client.artifact(run.id, name, directory / name):
            files.append(name)
    target = None
    job = run.job_id if run.job_id is not None else client.config.job_id
    if want_target and job is not None:
        target = client.target_name(job)
    return FetchedRun(run, directory, tuple(files), target)


@contextmanager
def fetched(client: DbtCloudClient, run: CloudRun, want_target: bool = True) -> Iterator[FetchedRun]:
    """:func:`fetch` into a private temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dbt-prom-cloud-") as tmp:
        yield fetch(client, run, Path(tmp), want_target)


def run_from_artifacts(
    got: FetchedRun,
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions,
) -> FreshnessRun:
    """The :class:`FreshnessRun` of a fetched Cloud run, read as ``--no-run`` reads artifacts.

    - ``sources.json`` present: its results, whatever the run's status (a freshness step that
      found an error-stale source fails the run, and its results are exactly what to push);
      a failed run adds a warning.
    - absent, run succeeded, with a ``run_results.json`` of a build: the models only (a build
      job without a freshness step).
    - absent, run succeeded, no build either: the job has no freshness step, a usage problem
      (exit 2).
    - absent, run failed or cancelled: ``run_success`` 0 for the manifest's project (exit 3),
      with the builds its ``run_results.json`` reports.

    The model builds of the run's ``run_results.json`` come along in every case that has one.
    """
    from dbt_prom_bridge import api
    from dbt_prom_bridge.artifacts import read_manifest
    from dbt_prom_bridge.model import RunContext, failed_run

    run = got.run
    target = dbt.target or got.target or None
    local = replace(dbt, target=target) if target else dbt
    cloud_art = replace(
        art,
        no_run=True,
        artifacts_dir=got.directory,
        sources_json=None,
        manifest=None,
        run_results=got.directory / "run_results.json" if "run_results.json" in got.files else None,
        run_results_found=True,
    )
    where = f"dbt Cloud run {run.id}"
    models: FreshnessRun | None = None
    if "sources.json" not in got.files and cloud_art.run_results is not None:
        try:
            models = api.collect(local, cloud_art, opts)
        except ArtifactError as exc:
            raise ArtifactError(str(exc).replace(str(got.directory), where)) from None
        if not models.models:
            models = None
        elif not run.failed:
            return models  # a build job: its models only
    if "sources.json" not in got.files:
        if not run.failed:
            raise CloudError(
                f"dbt Cloud run {run.id} has no sources.json: its job does not run `dbt source "
                "freshness` (tick 'Run source freshness' in the job, or add the step)"
            )
        project = models.project if models is not None else ""
        if not project and "manifest.json" in got.files:
            project = read_manifest(got.directory / "manifest.json").project_name or ""
        context = RunContext(target=target or "default", meta_labels=opts.meta_labels)
        failed = failed_run(
            context,
            project,
            f"dbt Cloud run {run.id} ended {run.status_name} before writing sources.json",
        )
        # run_success 0, and the builds the failed run did report
        if models is None:
            return failed
        return replace(failed, models=models.models, warnings=(*failed.warnings, *models.warnings))
    try:
        result = api.collect(local, cloud_art, opts)
    except ArtifactError as exc:
        message = str(exc).replace(str(got.directory / "sources.json"), f"the sources.json of {where}")
        raise ArtifactError(message.replace(str(got.directory), where)) from None
    notes: list[str] = []
    if run.failed:
        notes.append(f"dbt Cloud run {run.id} ended {run.status_name}; its sources.json results are pushed")
    if "manifest.json" not in got.files:
        notes.append(f"dbt Cloud run {run.id} has no manifest.json")
    warnings = tuple(w for w in result.warnings if not w.startswith("the dbt target is unknown"))
    return replace(result, warnings=(*warnings, *notes))


def collect(
    config: CloudConfig,
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    client: DbtCloudClient | None = None,
) -> tuple[CloudRun, FreshnessRun]:
    """Fetch the Cloud run the config names and build its :class:`FreshnessRun`."""
    run, freshness, _models = collect_all(config, dbt, art, opts, client)
    return run, freshness


def collect_all(
    config: CloudConfig,
    dbt: DbtOptions,
    art: ArtifactOptions,
    opts: RunOptions = RunOptions(),
    client: DbtCloudClient | None = None,
) -> tuple[CloudRun, FreshnessRun, ModelRun | None]:
    """:func:`collect`, plus the models of the run's ``run_results.json`` (None without one)."""
    from dbt_prom_bridge.model_artifacts import load_models_in

    client = client or DbtCloudClient(config)
    run = resolve_run(client)
    with fetched(client, run, want_target=dbt.target is None) as got:
        freshness = run_from_artifacts(got, dbt, art, opts)
        models = load_models_in(
            got.directory, freshness.target, project=freshness.project or None, meta_labels=opts.meta_labels
        )
    return run, freshness, models


class CloudRefresher:
    """``serve --dbt-cloud-job``: each call asks for the job's latest completed run and fetches
    its artifacts only when it is a run not seen before; the same run is never read twice."""

    def __init__(
        self,
        config: CloudConfig,
        dbt: DbtOptions,
        art: ArtifactOptions,
        opts: RunOptions,
        client: DbtCloudClient | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if config.job_id is None:
            raise UsageError("serve polls a job: give --dbt-cloud-job JOB_ID (not --dbt-cloud-run)")
        self.config, self.dbt, self.art, self.opts = config, dbt, art, opts
        self.client = client or DbtCloudClient(config)
        self.log = log or (lambda _line: None)
        self.run_id: int | None = None
        self._run: FreshnessRun | None = None
        #: How many runs were fetched (a test counts that a run is fetched once).
        self.fetches = 0
        self._hint: int | None = None

    def hint(self, run_id: int) -> None:
        """A webhook said run ``run_id`` of the job completed: the next call looks at it first."""
        self._hint = run_id

    def _latest(self) -> CloudRun:
        assert self.config.job_id is not None
        hinted, self._hint = self._hint, None
        if hinted is not None and hinted != self.run_id:
            run = self.client.run(hinted)
            if (
                run.is_complete
                and run.job_id == self.config.job_id
                and (self.run_id is None or run.id > self.run_id)
            ):
                return run
        return self.client.latest_completed_run(self.config.job_id)

    def __call__(self) -> FreshnessRun:
        from dbt_prom_bridge.artifacts import check_age

        latest = self._latest()
        if latest.id != self.run_id or self._run is None:
            with fetched(self.client, latest, want_target=self.dbt.target is None) as got:
                run = run_from_artifacts(got, self.dbt, replace(self.art, allow_stale=True), self.opts)
            self.fetches += 1
            self.run_id, self._run = latest.id, run
            for line in run.warnings:
                self.log(line)
            self.log(f"dbt Cloud job {self.config.job_id}: read run {latest.id} ({latest.status_name})")
        run = self._run
        if run.success and not self.art.allow_stale:
            where = f"the sources.json of dbt Cloud run {self.run_id}"
            check_age(run.generated_at, where, self.art.max_artifact_age, time.time())
        return run
