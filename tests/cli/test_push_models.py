"""``push --run-results``: model builds into the same Pushgateway group as the sources, against a
real Pushgateway, with the real run_results.json and manifest.json of a ``dbt build`` of the
sample project (one model fails, one is skipped because of it).

A build changes only the models it reports; a freshness push keeps the models; a models-only
push keeps every source series, run-level ones included; the same file again pushes nothing;
mistakes (a future-dated file, a file that built nothing, a meta label that is a model label)
are refused with exit 2."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from devtools import servers
from tests.fixtures_dbt import EXPECTED_STATUS, read_gateway, run_cli
from tests.nodes.support import SAMPLE_BUILD_STATUS
from tests.reliability.runs import write_artifacts

pytestmark = pytest.mark.e2e

MODELS = Path(__file__).resolve().parents[1] / "data" / "models"
BUILT = SAMPLE_BUILD_STATUS


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_results(
    path: Path, at: float, only: Iterable[str] | None = None, status: dict[str, str] | None = None
) -> Path:
    """The sample build's run_results.json re-dated so that it ended at ``at``; ``only`` keeps
    those models (a ``dbt build --select``), ``status`` overrides their outcome."""
    doc: dict[str, Any] = json.loads((MODELS / "run_results.json").read_text())
    doc["metadata"]["generated_at"] = _iso(at)
    keep = set(only) if only is not None else None
    results = []
    for result in doc["results"]:
        name = result["unique_id"].split(".")[-1]
        if keep is not None and name not in keep:
            continue
        for timing in result.get("timing", []):
            timing["started_at"], timing["completed_at"] = _iso(at - 2), _iso(at - 1)
        if status and name in status:
            result["status"] = status[name]
        results.append(result)
    doc["results"] = results
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def build_dir(tmp_path: Path) -> Path:
    """A target dir as a `dbt build` leaves it before freshness runs: the manifest, no sources.json."""
    build = tmp_path / "build"
    build.mkdir()
    shutil.copyfile(MODELS / "manifest.json", build / "manifest.json")
    return build


def model_statuses(url: str) -> dict[str, str]:
    return {
        labels["model"]: labels["status"]
        for labels, value in read_gateway(url).of("dbt_model_build_status")
        if value == 1
    }


def run_timestamp(url: str) -> float:
    (found,) = read_gateway(url).of("dbt_source_freshness_run_timestamp_seconds")
    return found[1]


def test_models_and_sources_share_the_group_and_keep_each_other(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    common = ["--gateway", pushgateway.url, "--spill-dir", str(tmp_path / "spill"), "--target", "dev"]
    sources = write_artifacts(tmp_path / "sources", now - 300)
    code, _, err = run_cli(["push", "--no-run", "--artifacts-dir", str(sources), *common], capsys)
    assert code == 0, err
    stamp = run_timestamp(pushgateway.url)

    # a build's artifacts: a target dir with the manifest and no sources.json -> the models only
    build = build_dir(tmp_path)
    results = run_results(build / "run_results.json", now - 120)
    args = ["push", "--no-run", "--artifacts-dir", str(build), "--run-results", str(results), *common]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "pushed 0 sources and 7 models" in err and "orders_enriched: error" in err, err
    assert model_statuses(pushgateway.url) == BUILT
    assert len(read_gateway(pushgateway.url).statuses()) == len(EXPECTED_STATUS)
    assert run_timestamp(pushgateway.url) == stamp  # the build is no freshness run

    code, _, err = run_cli(args, capsys)
    assert code == 0 and "nothing to push" in err, err

    # `dbt build --select orders_enriched+` after the fix: only those two models change
    fixed = run_results(
        tmp_path / "fixed" / "run_results.json",
        now - 60,
        only=["orders_enriched", "orders_enriched_daily"],
        status={"orders_enriched": "success", "orders_enriched_daily": "success"},
    )
    code, _, err = run_cli([*args[: -len(common) - 2], "--run-results", str(fixed), *common], capsys)
    assert code == 0 and "pushed 0 sources and 2 models" in err, err
    assert model_statuses(pushgateway.url) == {
        **BUILT,
        "orders_enriched": "success",
        "orders_enriched_daily": "success",
    }

    # a later freshness push keeps every model
    code, _, err = run_cli(
        ["push", "--no-run", "--artifacts-dir", str(write_artifacts(tmp_path / "s2", now - 30)), *common],
        capsys,
    )
    assert code == 0, err
    assert set(model_statuses(pushgateway.url)) == set(BUILT)
    assert run_timestamp(pushgateway.url) > stamp

    # the state cache gone (another host): the group is read back, models included
    shutil.rmtree(tmp_path / "spill" / "state")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert model_statuses(pushgateway.url)["orders_enriched"] == "success"  # the older build lost


def test_a_stale_sources_json_does_not_block_the_models(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = write_artifacts(tmp_path / "target", time.time() - 7200)
    shutil.copyfile(MODELS / "manifest.json", target / "manifest.json")
    results = run_results(target / "run_results.json", time.time() - 60)
    code, _, err = run_cli(
        [
            "push",
            "--no-run",
            "--artifacts-dir",
            str(target),
            "--run-results",
            str(results),
            "--target",
            "dev",
            "--gateway",
            pushgateway.url,
            "--spill-dir",
            str(tmp_path / "spill"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "older than --max-artifact-age" in err and "pushing the models only" in err, err
    assert model_statuses(pushgateway.url) == BUILT
    assert read_gateway(pushgateway.url).statuses() == {}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("future", "in the future"),
        ("compile", "builds nothing"),
        ("meta", "collides with a label of the model series"),
        ("missing", "run_results.json"),
        ("corrupt", "run_results.json"),
    ],
)
def test_model_mistakes_are_refused(
    case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    shutil.copyfile(MODELS / "manifest.json", target / "manifest.json")
    results = target / "run_results.json"
    extra: list[str] = []
    if case == "future":
        run_results(results, time.time() + 86400)
    elif case == "compile":
        shutil.copyfile(MODELS / "run_results_compile.json", results)
        extra = ["--allow-stale-artifact"]
    elif case == "meta":
        run_results(results, time.time())
        extra = ["--meta-label", "package"]
    elif case == "corrupt":
        results.write_text('{"metadata": ')
    code, out, err = run_cli(
        [
            "push",
            "--no-run",
            "--dry-run",
            "--artifacts-dir",
            str(target),
            "--run-results",
            str(results),
            "--target",
            "dev",
            *extra,
        ],
        capsys,
    )
    assert code == 2, err
    assert message in err and out == "", err
    assert "Traceback" not in err


def test_a_fusion_freshness_json_brings_its_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.nodes.support import freshness_doc, freshness_entry, write

    doc = freshness_doc(
        [
            freshness_entry("model.shop.orders_daily", "Warn", warn={"count": 1, "period": "hour"}),
            freshness_entry("source.shop.raw.orders", "Pass", resource_type="source"),
        ]
    )
    path = write(tmp_path / "freshness.json", doc)
    code, out, err = run_cli(
        [
            "push",
            "--no-run",
            "--dry-run",
            "--sources-json",
            str(path),
            "--allow-stale-artifact",
            "--project-dir",
            str(tmp_path),
            "--target",
            "prod",
        ],
        capsys,
    )
    assert code == 0, err
    assert (
        'dbt_source_freshness_status{project="shop",target="prod",source_name="raw",table_name="orders"'
        in out
    )
    assert 'dbt_model_freshness_status{project="shop",target="prod",model="orders_daily"' in out
    warn = [
        line
        for line in out.splitlines()
        if line.startswith("dbt_model_freshness_status") and 'status="warn"' in line
    ]
    assert warn and warn[0].endswith(" 1"), out
    assert "dbt_model_freshness_warn_after_seconds" in out and "ignored" not in err


def test_a_textfile_holds_models_and_sources_newest_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = build_dir(tmp_path)
    results = run_results(build / "run_results.json", time.time() - 60)
    textfile = tmp_path / "collector" / "dbt.prom"
    textfile.parent.mkdir()
    models = ["push", "--no-run", "--artifacts-dir", str(build), "--run-results", str(results)]
    common = ["--textfile", str(textfile), "--target", "dev"]
    code, _, err = run_cli([*models, *common], capsys)
    assert code == 0 and "pushed 0 sources and 7 models" in err, err
    code, _, err = run_cli([*models, *common], capsys)
    assert code == 0 and "already holds the same or newer checks of all 7 models of this run" in err, err
    sources = write_artifacts(tmp_path / "sources", time.time() - 30)
    code, _, err = run_cli(["push", "--no-run", "--artifacts-dir", str(sources), *common], capsys)
    assert code == 0, err
    text = textfile.read_text()
    assert 'dbt_model_build_status{project="dbt_prom_demo",target="dev",model="orders_enriched"' in text
    assert "dbt_source_freshness_run_success" in text and "dbt_source_freshness_status" in text


def test_a_model_removed_from_the_project_leaves_the_group(
    pushgateway: servers.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = build_dir(tmp_path)
    common = ["--gateway", pushgateway.url, "--spill-dir", str(tmp_path / "spill"), "--target", "dev"]
    first = run_results(build / "run_results.json", time.time() - 120)
    args = ["push", "--no-run", "--artifacts-dir", str(build)]
    code, _, err = run_cli([*args, "--run-results", str(first), *common], capsys)
    assert code == 0, err
    assert "orders_enriched_daily" in model_statuses(pushgateway.url)

    manifest = json.loads((build / "manifest.json").read_text())
    del manifest["nodes"]["model.dbt_prom_demo.orders_enriched_daily"]
    (build / "manifest.json").write_text(json.dumps(manifest))
    later = run_results(tmp_path / "later" / "run_results.json", time.time() - 60, only=["stg_orders"])
    code, _, err = run_cli([*args, "--run-results", str(later), *common], capsys)
    assert code == 0 and "1 models no longer in the project dropped" in err, err
    held = model_statuses(pushgateway.url)
    assert "orders_enriched_daily" not in held and set(held) == set(BUILT) - {"orders_enriched_daily"}
