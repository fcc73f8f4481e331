"""Small helpers of the artifact readers."""

from __future__ import annotations

import pytest

from dbt_prom_bridge.artifacts import human_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (59.6, "1m00s"),  # was "60s"
        (119.6, "2m00s"),  # was "1m60s"
        (599.7, "10m"),  # was "9m60s"
        (3599.7, "1h00m"),
        (7199.9, "2h00m"),
        (93784, "1d2h"),
        (-61, "-1m01s"),
        (1e12, "31688y"),
        (float("nan"), "?"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
