"""Running ``dbt-prom`` in-process and reading what it printed."""

from __future__ import annotations

import re
import shlex

_REPLAY = re.compile(r"replay it with: (dbt-prom replay .*?)(?: \(|$)")


def replay_argv(stderr: str) -> list[str]:
    """The ``dbt-prom replay ...`` command a failed push printed, as argv without ``dbt-prom``."""
    found = _REPLAY.search(stderr)
    assert found, f"no replay command in:\n{stderr}"
    return shlex.split(found.group(1))[1:]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dbt-prom: error:")]
