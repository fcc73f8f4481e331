"""The model alerts in ``dbt-prom rules``: both modes from the sample manifest, ``--no-models``,
the promtool tests proving each alert firing and resolving, drift, selection, hostile names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import rules
from dbt_prom_bridge.nodes import ModelDef
from dbt_prom_bridge.rules import Mode, RulesOptions
from dbt_prom_bridge.rules.model_rules import BUILD_FAILED, BUILD_LATE, MODEL_ALERTS, NOT_BUILT
from tests.conftest import requires
from tests.fixtures_dbt import run_cli
from tests.rules.rulestools import (
    HOSTILE,
    SAMPLE_MANIFEST,
    assert_check_rules,
    assert_test_rules,
    manifest_of,
    source,
)

META = ["--meta-label", "owner", "--meta-label", "team"]
PROJECT = "dbt_prom_demo"


def model_rules(text: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(text)
    return [r for g in doc["groups"] for r in g["rules"] if r.get("alert", "").startswith("DbtModel")]


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_rules_output_has_the_model_alerts(mode: Mode, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rules", "--manifest", str(SAMPLE_MANIFEST), *META, "--mode", mode.value]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    found = model_rules(out)
    doc = yaml.safe_load(out)
    assert doc["groups"][-1]["name"] == f"dbt-models/{PROJECT}"
    assert {r["alert"] for r in found} == set(MODEL_ALERTS)
    late = [r for r in found if r["alert"] == BUILD_LATE]
    assert {r["labels"]["severity"] for r in late} == {"warning", "critical"}
    if mode is Mode.DYNAMIC:
        assert len(found) == 4  # failed, late warn/error, not built: whatever the number of models
    else:
        # only the models with a threshold get literal rules: hourly_revenue (1h / 3h) and
        # revenue_by_currency (1d / 2d); stg_orders & co. only the project-wide DbtModelBuildFailed
        assert sorted((r["labels"]["model"], r["expr"].rsplit(" ", 1)[-1]) for r in late) == [
            ("hourly_revenue", "10800"),
            ("hourly_revenue", "3600"),
            ("revenue_by_currency", "172800"),
            ("revenue_by_currency", "86400"),
        ]
        assert all(r["labels"]["owner"] == "finance-data" for r in late)
        assert sorted(r["labels"]["model"] for r in found if r["alert"] == NOT_BUILT) == [
            "hourly_revenue",
            "revenue_by_currency",
        ]
        assert not any("stg_orders" in r["expr"] for r in found)
    assert len([r for r in found if r["alert"] == BUILD_FAILED]) == 1
    assert all("docs/models.md#dbtmodel" in r["annotations"]["runbook_url"] for r in found)


def test_no_models_leaves_them_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "rules.yml"
    args = ["rules", "--manifest", str(SAMPLE_MANIFEST), "--no-models", "--out", str(out_file)]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    text = out_file.read_text()
    assert "DbtModel" not in text and "dbt-models/" not in text
    assert "--no-models" in text.splitlines()[1]  # the header's "Regenerate with" keeps it
    assert "models" not in err.splitlines()[-1]


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_promtool_proves_every_model_alert(
    mode: Mode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules.test.yml"
    args = ["rules", "--manifest", str(SAMPLE_MANIFEST), *META, "--mode", mode.value]
    code, _, err = run_cli([*args, "--out", str(out), "--tests", str(tests)], capsys)
    assert code == 0, err
    assert_check_rules(out)
    assert_test_rules(tests)
    doc = yaml.safe_load(tests.read_text())
    checks = [c for t in doc["tests"] for c in t["alert_rule_test"] if c["alertname"] in MODEL_ALERTS]
    fired: dict[str, set[tuple[str, str]]] = {alert: set() for alert in MODEL_ALERTS}
    for check in checks:
        for alert in check["exp_alerts"]:
            fired[check["alertname"]].add((alert["exp_labels"]["model"], alert["exp_labels"]["severity"]))
    # each alert fires, for the models it should, and is proven silent too (before/after)
    assert fired[BUILD_LATE] == {
        (m, s) for m in ("hourly_revenue", "revenue_by_currency") for s in ("warning", "critical")
    }
    assert fired[NOT_BUILT] == {("hourly_revenue", "warning"), ("revenue_by_currency", "warning")}
    assert ("hourly_revenue", "warning") in fired[BUILD_FAILED]
    for alert in MODEL_ALERTS:
        assert any(c["alertname"] == alert and not c["exp_alerts"] for c in checks), alert
    # late: the warning fires alone first (warn_after scenario), then with the critical one
    late = [t for t in doc["tests"] if any(c.get("alertname") == BUILD_LATE for c in t["alert_rule_test"])]
    severities = [
        {a["exp_labels"]["severity"] for a in c["exp_alerts"]}
        for t in late
        for c in t["alert_rule_test"]
        if c["alertname"] == BUILD_LATE and c["exp_alerts"]
    ]
    assert {"warning"} in severities and {"warning", "critical"} in severities


@requires("promtool")
@pytest.mark.parametrize(
    "extra",
    [
        ["--for", "0s"],
        ["--for", "90s", "--keep-firing-for", "10m"],
        ["--lookback", "3h"],
        [
            "--target-label",
            "prod",
            "--target-label",
            "dev",
            "--severity-warn",
            "P3",
            "--severity-error",
            "P1",
        ],
        ["--project", "renamed", "--group-name", "acme", "--runbook-base-url", ""],
    ],
    ids=["for0", "keep", "lookback", "targets-severities", "renamed"],
)
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_options_apply_to_the_model_rules_and_tests(
    mode: Mode, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules.test.yml"
    args = [
        "rules",
        "--manifest",
        str(SAMPLE_MANIFEST),
        "--meta-label",
        "owner",
        "--mode",
        mode.value,
        *extra,
    ]
    code, _, err = run_cli([*args, "--out", str(out), "--tests", str(tests)], capsys)
    assert code == 0, err
    found = model_rules(out.read_text())
    assert found
    if "--severity-warn" in extra:
        assert {r["labels"]["severity"] for r in found} == {"P3", "P1"}
        assert all('target=~"dev|prod"' in r["expr"] for r in found)
    if "--lookback" in extra:
        assert all("last_over_time(" in r["expr"] and "[3h])" in r["expr"] for r in found)
    if "--project" in extra:
        assert all('project="renamed"' in r["expr"] and "runbook_url" not in r["annotations"] for r in found)
        assert yaml.safe_load(out.read_text())["groups"][-1]["name"] == "acme-models/renamed"
    assert_check_rules(out)
    assert_test_rules(tests)


def test_check_covers_the_model_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules.test.yml"
    base = ["rules", *META, "--out", str(out), "--tests", str(tests)]
    code, _, err = run_cli([*base, "--manifest", str(SAMPLE_MANIFEST)], capsys)
    assert code == 0, err
    # the model's build cadence changes in dbt: 1 hour -> 2 hours
    doc = json.loads(SAMPLE_MANIFEST.read_text())
    node = doc["nodes"][f"model.{PROJECT}.hourly_revenue"]
    assert node["config"]["freshness"]["build_after"]["count"] == 1
    node["config"]["freshness"]["build_after"]["count"] = 2
    changed = tmp_path / "manifest.json"
    changed.write_text(json.dumps(doc))
    code, stdout, err = run_cli([*base, "--manifest", str(changed), "--check"], capsys)
    assert code == 1, err
    assert 'model="hourly_revenue"} > 3600' in stdout and 'model="hourly_revenue"} > 7200' in stdout
    # --no-models is drift too: the files hold model rules
    code, _, err = run_cli([*base, "--manifest", str(SAMPLE_MANIFEST), "--no-models", "--check"], capsys)
    assert code == 1, err


def test_a_selection_file_leaves_the_model_rules_out(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rules", "--manifest", str(SAMPLE_MANIFEST), "--select", "source:finance"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "DbtModel" not in out
    assert "model rules cover a whole project" in err


def hostile_models() -> list[ModelDef]:
    return [
        ModelDef(
            f"model.pkg.m{i}",
            name,
            "pkg",
            "db",
            name,
            name,
            "model",
            warn_after=3600.0,
            error_after=7200.0 if i % 2 else None,
            meta=(("owner", name),),
        )
        for i, name in enumerate(HOSTILE)
    ]


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_hostile_model_names_stay_data(mode: Mode, tmp_path: Path) -> None:
    manifest = manifest_of("pkg", source("src", "tbl"), path="manifest.json")
    out, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules.test.yml"
    opts = RulesOptions(mode=mode, meta_labels=("owner",))
    generated = rules.generate(
        [manifest], opts, rules.Outputs(out=out, tests=tests), models=[hostile_models()]
    )
    for item in generated.files:
        assert item.path is not None
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text, encoding="utf-8")
    found = model_rules(out.read_text(encoding="utf-8"))
    assert len(found) == (4 if mode is Mode.DYNAMIC else 1 + len(HOSTILE) * 2 + len(HOSTILE) // 2)
    if mode is Mode.PER_SOURCE:
        # every name reads back as the label (Go-template quoting only), and as a PromQL string
        labels = {r["labels"]["model"] for r in found if "model" in r["labels"]}
        assert labels == {name.replace("{{", '{{ "{{" }}') for name in HOSTILE}
        assert all(r["expr"].count(" unless ") <= 1 for r in found)
    if shutil.which("promtool") is not None:
        assert_check_rules(out)
        assert_test_rules(tests)
