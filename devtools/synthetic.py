"""Synthetic dbt artifacts: a ``manifest.json`` and a ``sources.json`` with N sources.

Benchmarks (``make bench``) and scale tests need artifacts far bigger than the sample project,
in the shapes real projects have, without running dbt on 100,000 tables. Documents follow what
dbt-core 1.11 writes (``manifest/v12``, ``sources/v3``), node for node:

- several source groups per project, 1 to ~200 tables each, in a few databases; ~10% of the
  sources come from installed packages (``source.<package>.<source>.<table>``);
- thresholds at source level, table overrides (some only ``warn_after``, inheriting the source's
  ``error_after``), groups without freshness, tables with ``freshness: null``;
- statuses pass / warn / error, "no data" (dbt's year-1 sentinel), naive-timestamp sources whose
  age is negative, and runtime errors, which dbt 1.8-1.12 leaves out of sources.json (so the
  bridge reports them ``not_run``; ``runtime_errors_in_artifact=True`` writes them as Fusion and
  older dbt do);
- ``filter`` and ``loaded_at_query`` sources, ``meta`` owners/teams at source level with table
  overrides, runbook URLs, non-string meta values, documented columns, models depending on the
  sources, macros, parent/child maps (the bulk a real manifest carries besides sources);
- ``hostile=True`` adds label values with quotes, backslashes, newlines, ``/`` and unicode.

Everything is drawn from ``random.Random(seed)``, so the output is identical for the same
arguments (pass ``now`` too: it anchors every timestamp; the default is the current second).

>>> manifest, sources = generate(1000, seed=1)
>>> write(Path("target"), 100_000)  # streams to disk; memory stays small
"""

# Seeded, non-cryptographic randomness and SQL text that is only ever written into JSON, never run:
# ruff: noqa: S311, S608
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DBT_VERSION = "1.11.16"
MANIFEST_SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"
SOURCES_SCHEMA = "https://schemas.getdbt.com/dbt/sources/v3.json"
DEFAULT_PROJECT = "synthetic_platform"
#: Installed packages that bring their own sources (as Fivetran/Segment packages do).
PACKAGES: tuple[str, ...] = ("stripe_source", "segment_source", "hubspot_source")
#: dbt-postgres ships ~480 macros; every real manifest carries them whatever its size.
MACRO_COUNT = 480

_DOMAINS = (
    "finance",
    "events",
    "orders",
    "marketing",
    "crm",
    "billing",
    "logistics",
    "inventory",
    "product",
    "support",
    "ads",
    "payments",
    "identity",
    "search",
    "risk",
    "hr",
)
_SYSTEMS = ("postgres", "kafka", "s3", "salesforce", "mysql", "api", "sftp", "bigquery_export")
_NOUNS = (
    "transactions",
    "accounts",
    "users",
    "sessions",
    "page_views",
    "clicks",
    "orders",
    "order_items",
    "refunds",
    "invoices",
    "payments",
    "shipments",
    "products",
    "prices",
    "campaigns",
    "impressions",
    "tickets",
    "messages",
    "devices",
    "features",
    "labels",
    "ledger_entries",
    "subscriptions",
    "events",
    "consumer_offsets",
    "audit_log",
    "balances",
    "customers",
)
_SUFFIXES = ("", "_v2", "_daily", "_hourly", "_raw", "_snapshot", "_history", "_cdc")
#: (warn_after, error_after) presets at source level; None = not set at that level.
_SOURCE_THRESHOLDS: tuple[tuple[tuple[int, str] | None, tuple[int, str] | None], ...] = (
    ((12, "hour"), (24, "hour")),
    ((1, "hour"), (6, "hour")),
    ((2, "day"), (5, "day")),
    ((30, "minute"), (2, "hour")),
    ((6, "hour"), (1, "day")),
    ((1, "day"), None),
    (None, (12, "hour")),
)
_TABLE_OVERRIDES: tuple[tuple[tuple[int, str] | None, tuple[int, str] | None], ...] = (
    ((15, "minute"), (30, "minute")),
    ((3, "hour"), None),
    ((7, "day"), (14, "day")),
    ((45, "minute"), (90, "minute")),
)
_HOSTILE = (
    'Team "Data" \\ Ops',
    "night\nshift",
    "données/日本語",
    "back\\slash\\",
    "a/b/c",
    "",
    'quote"and\\n literal',
    "emoji 🚀 ✓",
)
_PERIOD = {"minute": 60, "hour": 3600, "day": 86400}
_SENTINEL = "0001-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Shape:
    """Shares of each case among sources that have freshness configured (the rest pass)."""

    warn: float = 0.08
    error: float = 0.06
    no_data: float = 0.02
    runtime_error: float = 0.02
    #: naive timestamp written in local time: a negative age, status pass
    negative_age: float = 0.005
    #: tables with ``freshness: null``; groups without any freshness come on top
    no_freshness: float = 0.03
    table_override: float = 0.10
    package_sources: float = 0.10


