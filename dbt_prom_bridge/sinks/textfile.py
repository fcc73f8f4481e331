"""node_exporter textfile-collector sink.

Writes the exposition of a run to a ``*.prom`` file that node_exporter's textfile collector
(``--collector.textfile.directory``) serves. The write is atomic: the text goes to a temporary
file in the same directory, is flushed to disk, made world-readable (0644, node_exporter often
runs as another user) and renamed over the target, so node_exporter never reads half a file.
No sample carries a timestamp (node_exporter rejects them).

It keeps the newest check of every source, like the Pushgateway sink
(:func:`dbt_prom_bridge.state.merge` of what the file holds and the run): a run changes only the
sources it checked, never makes a source's values older, and a run where dbt could not run only
drops ``run_success`` to 0 (node_exporter's ``node_textfile_mtime_seconds`` still moves, so alert
on ``dbt_source_freshness_run_success == 0``).
"""

from __future__ import annotations

from pathlib import Path

from dbt_prom_bridge import fsutil, state
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import held_from_series, render
from dbt_prom_bridge.model import FreshnessRun
from dbt_prom_bridge.sinks.base import Delivered
from dbt_prom_bridge.sinks.spill import Destination

FILE_MODE = 0o644


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


def held(run: FreshnessRun, path: Path) -> FreshnessRun | None:
    """What the file holds for ``run``'s project/target."""
    return held_from_series(read_series(path), run.project, run.target, run.meta_labels)


def content(run: FreshnessRun, path: Path, force: bool = False) -> tuple[str, state.Merged]:
    """The text to write for ``run`` given what ``path`` holds, and the merge it describes."""
    merged = state.merge(held(run, path), run, force=force)
    return render(merged.state), merged


def write_file(path: Path, text: str) -> None:
    """Write the textfile atomically (:func:`~dbt_prom_bridge.fsutil.write_atomic`, mode 0644)."""
    try:
        fsutil.write_atomic(path, text, mode=FILE_MODE)
    except OSError as exc:
        raise PushError(
            f"cannot write the textfile {path}: {exc.strerror or exc}; check that its directory is "
            "writable by this user"
        ) from None


def write(run: FreshnessRun, path: Path, force: bool = False) -> Delivered:
    """Merge ``run`` into the textfile ``path`` (newest check of each source wins)."""
    check_path(path)
    text, merged = content(run, path, force)
    write_it = merged.changed or not path.exists()
    if write_it:
        write_file(path, text)
    return Delivered(str(path), merged.state, merged, write_it)


class Textfile:
    """The textfile as a :class:`~dbt_prom_bridge.sinks.base.Sink`."""

    kind = "textfile"

    def __init__(self, path: Path) -> None:
        self.path = path

    def destination(self, run: FreshnessRun) -> Destination:
        return Destination(
            kind=self.kind,
            url=str(self.path),
            grouping_key=(("project", run.project), ("target", run.target)),
        )

    def for_destination(self, destination: Destination) -> Textfile:
        return self

    def push(self, run: FreshnessRun, force: bool = False) -> Delivered:
        return write(run, self.path, force)

    def same_endpoint(self, destination: Destination) -> bool:
        return destination.kind == self.kind and Path(destination.url) == self.path
