from __future__ import annotations

from pathlib import Path

import pytest

from dbt_prom_bridge.config import Secret, format_duration, parse_duration
from dbt_prom_bridge.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "1h-2m", "m5", "-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


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
