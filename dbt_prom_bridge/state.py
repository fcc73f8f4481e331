"""Newest-wins state: what a destination holds after a run lands. Pure.

The unit of truth is the source. A destination (a Pushgateway group, a textfile, a remote-write
endpoint's view from this host) holds, for every source, the values of the newest check of that
source it has seen. :func:`merge` computes ``(held, run) -> new held``:

- A checked source takes the run's values only when the run's check is newer than the held one
  (by the check's own time, dbt's ``snapshotted_at``). An equal or older check changes nothing.
- A source the run did not check keeps its held values, whatever the run selected (dbt-prom's
  ``--select``, dbt's own ``--select`` found only in the artifact, a scheduler's selection).
- A source the run's manifest no longer declares with freshness is removed: the only way a
  source's series go away (besides a command the user runs).
- A configured source that no run has checked is ``not_run``.
- Run-level values (``run_timestamp``, ``run_success``, counts...) come from the newest run;
  counts are recomputed over the held sources.

Merging is commutative and idempotent for the per-source values (a last-writer-wins register
per source keyed by check time), so joining two partial views of a destination (a local cache and
what the gateway returns) never loses the newer of two checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, meta_get
from dbt_prom_bridge.nodes import ModelCheck, merge_models

#: How far in the future a held check time may lie before it is treated as corrupt (clock skew
#: between hosts). A held time beyond it would block every later check of that source forever.
FUTURE_SKEW = 300.0

Key = tuple[str, str]


def check_time(check: SourceCheck) -> float:
    """When ``check`` was made (-inf when unknown: any real check is newer)."""
    return check.checked_at if check.checked_at is not None else float("-inf")


@dataclass(frozen=True)
class Merged:
    """The new held state and what the run changed in it."""

    state: FreshnessRun
    #: Sources whose values this run set (newer than held, or not held before).
    updated: tuple[Key, ...] = ()
    #: Sources this run checked, but the destination holds a newer (or the same) check of.
    not_newer: tuple[Key, ...] = ()
    #: Held sources the run's manifest no longer declares (removed from the project).
    removed: tuple[Key, ...] = ()
    #: Held sources the run did not check, kept as they were.
    kept: int = 0
    #: The run-level series changed (newer run, or a failed run).
    run_level_changed: bool = False
    #: Models whose record this run changed (a newer build or freshness check, or new to the
    #: destination), by their ``model`` label.
    models_updated: tuple[str, ...] = ()
    #: Held models the run's manifest no longer declares (removed from the project).
    models_removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(
            self.updated
            or self.removed
            or self.run_level_changed
            or self.models_updated
            or self.models_removed
        )


_Record = TypeVar("_Record", SourceCheck, ModelCheck)


def relabel(check: _Record, meta_labels: tuple[str, ...], old_labels: tuple[str, ...]) -> _Record:
    """``check`` (a source or model record) with ``meta_values`` for ``meta_labels`` (from its
    meta, else its old values)."""
    if meta_labels == old_labels:
        return check
    old = dict(zip(old_labels, check.meta_values, strict=False))
    values = tuple(meta_get(check.meta, k) if check.meta else old.get(k, "") for k in meta_labels)
    return replace(check, meta_values=values)


def _with_labels_of(held: SourceCheck, declared: SourceCheck) -> SourceCheck:
    """Held values under the labels the manifest declares now (schema moved, meta changed...)."""
    return replace(
        held,
        unique_id=declared.unique_id,
        database=declared.database,
        schema=declared.schema,
        identifier=declared.identifier,
        meta=declared.meta,
        meta_values=declared.meta_values,
        # series do not carry the calendar: a source read back from a gateway gets it from the
        # manifest again (its deadlines, which the verdict reads, are in the series)
        calendar=held.calendar or declared.calendar,
        warn_after=declared.warn_after if held.status is Status.NOT_RUN else held.warn_after,
        error_after=declared.error_after if held.status is Status.NOT_RUN else held.error_after,
    )


def _merge_models(
    held: FreshnessRun | None, run: FreshnessRun
) -> tuple[tuple[ModelCheck, ...], tuple[str, ...], tuple[str, ...]]:
    """The held models updated with the run's (newest build and newest freshness check of each
    model win; models the run does not report are kept unless its manifest no longer declares
    them), the models that changed, and the models removed."""
    if held is None or not held.models:
        ordered = merge_models((), run.models)
        return ordered, tuple(m.key for m in ordered), ()
    before = {m.key: relabel(m, run.meta_labels, held.meta_labels) for m in held.models}
    removed: tuple[str, ...] = ()
    if run.models_complete:
        # the manifest no longer declares them: the only way a model's series go away
        declared = set(run.declared_models) | {m.key for m in run.models}
        removed = tuple(sorted(k for k in before if k not in declared))
        for key in removed:
            del before[key]
    if not run.models:
        return tuple(before.values()), (), removed
    merged = merge_models(before.values(), run.models)
    return merged, tuple(m.key for m in merged if _differs(before.get(m.key), m)), removed


def _differs(old: ModelCheck | None, new: ModelCheck) -> bool:
    """Whether a model's series change: fields no series carries (when its configuration was
    seen, the build message, meta beyond the meta labels) do not count, so a record read back
    from a gateway's series equals the one that wrote them."""
    if old is None:
        return True
    return _in_series(old) != _in_series(new)


