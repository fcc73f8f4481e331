"""One error hierarchy; every subclass carries the exit code the CLI maps it to.

Messages are one line, say what happened and what to do next, and never contain secrets
(callers pass URLs through :func:`dbt_prom_bridge.redact.redact_url` first).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every ``dbt-prom`` command (documented in ``--help`` and the README)."""

    OK = 0
    #: ``push``/``status``: a source reached the ``--fail-on`` status; ``rules``/``dashboard --check``: drift.
    FAILED_CHECK = 1
    #: Usage or input error: bad flag, missing/corrupt/stale/unsupported artifact, bad threshold.
    INPUT = 2
    #: dbt could not run or parse the project (connection, profile, project error).
    DBT = 3
    #: The metrics could not be delivered (gateway/remote write down, 4xx/5xx, auth failure).
    PUSH = 4
    #: An unexpected exception: a bug in dbt-prom-bridge (``--debug`` shows the traceback).
    INTERNAL = 70


class DbtPromError(Exception):
    """Base of every expected failure. ``str(err)`` is the one-line user message."""

    exit_code: ExitCode = ExitCode.INPUT

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(DbtPromError):
    """Flags or configuration that cannot work together."""

    exit_code = ExitCode.INPUT


class ArtifactError(DbtPromError):
    """A dbt artifact is missing, corrupt, too old, or of an unsupported schema version."""

    exit_code = ExitCode.INPUT


class StaleArtifactError(ArtifactError):
    """An artifact older than ``--max-artifact-age``."""


class ThresholdError(DbtPromError):
    """A freshness threshold that cannot be expressed as a metric or alert rule."""

    exit_code = ExitCode.INPUT


class CalendarError(DbtPromError):
    """A business calendar in a source's dbt meta that cannot be used (names the source and field)."""

    exit_code = ExitCode.INPUT


class DbtRunError(DbtPromError):
    """dbt itself could not run: connection, profile or project error."""

    exit_code = ExitCode.DBT


class DbtConfigError(UsageError):
    """dbt refused how it was invoked: an unknown ``--target``, a missing ``profiles.yml`` or
    profile, a directory that is not a dbt project, a malformed ``--select``. A typo, not an
    outage: exit 2 and nothing is pushed (``run_success 0`` would land in a group of its own)."""

    exit_code = ExitCode.INPUT


class PushError(DbtPromError):
    """Delivering metrics failed. ``status`` is the HTTP status when the server answered."""

    exit_code = ExitCode.PUSH

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CheckFailed(DbtPromError):
    """A gate tripped: ``--fail-on`` reached, or a generated file drifted (``--check``)."""

    exit_code = ExitCode.FAILED_CHECK
