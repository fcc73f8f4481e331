"""Fixtures for tests that run real dbt against a real (embedded) PostgreSQL.

- ``postgres`` (session): an embedded PostgreSQL in its own temporary directory, on a unix
  socket and a free 127.0.0.1 port; stopped and deleted at the end of the session.
- ``dbt_project_env`` (session): a private copy of ``dbt_project/`` (so ``target/`` never
  collides with another session or the developer's own runs), its database seeded, and the
  ``DBT_PROM_PG_*`` variables its profile reads set in ``os.environ`` for in-process dbt runs.
- ``sample_project`` (function): ``dbt_project_env`` re-seeded to the documented statuses, with
  PostgreSQL running (a test that stopped it gets it back).

Registered from tests/conftest.py through ``pytest_plugins``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from dbt_prom_bridge.config import DbtOptions
from devtools import pg, seed

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PROJECT = ROOT / "dbt_project"
DBT_PROM = Path(sys.executable).parent / "dbt-prom"
PROJECT = "dbt_prom_demo"
TARGET = "dev"


def _dbt_minor() -> tuple[int, int]:
    """dbt-core's (major, minor) from the package metadata (the test session's dbt; no import)."""
    try:
        version = importlib.metadata.version("dbt-core")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0"
    major, minor, *_ = version.split(".")
    return int(major), int(minor)


#: The installed dbt-core (``make test`` pins 1.11; ``make test-compat`` runs 1.8 to 1.12).
DBT_MINOR = _dbt_minor()
#: dbt >= 1.10 reads ``models/`` (source ``config:`` blocks, ``loaded_at_query``); older dbt reads
#: the same sources in the old form from ``models_before_1_10/`` (see dbt_project.yml).
MODERN_DBT = DBT_MINOR >= (1, 10)
SOURCES_YML = "models/sources.yml" if MODERN_DBT else "models_before_1_10/sources.yml"
#: The sources only dbt >= 1.10 can check (``loaded_at_query`` instead of a column).
ONLY_MODERN_DBT: tuple[str, ...] = ("events.consumer_offsets",)
_ALL_STATUSES: Mapping[str, str] = {
    "finance.transactions": "pass",
    "finance.transaction_labels": "warn",
    "finance.ml_features": "error",
    "events.page_views": "pass",
    "events.consumer_offsets": "pass",
    "events.app_events": "pass",
    "events.clicks": "warn",
    "orders.orders": "pass",
    "orders.order_items": "error",
    "orders.refunds": "runtime_error",
    # dbt's own status; by its business calendar partners.invoices passes (summary, status, alerts)
    "partners.invoices": "error",
    "partners.shipments": "error",
}
#: What ``dbt source freshness`` reports for each source after seeding (the preamble's table), on
#: the installed dbt.
EXPECTED_STATUS: Mapping[str, str] = {
    k: v for k, v in _ALL_STATUSES.items() if MODERN_DBT or k not in ONLY_MODERN_DBT
}


def status_counts(statuses: Mapping[str, str]) -> dict[str, float]:
    """``{status: n}`` as ``dbt_source_freshness_sources`` reports it (every status present)."""
    out = dict.fromkeys(("pass", "warn", "error", "runtime_error", "not_run"), 0.0)
    for status in statuses.values():
        out[status] += 1
    return out


#: The calendar verdict where it differs from dbt's status.
CALENDAR_VERDICT: Mapping[str, str] = {"partners.invoices": "pass"}
#: Sources with no freshness configured: never checked, never in the metrics.
NO_FRESHNESS: tuple[str, ...] = ("orders.customers_archive",)


@dataclass
class DbtProjectEnv:
    """A seeded copy of the sample project and how to reach its database."""

    project_dir: Path
    profiles_dir: Path
    env: dict[str, str]
    postgres: pg.Postgres
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def target_dir(self) -> Path:
        return self.project_dir / "target"

    @property
    def sources_json(self) -> Path:
        return self.target_dir / "sources.json"

    @property
    def manifest_json(self) -> Path:
        return self.target_dir / "manifest.json"

    def options(self, **overrides: object) -> DbtOptions:
        """:class:`DbtOptions` for this project (``select=(...)`` etc. as overrides)."""
        base = DbtOptions(project_dir=self.project_dir, profiles_dir=self.profiles_dir)
        return replace(base, **overrides)  # type: ignore[arg-type]

    def cli_args(self) -> list[str]:
        """``--project-dir``/``--profiles-dir`` for ``dbt-prom`` or ``dbt``."""
        return ["--project-dir", str(self.project_dir), "--profiles-dir", str(self.profiles_dir)]

    def subprocess_env(self, **more: str) -> dict[str, str]:
        """The environment for a ``dbt``/``dbt-prom`` subprocess against this database."""
        out = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_PROM_", "DBT_"))}
        out.update(self.env)
        out.update(more)
        return out

    def connect(self) -> object:
        return seed.connect(self.env)

    def seed(self) -> None:
        """Reset every source table to its seeded state (relative to now)."""
        conn = seed.connect(self.env)
        try:
            seed.seed(conn)
        finally:
            conn.close()

    def make_stale(self, *keys: str) -> None:
        """Make these ``source.table``s older than their error_after."""
        conn = seed.connect(self.env)
        try:
            seed.make_stale(conn, list(keys))
        finally:
            conn.close()

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real ``dbt`` CLI (a subprocess) on this project."""
        dbt_bin = Path(sys.executable).parent / "dbt"
        return subprocess.run(
            [str(dbt_bin), *args, *self.cli_args()],
            env=self.subprocess_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )


