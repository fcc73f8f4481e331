"""The dashboard's Models row: its queries read only the model series' contract (metric names of
nodes.PER_MODEL_METRICS, labels of nodes.MODEL_LABELS), the source panels only the source
contract, and promtool evaluates the model queries over the exposition the bridge renders."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import dashboard, rules
from dbt_prom_bridge.dashboard import DashboardOptions, promql_string
from dbt_prom_bridge.exposition import PER_SOURCE_METRICS, RUN_METRICS
from dbt_prom_bridge.model import SOURCE_LABELS, Status
from dbt_prom_bridge.model_metrics import model_label_names, model_label_values, render_models
from dbt_prom_bridge.nodes import MODEL_LABELS, PER_MODEL_METRICS, BuildStatus, ModelCheck, ModelRun
from tests.conftest import requires
from tests.dashboard.test_dashboard import SAMPLE_OPTS, manifest, panels
from tests.nodes.support import model_check

#: The Pushgateway's own series, read by the push health panels.
PUSH_METRICS = ("push_time_seconds", "push_failure_time_seconds")
#: Label names the model panels may read besides MODEL_LABELS and the meta labels: the state of
#: the dbt_model_build_status state set (and "not built", which a query sets itself).
MODEL_STATE_LABEL = "status"

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\d+(?:\.\d+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|==|>=|<=|\S')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GROUPING = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))
#: Aggregations can take their grouping before the parenthesis: ``sum by (x) (m)``.
_AGGREGATIONS = frozenset(
    (
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    )
)
_KEYWORDS = _GROUPING | _AGGREGATIONS | {"bool", "and", "or", "unless", "offset"}
#: label_replace(v, dst, replacement, src, regex): arguments 1 and 3 are label names.
_LABEL_ARGS = {"label_replace": (1, 3)}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression reads or writes.

    A lexer, not a parser (promtool checks the syntax in test_dashboard.py): a name inside
    ``{...}`` is a matcher's label; inside ``by/on/...(...)`` a grouping label; the label
    arguments of label_replace; a name followed by ``(`` a function; any other a metric.
    """
    tokens = _TOKEN.findall(expr)
    metrics: set[str] = set()
    labels: set[str] = set()
    braces = 0
    calls: list[list[Any]] = []  # [function or keyword, argument index] per open parenthesis
    for i, tok in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok == "{":
            braces += 1
        elif tok == "}":
            braces -= 1
        elif tok == "(":
            calls.append([tokens[i - 1] if i else "", 0])
        elif tok == ")":
            calls.pop()
        elif tok == "," and calls:
            calls[-1][1] += 1
        elif tok.startswith('"'):
            if calls and calls[-1][1] in _LABEL_ARGS.get(calls[-1][0], ()) and tok != '""':
                labels.add(tok[1:-1])
        elif not _NAME.fullmatch(tok):
            continue
        elif braces or (calls and calls[-1][0] in _GROUPING):
            labels.add(tok)
        elif following != "(" and tok not in _KEYWORDS:
            metrics.add(tok)
    assert braces == 0 and not calls, f"unbalanced: {expr}"
    return metrics, labels


def test_promql_names_reads_matchers_grouping_and_label_replace() -> None:
    expr = (
        'label_replace(count((a{x=~"$x", y!="s"} or b{x="1"}) unless on(p, q) c[5m]) '
        'or vector(0), "status", "not built", "src", "") / sum by (g) (d) > bool 1'
    )
    assert promql_names(expr) == ({"a", "b", "c", "d"}, {"x", "y", "p", "q", "status", "src", "g"})


