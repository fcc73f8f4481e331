"""Quoting of YAML scalars, PromQL strings and RE2 literals: round trips through the real parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt_prom_bridge.rules_syntax import comment_text, promql_string, re2_escape, yaml_scalar
from tests.conftest import requires
from tests.rules.rulestools import HOSTILE, assert_test_rules

#: Any text that can be UTF-8 (no lone surrogates: those are refused before quoting).
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@given(TEXT)
@settings(max_examples=2000, deadline=None)
def test_yaml_scalar_reads_back_as_the_same_string(value: str) -> None:
    doc = yaml.safe_load(f"key: {yaml_scalar(value)}\nnext: 1\n")
    assert doc == {"key": value, "next": 1}


@given(TEXT)
@settings(max_examples=500, deadline=None)
def test_yaml_scalar_is_one_line(value: str) -> None:
    quoted = yaml_scalar(value)
    assert "\n" not in quoted and "\r" not in quoted
    assert "\u2028" not in quoted and "\u2029" not in quoted and "\x85" not in quoted


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("DbtSourceFreshnessWarn", True),
        ("5m", True),
        ("1h30m", True),
        ("dbt-freshness/dbt_prom_demo", True),
        ("yes", False),
        ("Off", False),
        ("null", False),
        ("1e3", False),
        ("123", False),
        ("-x", False),
        ("a: b", False),
        ("", False),
    ],
)
def test_plain_only_when_unambiguous(value: str, plain: bool) -> None:
    assert (yaml_scalar(value) == value) is plain
    assert yaml.safe_load(f"k: {yaml_scalar(value)}") == {"k": value}


def test_numbers_and_refusals() -> None:
    assert yaml_scalar(3) == "3"
    assert yaml_scalar(1.5) == "1.5"
    with pytest.raises(TypeError):
        yaml_scalar(True)
    with pytest.raises(TypeError):
        yaml_scalar(None)


@given(TEXT)
def test_comment_text_stays_on_its_line(value: str) -> None:
    line = "# " + comment_text(value)
    assert yaml.safe_load(line + "\nk: 1\n") == {"k": 1}


@requires("promtool")
def test_promql_strings_and_re2_literals_match_exactly_their_value(tmp_path: Path) -> None:
    """promtool (Prometheus's own parser) reads each literal back as the raw value: ``l="..."``
    and ``l=~"<escaped>"`` both select the one series labelled with it, and nothing else."""
    values = [*HOSTILE, "", "x", "x.y", "(a|b)*", "[z]", "^$", "\x7f\x01"]
    rule_file = tmp_path / "empty.yml"
    rule_file.write_text("groups: []\n")
    series = [
        {"series": f'm{{i="{i}", l={promql_string(v)}}}', "values": "1+0x5"} for i, v in enumerate(values)
    ]
    cases = []
    for i, value in enumerate(values):
        for op, literal in (("=", promql_string(value)), ("=~", promql_string(re2_escape(value)))):
            cases.append(
                {
                    "expr": f"sum by (i) (m{{l{op}{literal}}})",
                    "eval_time": "1m",
                    "exp_samples": [{"labels": f'{{i="{i}"}}', "value": 1}],
                }
            )
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rule_file)],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}],
            },
            allow_unicode=True,
        )
    )
    assert_test_rules(test_file)
