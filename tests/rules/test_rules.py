"""Generated alert rules: golden files, promtool on every output, mode equivalence, hostile names.

Update the golden files after an intended change with:
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/rules/test_rules.py
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbt_prom_bridge import rules
from dbt_prom_bridge.errors import ThresholdError, UsageError
from dbt_prom_bridge.exposition import WARN_AFTER
from dbt_prom_bridge.model import Manifest, Threshold
from dbt_prom_bridge.rules import Mode, RulesOptions
from dbt_prom_bridge.rules_syntax import promql_string
from tests.conftest import requires
from tests.rules.rulestools import (
    HOSTILE,
    SAMPLE_META,
    assert_check_rules,
    assert_test_rules,
    hostile_manifest,
    manifest_of,
    sample_manifest,
    sample_models,
    source,
    write,
)

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"


def sample_opts(mode: Mode, **kw: Any) -> RulesOptions:
    return RulesOptions(mode=mode, meta_labels=SAMPLE_META, **kw)


# --- golden files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_golden_sample_project(mode: Mode) -> None:
    """Both files of the sample project, byte for byte (paths relative, as in the repo)."""
    outputs = rules.Outputs(out=Path("rules") / f"{mode}.yml", tests=Path("rules/tests") / f"{mode}.test.yml")
    inputs = rules.Inputs(manifests=("tests/data/sample/manifest.json",))
    generated = rules.generate(
        [sample_manifest()], sample_opts(mode), outputs, inputs, models=sample_models()
    )
    for item in generated.files:
        assert item.path is not None
        golden = GOLDEN / item.path
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(item.text, encoding="utf-8")
        assert item.text == golden.read_text(encoding="utf-8"), (
            f"{golden} changed: UPDATE_GOLDEN=1 pytest tests/rules/test_rules.py"
        )


@requires("promtool")
def test_golden_files_pass_promtool() -> None:
    files = sorted((GOLDEN / "rules").glob("*.yml"))
    assert [f.name for f in files] == ["dynamic.yml", "per-source.yml"]
    assert_check_rules(*files)
    assert_test_rules(*sorted((GOLDEN / "rules" / "tests").glob("*.test.yml")))


def test_sample_rules_cover_every_checked_source() -> None:
    doc = yaml.safe_load(rules.generate([sample_manifest()], sample_opts(Mode.PER_SOURCE)).files[0].text)
    by_alert: dict[str, list[dict[str, Any]]] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                by_alert.setdefault(rule["alert"], []).append(rule)
    checked = {
        f"{s.source_name}.{s.table_name}": s for s in sample_manifest().sources.values() if s.has_freshness
    }
    assert len(checked) == 12 and "orders.customers_archive" not in checked
    for alert, attr in ((rules.WARN, "warn_after"), (rules.ERROR, "error_after")):
        got = {f"{r['labels']['source_name']}.{r['labels']['table_name']}": r for r in by_alert[alert]}
        assert set(got) == set(checked)
        for key, rule in got.items():
            threshold = getattr(checked[key], attr)
            late = f"> {threshold.seconds}"
            if key == "partners.invoices":  # business calendar: also compares with its deadline
                late += f" unless dbt_source_freshness_{attr.replace('_after', '')}_deadline"
            assert late in rule["expr"], rule["expr"]
            assert rule["labels"]["owner"] == checked[key].meta_get("owner")
    clicks = next(r for r in by_alert[rules.WARN] if r["labels"]["table_name"] == "clicks")
    assert clicks["expr"].endswith("> 900"), "the table-level override (15 minutes) wins"
    features = next(r for r in by_alert[rules.ERROR] if r["labels"]["table_name"] == "ml_features")
    assert features["annotations"]["runbook_url"] == "https://runbooks.example.com/feature-store"
    orders = next(r for r in by_alert[rules.ERROR] if r["labels"]["table_name"] == "orders")
    assert orders["annotations"]["runbook_url"].endswith("docs/alerts.md#dbtsourcefreshnesserror")
    # state and run-level alerts: one project-wide rule each
    for alert in (rules.NO_DATA, rules.RUNTIME_ERROR, rules.NOT_RUN, *rules.RUN_ALERTS):
        assert len(by_alert[alert]) == 1, alert
    # no data: critical when the source has an error_after (looked up for the active alert only)
    severity = by_alert[rules.NO_DATA][0]["labels"]["severity"]
    assert severity.startswith('{{ with query (printf "dbt_source_freshness_error_after_seconds{')
    assert severity.endswith("}}critical{{ else }}warning{{ end }}")
    assert {r["labels"]["severity"] for r in by_alert[rules.WARN]} == {"warning"}
    assert {r["labels"]["severity"] for r in by_alert[rules.ERROR]} == {"critical"}


# --- structure and determinism ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(Mode), ids=str)
@pytest.mark.parametrize("which", ["sample", "hostile"])
def test_yaml_reads_back_as_the_rule_records(mode: Mode, which: str) -> None:
    """The jinja template + yq filter write exactly the records, whatever the names contain."""
    manifest = sample_manifest() if which == "sample" else hostile_manifest()
    opts = sample_opts(mode, keep_firing_for=60.0, dashboard_url="https://g.example/d/x?o=1")
    the_plan = rules.plan([manifest], opts)
    groups = [g for p in the_plan.projects for g in rules.groups(p, opts)]
    want = {
        "groups": [
            {
                "name": g.name,
                "rules": [
                    dict[str, Any]({"record": r.record, "expr": r.expr, "labels": dict(r.labels)})
                    if isinstance(r, rules.Record)
                    else {
                        "alert": r.alert,
                        "expr": r.expr,
                        **({"for": r.for_} if r.for_ else {}),
                        **({"keep_firing_for": r.keep_firing_for} if r.keep_firing_for else {}),
                        "labels": dict(r.labels),
                        "annotations": dict(r.annotations),
                    }
                    for r in g.rules
                ],
            }
            for g in groups
        ]
    }
    text = rules.generate([manifest], opts).files[0].text
    assert yaml.safe_load(text) == want
    # key order in each rule is Prometheus's usual one
    first = text.split("      - alert: ", 2)[1]
    assert (
        first.index("expr:") < first.index("for:") < first.index("keep_firing_for:") < first.index("labels:")
    )


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_output_is_deterministic_and_independent_of_manifest_order(mode: Mode) -> None:
    base = sample_manifest()
    items = list(base.sources.items())
    random.Random(7).shuffle(items)
    shuffled = replace(base, sources=dict(items))
    outputs = rules.Outputs(out=Path("r.yml"), tests=Path("t/r.test.yml"))
    a = rules.generate([base], sample_opts(mode), outputs)
    b = rules.generate([shuffled], sample_opts(mode), outputs)
    assert [f.text for f in a.files] == [f.text for f in b.files]


def test_header_names_the_canonical_command() -> None:
    opts = sample_opts(Mode.DYNAMIC, for_seconds=120.0, stale_after=3600.0, target_labels=("prod",))
    outputs = rules.Outputs(out=Path("ops/r.yml"))
    inputs = rules.Inputs(project_dir="my project", target="prod")
    text = rules.generate([sample_manifest()], opts, outputs, inputs).files[0].text
    lines = text.splitlines()
    assert lines[0] == "# GENERATED by dbt-prom-bridge -- DO NOT EDIT."
    assert lines[1] == (
        "# Regenerate with: dbt-prom rules --project-dir 'my project' --target prod --mode dynamic "
        "--for 2m --stale-after 1h --meta-label owner --meta-label team --target-label prod --out ops/r.yml"
    )


def test_header_cannot_be_broken_by_a_hostile_flag_value() -> None:
    opts = RulesOptions(group_name="g", dashboard_url="https://x/\n  - name: injected\n#")
    text = rules.generate([sample_manifest()], opts).files[0].text
    header = [line for line in text.splitlines() if line.startswith("# Regenerate")]
    assert len(header) == 1 and "$'https://x/\\x0a  - name: injected\\x0a#'" in header[0]
    assert yaml.safe_load(text)["groups"][0]["name"] == "g/dbt_prom_demo"


# --- promtool: every option combination, both modes -------------------------------------------------
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "keep-firing": {"keep_firing_for": 180.0},
    "short-for": {"for_seconds": 2.0, "stale_after": 20.0},
    "no-for": {"for_seconds": 0.0},
    "lookback": {"lookback": 10800.0},
    "lookback-keep-no-for": {"lookback": 7200.0, "keep_firing_for": 120.0, "for_seconds": 0.0},
    "one-target": {"target_labels": ("prod",)},
    "slo": {"slo": 0.99, "stale_after": 3600.0},
    "targets": {"target_labels": ("prod", "pro|d (x).*")},
    "links": {"dashboard_url": "https://grafana.example/d/abc?orgId=1", "runbook_base_url": ""},
    "names": {"group_name": "team dbt", "severity_warn": "P3", "severity_error": "P1", "job": "fresh{{x}}"},
}


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_generated_rules_and_tests_pass_promtool(mode: Mode, variant: str, tmp_path: Path) -> None:
    written = write(tmp_path, [sample_manifest()], sample_opts(mode, **VARIANTS[variant]))
    assert written.tests is not None
    assert_check_rules(written.rules)
    assert_test_rules(written.tests)


@requires("promtool")
def test_per_source_selection_writes_state_rules_per_source(tmp_path: Path) -> None:
    opts = sample_opts(Mode.PER_SOURCE, select=("source:fin*", "source:orders.order_items"))
    opts = replace(opts, exclude=("source:finance.ml_features",))
    written = write(tmp_path, [sample_manifest()], opts)
    doc = yaml.safe_load(written.rules.read_text())
    tables = {
        r["labels"]["table_name"] for g in doc["groups"] for r in g["rules"] if "table_name" in r["labels"]
    }
    assert tables == {"transactions", "transaction_labels", "order_items"}
    no_data = [r for g in doc["groups"] for r in g["rules"] if r["alert"] == rules.NO_DATA]
    assert len(no_data) == 3 and all('table_name="' in r["expr"] for r in no_data)
    assert written.tests is not None
    assert_check_rules(written.rules)
    assert_test_rules(written.tests)


@requires("promtool")
@pytest.mark.parametrize(
    "variant", ["defaults", "keep-firing", "lookback-keep-no-for", "targets", "links", "slo"]
)
def test_both_modes_give_the_same_alerts_on_the_same_data(variant: str, tmp_path: Path) -> None:
    """The proof of equivalence: each mode's promtool test (same input series, same expected
    alerts, labels and annotations) passes on the OTHER mode's rules.

    Push and rules share the meta labels, runbook_url included (dynamic rules can only read a
    source's own runbook from a pushed label)."""
    opts = {
        mode: RulesOptions(mode=mode, meta_labels=(*SAMPLE_META, "runbook_url"), **VARIANTS[variant])
        for mode in Mode
    }
    per = write(tmp_path, [sample_manifest()], opts[Mode.PER_SOURCE], "per-source")
    dyn = write(tmp_path, [sample_manifest()], opts[Mode.DYNAMIC], "dynamic")
    assert per.tests is not None and dyn.tests is not None
    swapped = []
    for test_file, own, other in ((per.tests, per.rules, dyn.rules), (dyn.tests, dyn.rules, per.rules)):
        doc = yaml.safe_load(test_file.read_text())
        assert doc["rule_files"] == [f"../{own.name}"]
        doc["rule_files"] = [f"../{other.name}"]
        target = test_file.with_name(f"cross-{own.name}")
        target.write_text(yaml.safe_dump(doc, allow_unicode=True))
        swapped.append(target)
    body = [f.read_text().split("\nrule_files:", 1)[1] for f in (per.tests, dyn.tests)]
    assert body[0].replace("per-source", "X") == body[1].replace("dynamic", "X")
    assert_test_rules(per.tests, dyn.tests, *swapped)


@requires("promtool")
def test_lookback_is_what_makes_sparse_remote_write_samples_alert(tmp_path: Path) -> None:
    """Remote-written samples are not re-scraped: one sample per push (here hourly). Without
    --lookback the series leaves instant queries after 5 minutes and the stale source never
    alerts; with it, last_over_time keeps it and the alert fires."""
    one = manifest_of("p", source("s", "t", warn=Threshold(30, "minute"), error=None))
    labels = {"project": "p", "target": "prod", "source_name": "s", "table_name": "t"}
    selector = ", ".join(f"{k}={promql_string(v)}" for k, v in labels.items())
    for lookback, fires in ((None, False), (10800.0, True)):
        opts = RulesOptions(for_seconds=0.0, lookback=lookback)
        written = write(tmp_path / str(lookback), [one], opts, tests=False)
        alert_labels = {**labels, "severity": "warning"}
        text = rules.PlainText(alert_labels, 2400.0, {WARN_AFTER: 1800.0})
        expected = [
            {
                "exp_labels": alert_labels,
                "exp_annotations": dict(rules.alert_annotations(rules.WARN, text, opts)),
            }
        ]
        spec = {
            "rule_files": [str(written.rules)],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    # loaded at 0; pushed at 0 and at 60m only
                    "input_series": [
                        {
                            "series": f"dbt_source_max_loaded_at_timestamp_seconds{{{selector}}}",
                            "values": "0 _x59 0",
                        }
                    ],
                    "alert_rule_test": [
                        {"eval_time": "40m", "alertname": rules.WARN, "exp_alerts": expected if fires else []}
                    ],
                }
            ],
        }
        path = tmp_path / f"{lookback}.test.yml"
        path.write_text(yaml.safe_dump(spec))
        assert_test_rules(path)


# --- hostile names ---------------------------------------------------------------------------------
@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_hostile_names_never_inject(mode: Mode, tmp_path: Path) -> None:
    """Quotes, backslashes, newlines, {{ }}, $1, unicode in project/source/table/meta names: valid
    YAML and PromQL, every selector matches exactly its own series, and Prometheus's template
    engine prints the names instead of executing them (promtool's expected annotations and labels
    are the raw names)."""
    opts = RulesOptions(
        mode=mode,
        meta_labels=("owner", "team", "runbook_url"),
        dashboard_url="https://grafana.example/d/{{ x }}",
        runbook_base_url="https://docs.example/{{ .Foo }}",
    )
    written = write(tmp_path, [hostile_manifest()], opts)
    assert written.tests is not None
    assert_check_rules(written.rules)
    assert_test_rules(written.tests)
    doc = yaml.safe_load(written.rules.read_text())
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    assert all("\n" not in e for e in exprs)
    if mode is Mode.PER_SOURCE:
        labels = [
            r["labels"] for g in doc["groups"] for r in g["rules"] if "source_name" in r.get("labels", {})
        ]
        assert {lb["source_name"] for lb in labels} >= {n.replace("{{", '{{ "{{" }}') for n in HOSTILE}


def test_alert_names_are_valid_and_fixed() -> None:
    import re

    assert rules.ALERTS == (
        "DbtSourceFreshnessWarn",
        "DbtSourceFreshnessError",
        "DbtSourceNoData",
        "DbtSourceFreshnessRuntimeError",
        "DbtSourceFreshnessNotRun",
        "DbtSourceFreshnessNotChecked",
        "DbtSourceLaterThanUsual",
        "DbtSourceFreshnessBudgetBurn",
        "DbtFreshnessRunFailed",
        "DbtFreshnessBridgeStale",
        "DbtFreshnessPushFailing",
    )
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in rules.ALERTS)


def test_go_text_escapes_only_the_action_delimiter() -> None:
    from dbt_prom_bridge.rules_syntax import go_text

    assert go_text("a {{ b }} c") == 'a {{ "{{" }} b }} c'
    assert go_text("{{{") == '{{ "{{" }}{'
    assert go_text("$1 }} ${x}") == "$1 }} ${x}"


# --- planning: what is skipped, and refusals -------------------------------------------------------
def test_bad_thresholds_warn_naming_the_source_and_keep_the_good_one() -> None:
    m = manifest_of(
        "p",
        source("s", "ok"),
        source("s", "half", warn=None, problems=("warn_after skipped: threshold count 0 must be positive",)),
        source("s", "none", warn=None, error=None, problems=("error_after skipped: period 'fortnight'",)),
    )
    generated = rules.generate([m], RulesOptions())
    text = generated.files[0].text
    assert "table_name: half" in text and "table_name: none" not in text
    joined = "\n".join(generated.warnings)
    assert "p: s.half: warn_after skipped: threshold count 0 must be positive; the other threshold" in joined
    assert "p: s.none: error_after skipped: period 'fortnight'; no freshness alert is generated" in joined
    with pytest.raises(ThresholdError, match=r"s.half: warn_after skipped.*\(and 1 more\)"):
        rules.generate([m], RulesOptions(strict=True))


