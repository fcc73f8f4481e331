"""``serve``'s batched refresh: dbt's own freshness SQL, compiled once per manifest, sent in one query.

A ``dbt source freshness`` run spends ~10-20 ms per source in dbt's task machinery (a runner
and a connection checkout per source, a COMMIT per source, event logging, the Jinja macro
rendered again each time) while the query itself takes well under a millisecond. A long-lived
exporter asks the same questions every interval, so :class:`BatchedFreshnessRunner`:

1. runs the first refresh after each parse through dbt's full path (``dbt source freshness``
   in-process, :class:`~dbt_prom_bridge.runner.DbtFreshnessRunner`): its results say which
   sources dbt selects;
2. compiles each selected source's query once, by calling dbt's own
   ``adapter.calculate_freshness`` (the ``collect_freshness`` macro, with the project's
   overrides) or ``calculate_freshness_from_custom_sql`` (``loaded_at_query``, dbt >= 1.10),
   with the adapter's ``execute`` intercepted: the SQL captured is exactly what dbt sends;
3. on every later refresh, sends those queries as one statement per chunk of sources on one
   connection (``select * from (q0) cross join (q1) ...``: each query returns one row, each
   column keeps its own type, so a naive ``timestamp`` is never converted to a
   ``timestamptz`` through the session time zone as a ``UNION ALL`` would), then turns each
   row into dbt's own result objects with dbt's own code (the adapter's
   ``_create_freshness_response``: naive timestamps read as UTC, no rows -> year-1 sentinel;
   ``FreshnessThreshold.status``: pass/warn/error).

Anything not on that path goes through dbt's own ``FreshnessRunner`` for that source, so it
is reported exactly as dbt reports it: metadata-based sources (no ``loaded_at_field``), a
source whose macro does not compile to one fetching query, a chunk that fails (each of its
sources is retried alone; one that fails alone -- a missing column, a dropped table -- becomes
dbt's runtime error with the database's message, and stays on dbt's path until the next
parse), and values that are not timestamps. Projects with ``on-run-start``/``on-run-end``
hooks always use dbt's full path (dbt runs those hooks around every freshness run).

``DBT_PROM_SERVE_FRESHNESS=dbt`` (``serve --freshness-path dbt``) turns all of this off.
Imports dbt: imported lazily, by :mod:`dbt_prom_bridge.serve` only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from dbt_prom_bridge import dbtproject
from dbt_prom_bridge.config import DbtOptions
from dbt_prom_bridge.errors import ArtifactError, DbtRunError
from dbt_prom_bridge.runner import (
    DbtFreshnessRunner,
    RunnerOutcome,
    artifact_from_result,
    progress_line,
    write_sources_json,
)

#: Sources per statement. PostgreSQL plans an N-way cross join in time that grows faster
#: than N (388 sources: 1.5 s as one statement, 0.17-0.26 s as statements of 20-50), and
#: allows 1,664 columns in a select list (2 per source).
CHUNK = 32
#: The values of ``DBT_PROM_SERVE_FRESHNESS`` / ``serve --freshness-path``.
PATHS = ("batch", "dbt")
_CONNECTION = "dbt_prom_bridge.freshness"


class _NoConnection(Exception):
    """The batch could not get a working connection."""


class _Captured(Exception):
    """Raised by the intercepted ``adapter.execute``: the SQL is recorded, nothing is sent."""


@dataclass
class Plan:
    """The compiled queries of one parsed manifest (rebuilt after every parse)."""

    manifest: Any
    adapter: Any
    #: unique_id -> the SQL dbt's macro sends; None: this source goes through dbt's path.
    sql: dict[str, str | None]
    #: The selected sources, in the order of dbt's first run.
    order: list[str]
    #: False once a chunk failed while each of its queries worked alone (the adapter's SQL
    #: does not take the combined form): then queries are sent one by one.
    combine: bool = True
    #: Sources whose query failed alone: sent alone (outside the combined statement) each time.
    solo: set[str] = field(default_factory=set)
    #: unique_id -> (the database's error text, dbt's own result for it): while the query
    #: fails with the same text, dbt's result is reused instead of running dbt's path again.
    errors: dict[str, tuple[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compile_source(adapter: Any, manifest: Any, node: Any) -> str | None:
    """The SQL dbt's ``FreshnessRunner`` would send for ``node``; None when it is not one query.

    Calls dbt's own ``calculate_freshness`` / ``calculate_freshness_from_custom_sql`` with the
    adapter's ``execute`` replaced for the duration by a recorder that raises before anything
    reaches the database.
    """
    config = adapter.config
    relation = adapter.Relation.create_from(config, node)
    captured: list[tuple[str, bool]] = []

    def record(sql: str, auto_begin: bool = False, fetch: bool = False, limit: int | None = None) -> Any:
        captured.append((sql, bool(fetch)))
        raise _Captured

    adapter.execute = record
    try:
        loaded_at_query = getattr(node, "loaded_at_query", None)
        if loaded_at_query is not None:
            from dbt.clients import jinja
            from dbt.context.providers import RuntimeProvider, SourceContext

            source_context: Any = SourceContext(node, config, manifest, RuntimeProvider(), None)
            context = source_context.to_dict()
            code = jinja.get_rendered(loaded_at_query, context, node)
            adapter.calculate_freshness_from_custom_sql(relation, code, macro_resolver=manifest)
        elif getattr(node, "loaded_at_field", None) is not None:
            adapter.calculate_freshness(
                relation, node.loaded_at_field, node.freshness.filter, macro_resolver=manifest
            )
        else:
            return None  # metadata-based freshness: dbt's path
    except Exception as exc:
        # the recorder's exception, possibly wrapped by the adapter's exception handler; any
        # other failure (the macro does not render) is dbt's path's to report, as dbt does
        if not _caused_by_capture(exc):
            return None
    finally:
        with contextlib.suppress(AttributeError):
            del adapter.execute
    if len(captured) != 1 or not captured[0][1]:
        return None
    return captured[0][0]


def _caused_by_capture(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, _Captured):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _strip(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def combined_sql(queries: Sequence[str]) -> str:
    """One statement returning one row with the two columns of every query, side by side."""
    parts = [f"(\n{_strip(q)}\n) as dbt_prom_q{i}" for i, q in enumerate(queries)]
    return "select * from " + "\ncross join ".join(parts)  # noqa: S608 (dbt's own SQL, combined)


def has_project_hooks(manifest: Any) -> bool:
    """True when the project runs on-run-start/on-run-end hooks (dbt runs them around freshness)."""
    return any(str(getattr(node, "resource_type", "")) == "operation" for node in manifest.nodes.values())


def current_adapter() -> Any:
    """The adapter dbt registered for the last invocation (None if there is none)."""
    from dbt.adapters.factory import FACTORY

    adapters = list(FACTORY.adapters.values())
    return adapters[0] if len(adapters) == 1 else None


class BatchedFreshnessRunner(DbtFreshnessRunner):
    """:class:`DbtFreshnessRunner` whose refreshes after the first send dbt's queries in batches.

    Produces the same :class:`RunnerOutcome` (dbt's own result objects, dbt's sources.json
    writer). ``path="dbt"`` makes every refresh a full ``dbt source freshness``.
    """

    def __init__(self, dbt: DbtOptions, path: str = "batch") -> None:
        super().__init__(dbt)
        self.path = path
        self._plan: Plan | None = None
        self._pending: dict[str, str] = {}
        self._writer: threading.Thread | None = None
        #: How the last refresh ran: "dbt" (full path) or "batch".
        self.last_path = "dbt"

    def invalidate(self) -> None:
        super().invalidate()
        self._plan = None

    def run(self, on_event: Callable[[str], None] | None = None) -> RunnerOutcome:
        plan = self._plan
        if (
            self.path == "dbt"
            or plan is None
            or not self._fresh_cache()
            or plan.manifest is not self._cache.dbt_manifest
            or current_adapter() is not plan.adapter
        ):
            self._plan = None
            self.flush()
            outcome = super().run(on_event)
            self.last_path = "dbt"
            if self.path != "dbt":
                self._plan = self._build_plan(outcome)
            return outcome
        try:
            outcome = self._run_plan(plan, on_event)
        except _NoConnection:
            # the database cannot be reached: dbt's full run says so, as a run-level failure
            self._plan = None
            self.last_path = "dbt"
            self.flush()
            return super().run(on_event)
        self.last_path = "batch"
        return outcome

    # -- building ------------------------------------------------------------------------------

    def _build_plan(self, outcome: RunnerOutcome) -> Plan | None:
        manifest = self._cache.dbt_manifest
        adapter = current_adapter()
        if manifest is None or adapter is None or has_project_hooks(manifest):
            return None
        if getattr(adapter, "config", None) is None or not hasattr(adapter, "_create_freshness_response"):
            return None  # an adapter API this was not written against: dbt's path every time
        order = [r.unique_id for r in outcome.artifact.results]
        sql: dict[str, str | None] = {}
        # the adapter's exception handler wants a connection (opened lazily: never, here)
        with adapter.connection_named(_CONNECTION):
            for uid in order:
                node = manifest.sources.get(uid)
                sql[uid] = None if node is None else compile_source(adapter, manifest, node)
        return Plan(manifest=manifest, adapter=adapter, sql=sql, order=order)

    # -- running -------------------------------------------------------------------------------

    def _run_plan(self, plan: Plan, on_event: Callable[[str], None] | None) -> RunnerOutcome:
        from dbt.artifacts.schemas.freshness import FreshnessResult
        from dbt_common.invocation import reset_invocation_id

        self._pending = {}
        reset_invocation_id()  # a new run: its own invocation_id, as a dbt invocation has
        started = time.perf_counter()
        generated_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        manifest = plan.manifest
        total = len(plan.order)
        results: dict[str, Any] = {}
        batched = [uid for uid in plan.order if plan.sql.get(uid) is not None and uid not in plan.solo]
        solo = [uid for uid in plan.order if plan.sql.get(uid) is not None and uid in plan.solo]
        with self._connection(plan.adapter):
            for first in range(0, len(batched), CHUNK):
                chunk = batched[first : first + CHUNK]
                results.update(self._run_chunk(plan, chunk))
            if solo:
                results.update(self._run_alone(plan, solo, {uid: i for i, uid in enumerate(plan.order, 1)}))
        for index, uid in enumerate(plan.order, start=1):
            if uid not in results:
                results[uid] = self._dbt_path(plan, manifest.sources[uid], index, total)
                if uid in self._pending:
                    plan.errors[uid] = (self._pending[uid], results[uid])
        ordered = [results[uid] for uid in plan.order]
        if on_event is not None:
            for index, result in enumerate(ordered, start=1):
                on_event(progress_line(_event(result, index, total)))
        elapsed = time.perf_counter() - started
        result = FreshnessResult.from_node_results(
            elapsed_time=elapsed, generated_at=generated_at, results=ordered
        )
        return self._outcome(result, elapsed)

    @contextlib.contextmanager
    def _connection(self, adapter: Any) -> Iterator[None]:
        with adapter.connection_named(_CONNECTION):
            try:
                adapter.clear_transaction()
                adapter.connections.get_thread_connection().handle  # noqa: B018 (opens it)
            except Exception as exc:
                raise _NoConnection(str(exc)) from None
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    adapter.connections.rollback_if_open()

    def _fetch(self, adapter: Any, sql: str) -> tuple[Any, list[Any]]:
        """(adapter response, the rows) of one statement on the current connection."""
        connections = adapter.connections
        if hasattr(connections, "add_query"):
            _, cursor = connections.add_query(sql, auto_begin=False)
            rows = list(cursor.fetchall())
            return connections.get_response(cursor), rows
        response, table = adapter.execute(sql, auto_begin=False, fetch=True)
        return response, [list(row) for row in table]

    def _run_chunk(self, plan: Plan, chunk: Sequence[str]) -> dict[str, Any]:
        """dbt results for the sources of ``chunk`` that the batch could answer."""
        adapter = plan.adapter
        queries = [plan.sql[uid] or "" for uid in chunk]
        out: dict[str, Any] = {}
        if plan.combine and len(chunk) > 1:
            started = time.perf_counter()
            try:
                response, rows = self._fetch(adapter, combined_sql(queries))
            except Exception:
                rows, response = [], None
            elapsed = time.perf_counter() - started
            if len(rows) == 1 and len(rows[0]) == 2 * len(chunk):
                for i, uid in enumerate(chunk):
                    made = self._result(plan, uid, rows[0][2 * i], rows[0][2 * i + 1], response, elapsed)
                    if made is not None:
                        out[uid] = made
                return out
        # one by one: a source that fails alone is sent alone from now on
        before = len(plan.solo)
        out.update(self._run_alone(plan, chunk, {uid: i for i, uid in enumerate(plan.order, 1)}))
        if plan.combine and len(chunk) > 1 and len(plan.solo) == before:
            plan.combine = False  # the combined form is what failed, not a source
            plan.notes.append("combined statement not accepted: queries sent one by one")
        return out

    def _run_alone(self, plan: Plan, uids: Sequence[str], index: dict[str, int]) -> dict[str, Any]:
        """Each source's own query; a failure is dbt's runtime error for it (dbt's own result)."""
        out: dict[str, Any] = {}
        for uid in uids:
            sql = plan.sql[uid] or ""
            started = time.perf_counter()
            try:
                response, rows = self._fetch(plan.adapter, sql)
            except Exception as exc:
                plan.solo.add(uid)
                text = str(exc)
                known = plan.errors.get(uid)
                if known is not None and known[0] == text:
                    out[uid] = _retimed(known[1], time.perf_counter() - started)
                    continue
                # dbt's path needs the connection to itself (it closes it): run it afterwards
                self._pending[uid] = text
                continue
            plan.errors.pop(uid, None)
            if len(rows) != 1 or len(rows[0]) != 2:
                plan.sql[uid] = None  # not the shape dbt expects: dbt's path judges it
                continue
            made = self._result(plan, uid, rows[0][0], rows[0][1], response, time.perf_counter() - started)
            if made is not None:
                out[uid] = made
        return out

    def _result(
        self, plan: Plan, uid: str, max_loaded_at: Any, snapshotted_at: Any, response: Any, elapsed: float
    ) -> Any:
        """dbt's ``SourceFreshnessResult`` for one row, or None (the value is dbt's path's to judge)."""
        from dbt.artifacts.schemas.freshness import SourceFreshnessResult

        if not isinstance(snapshotted_at, dt.datetime) or not (
            max_loaded_at is None or isinstance(max_loaded_at, dt.datetime)
        ):
            plan.sql[uid] = None
            return None
        node = plan.manifest.sources[uid]
        freshness = plan.adapter._create_freshness_response(max_loaded_at, snapshotted_at)
        status = node.freshness.status(freshness["age"])
        adapter_response = response.to_dict(omit_none=True) if hasattr(response, "to_dict") else {}
        return SourceFreshnessResult(
            node=node,
            status=status,
            thread_id=threading.current_thread().name,
            timing=[],
            execution_time=elapsed,
            message=None,
            adapter_response=adapter_response,
            failures=None,
            **freshness,
        )

    def _dbt_path(self, plan: Plan, node: Any, index: int, total: int) -> Any:
        """dbt's own ``FreshnessRunner`` for one source: its result, runtime errors included."""
        from dbt.task.freshness import FreshnessRunner

        runner = FreshnessRunner(plan.adapter.config, plan.adapter, node, index, total)
        return runner.safe_run(plan.manifest)

    def _outcome(self, result: Any, elapsed: float) -> RunnerOutcome:
        # dbt's sources.json writer costs more than the batch itself (~1 ms per source): it
        # runs in the background, one write at a time, and the outcome does not claim the file
        self.flush()
        writer = threading.Thread(
            target=write_sources_json,
            args=(result, self.artifacts_dir / "sources.json"),
            name="dbt-prom-sources-json",
        )
        writer.start()
        self._writer = writer
        try:
            artifact = artifact_from_result(result, None)
        except ArtifactError as exc:
            raise DbtRunError(f"dbt returned freshness results this tool cannot read: {exc}") from None
        manifest = self._cache.record
        project = (
            (manifest.project_name if manifest else None) or dbtproject.project_info(self.dbt).name or ""
        )
        return RunnerOutcome(
            artifact=artifact,
            manifest=manifest,
            project=project,
            target=self.target_name,
            parse_seconds=0.0,
            freshness_seconds=elapsed,
            manifest_reused=True,
            sources_json=None,
        )

    def flush(self) -> None:
        """Wait until the last batched refresh's ``sources.json`` is written."""
        writer = self._writer
        if writer is not None:
            writer.join()
            self._writer = None


def _retimed(result: Any, elapsed: float) -> Any:
    """dbt's earlier result for a source whose query fails the same way again, timed anew."""
    import dataclasses

    try:
        return dataclasses.replace(result, execution_time=elapsed, thread_id=threading.current_thread().name)
    except (TypeError, ValueError):
        return result


def _event(result: Any, index: int, total: int) -> Any:
    node = result.node
    return SimpleNamespace(
        status=getattr(result.status, "value", result.status),
        source_name=node.source_name,
        table_name=node.name,
        index=index,
        total=total,
        execution_time=result.execution_time,
    )