@dataclass(frozen=True, slots=True)
class _Table:
    """Everything about one synthetic source table that both documents need."""

    unique_id: str
    package: str
    source_name: str
    table_name: str
    database: str
    schema: str
    identifier: str
    warn: tuple[int, str] | None
    error: tuple[int, str] | None
    has_freshness: bool
    #: pass | warn | error | no_data | runtime_error | negative_age (None without freshness)
    case: str | None
    filter: str | None
    loaded_at_field: str | None
    loaded_at_query: str | None
    source_meta: tuple[tuple[str, Any], ...]
    table_meta: tuple[tuple[str, Any], ...]
    columns: tuple[tuple[str, str], ...]
    description: str
    #: seconds between the newest row and the snapshot (drawn for the status)
    age: float
    duration: float


def _threshold(spec: tuple[int, str] | None) -> dict[str, Any]:
    if spec is None:
        return {"count": None, "period": None}
    return {"count": spec[0], "period": spec[1]}


def _seconds(spec: tuple[int, str] | None) -> float | None:
    return None if spec is None else float(spec[0] * _PERIOD[spec[1]])


def _iso_z(epoch: float) -> str:
    """``generated_at`` style: microseconds and ``Z``."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_offset(epoch: float) -> str:
    """``max_loaded_at``/``snapshotted_at`` style: ``+00:00``, fraction dropped when zero."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def _age_for(case: str, warn: float | None, error: float | None, rng: random.Random) -> float:
    """An age that makes dbt produce ``case`` given the effective thresholds."""
    low = min(x for x in (warn, error) if x is not None)
    if case == "pass":
        return rng.uniform(0.02, 0.9) * low
    if case == "negative_age":
        return -rng.choice((3600.0, 7200.0, 18000.0)) + rng.uniform(0, 600)
    if case == "warn" and warn is not None and (error is None or error > warn):
        top = error if error is not None else warn * 4
        return warn + rng.uniform(0.05, 0.95) * (top - warn)
    # error (or a warn that cannot happen with these thresholds: make it an error)
    stop = error if error is not None else warn
    assert stop is not None
    return stop * rng.uniform(1.1, 6.0)


def _status_of(age: float, warn: float | None, error: float | None) -> str:
    if error is not None and age >= error:
        return "error"
    if warn is not None and age >= warn:
        return "warn"
    return "pass"


