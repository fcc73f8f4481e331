"""Output of the commands that generate files (``rules``, ``dashboard``): print, write, or check.

One behaviour for both: without ``--out`` the text goes to stdout; with it, each file is written
atomically (:func:`~dbt_prom_bridge.fsutil.write_atomic`) unless it already holds the same text;
with ``--check`` nothing is written, a unified diff of every file that would change goes to
stdout and the command exits 1 (:class:`~dbt_prom_bridge.errors.CheckFailed`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import click

from dbt_prom_bridge import fsutil
from dbt_prom_bridge.errors import ArtifactError, CheckFailed, UsageError


def diff(old: str, new: str, path: Path) -> str:
    """Unified diff from the committed ``old`` to the generated ``new`` text of ``path``."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"{path} (committed)",
        f"{path} (generated)",
    )
    return "".join(lines)


def _read(path: Path) -> str | None:
    try:
        return fsutil.read_text_or_none(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def write_or_check(
    files: Sequence[tuple[Path | None, str]], check: bool, *, command: str, out_flags: str = "--out PATH"
) -> None:
    """Print, write, or (``check``) compare ``(path, text)`` pairs with what the paths hold.

    A single pair without a path is printed to stdout (``check`` then is a usage error naming
    ``out_flags``). ``command`` (e.g. ``dbt-prom rules``) names what to rerun in the drift message.
    """
    if len(files) == 1 and files[0][0] is None:
        if check:
            raise UsageError(f"--check compares with the --out file; give {out_flags}")
        click.echo(files[0][1], nl=False)
        return
    drifted: list[str] = []
    for path, text in files:
        assert path is not None, "only a single output may go to stdout"
        old = _read(path)
        if check:
            if old != text:
                click.echo(diff(old or "", text, path), nl=False)
                drifted.append(f"{path} ({'missing' if old is None else 'differs'})")
            continue
        if old == text:
            click.echo(f"dbt-prom: {path} unchanged", err=True)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.write_atomic(path, text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        click.echo(f"dbt-prom: wrote {path}", err=True)
    if not check:
        return
    if drifted:
        raise CheckFailed(
            f"out of date with the dbt project: {', '.join(drifted)}; regenerate with the same "
            f"`{command}` command without --check, and commit"
        )
    click.echo(f"dbt-prom: {', '.join(str(path) for path, _ in files)} up to date", err=True)