def test_manifest_without_freshness_is_an_input_error() -> None:
    m = manifest_of("p", source("s", "t", warn=None, error=None), path="target/manifest.json")
    with pytest.raises(
        ThresholdError, match=r"no source in target/manifest\.json has a usable freshness"
    ) as err:
        rules.generate([m], RulesOptions())
    assert err.value.exit_code == 2
    with pytest.raises(ThresholdError, match="among the selected ones"):
        rules.generate([sample_manifest()], RulesOptions(select=("source:nothing",)))


def test_warn_not_shorter_than_error_is_reported() -> None:
    m = manifest_of("p", source("s", "t", warn=Threshold(2, "day"), error=Threshold(24, "hour")))
    warnings = rules.generate([m], RulesOptions()).warnings
    assert any("warn_after (2 days) is not shorter than error_after (24 hours)" in w for w in warnings)


def test_same_source_twice_follows_the_first() -> None:
    m = manifest_of(
        "p", source("s", "t", package="a"), source("s", "t", warn=Threshold(9, "day"), package="b")
    )
    generated = rules.generate([m], RulesOptions())
    assert any("defined twice (source.a.s.t and source.b.s.t)" in w for w in generated.warnings)
    assert "> 3600" in generated.files[0].text and "777600" not in generated.files[0].text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"group_name": ""}, "--group-name"),
        ({"group_name": "a\nb"}, "--group-name"),
        ({"severity_warn": ""}, "--severity-warn"),
        ({"job": ""}, "--job"),
        ({"for_seconds": 1.5}, "whole number of seconds"),
        ({"lookback": 3600.0}, "shorter than --stale-after"),
        ({"lookback": 30.0, "stale_after": 10.0}, "at least 1m"),
        ({"mode": Mode.DYNAMIC, "select": ("source:a",)}, "only apply to --mode per-source"),
        ({"select": ("tag:nightly",)}, "only source:NAME"),
        ({"select": ("source:a+",)}, "without graph operators"),
        ({"meta_labels": ("severity",)}, "collides"),
        ({"target_labels": ("",)}, "--target-label"),
    ],
)
def test_option_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        rules.generate([sample_manifest()], RulesOptions(**kw))


