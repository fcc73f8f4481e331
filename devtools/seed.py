"""Seed the sample project's source tables with rows relative to the database's ``now()``.

Every table is created when missing and refilled, so seeding is idempotent and always gives the statuses in
``dbt_project/models/sources.yml`` (pass, warn, error, no data, runtime error...) however long
ago the last seeding was. ``--stale source.table`` rewrites one table so its newest row is older
than its ``error_after`` (the demo and the tests use it to watch a source go stale);
``--fresh`` puts every table back to its seeded state.

Connection: the ``DBT_PROM_PG_*`` variables the profile reads, else the instance that
``make pg-up`` started in ``.run/pg``::

    python -m devtools.seed                         # (re)seed everything
    python -m devtools.seed --stale finance.transactions
    python -m devtools.seed --fresh
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import pg


@dataclass(frozen=True)
class Table:
    """One source table: its DDL, how its rows are generated, and how old its newest row is."""

    source: str
    name: str
    schema: str
    identifier: str
    columns: str
    #: Select list over ``generate_series(0, rows - 1) as g``; ``{ts}`` is the row's load time.
    select: str
    #: Age of the newest row after a normal seeding; None leaves the table empty.
    fresh_age: dt.timedelta | None
    #: Age of the newest row after ``--stale`` (past the table's effective error_after).
    stale_age: dt.timedelta | None
    #: ``{ts}`` is a naive ``timestamp`` written in UTC instead of a ``timestamptz``.
    naive: bool = False
    rows: int = 30
    step: dt.timedelta = dt.timedelta(minutes=1)
    #: More rows whose times do not follow the table's age (e.g. heartbeats).
    extra: str | None = None
    #: What dbt reports after a normal seeding (documentation; the tests assert their own).
    expected: str = "pass"
    #: Instead of ``fresh_age``: the newest row is this old counted on :data:`PARTNER_CALENDAR`
    #: (the data's clock is moved back across at least one of its nights or weekends).
    business_age: dt.timedelta | None = None

    @property
    def key(self) -> str:
        return f"{self.source}.{self.name}"

    @property
    def relation(self) -> str:
        return f'"{self.schema}"."{self.identifier}"'


MIN, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
#: The business calendar of partners.invoices (dbt_project/models/calendar_sources.yml).
PARTNER_CALENDAR = {
    "timezone": "America/New_York",
    "days": "mon-fri",
    "hours": "08:00-18:00",
    "holidays": "US",
}


def real_age(business_age: dt.timedelta, now: float | None = None) -> dt.timedelta:
    """How long ago, in real time, :data:`PARTNER_CALENDAR` had run for ``business_age`` until now."""
    import time

    from dbt_prom_bridge.calendar import calendar_age, parse_calendar

    calendar = parse_calendar(PARTNER_CALENDAR, "partners.invoices")
    now = time.time() if now is None else now
    # Walk back a day at a time, then bisect: the calendar age since t shrinks as t grows.

    target = business_age.total_seconds()
    lo = now - DAY.total_seconds()
    while calendar_age(calendar, lo, now) < target:
        lo -= DAY.total_seconds()
    hi = now
    while hi - lo > 1:
        mid = (lo + hi) / 2
        if calendar_age(calendar, mid, now) >= target:
            lo = mid
        else:
            hi = mid
    return dt.timedelta(seconds=round(now - lo))


TABLES: tuple[Table, ...] = (
    Table(
        "finance",
        "transactions",
        "raw_finance",
        "transactions",
        "id bigint primary key, amount_cents bigint not null, currency text not null, "
        "_loaded_at timestamptz not null",
        "g + 1, 1000 + (g * 7919) % 90000, (array['EUR','USD','GBP'])[g % 3 + 1], {ts}",
        fresh_age=HOUR,
        stale_age=6 * DAY,
    ),
    Table(
        "finance",
        "transaction_labels",
        "raw_finance",
        "transaction_labels",
        "transaction_id bigint not null, label text not null, _loaded_at timestamptz not null",
        "g + 1, (array['legit','fraud','chargeback'])[g % 3 + 1], {ts}",
        fresh_age=3 * DAY,
        stale_age=6 * DAY,
        expected="warn",
    ),
    Table(
        "finance",
        "ml_features",
        "raw_finance",
        "ml_feature_store",
        "entity_id bigint not null, features jsonb not null, _loaded_at timestamptz not null",
        "g + 1, jsonb_build_object('score', g / 30.0), {ts}",
        fresh_age=6 * DAY,
        stale_age=9 * DAY,
        expected="error",
    ),
    Table(
        "events",
        "page_views",
        "raw_events",
        "page_views",
        "id bigint primary key, url text not null, viewed_at timestamp not null",
        "g + 1, '/products/' || (g % 7), {ts}",
        fresh_age=10 * MIN,
        stale_age=7 * HOUR,
        naive=True,
    ),
    Table(
        "events",
        "consumer_offsets",
        "raw_events",
        "kafka_consumer_offsets",
        'partition integer not null, "offset" bigint not null, committed_at timestamptz not null',
        "g % 6, 1000000 + g * 250, {ts}",
        fresh_age=2 * MIN,
        stale_age=7 * HOUR,
    ),
    Table(
        "events",
        "app_events",
        "raw_events",
        "app_events",
        "id bigint primary key, event_type text not null, received_at timestamptz not null",
        "g + 1, (array['screen_view','tap','purchase'])[g % 3 + 1], {ts}",
        fresh_age=30 * MIN,
        stale_age=7 * HOUR,
        # Heartbeats keep arriving while the pipeline is stuck: the source's filter ignores them.
        extra="insert into {rel} (id, event_type, received_at) "
        "select 100000 + g, 'heartbeat', now() - g * interval '1 minute' from generate_series(0, 29) as g",
    ),
    Table(
        "events",
        "clicks",
        "raw_events",
        "clicks",
        "id bigint primary key, ad_id integer not null, received_at timestamptz not null",
        "g + 1, g % 11, {ts}",
        fresh_age=20 * MIN,
        stale_age=45 * MIN,
        step=dt.timedelta(seconds=10),
        expected="warn",
    ),
    Table(
        "orders",
        "orders",
        "raw_orders",
        "orders",
        "id bigint primary key, customer_id bigint not null, total_cents bigint not null, "
        "ordered_at timestamptz not null, _synced_at timestamptz not null",
        "g + 1, 1 + g % 9, 2500 + (g * 613) % 40000, {ts} - interval '5 minutes', {ts}",
        fresh_age=30 * MIN,
        stale_age=30 * HOUR,
    ),
    Table(
        "orders",
        "order_items",
        "raw_orders",
        "order_items",
        "order_id bigint not null, sku text not null, quantity integer not null, "
        "_synced_at timestamptz not null",
        "g / 3 + 1, 'SKU-' || (g % 17), 1 + g % 4, {ts}",
        fresh_age=None,
        stale_age=30 * HOUR,
        expected="error",
    ),
    Table(
        "orders",
        "refunds",
        "raw_orders",
        "refunds",
        # No refunded_at_utc column: the source's loaded_at_field, so dbt's query fails.
        "id bigint primary key, order_id bigint not null, amount_cents bigint not null, "
        "refunded_at timestamptz not null, _synced_at timestamptz not null",
        "g + 1, g * 3 + 1, 500 + g * 10, {ts}, {ts}",
        fresh_age=HOUR,
        stale_age=30 * HOUR,
        expected="runtime_error",
    ),
    Table(
        "orders",
        "customers_archive",
        "raw_orders",
        "customers_archive",
        "id bigint primary key, name text not null, archived_at timestamptz not null",
        "g + 1, 'customer ' || (g + 1), {ts}",
        fresh_age=400 * DAY,
        stale_age=None,
        expected="absent",
    ),
    Table(
        "partners",
        "invoices",
        "raw_partners",
        "invoices",
        "id bigint primary key, amount_cents bigint not null, _loaded_at timestamptz not null",
        "g + 1, 10000 + g * 37, {ts}",
        fresh_age=None,
        stale_age=30 * DAY,
        business_age=12 * HOUR,
        expected="error",
    ),
    Table(
        "partners",
        "shipments",
        "raw_partners",
        "shipments",
        "id bigint primary key, carrier text not null, _loaded_at timestamptz not null",
        "g + 1, (array['ups','fedex','dhl'])[g % 3 + 1], {ts}",
        fresh_age=None,
        stale_age=30 * DAY,
        business_age=12 * HOUR,
        expected="error",
    ),
)
BY_KEY: Mapping[str, Table] = {t.key: t for t in TABLES}


class SeedError(RuntimeError):
    """A bad ``source.table`` name or an unreachable database."""


def table(key: str) -> Table:
    found = BY_KEY.get(key)
    if found is None:
        raise SeedError(f"unknown source table {key!r}; one of: {', '.join(BY_KEY)}")
    return found


def connect(env: Mapping[str, str] | None = None) -> Any:
    """A psycopg2 connection from ``DBT_PROM_PG_*`` settings; creates the database when missing."""
    import psycopg2  # type: ignore[import-untyped]

    settings = dict(pg.connection_env() if env is None else env)
    kwargs: dict[str, Any] = {
        "host": settings.get("DBT_PROM_PG_HOST", "localhost"),
        "port": int(settings.get("DBT_PROM_PG_PORT", "5432")),
        "user": settings.get("DBT_PROM_PG_USER", pg.SUPERUSER),
        "password": settings.get("DBT_PROM_PG_PASSWORD", ""),
        "connect_timeout": 10,
    }
    dbname = settings.get("DBT_PROM_PG_DBNAME", pg.DEFAULT_DB)
    try:
        return psycopg2.connect(dbname=dbname, **kwargs)
    except psycopg2.OperationalError as exc:
        if f'database "{dbname}" does not exist' not in str(exc):
            raise SeedError(
                f"cannot connect to PostgreSQL at {kwargs['host']}:{kwargs['port']}: {exc}"
            ) from None
    admin = psycopg2.connect(dbname="postgres", **kwargs)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'create database "{dbname}"')
    finally:
        admin.close()
    return psycopg2.connect(dbname=dbname, **kwargs)


def _load_sql(t: Table, age: dt.timedelta | None) -> list[tuple[str, dict[str, Any]]]:
    statements: list[tuple[str, dict[str, Any]]] = [
        (f'create schema if not exists "{t.schema}"', {}),
        # Truncate rather than drop: the project's models are views over these tables.
        (f"create table if not exists {t.relation} ({t.columns})", {}),
        (f"truncate table {t.relation}", {}),
    ]
    if age is not None:
        now = "(now() at time zone 'utc')" if t.naive else "now()"
        ts = f"({now} - %(age)s - g * %(step)s)"
        statements.append(
            (
                f"insert into {t.relation} select {t.select.replace('%', '%%').format(ts=ts)} "  # noqa: S608
                "from generate_series(0, %(rows)s - 1) as g",
                {"age": age, "step": t.step, "rows": t.rows},
            )
        )
    if t.extra:
        statements.append((t.extra.format(rel=t.relation), {}))
    return statements


def load(conn: Any, tables: Iterable[Table], stale: Iterable[str] = ()) -> None:
    """(Re)create ``tables`` in one transaction; those named in ``stale`` get their stale age."""
    stale_keys = set(stale)
    with conn, conn.cursor() as cur:
        for t in tables:
            age = t.stale_age if t.key in stale_keys else t.fresh_age
            if t.key not in stale_keys and t.business_age is not None:
                age = real_age(t.business_age)
            for sql, params in _load_sql(t, age):
                cur.execute(sql, params or None)


def seed(conn: Any, stale: Sequence[str] = ()) -> None:
    """Seed every table; the ones in ``stale`` past their error_after."""
    for key in stale:
        _check_can_be_stale(table(key))
    load(conn, TABLES, stale)


def _check_can_be_stale(t: Table) -> None:
    if t.stale_age is None:
        raise SeedError(f"{t.key} has no freshness configured, so it cannot be made stale")


def make_stale(conn: Any, keys: Sequence[str]) -> None:
    """Make the named tables stale, leaving the others as they are (seeding first if needed)."""
    chosen = [table(k) for k in keys]
    for t in chosen:
        _check_can_be_stale(t)
    if not seeded(conn):
        load(conn, [t for t in TABLES if t.key not in keys])
    load(conn, chosen, keys)


def seeded(conn: Any) -> bool:
    """True when every table exists."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from information_schema.tables "
            "where table_schema || '.' || table_name = any(%s)",
            ([f"{t.schema}.{t.identifier}" for t in TABLES],),
        )
        row = cur.fetchone()
    return bool(row and row[0] == len(TABLES))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stale",
        action="append",
        default=[],
        metavar="SOURCE.TABLE",
        help="make this source table stale (past its error_after); repeatable",
    )
    parser.add_argument("--fresh", action="store_true", help="reset every table to its seeded state")
    parser.add_argument(
        "--pg-dir",
        type=Path,
        default=pg.DEFAULT_DIR,
        help="embedded server used when DBT_PROM_PG_* are unset",
    )
    args = parser.parse_args(argv)
    import psycopg2

    try:
        conn = connect(pg.connection_env(args.pg_dir))
        try:
            if args.stale and not args.fresh:
                make_stale(conn, args.stale)
                print(f"seed: made stale: {', '.join(args.stale)}", file=sys.stderr)
            else:
                seed(conn, args.stale)
                print(f"seed: seeded {len(TABLES)} source tables relative to now()", file=sys.stderr)
        finally:
            conn.close()
    except (SeedError, psycopg2.Error) as exc:
        print(f"seed: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
