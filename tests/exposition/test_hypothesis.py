"""Hostile names, property-tested: quotes, backslashes, newlines, unicode, ``{{ }}``, ``$1``,
``%``, very long names and names that differ only in case, in every label (project, target,
source, table, database, schema, identifier, meta). The exposition parses back to the same
label values and passes ``promtool check metrics``; a real Pushgateway gives back what was
pushed (grouping key included), and a selected run merged with it loses nothing.

Example counts are moderate: promtool and the gateway cost a subprocess / HTTP round trip each.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge import dashboard, rules
from dbt_prom_bridge.config import GatewayConfig
from dbt_prom_bridge.dashboard import DashboardOptions
from dbt_prom_bridge.exposition import PER_SOURCE_METRICS, STATUS, render
from dbt_prom_bridge.model import FreshnessRun, Manifest, SourceCheck, SourceDef, Status, Threshold
from dbt_prom_bridge.sinks.pushgateway import Pushgateway
from devtools import servers

NASTY = [
    '"',
    "\\",
    "\\n",
    "\n",
    "\r\n",
    "\t",
    "{{ var('x') }}",
    "{% raw %}",
    "$1",
    "${HOME}",
    "%s%n%25",
    "'; DROP TABLE x; --",
    'a=b,c="d"',
    "}",
    '{job="x"}',
    "ü→✓ 数据 🚀",
    "\u2028\u2029",
    "\x00",
    " ",
    "",
    ".",
    "..",
    "/",
    "a/b",
    "@base64",
    "x" * 5000,
]

label_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.text(alphabet=st.sampled_from(list('"\\\n{}$%/@. ')), max_size=12),
)
#: Names that must be distinct series: hypothesis' text, plus case variants of each.
name = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=20))


@st.composite
def runs(draw: st.DrawFn, max_sources: int = 8) -> FreshnessRun:
    pairs = draw(st.lists(st.tuples(name, name), min_size=1, max_size=max_sources, unique=True))
    if draw(st.booleans()):
        # names differing only in case are different sources
        s, t = pairs[0]
        for variant in ((s.upper(), t.upper()), (s.lower(), t.lower()), (s.swapcase(), t)):
            if variant not in pairs:
                pairs.append(variant)
    meta_keys = draw(st.sampled_from([(), ("owner",), ("owner", "team")]))
    project, target = draw(label_text), draw(label_text)
    checks = []
    for index, (source, table) in enumerate(pairs):
        status = draw(st.sampled_from(list(Status)))
        loaded = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False)))
        checks.append(
            SourceCheck(
                unique_id=f"source.p.{index}",
                source_name=source,
                table_name=table,
                database=draw(label_text),
                schema=draw(label_text),
                identifier=draw(label_text),
                status=status,
                max_loaded_at=loaded,
                has_data=None if status is Status.RUNTIME_ERROR else loaded is not None,
                checked_at=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False))),
                warn_after=draw(
                    st.one_of(
                        st.none(),
                        st.builds(
                            Threshold, st.integers(1, 10_000), st.sampled_from(["minute", "hour", "day"])
                        ),
                    )
                ),
                error_after=None,
                duration=draw(st.floats(min_value=0, max_value=1e6, allow_nan=False)),
                meta_values=tuple(draw(label_text) for _ in meta_keys),
            )
        )
    return FreshnessRun(
        project=project,
        target=target,
        checks=tuple(checks),
        generated_at=draw(st.floats(min_value=0, max_value=4e9, allow_nan=False)),
        elapsed=1.0,
        success=True,
        dbt_version=draw(label_text),
        meta_labels=meta_keys,
    )


def expected_series(run: FreshnessRun) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the exposition must contain, computed from the records (not from the writer)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for check in run.checks:
        labels = (
            ("project", run.project),
            ("target", run.target),
            ("source_name", check.source_name),
            ("table_name", check.table_name),
            ("database", check.database),
            ("schema", check.schema),
            ("identifier", check.identifier),
            *zip(run.meta_labels, check.meta_values, strict=True),
        )
        for status in Status:
            out[(STATUS, tuple(sorted((*labels, ("status", status.value)))))] = float(status is check.status)
        if check.has_data is not None:
            out[("dbt_source_has_data", tuple(sorted(labels)))] = 1.0 if check.has_data else 0.0
        if check.max_loaded_at is not None:
            out[("dbt_source_max_loaded_at_timestamp_seconds", tuple(sorted(labels)))] = check.max_loaded_at
    return out


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs())
def test_exposition_parses_back_to_the_same_label_values(run: FreshnessRun) -> None:
    text = render(run)
    got = parsed(text)
    for key, value in expected_series(run).items():
        assert key in got, key
        assert got[key] == value
    per_source = [k for k in got if k[0] in PER_SOURCE_METRICS]
    assert len(per_source) == len(set(per_source))
    # one line per sample: no raw newline may break out of a label value
    samples = [line for line in text.split("\n") if line and not line.startswith("#")]
    assert len(samples) == sum(len(fam.samples) for fam in text_string_to_metric_families(text))


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make system-deps)")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs(max_sources=20))
def test_exposition_passes_promtool(run: FreshnessRun) -> None:
    assert PROMTOOL is not None
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=render(run), capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# -- a real Pushgateway ----------------------------------------------------------------------


def gateway_groups(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url + "/api/v1/metrics", timeout=10) as resp:
        data = json.loads(resp.read())["data"]
    assert isinstance(data, list)
    return data


def held_series(group: dict[str, object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam_name, fam in group.items():
        if not isinstance(fam, dict) or "metrics" not in fam or fam_name.startswith("push_"):
            continue
        for metric in fam["metrics"]:
            labels = {k: v for k, v in metric["labels"].items() if k not in ("job", "instance", "extra")}
            out[(fam_name, tuple(sorted(labels.items())))] = float(metric["value"])
    return out


def wipe(url: str) -> None:
    urllib.request.urlopen(
        urllib.request.Request(url + "/api/v1/admin/wipe", method="PUT"), timeout=10
    ).close()


@pytest.mark.e2e
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(run=runs(max_sources=6), extra=label_text, job=label_text)
def test_push_round_trips_through_a_real_gateway(
    pushgateway_server: servers.Server, run: FreshnessRun, extra: str, job: str
) -> None:
    url = pushgateway_server.url
    wipe(url)
    config = GatewayConfig(url=url, job=job or "j", grouping_key=(("extra", extra),), retries=0)
    Pushgateway(config).push(run)
    [group] = gateway_groups(url)
    assert group["labels"] == {
        "job": job or "j",
        "project": run.project,
        "target": run.target,
        "extra": extra,
    }
    held = held_series(group)
    for key, value in expected_series(run).items():
        assert held.get(key) == value, key


@pytest.mark.e2e
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(run=runs(max_sources=6), data=st.data())
def test_selected_run_merged_with_the_gateway_loses_nothing(
    pushgateway_server: servers.Server, run: FreshnessRun, data: st.DataObject
) -> None:
    url = pushgateway_server.url
    wipe(url)
    gateway = Pushgateway(GatewayConfig(url=url, retries=0))
    gateway.push(run)
    chosen: Sequence[int] = data.draw(st.lists(st.integers(0, len(run.checks) - 1), min_size=1, unique=True))
    selected = tuple(
        replace(
            run.checks[i],
            max_loaded_at=5e9 + i,
            has_data=True,
            checked_at=(run.checks[i].checked_at or 0.0) + 1.0,  # a newer check of that source
        )
        for i in sorted(chosen)
    )
    partial = replace(run, checks=selected, partial=True, generated_at=(run.generated_at or 0.0) + 1.0)
    outcome = gateway.push(partial)
    assert outcome.carried_over == len(run.checks) - len(selected)
    [group] = gateway_groups(url)
    held = held_series(group)
    newest = {c.key: c for c in run.checks} | {c.key: c for c in selected}
    merged = replace(run, checks=tuple(newest.values()))
    for key, value in expected_series(merged).items():
        assert held.get(key) == value, key


# -- the dashboard built from the same hostile names -----------------------------------------


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    pairs = draw(st.lists(st.tuples(name, name), min_size=1, max_size=6, unique=True))
    defs = {}
    for index, (source, table) in enumerate(pairs):
        uid = f"source.p.{index}.{index}"
        defs[uid] = SourceDef(
            unique_id=uid,
            package="p",
            source_name=source,
            table_name=table,
            database=draw(label_text),
            schema=draw(label_text),
            identifier=draw(label_text),
            warn_after=Threshold(draw(st.integers(1, 1000)), "hour"),
            error_after=draw(st.one_of(st.none(), st.just(Threshold(2, "day")))),
            filter=None,
            loaded_at_field="loaded_at",
            loaded_at_query=None,
            meta=(("owner", draw(label_text)), ("runbook_url", draw(label_text))),
        )
    return Manifest(draw(label_text) or "p", "manifest/v12", None, None, None, defs)


GRAFANA_VARIABLES = re.compile(r"\$(project|target|source_name|owner)\b")


def dashboard_exprs(doc: dict[str, Any]) -> list[str]:
    found = [a["expr"] for a in doc["annotations"]["list"] if "expr" in a]
    stack = list(doc["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
    return found


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make system-deps)")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=manifests())
def test_dashboard_is_valid_json_and_every_query_parses(
    manifest: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert PROMTOOL is not None
    text = dashboard.render(manifest, DashboardOptions(meta_labels=("owner",)))
    doc = json.loads(text)
    exprs = dashboard_exprs(doc)
    assert exprs
    for expr in exprs:
        # no dbt name can reach Grafana's variable interpolation
        assert "$" not in GRAFANA_VARIABLES.sub("", expr), expr
        assert "[[" not in expr, expr
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:q{i}", "expr": GRAFANA_VARIABLES.sub(".*", e)}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    rule_file = tmp_path_factory.mktemp("dash") / "panels.yml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True))
    lint = subprocess.run([PROMTOOL, "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# -- alert rules generated from the same hostile names ---------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make system-deps)")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=manifests(), mode=st.sampled_from(list(rules.Mode)))
def test_rules_pass_promtool_and_their_own_alert_tests(
    manifest: Manifest, mode: rules.Mode, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The rule file passes ``promtool check rules --lint-fatal``, and the generated ``promtool
    test rules`` file (every alert fired by series carrying the raw hostile names, with the raw
    names expected back in labels and annotations) passes: nothing is injected."""
    assert PROMTOOL is not None
    tmp = tmp_path_factory.mktemp("rules")
    opts = rules.RulesOptions(mode=mode, meta_labels=("owner",))
    outputs = rules.Outputs(out=tmp / "rules.yml", tests=tmp / "tests" / "rules.test.yml")
    generated = rules.generate([manifest], opts, outputs)
    for item in generated.files:
        assert item.path is not None
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text, encoding="utf-8")
    doc = yaml.safe_load((tmp / "rules.yml").read_text(encoding="utf-8"))
    assert all("\n" not in r["expr"] for g in doc["groups"] for r in g["rules"])
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "--lint-fatal", str(tmp / "rules.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp / "tests" / "rules.test.yml")], capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr
