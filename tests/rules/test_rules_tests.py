"""The generated promtool tests: what they prove for every source, and their building blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import rules
from dbt_prom_bridge.config import parse_duration
from dbt_prom_bridge.rules import Mode, RulesOptions
from dbt_prom_bridge.rules.tests import eval_interval, values_text
from tests.rules.rulestools import SAMPLE_META, sample_manifest


def generated_tests(opts: RulesOptions) -> dict[str, Any]:
    outputs = rules.Outputs(out=Path("r.yml"), tests=Path("tests/r.test.yml"))
    doc: dict[str, Any] = yaml.safe_load(rules.generate([sample_manifest()], opts, outputs).files[1].text)
    return doc


def firing(doc: dict[str, Any], group: int, alertname: str, at: str) -> set[str]:
    checks = doc["tests"][group]["alert_rule_test"]
    check = next(c for c in checks if c["alertname"] == alertname and c["eval_time"] == at)
    return {
        f"{a['exp_labels'].get('source_name')}.{a['exp_labels'].get('table_name')}"
        for a in check["exp_alerts"]
    }


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_every_source_alert_is_silent_at_its_threshold_and_fires_just_after(mode: Mode) -> None:
    doc = generated_tests(RulesOptions(mode=mode, meta_labels=SAMPLE_META))
    checked = {
        f"{s.source_name}.{s.table_name}" for s in sample_manifest().sources.values() if s.has_freshness
    }
    assert doc["evaluation_interval"] == "1m"
    # T0 = 2m: age == threshold; 7m: pending (for 5m); 8m: firing; 9m: fresh again.
    for group, alert in ((0, rules.WARN), (1, rules.ERROR)):
        assert firing(doc, group, alert, "2m") == set()
        assert firing(doc, group, alert, "7m") == set()
        assert firing(doc, group, alert, "8m") == checked
        assert firing(doc, group, alert, "9m") == set()
        for other in (rules.NO_DATA, rules.RUNTIME_ERROR, rules.NOT_RUN, rules.NOT_CHECKED):
            assert all(firing(doc, group, other, t) == set() for t in ("2m", "7m", "8m", "9m"))
    # clicks: warn 15m < error 30m, so crossing warn_after does not fire its error
    assert "events.clicks" not in firing(doc, 0, rules.ERROR, "8m")
    for group, alert in ((2, rules.NO_DATA), (3, rules.RUNTIME_ERROR), (4, rules.NOT_RUN)):
        assert firing(doc, group, alert, "1m") == set()
        assert firing(doc, group, alert, "6m") == set()
        assert firing(doc, group, alert, "7m") == checked
    # NotChecked: every source's last check reaches --stale-after behind the run at T0 = 2m.
    assert firing(doc, 5, rules.NOT_CHECKED, "2m") == set()
    assert firing(doc, 5, rules.NOT_CHECKED, "8m") == checked
    assert firing(doc, 5, rules.NOT_CHECKED, "9m") == set()
    names = [c["alertname"] for t in doc["tests"][6:] for c in t["alert_rule_test"]]
    assert set(names) == set(rules.RUN_ALERTS)


def test_keep_firing_for_is_proven_too() -> None:
    doc = generated_tests(RulesOptions(meta_labels=SAMPLE_META, keep_firing_for=120.0))
    checked = {
        f"{s.source_name}.{s.table_name}" for s in sample_manifest().sources.values() if s.has_freshness
    }
    # fresh again at 9m: still firing (kept) at 9m, resolved at 9m + 2m
    assert firing(doc, 0, rules.WARN, "9m") == checked
    assert firing(doc, 0, rules.WARN, "11m") == set()


def test_lookback_tests_use_sparse_samples() -> None:
    doc = generated_tests(RulesOptions(lookback=7200.0, for_seconds=0.0))
    values = [s["values"] for s in doc["tests"][0]["input_series"]]
    assert all("_" in v for v in values if not v.startswith("0+"))


@pytest.mark.parametrize(
    ("kw", "seconds"),
    [({}, 60), ({"for_seconds": 90.0}, 30), ({"for_seconds": 2.0}, 2), ({"keep_firing_for": 45.0}, 15)],
)
def test_evaluation_interval_divides_for_and_keep_firing_for(kw: dict[str, float], seconds: int) -> None:
    opts = RulesOptions(**kw)  # type: ignore[arg-type]
    assert eval_interval(opts) == seconds
    assert parse_duration(generated_tests(opts)["evaluation_interval"]) == seconds


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ([1.0, 1.0, 1.0], "1+0x2"),
        ([1.0], "1"),
        ([None, None, 5.0, None], "_x2 5 _"),
        ([-3480.0, -3480.0, 540.0], "-3480+0x1 540"),
        ([0.5, 0.5], "0.5+0x1"),
    ],
)
def test_values_text_uses_promtool_expanding_notation(values: list[float | None], text: str) -> None:
    assert values_text(values) == text