def _in_series(check: ModelCheck) -> ModelCheck:
    return replace(check, unique_id="", seen_at=None, message=None, meta=())


def _newer_run(held: FreshnessRun, run: FreshnessRun) -> bool:
    """Whether ``run``'s run-level values replace ``held``'s."""
    if not run.sources_checked:
        # Model results only: the source freshness run-level series are not this run's to change
        # (a destination holding only models renders none of them but build_info).
        return False
    if not held.sources_checked:
        return True
    if not run.success:
        return True
    if held.generated_at is None or run.generated_at is None:
        return True
    # Strictly newer: the same artifact read again (a cron job after dbt failed) must not bring
    # run_success back to 1.
    return run.generated_at > held.generated_at


def merge(
    held: FreshnessRun | None,
    run: FreshnessRun,
    *,
    force: bool = False,
    now: float | None = None,
) -> Merged:
    """The state after ``run`` lands on a destination holding ``held`` (None: nothing).

    ``force`` makes the run's checks win even when older (an explicit user choice, e.g. to undo
    a bad push). ``now`` guards against held check times from the future (beyond
    :data:`FUTURE_SKEW`): those count as unknown, so a real check replaces them.
    """
    held_checks: dict[Key, SourceCheck] = {}
    if held is not None:
        for c in held.checks:
            held_checks[c.key] = relabel(c, run.meta_labels, held.meta_labels)
    limit = None if now is None else now + FUTURE_SKEW

    def held_time(c: SourceCheck) -> float:
        t = check_time(c)
        return float("-inf") if limit is not None and t > limit else t

    out: dict[Key, SourceCheck] = {}
    updated: list[Key] = []
    not_newer: list[Key] = []
    for check in run.checks:
        mine = held_checks.pop(check.key, None)
        if mine is None or mine.status is Status.NOT_RUN or force or check_time(check) > held_time(mine):
            out[check.key] = check
            updated.append(check.key)
        else:
            out[check.key] = mine
            not_newer.append(check.key)

    declared = {c.key: c for c in run.unchecked}
    removed: list[Key] = []
    kept = 0
    for key, mine in held_checks.items():
        if run.complete and key not in declared:
            removed.append(key)
            continue
        out[key] = _with_labels_of(mine, declared[key]) if key in declared else mine
        kept += 1
        declared.pop(key, None)
    for key, placeholder in declared.items():
        if key not in out:
            out[key] = placeholder
            updated.append(key)

    checks = tuple(sorted(out.values(), key=lambda c: (c.source_name, c.table_name, c.unique_id)))
    models, models_updated, models_removed = _merge_models(held, run)
    base = run if held is None or _newer_run(held, run) else held
    run_level_changed = held is None or (base is run and _run_level(held) != _run_level(run))
    if held is not None and not run.success and run.sources_checked:
        # dbt could not run: run_success drops to 0; the last good run's times stay.
        base = replace(
            held,
            success=False,
            error=run.error,
            dbt_version=run.dbt_version or held.dbt_version,
        )
    state = replace(
        base,
        project=run.project,
        target=run.target,
        checks=checks,
        meta_labels=run.meta_labels,
        unchecked=(),
        complete=False,
        warnings=run.warnings,
        partial=False,
        models=models,
        sources_checked=run.sources_checked or (held is not None and held.sources_checked),
        models_complete=False,
        declared_models=(),
    )
    return Merged(
        state=state,
        updated=tuple(updated),
        not_newer=tuple(not_newer),
        removed=tuple(removed),
        kept=kept,
        run_level_changed=run_level_changed,
        models_updated=models_updated,
        models_removed=models_removed,
    )


def initial(run: FreshnessRun) -> FreshnessRun:
    """What an empty destination holds after ``run``: its checks and its ``not_run`` sources."""
    return merge(None, run).state


def _run_level(run: FreshnessRun) -> tuple[object, ...]:
    return (
        run.generated_at,
        run.elapsed,
        run.success,
        run.dbt_version,
        run.invocation_id,
        run.sources_checked,
    )


def join(views: Iterable[FreshnessRun | None]) -> FreshnessRun | None:
    """One held state from several partial views of the same destination (newest check of
    each source wins; run-level values of the newest run)."""
    out: FreshnessRun | None = None
    for view in views:
        if view is None:
            continue
        if out is None:
            out = view
            continue
        older, newer = (out, view) if not _newer_run(view, out) else (view, out)
        merged = merge(older, replace(newer, unchecked=(), complete=False)).state
        out = replace(merged, warnings=())
    return out


def by_key(checks: Iterable[SourceCheck]) -> Mapping[Key, SourceCheck]:
    return {c.key: c for c in checks}