class _Planner:
    """Draws the tables of one project, in manifest order."""

    def __init__(self, n: int, seed: int, project: str, shape: Shape, hostile: bool) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.project = project
        self.shape = shape
        self.hostile = hostile
        self.used: set[str] = set()

    def group_sizes(self) -> list[int]:
        """Tables per source group: mostly 5-60, a few very wide (200)."""
        sizes: list[int] = []
        left = self.n
        while left > 0:
            size = self.rng.choice((1, 3, 5, 8, 12, 20, 30, 45, 60, 60, 120, 200))
            size = min(size, left)
            sizes.append(size)
            left -= size
        return sizes

    def group_name(self, index: int) -> str:
        rng = self.rng
        base = f"{rng.choice(_DOMAINS)}_{rng.choice(_SYSTEMS)}"
        name = base if base not in self.used else f"{base}_{index}"
        self.used.add(name)
        return name

    def tables(self) -> Iterator[_Table]:
        rng, shape = self.rng, self.shape
        for gi, size in enumerate(self.group_sizes()):
            source_name = self.group_name(gi)
            domain = source_name.split("_", 1)[0]
            package = self.project if rng.random() >= shape.package_sources else rng.choice(PACKAGES)
            database = rng.choice(("raw", "raw", "analytics_raw", "ingest"))
            schema = f"raw_{source_name}"
            group_has_freshness = rng.random() < 0.9
            src_warn, src_err = rng.choice(_SOURCE_THRESHOLDS) if group_has_freshness else (None, None)
            owner: Any = f"{domain}-data"
            if self.hostile and gi % 3 == 0:
                owner = _HOSTILE[gi % len(_HOSTILE)]
            source_meta: tuple[tuple[str, Any], ...] = (("owner", owner), ("team", domain))
            if gi % 7 == 0:
                source_meta = (*source_meta, ("tier", rng.choice((1, 2, 3))))
            loader = rng.choice(("fivetran", "airbyte", "custom", ""))
            seen_tables: set[str] = set()
            for ti in range(size):
                yield self.table(
                    gi,
                    ti,
                    source_name,
                    package,
                    database,
                    schema,
                    (src_warn, src_err),
                    group_has_freshness,
                    source_meta,
                    seen_tables,
                    loader,
                )

    def table(
        self,
        gi: int,
        ti: int,
        source_name: str,
        package: str,
        database: str,
        schema: str,
        source_thresholds: tuple[tuple[int, str] | None, tuple[int, str] | None],
        group_has_freshness: bool,
        source_meta: tuple[tuple[str, Any], ...],
        seen: set[str],
        loader: str,
    ) -> _Table:
        rng, shape = self.rng, self.shape
        noun = rng.choice(_NOUNS) + rng.choice(_SUFFIXES)
        table_name = noun if noun not in seen else f"{noun}_{ti}"
        if self.hostile and ti % 11 == 5:
            table_name = f"{table_name}_é{ti}"
        seen.add(table_name)
        identifier = table_name
        roll = rng.random()
        if roll < 0.05:
            identifier = table_name.upper()
        elif roll < 0.10:
            identifier = f"tbl_{table_name}"
        elif self.hostile and roll < 0.14:
            identifier = f'{table_name}"q\\{ti}\n'
        src_warn, src_err = source_thresholds
        warn, error = src_warn, src_err
        if rng.random() < shape.table_override:
            o_warn, o_err = rng.choice(_TABLE_OVERRIDES)
            warn = o_warn
            error = o_err if o_err is not None else src_err
        has_freshness = (warn is not None or error is not None) and rng.random() >= shape.no_freshness
        if not has_freshness:
            warn = error = None
        case: str | None = None
        age = 0.0
        if has_freshness:
            r = rng.random()
            edges = (
                ("warn", shape.warn),
                ("error", shape.error),
                ("no_data", shape.no_data),
                ("runtime_error", shape.runtime_error),
                ("negative_age", shape.negative_age),
            )
            case = "pass"
            acc = 0.0
            for name, share in edges:
                acc += share
                if r < acc:
                    case = name
                    break
            w, e = _seconds(warn), _seconds(error)
            if case in ("pass", "warn", "error", "negative_age"):
                age = _age_for(case, w, e, rng)
                if case in ("warn", "error"):
                    case = _status_of(age, w, e)
        flt = "event_type != 'heartbeat'" if rng.random() < 0.05 else None
        loaded_at_query: str | None = None
        loaded_at_field: str | None = rng.choice(
            ("_loaded_at", "_fivetran_synced", "ingested_at", "updated_at")
        )
        if rng.random() < 0.03:
            loaded_at_query = f"select max(ingested_at) from {database}.{schema}.{identifier}_log"
            loaded_at_field = None
        meta: list[tuple[str, Any]] = []
        if rng.random() < 0.3:
            meta.append(("runbook_url", f"https://runbooks.example.com/{source_name}/{table_name}"))
        if rng.random() < 0.05:
            meta.append(("owner", f"{source_name.split('_', 1)[0]}-oncall"))
        if rng.random() < 0.04:
            meta.append(("pii", rng.random() < 0.5))
        if self.hostile and ti % 13 == 3:
            meta.append(("owner", _HOSTILE[(gi + ti) % len(_HOSTILE)]))
        columns: tuple[tuple[str, str], ...] = ()
        if rng.random() < 0.2:
            columns = tuple(
                (col, f"The {col.replace('_', ' ')} of the {table_name} record, as delivered by the loader.")
                for col in ("id", "created_at", "updated_at", "status", "amount")[: rng.randint(2, 5)]
            )
        description = (
            f"Raw {table_name.replace('_', ' ')} from {loader or 'an internal job'}, one row per change."
            if rng.random() < 0.5
            else ""
        )
        return _Table(
            unique_id=f"source.{package}.{source_name}.{table_name}",
            package=package,
            source_name=source_name,
            table_name=table_name,
            database=database,
            schema=schema,
            identifier=identifier,
            warn=warn,
            error=error,
            has_freshness=has_freshness,
            case=case,
            filter=flt,
            loaded_at_field=loaded_at_field,
            loaded_at_query=loaded_at_query,
            source_meta=source_meta,
            table_meta=tuple(meta),
            columns=columns,
            description=description,
            age=age,
            duration=round(rng.uniform(0.02, 2.5), 6),
        )