def test_lone_surrogate_in_a_name_is_refused() -> None:
    m = manifest_of("p", source("s\ud800", "t"))
    with pytest.raises(UsageError, match="not valid unicode"):
        rules.generate([m], RulesOptions())


# --- several projects -----------------------------------------------------------------------------
def two_projects() -> list[Manifest]:
    return [
        manifest_of("beta", source("s", "t", warn=Threshold(3, "hour")), path="b/manifest.json"),
        manifest_of("alpha", source("s", "t"), source("x", "y", error=None), path="a/manifest.json"),
    ]


@requires("promtool")
def test_combined_file_has_groups_per_project(tmp_path: Path) -> None:
    written = write(tmp_path, two_projects(), RulesOptions())
    doc = yaml.safe_load(written.rules.read_text())
    assert [g["name"] for g in doc["groups"]] == [
        "dbt-freshness/alpha",
        "dbt-freshness/alpha/s",
        "dbt-freshness/alpha/x",
        "dbt-freshness/beta",
        "dbt-freshness/beta/s",
    ]
    assert written.tests is not None
    assert_check_rules(written.rules)
    assert_test_rules(written.tests)


@requires("promtool")
@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_split_by_project_writes_one_file_per_project(mode: Mode, tmp_path: Path) -> None:
    outputs = rules.Outputs(
        out_dir=tmp_path / "rules", tests_dir=tmp_path / "rules" / "tests", split_by=rules.SplitBy.PROJECT
    )
    generated = rules.generate(two_projects(), RulesOptions(mode=mode), outputs)
    paths = [f.path for f in generated.files]
    assert paths == [
        tmp_path / "rules" / "alpha.yml",
        tmp_path / "rules" / "tests" / "alpha.test.yml",
        tmp_path / "rules" / "beta.yml",
        tmp_path / "rules" / "tests" / "beta.test.yml",
    ]
    for item in generated.files:
        assert item.path is not None
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text)
    beta = yaml.safe_load((tmp_path / "rules" / "beta.yml").read_text())
    assert {g["name"].split("/")[1] for g in beta["groups"]} == {"beta"}
    assert "--split-by project" in generated.files[0].text.splitlines()[1]
    assert_check_rules(tmp_path / "rules" / "alpha.yml", tmp_path / "rules" / "beta.yml")
    assert_test_rules(*(p for p in paths if p is not None and p.name.endswith(".test.yml")))