def copy_project(dest: Path) -> Path:
    """A copy of ``dbt_project/`` without its run state (target/, logs/)."""
    shutil.copytree(
        SAMPLE_PROJECT,
        dest,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__"),
    )
    return dest


@contextlib.contextmanager
def started_postgres() -> Iterator[pg.Postgres]:
    """A throwaway embedded PostgreSQL (in /tmp, which the server's OS user can enter)."""
    base = Path(tempfile.mkdtemp(prefix="dbt-prom-pg-"))
    server = pg.instance(base)
    try:
        server.start()
        server.create_database(pg.DEFAULT_DB)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Postgres]:
    """The session's PostgreSQL (``.env()`` gives the profile's ``DBT_PROM_PG_*`` variables)."""
    try:
        with started_postgres() as server:
            yield server
    except pg.PgError as exc:
        pytest.fail(f"embedded PostgreSQL could not start: {exc}")


def _set_env(values: Mapping[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return old


def _restore_env(old: Mapping[str, str | None]) -> None:
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def dbt_project_env(
    postgres: pg.Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtProjectEnv]:
    """A seeded private copy of the sample project; ``DBT_PROM_PG_*`` set for in-process dbt."""
    project = copy_project(tmp_path_factory.mktemp("dbt") / "dbt_project")
    env = postgres.env()
    old = _set_env(env)
    project_env = DbtProjectEnv(project_dir=project, profiles_dir=project, env=env, postgres=postgres)
    project_env.seed()
    try:
        yield project_env
    finally:
        _restore_env(old)


@pytest.fixture
def sample_project(dbt_project_env: DbtProjectEnv) -> DbtProjectEnv:
    """The session's sample project with PostgreSQL up and every table freshly seeded."""
    if not dbt_project_env.postgres.running():
        dbt_project_env.postgres.start()
    os.environ.update(dbt_project_env.env)
    dbt_project_env.seed()
    # The bridge's own state of earlier tests' pushes (spilled runs, the gateway state it keeps):
    # each test starts from an empty gateway (the pushgateway fixture) and no local state.
    shutil.rmtree(dbt_project_env.target_dir / "dbt-prom-spill", ignore_errors=True)
    return dbt_project_env


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dbt-prom ARGS`` in this process: (exit code, stdout, stderr), as the console script maps them."""
    from dbt_prom_bridge.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@dataclass(frozen=True)
class GatewayView:
    """What a Pushgateway serves on /metrics for one job, keyed for assertions."""

    samples: tuple[tuple[str, dict[str, str], float], ...]

    def of(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for n, labels, value in self.samples if n == name]

    def per_source(self, name: str) -> dict[str, float]:
        """``{"source.table": value}`` of a per-source family (not the status state set)."""
        return {f"{lb['source_name']}.{lb['table_name']}": v for lb, v in self.of(name)}

    def statuses(self) -> dict[str, str]:
        """``{"source.table": status}`` from the state set (the member whose value is 1)."""
        out: dict[str, str] = {}
        for labels, value in self.of("dbt_source_freshness_status"):
            if value == 1:
                key = f"{labels['source_name']}.{labels['table_name']}"
                assert key not in out, f"two current states for {key}"
                out[key] = labels["status"]
        return out

    def labels(self, source: str) -> dict[str, str]:
        """The labels of a source's series (its current state), without the Pushgateway's own."""
        for labels, value in self.of("dbt_source_freshness_status"):
            if value == 1 and f"{labels['source_name']}.{labels['table_name']}" == source:
                return {k: v for k, v in labels.items() if k not in ("job", "instance", "status")}
        raise KeyError(source)

    def run_value(self, name: str) -> float | None:
        values = [v for _, v in self.of(name)]
        assert len(values) <= 1, f"{name}: {values}"
        return values[0] if values else None

    def counts(self) -> dict[str, float]:
        return {lb["status"]: v for lb, v in self.of("dbt_source_freshness_sources")}


def read_gateway(url: str, job: str = "dbt_source_freshness") -> GatewayView:
    """Scrape ``url``/metrics (as Prometheus would) and keep the samples pushed under ``job``."""
    from tests.conftest import scrape

    return GatewayView(tuple(s for s in scrape(url + "/metrics") if s[1].get("job") == job))
