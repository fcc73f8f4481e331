"""Later than usual, freshness SLOs and "not checked": the generated promtool tests, run by the real
promtool, and what they prove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import rules
from dbt_prom_bridge.config import parse_duration
from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.rules import Mode, RulesOptions
from dbt_prom_bridge.rules.selection import plan
from dbt_prom_bridge.rules.tests import render_usual_tests
from tests.conftest import requires
from tests.rules.rulestools import (
    SAMPLE_META,
    assert_check_rules,
    assert_test_rules,
    manifest_of,
    sample_manifest,
    source,
    write,
)


def checks(doc: dict[str, Any], alert: str) -> dict[str, int]:
    """eval_time -> number of expected ``alert`` alerts, in the tests where ``alert`` fires."""
    out: dict[str, int] = {}
    for test in doc["tests"]:
        found = {
            c["eval_time"]: len(c["exp_alerts"]) for c in test["alert_rule_test"] if c["alertname"] == alert
        }
        if any(found.values()):
            out.update(found)
    return out


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_later_than_usual_over_eight_days(mode: Mode, tmp_path: Path) -> None:
    """Hourly loads that stop fire within cadence x factor + for; daily loads checked at hour 20
    and a source with 2 days of history never fire."""
    one = manifest_of("p", source("s", "t"))
    opts = RulesOptions(mode=mode)
    written = write(tmp_path, [one], opts, tests=False)
    text = render_usual_tests(plan([one], opts).projects, opts, str(written.rules))
    path = tmp_path / "usual.test.yml"
    path.write_text(text)
    doc = yaml.safe_load(text)
    hourly, daily, young = (
        {c["eval_time"]: len(c["exp_alerts"]) for c in t["alert_rule_test"]} for t in doc["tests"]
    )
    stop = opts.usual_window + 86400
    fired = sorted(parse_duration(t) for t, n in hourly.items() if n)
    assert fired and fired[0] - stop <= 3600 * opts.usual_factor + opts.for_seconds
    assert not any(daily.values()) and not any(young.values())
    assert max(parse_duration(t) for t in daily) == opts.usual_window + 86400 + 20 * 3600
    assert_test_rules(path)


@requires("promtool")
@pytest.mark.parametrize("how", ["flag", "meta"])
def test_budget_burn_both_speeds(how: str, tmp_path: Path) -> None:
    slo = json.dumps({"slo": 0.99})
    sources = [
        source("a", "declared", meta=(("dbt_prom", slo),) if how == "meta" else ()),
        source("b", "other", meta=(("dbt_prom", json.dumps({"slo": 0.9})),) if how == "flag" else ()),
    ]
    opts = RulesOptions(slo=0.99 if how == "flag" else None)
    for mode in Mode:
        written = write(
            tmp_path / str(mode), [manifest_of("p", *sources)], RulesOptions(mode=mode, slo=opts.slo)
        )
        assert written.tests is not None
        doc = yaml.safe_load(written.tests.read_text())
        burns = [t for t in doc["tests"] if t["alert_rule_test"][0]["alertname"] == rules.BUDGET_BURN]
        assert len(burns) == 2
        fast, slow = ({c["eval_time"]: c["exp_alerts"] for c in t["alert_rule_test"]} for t in burns)
        speeds = {a["exp_labels"]["burn"] for alerts in fast.values() for a in alerts}
        assert "fast" in speeds
        assert {a["exp_labels"]["burn"] for alerts in slow.values() for a in alerts} == {"slow"}
        assert {
            a["exp_labels"]["severity"]
            for alerts in fast.values()
            for a in alerts
            if a["exp_labels"]["burn"] == "fast"
        } == {"critical"}
        # With --slo 0.99 the 0.9 of b.other is its own objective: 10% budget, one in ten is no slow burn.
        tables = {a["exp_labels"]["table_name"] for alerts in slow.values() for a in alerts}
        assert tables == {"declared"}
        assert_check_rules(written.rules)
        assert_test_rules(written.tests)


def test_objective_must_be_a_fraction() -> None:
    bad = manifest_of("p", source("a", "t", meta=(("dbt_prom", json.dumps({"slo": 99})),)))
    with pytest.raises(UsageError, match=r"a\.t"):
        rules.generate([bad], RulesOptions())
    with pytest.raises(UsageError, match="--slo"):
        rules.generate([sample_manifest()], RulesOptions(slo=1.0))


@requires("promtool")
def test_not_checked_fires_for_a_source_left_out_of_newer_runs(tmp_path: Path) -> None:
    written = write(tmp_path, [sample_manifest()], RulesOptions(meta_labels=SAMPLE_META))
    assert written.tests is not None
    doc = yaml.safe_load(written.tests.read_text())
    by_time = checks(doc, rules.NOT_CHECKED)
    fired = [t for t, n in by_time.items() if n]
    assert fired and all(n in (0, 10) for n in by_time.values())
    assert_test_rules(written.tests)