def test_project_errors() -> None:
    with pytest.raises(UsageError, match="cannot apply to several"):
        rules.generate(two_projects(), RulesOptions(project="x"))
    same = [
        manifest_of("p", source("s", "t"), path="1.json"),
        manifest_of("p", source("s", "u"), path="2.json"),
    ]
    with pytest.raises(UsageError, match=r"comes from both 1\.json and 2\.json"):
        rules.generate(same, RulesOptions())
    clash = [manifest_of("a/b", source("s", "t")), manifest_of("a_b", source("s", "t"))]
    outputs = rules.Outputs(out_dir=Path("d"), split_by=rules.SplitBy.PROJECT)
    with pytest.raises(UsageError, match=r"would both be written to a_b\.yml"):
        rules.generate(clash, RulesOptions(), outputs)
    with pytest.raises(UsageError, match="names no project"):
        rules.generate([manifest_of(None)], RulesOptions())


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (rules.Outputs(split_by=rules.SplitBy.PROJECT), "needs --out-dir"),
        (rules.Outputs(out=Path("a"), split_by=rules.SplitBy.PROJECT), "use --out-dir"),
        (rules.Outputs(out_dir=Path("a")), "go with --split-by project"),
        (rules.Outputs(tests=Path("t.yml")), "--tests needs --out"),
        (rules.Outputs(out=Path("a.yml"), tests=Path("a.yml")), "different files"),
    ],
)
def test_output_errors(outputs: rules.Outputs, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        rules.generate([sample_manifest()], RulesOptions(), outputs)


def test_tests_next_to_rules_is_warned_about(tmp_path: Path) -> None:
    outputs = rules.Outputs(out=tmp_path / "r.yml", tests=tmp_path / "r.test.yml")
    generated = rules.generate([sample_manifest()], RulesOptions(), outputs)
    assert any("keep tests in a subdirectory" in w for w in generated.warnings)


# --- the Go functions the expected texts imitate ----------------------------------------------------
@requires("promtool")
def test_humanize_duration_and_urlquery_match_prometheus(tmp_path: Path) -> None:
    """Python's imitations of humanizeDuration/urlquery give what Prometheus's templates give."""
    values = [1, 59, 60, 61, 3599, 3600, 86399, 86400, 172800, 176523, 0.5, 1.5, 12.25, 600000]
    label_values = ["a b&c=d/é✓", "x+y%z", "~._-"]
    rule_file = tmp_path / "r.yml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [
                            {
                                "alert": "A",
                                "expr": "m",
                                "annotations": {
                                    "d": "{{ $value | humanizeDuration }}",
                                    "u": "{{ $labels.l | urlquery }}",
                                },
                            }
                        ],
                    }
                ]
            }
        )
    )
    series = [
        {"series": f'm{{i="{i}", l={promql_string(label_values[i % 3])}}}', "values": f"{v}+0x3"}
        for i, v in enumerate(values)
    ]
    expected = [
        {
            "exp_labels": {"i": str(i), "l": label_values[i % 3]},
            "exp_annotations": {
                "d": rules.humanize_duration(float(v)),
                "u": rules.PlainText({"l": label_values[i % 3]}, 0.0, {}).urlquery("l"),
            },
        }
        for i, v in enumerate(values)
    ]
    test_file = tmp_path / "t.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rule_file)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "alert_rule_test": [{"eval_time": "1m", "alertname": "A", "exp_alerts": expected}],
                    }
                ],
            },
            allow_unicode=True,
        )
    )
    assert_test_rules(test_file)
