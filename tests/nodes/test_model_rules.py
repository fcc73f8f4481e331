"""Model alert rules from the sample project's real manifest, in both modes: promtool accepts
them, and `promtool test rules` proves DbtModelBuildLate (warning, then critical),
DbtModelBuildFailed and DbtModelNotBuilt fire on the series the bridge pushes (the same in
both modes), and that hostile model names cannot change the PromQL or the YAML."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge.errors import UsageError
from dbt_prom_bridge.model_artifacts import read_manifest_models
from dbt_prom_bridge.nodes import ModelDef
from dbt_prom_bridge.rules.model_rules import (
    MODES,
    ModelRuleOptions,
    model_rule_groups,
    render_model_rules,
)
from tests.conftest import requires
from tests.nodes.support import MODELS

PROJECT = "dbt_prom_demo"


def labels(model: str, owner: str) -> str:
    return (
        f'project="{PROJECT}",target="dev",model="{model}",package="{PROJECT}",database="dbt_prom_demo",'
        f'schema="dbt_prom_demo",identifier="{model}",resource_type="model",owner="{owner}"'
    )


#: What the bridge pushes after `dbt build` of the sample at t=0 (then nothing more is pushed):
#: hourly_revenue built (warn 1h, error 3h), orders_enriched failed, revenue_by_currency
#: configured (1d / 2d) but never built.
SERIES = [
    ("dbt_model_last_success_timestamp_seconds", "hourly_revenue", "finance-data", "0+0x300"),
    ("dbt_model_build_checked_timestamp_seconds", "hourly_revenue", "finance-data", "0+0x300"),
    ("dbt_model_freshness_warn_after_seconds", "hourly_revenue", "finance-data", "3600+0x300"),
    ("dbt_model_freshness_error_after_seconds", "hourly_revenue", "finance-data", "10800+0x300"),
    ("dbt_model_build_checked_timestamp_seconds", "orders_enriched", "orders-data", "0+0x300"),
    ("dbt_model_freshness_warn_after_seconds", "revenue_by_currency", "finance-data", "86400+0x300"),
    ("dbt_model_freshness_error_after_seconds", "revenue_by_currency", "finance-data", "172800+0x300"),
]


def input_series() -> list[dict[str, str]]:
    out = [
        {"series": f"{name}{{{labels(model, owner)}}}", "values": values}
        for name, model, owner, values in SERIES
    ]
    for status in ("success", "error", "skipped"):
        value = "1+0x300" if status == "error" else "0+0x300"
        out.append(
            {
                "series": "dbt_model_build_status{"
                + labels("orders_enriched", "orders-data")
                + f',status="{status}"}}',
                "values": value,
            }
        )
    return out


def exp_labels(model: str, owner: str, severity: str, **extra: str) -> dict[str, str]:
    return {
        "project": PROJECT,
        "target": "dev",
        "model": model,
        "package": PROJECT,
        "database": "dbt_prom_demo",
        "schema": "dbt_prom_demo",
        "identifier": model,
        "resource_type": "model",
        "owner": owner,
        "severity": severity,
        **extra,
    }


def expand(template: str, labels: dict[str, str], age: str) -> str:
    """What Prometheus's template engine makes of an annotation (the few actions used)."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.replace("{{ $value | humanizeDuration }}", age)


def alert(
    rules: list[dict[str, Any]], name: str, at: str, *exp: tuple[dict[str, str], str]
) -> dict[str, Any]:
    """``exp``: (labels, the value as humanizeDuration prints it); annotations are expanded from
    the rule of that alert and severity."""
    out = []
    for labels, age in exp:
        rule = next(r for r in rules if r["alert"] == name and r["labels"]["severity"] == labels["severity"])
        annotations = {k: expand(v, labels, age) for k, v in rule["annotations"].items()}
        out.append({"exp_labels": labels, "exp_annotations": annotations})
    return {"eval_time": at, "alertname": name, "exp_alerts": out}


def promtool_tests(rule_file: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    late_warn = exp_labels("hourly_revenue", "finance-data", "warning")
    late_crit = exp_labels("hourly_revenue", "finance-data", "critical")
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series(),
                "alert_rule_test": [
                    alert(rules, "DbtModelBuildLate", "50m"),  # younger than warn_after: nothing
                    alert(rules, "DbtModelBuildLate", "2h", (late_warn, "2h 0m 0s")),
                    alert(rules, "DbtModelBuildLate", "4h", (late_warn, "4h 0m 0s"), (late_crit, "4h 0m 0s")),
                    alert(
                        rules,
                        "DbtModelBuildFailed",
                        "10m",
                        (exp_labels("orders_enriched", "orders-data", "warning", status="error"), ""),
                    ),
                    alert(
                        rules,
                        "DbtModelNotBuilt",
                        "10m",
                        (exp_labels("revenue_by_currency", "finance-data", "warning"), ""),
                    ),
                ],
            }
        ],
    }


def models() -> list[ModelDef]:
    return list(read_manifest_models(MODELS / "manifest.json").models.values())


@requires("promtool")
@pytest.mark.parametrize("mode", MODES)
def test_promtool_proves_the_model_alerts(tmp_path: Path, mode: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    opts = ModelRuleOptions(PROJECT, mode, meta_labels=("owner",))
    rules = tmp_path / "models.yml"
    groups = model_rule_groups(models(), opts)
    rules.write_text(render_model_rules(groups))
    check = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", str(rules)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "models.test.yml"
    test_file.write_text(yaml.safe_dump(promtool_tests(rules.name, groups[0]["rules"]), sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_per_model_rules_are_literal_and_dynamic_constant() -> None:
    per_model = model_rule_groups(models(), ModelRuleOptions(PROJECT, "per-model", meta_labels=("owner",)))
    exprs = [r["expr"] for r in per_model[0]["rules"]]
    assert any('model="hourly_revenue"' in e and e.endswith("> 3600") for e in exprs)
    assert any('model="hourly_revenue"' in e and e.endswith("> 10800") for e in exprs)
    assert not any('model="stg_orders"' in e for e in exprs)  # no threshold, no per-model rule
    dynamic = model_rule_groups(models() * 50, ModelRuleOptions(PROJECT, "dynamic"))
    assert len(dynamic[0]["rules"]) == 4


def test_hostile_model_names_stay_data(tmp_path: Path) -> None:
    evil = 'x"} or vector(1) #{{ $labels }}\n- alert: Pwned'
    mdef = ModelDef(
        f"model.{PROJECT}.evil",
        evil,
        PROJECT,
        "db",
        "s",
        "t",
        "model",
        warn_after=60.0,
        meta=(("owner", evil),),
    )
    text = render_model_rules(
        model_rule_groups([mdef], ModelRuleOptions(PROJECT, "per-model", meta_labels=("owner",)))
    )
    doc = yaml.safe_load(text)
    rules = doc["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["DbtModelBuildFailed", "DbtModelBuildLate", "DbtModelNotBuilt"]
    assert rules[1]["labels"]["model"] == evil.replace("{{", '{{ "{{" }}')
    promtool = shutil.which("promtool")
    if promtool is not None:
        path = tmp_path / "evil.yml"
        path.write_text(text)
        check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_options_are_checked() -> None:
    with pytest.raises(UsageError):
        ModelRuleOptions(PROJECT, "per-source")
    with pytest.raises(UsageError):
        ModelRuleOptions("")
