"""node_exporter textfile-collector sink.

Writes the exposition of a run to a ``*.prom`` file that node_exporter's textfile collector
(``--collector.textfile.directory``) serves. The write is atomic: the text goes to a temporary
file in the same directory, is flushed to disk, made world-readable (0644, node_exporter often
runs as another user) and renamed over the target, so node_exporter never reads half a file.
No sample carries a timestamp (node_exporter rejects them).

It behaves like the Pushgateway sink for the cases where a blind overwrite would lose data:

- a partial run (``--select``/``--exclude``) keeps the sources already in the file that it did
  not check;
- a run where dbt could not run replaces only ``run_success``/``build_info`` and keeps the last
  good per-source series (node_exporter's ``node_textfile_mtime_seconds`` still moves, so alert
  on ``dbt_source_freshness_run_success == 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from dbt_prom_bridge import fsutil
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import (
    FAILURE_METRICS,
    PER_SOURCE_METRICS,
    checks_from_series,
    render,
)
from dbt_prom_bridge.model import FreshnessRun

FILE_MODE = 0o644


@dataclass(frozen=True)
class TextfileOutcome:
    """What the file now holds: the written run (merged for partial/failed runs)."""

    path: Path
    run: FreshnessRun
    carried_over: int = 0


def check_path(path: Path) -> None:
    """Refuse a path node_exporter would ignore, or whose directory does not exist."""
    if path.suffix != ".prom":
        raise UsageError(
            f"--textfile {path}: node_exporter's textfile collector only reads files ending in .prom"
        )
    if path.is_dir():
        raise UsageError(f"--textfile {path} is a directory; give a file name ending in .prom")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(
            f"--textfile {path}: directory {parent} does not exist; create it (it is node_exporter's "
            "--collector.textfile.directory)"
        )


def read_series(path: Path) -> list[tuple[str, dict[str, str], float]]:
    """The samples of an existing textfile; an absent or unparsable file holds none."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PushError(f"cannot read the existing textfile {path}: {exc}") from None
    try:
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except ValueError:
        # A corrupt file (e.g. written by hand) is replaced rather than merged.
        return []


def _held_run(run: FreshnessRun, path: Path) -> FreshnessRun:
    """The per-source checks the file holds for this run's project/target, as a run."""
    held = checks_from_series(read_series(path), run.meta_labels)
    checks = tuple(
        sorted(
            (c for key, c in held.items() if key[0] == run.project and key[1] == run.target),
            key=lambda c: (c.source_name, c.table_name, c.unique_id),
        )
    )
    return replace(run, checks=checks)


def content(run: FreshnessRun, path: Path) -> tuple[str, FreshnessRun, int]:
    """The text to write for ``run`` given what ``path`` holds: (text, run it describes, carried)."""
    if not run.success:
        held = _held_run(run, path)
        return render(held, only=PER_SOURCE_METRICS) + render(run, only=FAILURE_METRICS), held, 0
    if run.partial:
        held = _held_run(run, path)
        fresh = {c.key for c in run.checks}
        kept = [c for c in held.checks if c.key not in fresh]
        merged = tuple(sorted((*run.checks, *kept), key=lambda c: (c.source_name, c.table_name, c.unique_id)))
        run = replace(run, checks=merged)
        return render(run), run, len(kept)
    return render(run), run, 0


def write_file(path: Path, text: str) -> None:
    """Write the textfile atomically (:func:`~dbt_prom_bridge.fsutil.write_atomic`, mode 0644)."""
    try:
        fsutil.write_atomic(path, text, mode=FILE_MODE)
    except OSError as exc:
        raise PushError(
            f"cannot write the textfile {path}: {exc.strerror or exc}; check that its directory is "
            "writable by this user"
        ) from None


def write(run: FreshnessRun, path: Path) -> TextfileOutcome:
    """Write ``run`` to the textfile ``path`` (see the module docstring for merge rules)."""
    check_path(path)
    text, held, carried = content(run, path)
    write_file(path, text)
    return TextfileOutcome(path, held, carried)
