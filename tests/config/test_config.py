from __future__ import annotations

from pathlib import Path

import pytest

from dbt_prom_bridge.config import Secret, format_duration, parse_duration
from dbt_prom_bridge.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("292y", 292 * 31536000),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a duration"),
        ("soon", "not a duration"),
        ("5 m", "not a duration"),
        ("1h-2m", "not a duration"),
        ("m5", "not a duration"),
        ("-5m", "not a duration"),
        ("-5", "not a duration"),
        ("2", "no unit"),
        ("90", "no unit"),
        ("0", "no unit"),
        ("0s", "longer than zero"),
        ("0h0m", "longer than zero"),
        ("99999999999d", "longer than any duration"),
        ("293y", "longer than any duration"),
        ("9" * 400 + "s", "longer than any duration"),
    ],
)
def test_parse_duration_rejects(text: str, why: str) -> None:
    """Like Prometheus: a unit is required, and a duration must fit its limits."""
    with pytest.raises(UsageError, match=why):
        parse_duration(text)


def test_zero_where_zero_means_something() -> None:
    assert parse_duration("0s", "--for", allow_zero=True) == 0


@pytest.mark.parametrize(("seconds", "text"), [(7200, "2h"), (5400, "1h30m"), (90061, "1d1h1m1s"), (0, "0s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in repr({"s": secret})
    assert secret.reveal() == "hunter2"


def test_secret_from_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    found = Secret.from_sources(None, f, "password")
    assert found is not None and found.reveal() == "s3cret"
    with pytest.raises(UsageError, match="either directly or as a file"):
        Secret.from_sources("x", f, "password")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        Secret.from_sources(None, empty, "password")
    with pytest.raises(UsageError, match="cannot read"):
        Secret.from_sources(None, tmp_path / "missing", "password")
