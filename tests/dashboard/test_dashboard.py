"""The generated Grafana dashboard: golden file, thresholds per source, hostile names, --check.

Update the golden file after an intended change with:
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/dashboard
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import dashboard, rules
from dbt_prom_bridge.artifacts import read_manifest
from dbt_prom_bridge.dashboard import DashboardOptions, promql_string
from dbt_prom_bridge.model import Manifest, SourceDef, Threshold
from tests.conftest import requires
from tests.fixtures_dbt import copy_project, run_cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MANIFEST = HERE / "data" / "manifest.json"
GOLDEN = HERE / "golden" / "dbt-freshness.json"
OPS_DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "dbt-freshness.json"
#: The options `make dashboard` uses for the sample project (owner/team routed by Alertmanager).
SAMPLE_OPTS = DashboardOptions(meta_labels=("owner", "team"))


def manifest() -> Manifest:
    return read_manifest(MANIFEST)


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in doc["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def exprs(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel queries and annotation queries."""
    annotations = [a["expr"] for a in doc["annotations"]["list"]]
    return [t["expr"] for p in panels(doc) for t in p.get("targets", [])] + annotations


def test_golden_sample_project() -> None:
    text = dashboard.render(manifest(), SAMPLE_OPTS)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "dashboard changed: UPDATE_GOLDEN=1 pytest tests/dashboard"


def test_output_is_deterministic_and_independent_of_manifest_order() -> None:
    m = manifest()
    shuffled = replace(m, sources=dict(reversed(list(m.sources.items()))))
    assert dashboard.render(m) == dashboard.render(m) == dashboard.render(shuffled)


