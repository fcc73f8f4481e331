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
    checked = sum(1 for s in sample_manifest().sources.values() if s.has_freshness)
    assert fired and all(n in (0, checked) for n in by_time.values())
    assert_test_rules(written.tests)


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_sli_ratios_are_the_fraction_of_time_within_error_after(mode: Mode, tmp_path: Path) -> None:
    """A source within error_after for 18 hours, then past its deadline for 6: about 75% over the
    last day (from the hourly values), 0 over the last 5m and 1h, 1 over the first hour. 7d and
    30d average the daily values at day boundaries: here the one of 0h (1) and of 24h (~0.76)."""
    written = write(tmp_path, [manifest_of("p", source("s", "t"))], RulesOptions(mode=mode), tests=False)
    labels = '{project="p", target="prod", source_name="s", table_name="t"}'
    series = "dbt_source_freshness_error_deadline_timestamp_seconds" + labels
    # deadline 1h ahead of every evaluation until 18h, then fixed at 18h.
    values = f"3600+60x{18 * 60} {18 * 3600}+0x{6 * 60}"

    def within(window: str, low: float, high: float, at: str) -> dict[str, Any]:
        ratio = f"dbt_source_freshness:sli_ratio_{window}"
        return {
            "expr": f"({ratio} >= bool {low}) * ({ratio} <= bool {high})",
            "eval_time": at,
            "exp_samples": [{"labels": labels, "value": 1}],
        }

    spec = {
        "rule_files": [str(written.rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": values}],
                "promql_expr_test": [
                    within("1h", 1, 1, "1h"),
                    within("5m", 0, 0, "24h"),
                    within("1h", 0, 0, "24h"),
                    within("6h", 0, 0.01, "24h"),
                    within("1d", 0.70, 0.80, "24h"),
                    within("7d", 0.85, 0.90, "24h"),
                    within("30d", 0.85, 0.90, "24h"),
                ],
            }
        ],
    }
    path = tmp_path / "sli.test.yml"
    path.write_text(yaml.safe_dump(spec))
    assert_test_rules(path)


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode))
def test_history_rules_in_a_group_of_their_own(mode: Mode, tmp_path: Path) -> None:
    """`--history-interval 1m`: the later-than-usual and SLO rules move, unchanged, to a group
    `<group>/<project>#history` with `interval: 1m` (promtool accepts it; its tests still pass);
    nothing else moves."""
    manifest = manifest_of("p", source("a", "t"), source("history", "u"))
    plain = write(tmp_path / "plain", [manifest], RulesOptions(mode=mode, slo=0.99))
    own = write(tmp_path / "own", [manifest], RulesOptions(mode=mode, slo=0.99, history_interval=60))
    before = yaml.safe_load(plain.rules.read_text())["groups"]
    after = yaml.safe_load(own.rules.read_text())["groups"]
    history = [g for g in after if g["name"].endswith("#history")]
    assert [g["name"] for g in history] == ["dbt-freshness/p#history"] and history[0]["interval"] == "1m"
    moved = {r.get("record") or r["alert"] for r in history[0]["rules"]}
    assert {"dbt_source_freshness:sli_ratio_6h", "DbtSourceLaterThanUsual", rules.BUDGET_BURN} <= moved
    every = [r for g in before for r in g["rules"]]
    assert sorted(map(str, every)) == sorted(str(r) for g in after for r in g["rules"])  # same rules
    assert all("interval" not in g for g in after if not g["name"].endswith("#history"))
    assert "--history-interval 1m" in own.rules.read_text().split("groups:")[0]
    assert_check_rules(own.rules)
    assert own.tests is not None
    assert_test_rules(own.tests)


@pytest.mark.parametrize("value", [0.5, 151.0, 90.5])
def test_history_interval_bounds(value: float) -> None:
    with pytest.raises(UsageError, match="--history-interval"):
        RulesOptions(history_interval=value).validated()
