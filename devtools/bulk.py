"""Grow a copy of the sample dbt project to N freshness-checked sources (benchmarks, profiles).

:func:`add_bulk_sources` writes ``models/bulk_sources.yml`` (sources ``bulk_<k>``, 50 tables
each, in schema ``raw_bulk``) and creates and fills the tables, so that the project has the
sample's sources plus ``n`` more: mostly fresh (pass), every 7th 3 days old (warn), every 13th
6 days old (error), every 29th empty (no data), every 31st a naive ``timestamp`` column. The
sample's 10 checked sources + 117 bulk ones make the 127-source project of the serve benchmark.

    python -m devtools.bulk --project-dir /tmp/p --sources 990     # needs DBT_PROM_PG_* set
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA = "raw_bulk"
PER_SOURCE = 50


def table_name(i: int) -> str:
    return f"t{i:05d}"


def sources_yml(n: int) -> str:
    """The YAML of ``n`` bulk tables, grouped in sources of :data:`PER_SOURCE`."""
    lines = ["version: 2", "", "sources:"]
    for first in range(0, n, PER_SOURCE):
        lines += [
            f"  - name: bulk_{first // PER_SOURCE}",
            f"    schema: {SCHEMA}",
            "    config:",
            "      loaded_at_field: _loaded_at",
            "      freshness:",
            "        warn_after: {count: 2, period: day}",
            "        error_after: {count: 5, period: day}",
            "    tables:",
        ]
        for i in range(first, min(n, first + PER_SOURCE)):
            lines.append(f"      - name: {table_name(i)}")
            if i % 31 == 30:
                lines += ["        config:", "          loaded_at_field: seen_at"]
    return "\n".join(lines) + "\n"


def _age_days(i: int) -> float | None:
    if i % 29 == 28:
        return None
    if i % 13 == 12:
        return 6.0
    if i % 7 == 6:
        return 3.0
    return 1.0 / 24


def fill(conn: Any, n: int) -> None:
    """Create and fill the ``n`` bulk tables (one transaction)."""
    with conn, conn.cursor() as cur:
        cur.execute(f'create schema if not exists "{SCHEMA}"')
        for i in range(n):
            rel = f'"{SCHEMA}"."{table_name(i)}"'
            naive = i % 31 == 30
            column = "seen_at timestamp" if naive else "_loaded_at timestamptz"
            cur.execute(f"drop table if exists {rel}")
            cur.execute(f"create table {rel} (id bigint, {column} not null)")
            age = _age_days(i)
            if age is None:
                continue
            now = "(now() at time zone 'utc')" if naive else "now()"
            cur.execute(
                f"insert into {rel} select g, {now} - (%s * interval '1 day') - g * interval '1 minute' "  # noqa: S608
                "from generate_series(0, 9) as g",
                (age,),
            )


def add_bulk_sources(project_dir: Path, conn: Any, n: int) -> None:
    """Add ``n`` bulk sources to the project at ``project_dir`` and their tables to ``conn``'s database."""
    if n <= 0:
        return
    (project_dir / "models" / "bulk_sources.yml").write_text(sources_yml(n), encoding="utf-8")
    fill(conn, n)


def main(argv: Sequence[str] | None = None) -> int:
    from devtools import seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--sources", type=int, required=True)
    args = parser.parse_args(argv)
    conn = seed.connect()
    try:
        add_bulk_sources(args.project_dir, conn, args.sources)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