def _freshness(table: _Table) -> dict[str, Any] | None:
    if not table.has_freshness:
        return None
    return {
        "warn_after": _threshold(table.warn),
        "error_after": _threshold(table.error),
        "filter": table.filter,
    }


def _source_node(table: _Table, created_at: float) -> dict[str, Any]:
    """One ``manifest.sources`` entry, shaped like dbt-core 1.11's."""
    source_meta = dict(table.source_meta)
    meta = {**source_meta, **dict(table.table_meta)}
    freshness = _freshness(table)
    columns: dict[str, Any] = {
        name: {
            "name": name,
            "description": desc,
            "meta": {},
            "data_type": None,
            "constraints": [],
            "quote": None,
            "config": {"meta": {}, "tags": []},
            "tags": [],
            "granularity": None,
            "doc_blocks": [],
        }
        for name, desc in table.columns
    }
    fqn = [table.package, table.source_name, table.table_name]
    return {
        "database": table.database,
        "schema": table.schema,
        "name": table.table_name,
        "resource_type": "source",
        "package_name": table.package,
        "path": f"models/staging/{table.source_name}/_{table.source_name}__sources.yml",
        "original_file_path": f"models/staging/{table.source_name}/_{table.source_name}__sources.yml",
        "unique_id": table.unique_id,
        "fqn": fqn,
        "source_name": table.source_name,
        "source_description": f"Raw data loaded into {table.schema}.",
        "loader": "",
        "identifier": table.identifier,
        "quoting": {"database": None, "schema": None, "identifier": None, "column": None},
        "loaded_at_field": table.loaded_at_field,
        "loaded_at_query": table.loaded_at_query,
        "freshness": freshness,
        "external": None,
        "description": table.description,
        "columns": columns,
        "meta": meta,
        "source_meta": source_meta,
        "tags": [],
        "config": {
            "enabled": True,
            "event_time": None,
            "freshness": freshness,
            "loaded_at_field": table.loaded_at_field,
            "loaded_at_query": table.loaded_at_query,
            "meta": meta,
            "tags": [],
            "static_analysis": None,
        },
        "patch_path": None,
        "unrendered_config": {
            "freshness": freshness,
            "loaded_at_field": table.loaded_at_field,
            "loaded_at_query": table.loaded_at_query,
            "meta": meta,
            "tags": [],
        },
        "relation_name": f'"{table.database}"."{table.schema}"."{table.identifier}"',
        "created_at": created_at,
        "unrendered_database": table.database,
        "unrendered_schema": table.schema,
        "doc_blocks": [],
    }


