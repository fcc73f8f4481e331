"""The DuckDB sample project (tests/duckdb/project): its warehouse file, seeded relative to now.

Every case of the PostgreSQL sample project, on another adapter: timestamptz and naive
``timestamp`` columns, a ``filter``, a ``loaded_at_query``, an empty table, a missing column.
:func:`seed` returns the newest load time of each source that has data, as the tests expect dbt
(and the bridge) to report it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent / "project"
PROJECT = "dbt_prom_duckdb"
TARGET = "dev"
#: dbt-duckdb names the database after the file's stem.
DATABASE = "warehouse"

#: What ``dbt source freshness`` reports for each source after seeding.
EXPECTED_STATUS: Mapping[str, str] = {
    "shop.payments": "pass",
    "shop.payment_labels": "warn",
    "shop.features": "error",
    "events.page_views": "pass",
    "events.consumer_offsets": "pass",
    "events.app_events": "pass",
    "events.clicks": "warn",
    "orders.order_items": "error",
    "orders.refunds": "runtime_error",
}
NO_FRESHNESS: tuple[str, ...] = ("orders.archive",)
#: Effective thresholds (seconds) after inheritance and the clicks override.
THRESHOLDS: Mapping[str, tuple[float, float]] = {
    **dict.fromkeys(("shop.payments", "shop.payment_labels", "shop.features"), (2 * 86400.0, 5 * 86400.0)),
    **dict.fromkeys(("events.page_views", "events.consumer_offsets", "events.app_events"), (3600.0, 21600.0)),
    "events.clicks": (900.0, 1800.0),
    **dict.fromkeys(("orders.order_items", "orders.refunds"), (43200.0, 86400.0)),
}
IDENTIFIERS = {"shop.features": "feature_store"}
OWNERS = {"shop": "shop-data", "events": "platform-data", "orders": "commerce-data"}


@dataclass(frozen=True)
class Table:
    key: str  # source.table
    relation: str  # schema.identifier
    column: str
    column_type: str  # timestamptz | timestamp (naive, written in UTC)
    age: dt.timedelta | None  # newest row's age; None: the table stays empty
    stale_age: dt.timedelta = dt.timedelta(days=7)


MIN, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
TABLES: tuple[Table, ...] = (
    Table("shop.payments", "raw_shop.payments", "loaded_at", "timestamptz", 2 * HOUR),
    Table("shop.payment_labels", "raw_shop.payment_labels", "loaded_at", "timestamptz", 3 * DAY),
    Table("shop.features", "raw_shop.feature_store", "loaded_at", "timestamptz", 6 * DAY),
    Table("events.page_views", "raw_events.page_views", "viewed_at", "timestamp", 10 * MIN),
    Table("events.consumer_offsets", "raw_events.consumer_offsets", "committed_at", "timestamptz", 5 * MIN),
    Table("events.app_events", "raw_events.app_events", "received_at", "timestamptz", 30 * MIN),
    Table("events.clicks", "raw_events.clicks", "received_at", "timestamptz", 20 * MIN),
    Table("orders.order_items", "raw_orders.order_items", "synced_at", "timestamptz", None),
    # the source's loaded_at_field is refunded_at_utc: this column name makes the query fail
    Table("orders.refunds", "raw_orders.refunds", "refunded_at", "timestamptz", HOUR),
    Table("orders.archive", "raw_orders.archive", "synced_at", "timestamptz", 400 * DAY),
)
#: Heartbeats arrive even when the pipeline is stuck; the source's filter ignores them.
HEARTBEAT_AGE = MIN


def copy_project(dest: Path) -> Path:
    shutil.copytree(PROJECT_DIR, dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    return dest


def seed(path: Path, stale: Sequence[str] = (), now: dt.datetime | None = None) -> dict[str, float]:
    """(Re)create every source table in the DuckDB file ``path``; the newest load time (epoch
    seconds) of each source with data. ``stale`` sources get rows a week old."""
    import duckdb

    now = now or dt.datetime.now(dt.timezone.utc)
    newest: dict[str, float] = {}
    conn = duckdb.connect(str(path))
    try:
        for table in TABLES:
            schema = table.relation.split(".")[0]
            conn.execute(f"create schema if not exists {schema}")
            conn.execute(f"drop table if exists {table.relation}")
            extra = ", event_type varchar" if table.key == "events.app_events" else ""
            conn.execute(
                f"create table {table.relation} (id integer, {table.column} {table.column_type}{extra})"
            )
            if table.age is None:
                continue
            age = table.stale_age if table.key in stale else table.age
            times = [now - age - i * HOUR for i in range(3)]
            rows: list[tuple[object, ...]] = []
            for i, at in enumerate(times):
                value = at.replace(tzinfo=None) if table.column_type == "timestamp" else at
                rows.append((i, value, "click") if extra else (i, value))
            if extra:
                rows.append((99, now - HEARTBEAT_AGE, "heartbeat"))
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"insert into {table.relation} values ({marks})", rows)
            if table.key in EXPECTED_STATUS and table.key != "orders.refunds":
                newest[table.key] = max(times).timestamp()
    finally:
        conn.close()
    return newest
