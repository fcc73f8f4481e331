"""Alert rules for sources with a business calendar: ``time() > deadline`` in both modes, the
annotations (calendar, local time of the deadline), generated promtool tests across a weekend, a
public holiday and a DST change, and exit 2 on a wrong calendar."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dbt_prom_bridge import rules
from dbt_prom_bridge.calendar import deadline_text, parse_calendar
from dbt_prom_bridge.errors import CalendarError, ExitCode
from dbt_prom_bridge.model import Manifest, Threshold
from dbt_prom_bridge.rules import Mode, RulesOptions
from dbt_prom_bridge.rules.render import GoText
from tests.calendar.test_calendar import BUSINESS, NY, local
from tests.rules.rulestools import assert_check_rules, assert_test_rules, manifest_of, promtool, source, write

LONDON = {"timezone": "Europe/London", "days": "mon-fri", "hours": "08:00-18:00", "holidays": "GB-ENG"}


def calendar_meta(calendar: object) -> tuple[tuple[str, str], ...]:
    return (("dbt_prom", json.dumps({"calendar": calendar})), ("owner", "ops"))


def calendar_manifest() -> Manifest:
    return manifest_of(
        "shop",
        source(
            "crm",
            "accounts",
            warn=Threshold(2, "hour"),
            error=Threshold(12, "hour"),
            meta=calendar_meta(BUSINESS),
        ),
        source("crm", "contacts", warn=Threshold(30, "minute"), error=None, meta=calendar_meta(LONDON)),
        source("web", "events"),
    )


def rule_map(path: Path) -> dict[tuple[str, str], dict[str, object]]:
    doc = yaml.safe_load(path.read_text())
    return {
        (r["alert"], r["labels"].get("table_name", "")): r
        for g in doc["groups"]
        for r in g["rules"]
        if "alert" in r
    }


@pytest.mark.parametrize("mode", list(Mode))
def test_generated_tests_cross_weekend_holiday_and_dst(mode: Mode, tmp_path: Path) -> None:
    written = write(tmp_path, [calendar_manifest()], RulesOptions(mode=mode, meta_labels=("owner",)))
    assert written.tests is not None
    text = written.tests.read_text()
    for what in ("over a weekend", "over a public holiday", "over a change of UTC offset"):
        assert text.count(what) == 2, what  # one scenario per calendar source
    assert "America/New_York" in text and "Europe/London" in text
    assert_check_rules(written.rules)
    assert_test_rules(written.tests)


def test_per_source_rules_compare_with_the_deadline(tmp_path: Path) -> None:
    written = write(tmp_path, [calendar_manifest()], RulesOptions(mode=Mode.PER_SOURCE), tests=False)
    found = rule_map(written.rules)
    warn = found[(rules.WARN, "accounts")]
    assert "unless dbt_source_freshness_warn_deadline_timestamp_seconds{" in str(warn["expr"])
    description = dict(warn["annotations"])["description"]  # type: ignore[call-overload]
    assert "mon-fri 06:00-20:00 America/New_York, except US holidays" in description
    assert "EST" in description and "EDT" in description  # the offset table of the zone
    plain = found[(rules.WARN, "events")]
    assert "deadline" not in str(plain["expr"])  # no calendar: the rule is unchanged


def test_both_modes_give_the_same_alerts_with_calendars(tmp_path: Path) -> None:
    opts = {mode: RulesOptions(mode=mode, meta_labels=("owner",)) for mode in Mode}
    per = write(tmp_path, [calendar_manifest()], opts[Mode.PER_SOURCE], "per-source")
    dyn = write(tmp_path, [calendar_manifest()], opts[Mode.DYNAMIC], "dynamic")
    assert per.tests is not None and dyn.tests is not None
    swapped = []
    for test_file, own, other in ((per.tests, per.rules, dyn.rules), (dyn.tests, dyn.rules, per.rules)):
        doc = yaml.safe_load(test_file.read_text())
        doc["rule_files"] = [f"../{other.name}"]
        target = test_file.with_name(f"cross-{own.name}")
        target.write_text(yaml.safe_dump(doc, allow_unicode=True))
        swapped.append(target)
    assert_test_rules(*swapped)


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"hours": "25:00-26:00"}, "hours"),
        ({"holidays": "QQ"}, "holidays"),
    ],
)
def test_wrong_calendar_is_exit_2(calendar: dict[str, str], field: str) -> None:
    bad = manifest_of("shop", source("crm", "accounts", meta=calendar_meta(calendar)))
    with pytest.raises(CalendarError) as info:
        rules.generate([bad], RulesOptions(), rules.Outputs())
    assert info.value.exit_code == ExitCode.INPUT
    assert "crm.accounts" in str(info.value) and field in str(info.value)


def test_local_time_template_matches_zoneinfo(tmp_path: Path) -> None:
    """The Go template renders a deadline in the calendar's zone as Python does, on both sides of a
    DST change (a 2026 deadline cannot fire in a promtool test, which starts in 1970: read it)."""
    calendar = parse_calendar(BUSINESS, "crm.accounts")
    deadlines = [local(NY, 2026, 10, 30, 19, 0), local(NY, 2026, 11, 2, 7, 0), 3600.0]
    snippet = GoText(RulesOptions()).deadline("d", calendar)
    rule_file = tmp_path / "r.yml"
    tests = []
    groups = []
    for index, value in enumerate(deadlines):
        name = f"Local{index}"
        selector = '{project="p",target="t",source_name="s",table_name="x"}'
        expr = f"d{selector} > 0"
        groups.append({"alert": name, "expr": expr, "annotations": {"at": snippet}, "labels": {}})
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": f"d{selector}", "values": f"{value!r}x5"}],
                "alert_rule_test": [
                    {
                        "eval_time": "2m",
                        "alertname": name,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "project": "p",
                                    "target": "t",
                                    "source_name": "s",
                                    "table_name": "x",
                                },
                                "exp_annotations": {"at": deadline_text(calendar, value)},
                            }
                        ],
                    }
                ],
            }
        )
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": groups}]}))
    test_file = tmp_path / "t.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": ["r.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    assert deadline_text(calendar, deadlines[1]) == "Mon 2026-11-02 07:00 EST"
    assert deadline_text(calendar, deadlines[0]) == "Fri 2026-10-30 19:00 EDT"
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dynamic_rules_stay_a_handful(tmp_path: Path) -> None:
    many = manifest_of(
        "shop",
        *(
            source("crm", f"t{n}", meta=calendar_meta({**BUSINESS, "hours": f"0{n}:00-20:00"}))
            for n in range(5)
        ),
    )
    opts = RulesOptions(mode=Mode.DYNAMIC)
    written = write(tmp_path, [many], opts, tests=False)
    base = write(tmp_path, [manifest_of("shop", source("crm", "t0"))], replace(opts), "plain", tests=False)
    count = sum(len(g["rules"]) for g in yaml.safe_load(written.rules.read_text())["groups"])
    assert count == sum(len(g["rules"]) for g in yaml.safe_load(base.rules.read_text())["groups"])