def _result(table: _Table, snapshotted: float, rng: random.Random, thread: int) -> dict[str, Any] | None:
    """One ``sources.json`` result, or None when dbt leaves it out (no freshness, runtime error)."""
    if table.case is None:
        return None
    if table.case == "runtime_error":
        return None
    criteria = {
        "warn_after": _threshold(table.warn),
        "error_after": _threshold(table.error),
        "filter": table.filter,
    }
    w, e = _seconds(table.warn), _seconds(table.error)
    if table.case == "no_data":
        max_loaded_at = _SENTINEL
        ago = snapshotted + 62135596800.0
        status = "error" if e is not None else "warn"
    else:
        loaded = round(snapshotted - table.age, 6)
        max_loaded_at = _iso_offset(loaded)
        ago = round(snapshotted - loaded, 6)
        status = _status_of(ago, w, e)
    start = snapshotted - table.duration - 0.003
    return {
        "unique_id": table.unique_id,
        "max_loaded_at": max_loaded_at,
        "snapshotted_at": _iso_offset(snapshotted),
        "max_loaded_at_time_ago_in_s": ago,
        "status": status,
        "criteria": criteria,
        "adapter_response": {"_message": "SELECT 1", "code": "SELECT", "rows_affected": 1},
        "timing": [
            {"name": "compile", "started_at": _iso_z(start), "completed_at": _iso_z(start + 0.001)},
            {
                "name": "execute",
                "started_at": _iso_z(start + 0.002),
                "completed_at": _iso_z(start + 0.002 + table.duration),
            },
        ],
        "thread_id": f"Thread-{thread} (worker)",
        "execution_time": table.duration,
    }


def _runtime_error_result(table: _Table) -> dict[str, Any]:
    return {
        "unique_id": table.unique_id,
        "error": (
            f'Database Error in source {table.table_name} ({table.source_name})\n  column "'
            f'{table.loaded_at_field}" does not exist'
        ),
        "status": "runtime error",
    }


def _macro(index: int) -> tuple[str, dict[str, Any]]:
    package = ("dbt", "dbt_postgres", "dbt_utils")[index % 3]
    name = f"{'postgres__' if package == 'dbt_postgres' else ''}macro_{index:03d}"
    uid = f"macro.{package}.{name}"
    body = "\n".join(f"  {{% set part_{i} = adapter.dispatch('part_{i}')(relation) %}}" for i in range(12))
    return uid, {
        "name": name,
        "resource_type": "macro",
        "package_name": package,
        "path": f"macros/{name}.sql",
        "original_file_path": f"macros/{name}.sql",
        "unique_id": uid,
        "macro_sql": f"{{% macro {name}(relation) %}}\n{body}\n  {{{{ return(part_0) }}}}\n{{% endmacro %}}",
        "depends_on": {"macros": []},
        "description": "",
        "meta": {},
        "docs": {"show": True, "node_color": None},
        "patch_path": None,
        "arguments": [],
        "created_at": 1700000000.0 + index,
        "supported_languages": None,
    }


def _model(
    project: str, source_name: str, uids: Sequence[str], created_at: float
) -> tuple[str, dict[str, Any]]:
    name = f"stg_{source_name}"
    uid = f"model.{project}.{name}"
    sql = "\n".join(
        f"select * from {{{{ source('{source_name}', '{u.rsplit('.', 1)[1]}') }}}}" for u in uids[:3]
    )
    return uid, {
        "database": "analytics",
        "schema": "staging",
        "name": name,
        "resource_type": "model",
        "package_name": project,
        "path": f"staging/{name}.sql",
        "original_file_path": f"models/staging/{name}.sql",
        "unique_id": uid,
        "fqn": [project, "staging", name],
        "alias": name,
        "checksum": {"name": "sha256", "checksum": hashlib.sha256(uid.encode()).hexdigest()},
        "config": {"enabled": True, "materialized": "view", "tags": [], "meta": {}, "freshness": None},
        "tags": [],
        "description": "",
        "columns": {},
        "meta": {},
        "raw_code": sql,
        "language": "sql",
        "refs": [],
        "sources": [[source_name, u.rsplit(".", 1)[1]] for u in uids[:3]],
        "depends_on": {"macros": [], "nodes": list(uids[:3])},
        "relation_name": f'"analytics"."staging"."{name}"',
        "created_at": created_at,
        "access": "protected",
    }


@dataclass(frozen=True)
class _Plan:
    project: str
    now: float
    tables: tuple[_Table, ...]
    invocation_id: str
    manifest_invocation_id: str
    seed: int
    runtime_errors_in_artifact: bool