def test_panel_ids_unique_and_grid_within_24_columns() -> None:
    doc = dashboard.build(manifest())
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids))
    for p in panels(doc):
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_one_stat_per_checked_source_with_its_own_thresholds() -> None:
    m = manifest()
    doc = dashboard.build(m)
    stats = {
        p["description"].split(":")[0]: p
        for p in panels(doc)
        if p["type"] == "stat" and p["description"].startswith("source.")
    }
    checked = {s.unique_id: s for s in m.sources.values() if s.has_freshness}
    assert set(stats) == set(checked), "one panel per source with freshness; none for customers_archive"
    for uid, panel in stats.items():
        source = checked[uid]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        expected: list[dict[str, object]] = [{"color": "green", "value": None}]
        if source.warn_after:
            expected.append({"color": "orange", "value": source.warn_after.seconds})
        if source.error_after:
            expected.append({"color": "red", "value": source.error_after.seconds})
        assert steps == expected, uid
        assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    clicks = stats["source.dbt_prom_demo.events.clicks"]
    assert [s["value"] for s in clicks["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 900, 1800]
    ml = stats["source.dbt_prom_demo.finance.ml_features"]
    assert ml["links"][0]["url"] == "https://runbooks.example.com/feature-store"


def test_variables_and_required_panels() -> None:
    doc = dashboard.build(manifest(), SAMPLE_OPTS)
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names == ["datasource", "project", "target", "source_name", "owner", "team"]
    titles = {p["title"] for p in panels(doc)}
    assert {
        "Sources by status",
        "Last run",
        "Run success",
        "Run duration",
        "Last push",
        "Failing pushes",
        "Data age",
        "Age / error_after",
        "Since last check",
        "Freshness SLI, 30 days",
        "Error budget left, 30 days",
        "Sources",
    } <= titles
    assert all(
        p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for p in panels(doc)
        if p["type"] != "row"
    )


def test_slo_panels_read_the_recording_rules_that_rules_writes() -> None:
    """The SLO panels query series that `dbt-prom rules --slo` records for the same manifest."""
    doc = dashboard.build(manifest(), SAMPLE_OPTS)
    exprs = [
        t["expr"]
        for p in panels(doc)
        if p["title"].startswith(("Freshness SLI", "Error budget"))
        for t in p["targets"]
    ]
    used = {name for expr in exprs for name in re.findall(r"dbt_source_freshness:[a-z0-9_]+", expr)}
    generated = rules.generate([manifest()], rules.RulesOptions(slo=0.99))
    recorded = {
        r["record"]
        for f in generated.files
        for group in yaml.safe_load(f.text)["groups"]
        for r in group["rules"]
        if "record" in r
    }
    assert used and used <= recorded, used - recorded


def test_many_sources_start_in_collapsed_rows() -> None:
    base = manifest()
    one = next(s for s in base.sources.values() if s.has_freshness)
    many = {
        f"source.p.s{i % 5}.t{i}": replace(
            one, unique_id=f"source.p.s{i % 5}.t{i}", source_name=f"s{i % 5}", table_name=f"t{i}"
        )
        for i in range(60)
    }
    doc = dashboard.build(replace(base, sources=many))
    rows = [p for p in doc["panels"] if p["type"] == "row" and p["title"].startswith("Source: ")]
    assert len(rows) == 5 and all(r["collapsed"] for r in rows)
    assert sum(len(r["panels"]) for r in rows) == 60


HOSTILE = [
    'we"ird',
    "back\\slash",
    "new\nline",
    "$project",
    "${target}",
    "[[source_name]]",
    "ünï",
    "a}b{c",
    'x=~".*"',
]


def hostile_manifest() -> Manifest:
    defs = {}
    for i, name in enumerate(HOSTILE):
        uid = f"source.p.{name}.t{i}"
        defs[uid] = SourceDef(
            unique_id=uid,
            package="p",
            source_name=name,
            table_name=name + "_t",
            database="db",
            schema="s",
            identifier="t",
            warn_after=Threshold(1, "hour"),
            error_after=Threshold(2, "hour"),
            filter=None,
            loaded_at_field="x",
            loaded_at_query=None,
            meta=(("owner", name), ("runbook_url", "javascript:alert(1)")),
        )
    return Manifest('pro"ject$x', "manifest/v12", None, None, None, defs)


def test_hostile_names_give_valid_json_and_no_grafana_interpolation() -> None:
    doc = json.loads(dashboard.render(hostile_manifest()))
    for expr in exprs(doc):
        literal_dollars = re.sub(r"\$(project|target|source_name|owner)\b", "", expr)
        assert "$" not in literal_dollars, expr
        assert "[[" not in expr, expr
    stats = [p for p in panels(doc) if p["type"] == "stat" and p["description"].startswith("source.")]
    assert len(stats) == len(HOSTILE)
    assert not any("links" in p for p in stats), "only http(s) runbook URLs become links"


@pytest.mark.parametrize("value", [*HOSTILE, "", "tab\there", "\x7f\x01"])
def test_promql_string_round_trips_through_prometheus_lexer(value: str, tmp_path: Path) -> None:
    """promtool (the real PromQL parser) reads the literal back as exactly ``value``."""
    literal = promql_string(value)
    assert literal.startswith('"') and literal.endswith('"')
    assert "$" not in literal and "[" not in literal
    check_matches(tmp_path, [(value, f"count(m{{l={literal}}})")])


def check_matches(tmp_path: Path, cases: list[tuple[str, str]]) -> None:
    """``promtool test rules``: each expr, over series labelled with the raw value, returns 1."""
    import shutil

    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    series = [{"series": f"m{{l={promql_string(value)}}}", "values": "1x5"} for value, _ in cases]
    tests = [
        {"expr": expr, "eval_time": "1m", "exp_samples": [{"labels": "{}", "value": 1}]} for _, expr in cases
    ]
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(spec, allow_unicode=True))
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@requires("promtool")
def test_every_panel_query_parses_and_hostile_source_queries_match_their_series(tmp_path: Path) -> None:
    m = hostile_manifest()
    doc = dashboard.build(m)
    variables = {"$project": ".*", "$target": ".*", "$source_name": ".*", "$owner": ".*"}

    def substitute(expr: str) -> str:
        for key, value in variables.items():
            expr = expr.replace(key, value)
        return expr

    # Every query of the dashboard is valid PromQL once Grafana substitutes the variables:
    # promtool check rules parses each one as a recording rule expression.
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [{"record": f"panel:q{i}", "expr": substitute(e)} for i, e in enumerate(exprs(doc))],
            }
        ]
    }
    rule_file = tmp_path / "panels.yml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # And each per-source query selects exactly its own (hostile) series.
    stats = [p for p in panels(doc) if p["type"] == "stat" and p["description"].startswith("source.")]
    series = []
    cases = []
    for source, panel in zip(
        sorted(m.sources.values(), key=lambda s: (s.source_name, s.table_name)), stats, strict=True
    ):
        labels = (
            f'project={promql_string(m.project_name or "")},target="dev",'
            f"source_name={promql_string(source.source_name)},table_name={promql_string(source.table_name)}"
        )
        series.append({"series": f"dbt_source_max_loaded_at_timestamp_seconds{{{labels}}}", "values": "0x5"})
        cases.append(
            {
                "expr": f"count({substitute(panel['targets'][0]['expr'])})",
                "eval_time": "1m",
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        )
    (tmp_path / "empty.yml").write_text("groups: []\n")
    spec = {
        "rule_files": [str(tmp_path / "empty.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(spec, allow_unicode=True))
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- CLI -------------------------------------------------------------------------------------


def test_cli_writes_then_check_passes_then_drift_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d" / "dash.json"
    code, _, err = run_cli(["dashboard", "--manifest", str(MANIFEST), "--out", str(out)], capsys)
    assert code == 0 and "wrote" in err
    assert json.loads(out.read_text())["uid"] == dashboard.default_uid("dbt_prom_demo")
    code, stdout, err = run_cli(
        ["dashboard", "--manifest", str(MANIFEST), "--out", str(out), "--check"], capsys
    )
    assert (code, stdout) == (0, "") and "up to date" in err
    out.write_text(out.read_text().replace("900", "600", 1))
    code, stdout, err = run_cli(
        ["dashboard", "--manifest", str(MANIFEST), "--out", str(out), "--check"], capsys
    )
    assert code == 1
    assert stdout.startswith("---") and "+++" in stdout
    assert "out of date" in err and "Traceback" not in err


def test_cli_check_missing_file_is_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        ["dashboard", "--manifest", str(MANIFEST), "--out", str(tmp_path / "x.json"), "--check"], capsys
    )
    assert code == 1 and "missing" in err


def test_cli_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run_cli(
        ["dashboard", "--manifest", str(MANIFEST), "--meta-label", "owner", "--meta-label", "team"], capsys
    )
    assert code == 0
    assert stdout == dashboard.render(manifest(), SAMPLE_OPTS)


def test_cli_names_the_thresholds_it_cannot_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Such sources used to vanish from the dashboard without a word (rules warned about them).
    doc = json.loads(MANIFEST.read_text(encoding="utf-8"))
    uid = sorted(doc["sources"])[0]
    bad = {"warn_after": {"count": 0, "period": "hour"}, "error_after": {"count": 1, "period": "fortnight"}}
    doc["sources"][uid]["freshness"] = bad
    doc["sources"][uid].get("config", {})["freshness"] = bad
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    code, _, err = run_cli(["dashboard", "--manifest", str(path)], capsys)
    source = read_manifest(path).sources[uid]
    name = f"{source.source_name}.{source.table_name}"
    assert code == 0
    assert f"warning: {name}: warn_after skipped: threshold count 0 must be positive" in err
    assert "period 'fortnight'" in err and "no panel" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifest", "/nonexistent/manifest.json"], "manifest.json not found"),
        (["--manifest", str(MANIFEST), "--artifacts-dir", "/tmp"], "not both"),
        (["--manifest", str(MANIFEST), "--check"], "give --out"),
        (["--project-dir", "/nonexistent"], "no dbt_project.yml"),
        (["--manifest", str(MANIFEST), "--meta-label", "bad-label"], "not a valid Prometheus label name"),
        # Grafana refuses such a uid on import: the dashboard was written all the same
        (["--manifest", str(MANIFEST), "--uid", "x" * 41], "is not a Grafana dashboard uid"),
        (["--manifest", str(MANIFEST), "--uid", "a/b"], "is not a Grafana dashboard uid"),
        # the dashboard covers every source: a selection was accepted and silently ignored
        (["--manifest", str(MANIFEST), "--select", "source:events"], "No such option '--select'"),
    ],
)
def test_cli_input_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["dashboard", *args], capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err


@pytest.mark.dbt
def test_shipped_dashboard_matches_the_sample_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ops/grafana/dashboards/ is what `make dashboard` generates from dbt_project/ today."""
    project = copy_project(tmp_path / "dbt_project")
    code, stdout, err = run_cli(
        [
            "dashboard",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--meta-label",
            "owner",
            "--meta-label",
            "team",
            "--out",
            str(OPS_DASHBOARD),
            "--check",
        ],
        capsys,
    )
    assert code == 0, stdout + err