def row_panels(doc: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """The panels of the row ``title`` (up to the next row)."""
    out: list[dict[str, Any]] = []
    inside = False
    for panel in panels(doc):
        if panel["type"] == "row":
            inside = panel["title"] == title
            out.extend(panel.get("panels", []) if inside else [])
        elif inside:
            out.append(panel)
    return out


def panel_names(panel: dict[str, Any]) -> Iterator[tuple[str, set[str], set[str]]]:
    """(expression, metrics, labels) per query, with the labels its legend and table columns read."""
    columns: set[str] = set()
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            columns = {c for c in transformation["options"]["includeByName"] if not c.startswith("Value #")}
    for target in panel.get("targets", []):
        metrics, labels = promql_names(target["expr"])
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        yield target["expr"], metrics, labels | legend | columns


def model_panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return row_panels(doc, "Models")


@pytest.mark.parametrize("meta_labels", [("owner",), ("owner", "team")])
def test_model_panels_read_only_the_model_series_contract(meta_labels: tuple[str, ...]) -> None:
    doc = dashboard.build(manifest(), DashboardOptions(meta_labels=meta_labels))
    found = model_panels(doc)
    assert len(found) == 6
    allowed_labels = {*MODEL_LABELS, *meta_labels, MODEL_STATE_LABEL}
    used_metrics: set[str] = set()
    for panel in found:
        for expr, metrics, labels in panel_names(panel):
            assert metrics and metrics <= set(PER_MODEL_METRICS), (panel["title"], metrics, expr)
            assert labels <= allowed_labels, (panel["title"], labels - allowed_labels, expr)
            assert {f'{key}=~"${key}"' for key in ("project", "target", *meta_labels)} <= set(
                re.findall(r'\w+=~"\$\w+"', expr)
            ), f"not filtered by every template variable but source_name: {expr}"
            assert "source_name" not in expr
            states = set(re.findall(r'status!?=~?"([^"]*)"', expr))
            assert states <= {s.value for s in BuildStatus}, expr
            used_metrics |= metrics
    unused = set(PER_MODEL_METRICS) - used_metrics
    # Shown elsewhere or not a panel of their own: freshness state and check time of `dbt freshness`.
    assert unused == {"dbt_model_freshness_status", "dbt_model_freshness_checked_timestamp_seconds"}


def test_source_panels_read_only_the_source_series_contract() -> None:
    """Every other panel (and the annotation) reads the source, run and push series only."""
    doc = dashboard.build(manifest(), SAMPLE_OPTS)
    recorded = {
        r["record"]
        for f in rules.generate([manifest()], rules.RulesOptions(slo=0.99)).files
        for group in yaml.safe_load(f.text)["groups"]
        for r in group["rules"]
        if "record" in r
    }
    allowed_metrics = {*PER_SOURCE_METRICS, *RUN_METRICS, *PUSH_METRICS, *recorded}
    allowed_labels = {*SOURCE_LABELS, *SAMPLE_OPTS.meta_labels, "status", "job"}
    models = {p["id"] for p in model_panels(doc)}
    others = [p for p in panels(doc) if p["id"] not in models]
    checked = 0
    for panel in others:
        for expr, metrics, labels in panel_names(panel):
            assert metrics and metrics <= allowed_metrics, (panel["title"], metrics - allowed_metrics, expr)
            assert labels <= allowed_labels, (panel["title"], labels - allowed_labels, expr)
            checked += 1
    for annotation in doc["annotations"]["list"]:
        metrics, labels = promql_names(annotation["expr"])
        assert metrics <= allowed_metrics and labels <= allowed_labels
    assert checked > 20


def test_models_row_is_always_there_before_the_per_source_rows() -> None:
    base = manifest()
    for m in (base, replace(base, sources={})):
        doc = dashboard.build(m, SAMPLE_OPTS)
        rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
        assert rows[:5] == ["Overview", "Trends", "Freshness SLOs", "Status", "Models"], rows
        assert all(r.startswith("Source: ") for r in rows[5:])
        assert [p["title"] for p in model_panels(doc)] == [
            "Models by build status",
            "Failed and skipped models",
            "Since last successful build",
            "Build age / threshold",
            "Build duration",
            "Model data age",
        ]


def test_meta_label_named_like_a_model_label_filters_the_sources_only() -> None:
    doc = dashboard.build(manifest(), DashboardOptions(meta_labels=("owner", "package")))
    model_exprs = [t["expr"] for p in model_panels(doc) for t in p["targets"]]
    assert all('owner=~"$owner"' in e and "$package" not in e for e in model_exprs)
    data_age = next(p for p in panels(doc) if p["title"] == "Data age")
    assert 'package=~"$package"' in data_age["targets"][0]["expr"]


def test_failed_models_table_shows_schema_status_and_the_attempt_time() -> None:
    doc = dashboard.build(manifest(), SAMPLE_OPTS)
    table = next(p for p in model_panels(doc) if p["type"] == "table")
    organize = table["transformations"][1]["options"]
    assert list(organize["indexByName"]) == [
        "project",
        "target",
        "model",
        "schema",
        "resource_type",
        "owner",
        "team",
        "status",
        "Value #B",
        "Value #C",
    ]
    assert organize["renameByName"] == {"Value #B": "attempted at", "Value #C": "since last success"}
    units = {
        o["matcher"]["options"]: o["properties"][0]["value"]
        for o in table["fieldConfig"]["overrides"]
        if o["properties"][0]["id"] == "unit"
    }
    assert units == {"attempted at": "dateTimeAsIso", "since last success": "s"}


# --- promtool: the queries over the series the bridge renders -------------------------------


def check(model: str, **kw: Any) -> ModelCheck:
    return model_check(model, schema="marts", **kw)


#: Evaluated at 10m (time() = 600): orders built at 60 (its error_after 1080: half way), daily
#: failed at 120 (last success at 30), child skipped at 120 (never succeeded), hourly declares
#: a cadence and was never built, fresh built at 300 and `dbt freshness` found data of 240.
RUN = ModelRun(
    project="shop",
    target="prod",
    meta_labels=("owner",),
    generated_at=300.0,
    checks=(
        check("child", build_status=BuildStatus.SKIPPED, built_at=120.0, meta_values=("bo",)),
        check(
            "daily",
            build_status=BuildStatus.ERROR,
            built_at=120.0,
            last_success_at=30.0,
            build_duration=3.0,
            meta_values=("bo",),
        ),
        check(
            "fresh",
            build_status=BuildStatus.SUCCESS,
            built_at=300.0,
            last_success_at=300.0,
            build_duration=1.0,
            freshness_status=Status.PASS,
            freshness_checked_at=300.0,
            max_loaded_at=240.0,
            meta_values=("ana",),
        ),
        check("hourly", warn_after=3600.0, meta_values=("ana",)),
        check(
            "orders",
            build_status=BuildStatus.SUCCESS,
            built_at=60.0,
            last_success_at=60.0,
            build_duration=12.0,
            warn_after=540.0,
            error_after=1080.0,
            meta_values=("ana",),
        ),
    ),
)


def labels_of(model: str, **extra: str) -> str:
    found = next(c for c in RUN.checks if c.model == model)
    pairs = {
        **dict(
            zip(
                model_label_names(RUN.meta_labels),
                model_label_values(RUN.project, RUN.target, found),
                strict=True,
            )
        ),
        **extra,
    }
    return "{" + ", ".join(f"{k}={promql_string(v)}" for k, v in sorted(pairs.items())) + "}"


def input_series(exposition: str) -> list[dict[str, str]]:
    """The rendered exposition as promtool input series, each value constant over the test."""
    out = []
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out.append({"series": series, "values": f"{value}x20"})
    return out


def query(doc: dict[str, Any], title: str, ref: str = "A") -> str:
    panel = next(p for p in model_panels(doc) if p["title"] == title)
    expr: str = next(t["expr"] for t in panel["targets"] if t["refId"] == ref)
    for variable in ("$project", "$target", "$owner"):
        expr = expr.replace(variable, ".*")
    return expr


@requires("promtool")
def test_model_queries_over_the_rendered_exposition(tmp_path: Path) -> None:
    doc = dashboard.build(manifest(), DashboardOptions(meta_labels=("owner",)))
    build = "dbt_model_build_status"
    expected: Mapping[tuple[str, str], list[tuple[str, float]]] = {
        ("Models by build status", "A"): [
            ('{status="success"}', 2),
            ('{status="error"}', 1),
            ('{status="skipped"}', 1),
        ],
        ("Models by build status", "B"): [('{status="not built"}', 1)],
        ("Failed and skipped models", "A"): [
            (labels_of("daily", __name__=build, status="error"), 1),
            (labels_of("child", __name__=build, status="skipped"), 1),
        ],
        ("Failed and skipped models", "B"): [(labels_of("daily"), 120_000), (labels_of("child"), 120_000)],
        ("Failed and skipped models", "C"): [(labels_of("daily"), 570)],
        ("Since last successful build", "A"): [
            (labels_of("daily"), 570),
            (labels_of("fresh"), 300),
            (labels_of("orders"), 540),
        ],
        ("Build age / threshold", "A"): [(labels_of("orders"), 0.5)],
        ("Build duration", "A"): [
            (labels_of(m, __name__="dbt_model_build_duration_seconds"), v)
            for m, v in (("daily", 3), ("fresh", 1), ("orders", 12))
        ],
        ("Model data age", "A"): [(labels_of("fresh"), 360)],
    }
    cases = [
        {
            "expr": query(doc, title, ref),
            "eval_time": "10m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }
        for (title, ref), samples in expected.items()
    ]
    (tmp_path / "empty.yml").write_text("groups: []\n")
    spec = {
        "rule_files": [str(tmp_path / "empty.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": input_series(render_models(RUN)), "promql_expr_test": cases}
        ],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(spec, allow_unicode=True))
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