def _plan(
    n_sources: int,
    seed: int,
    project: str,
    now: float | None,
    shape: Shape,
    hostile: bool,
    runtime_errors_in_artifact: bool,
) -> _Plan:
    if n_sources < 0:
        raise ValueError("n_sources must be >= 0")
    planner = _Planner(n_sources, seed, project, shape, hostile)
    tables = tuple(planner.tables())
    anchor = float(int(time.time())) if now is None else float(now)
    rng = random.Random(seed + 1)
    return _Plan(
        project=project,
        now=anchor,
        tables=tables,
        invocation_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        manifest_invocation_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        seed=seed,
        runtime_errors_in_artifact=runtime_errors_in_artifact,
    )


def _manifest_metadata(plan: _Plan) -> dict[str, Any]:
    return {
        "dbt_schema_version": MANIFEST_SCHEMA,
        "dbt_version": DBT_VERSION,
        "generated_at": _iso_z(plan.now - 120.0),
        "invocation_id": plan.manifest_invocation_id,
        "invocation_started_at": _iso_z(plan.now - 125.0),
        "env": {},
        "project_name": plan.project,
        "project_id": uuid.UUID(int=plan.seed, version=4).hex,
        "user_id": None,
        "send_anonymous_usage_stats": False,
        "adapter_type": "postgres",
        "quoting": {"database": True, "schema": True, "identifier": True, "column": None},
        "run_started_at": _iso_offset(plan.now - 125.0),
    }


def _models(plan: _Plan) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    """One staging model per source group (depends on up to 3 of its tables)."""
    by_group: dict[str, list[str]] = {}
    for table in plan.tables:
        by_group.setdefault(table.source_name, []).append(table.unique_id)
    for index, (source_name, uids) in enumerate(by_group.items()):
        uid, node = _model(plan.project, source_name, uids, plan.now - 200.0 + index * 1e-3)
        yield uid, node, uids[:3]


def _sources_metadata(plan: _Plan) -> dict[str, Any]:
    return {
        "dbt_schema_version": SOURCES_SCHEMA,
        "dbt_version": DBT_VERSION,
        "generated_at": _iso_z(plan.now),
        "invocation_id": plan.invocation_id,
        "invocation_started_at": _iso_z(plan.now - _elapsed(plan) - 2.0),
        "env": {},
    }


def _elapsed(plan: _Plan) -> float:
    """Wall time of the synthetic run: dbt checks ~4 sources at a time (threads)."""
    return round(sum(t.duration for t in plan.tables if t.case is not None) / 4 + 1.5, 6)


def _results(plan: _Plan) -> Iterator[dict[str, Any]]:
    """Results in completion order (dbt writes them as threads finish, not in manifest order)."""
    rng = random.Random(plan.seed + 2)
    order = list(range(len(plan.tables)))
    rng.shuffle(order)
    for position, index in enumerate(order):
        table = plan.tables[index]
        snapshotted = round(plan.now - 1.0 - (len(order) - position) * 1e-3, 6)
        entry = _result(table, snapshotted, rng, 1 + position % 4)
        if entry is None and table.case == "runtime_error" and plan.runtime_errors_in_artifact:
            entry = _runtime_error_result(table)
        if entry is not None:
            yield entry


def _manifest_sections(plan: _Plan) -> Iterator[tuple[str, Iterator[tuple[str, Any]] | Any]]:
    """Top-level manifest keys in dbt's order; big maps as iterators of entries."""
    created = plan.now - 300.0
    models = list(_models(plan))
    children: dict[str, list[str]] = {t.unique_id: [] for t in plan.tables}
    for uid, _node, parents in models:
        for parent in parents:
            children[parent].append(uid)
    yield "metadata", _manifest_metadata(plan)
    yield "nodes", ((uid, node) for uid, node, _p in models)
    yield "sources", ((t.unique_id, _source_node(t, created + i * 1e-4)) for i, t in enumerate(plan.tables))
    yield "macros", (_macro(i) for i in range(MACRO_COUNT))
    yield (
        "docs",
        {
            "doc.dbt.__overview__": {
                "name": "__overview__",
                "resource_type": "doc",
                "package_name": "dbt",
                "path": "overview.md",
                "original_file_path": "docs/overview.md",
                "unique_id": "doc.dbt.__overview__",
                "block_contents": "### Welcome!\n\nWelcome to the auto-generated documentation.",
            }
        },
    )
    for key in ("exposures", "metrics", "groups", "selectors", "disabled"):
        yield key, {}
    parent_map = {uid: list(parents) for uid, _n, parents in models}
    yield "parent_map", iter({**parent_map, **{t.unique_id: [] for t in plan.tables}}.items())
    yield "child_map", iter({**{uid: [] for uid, _n, _p in models}, **children}.items())
    for key in ("group_map", "saved_queries", "semantic_models", "unit_tests", "functions"):
        yield key, {}


def _materialize(sections: Iterator[tuple[str, Any]]) -> dict[str, Any]:
    return {key: dict(value) if isinstance(value, Iterator) else value for key, value in sections}


def generate(
    n_sources: int,
    seed: int = 0,
    *,
    project: str = DEFAULT_PROJECT,
    now: float | None = None,
    shape: Shape = Shape(),
    hostile: bool = False,
    runtime_errors_in_artifact: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest document, sources document)`` for ``n_sources`` source tables.

    ``n_sources`` counts manifest sources; sources.json holds those with freshness configured
    minus runtime errors (dbt leaves both out). Keep N modest here (everything is in memory);
    :func:`write` streams big ones to disk.
    """
    plan = _plan(n_sources, seed, project, now, shape, hostile, runtime_errors_in_artifact)
    manifest = _materialize(_manifest_sections(plan))
    sources = {
        "metadata": _sources_metadata(plan),
        "results": list(_results(plan)),
        "elapsed_time": _elapsed(plan),
    }
    return manifest, sources


def _dump_object(out: IO[str], sections: Iterator[tuple[str, Any]]) -> None:
    """Write a JSON object whose big values are iterators of entries, one entry at a time."""
    out.write("{")
    for i, (key, value) in enumerate(sections):
        out.write(("" if i == 0 else ", ") + json.dumps(key) + ": ")
        if isinstance(value, Iterator):
            out.write("{")
            for j, (k, v) in enumerate(value):
                out.write(("" if j == 0 else ", ") + json.dumps(k) + ": " + json.dumps(v))
            out.write("}")
        else:
            out.write(json.dumps(value))
    out.write("}")


@dataclass(frozen=True)
class Written:
    """Paths :func:`write` produced and what they hold."""

    manifest: Path
    sources_json: Path
    n_sources: int
    n_results: int
    project: str


def write(
    directory: Path,
    n_sources: int,
    seed: int = 0,
    *,
    project: str = DEFAULT_PROJECT,
    now: float | None = None,
    shape: Shape = Shape(),
    hostile: bool = False,
    runtime_errors_in_artifact: bool = False,
    project_file: bool = True,
) -> Written:
    """Write ``manifest.json`` and ``sources.json`` into ``directory`` (streamed, entry by entry).

    The bytes equal ``json.dumps`` of :func:`generate`'s documents. With ``project_file`` a
    minimal ``dbt_project.yml`` is written next to them, so ``--project-dir`` resolves the project
    name (and ``--artifacts-dir`` can point at the same directory).
    """
    plan = _plan(n_sources, seed, project, now, shape, hostile, runtime_errors_in_artifact)
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    with manifest_path.open("w", encoding="utf-8") as out:
        _dump_object(out, _manifest_sections(plan))
    n_results = 0
    sources_path = directory / "sources.json"
    with sources_path.open("w", encoding="utf-8") as out:
        out.write('{"metadata": ' + json.dumps(_sources_metadata(plan)) + ', "results": [')
        for i, entry in enumerate(_results(plan)):
            out.write(("" if i == 0 else ", ") + json.dumps(entry))
            n_results += 1
        out.write('], "elapsed_time": ' + json.dumps(_elapsed(plan)) + "}")
    if project_file:
        (directory / "dbt_project.yml").write_text(
            f"name: {project}\nversion: '1.0'\nprofile: {project}\ntarget-path: .\n", encoding="utf-8"
        )
    return Written(manifest_path, sources_path, n_sources, n_results, project)
