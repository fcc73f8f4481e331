"""Model series and alerts end to end, all real: `dbt-prom run -- dbt build` on the sample
project on PostgreSQL (one model fails on purpose, one is skipped because of it) pushes the
dbt_model_* series of the build's run_results.json, beside the source freshness it checks after,
to a real Pushgateway; a real Prometheus evaluating the model rules of both modes fires
DbtModelBuildFailed for the failed model, from each mode, with the same labels."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import servers
from tests.conftest import requires, scrape
from tests.fixtures_dbt import TARGET, DbtProjectEnv

pytestmark = [pytest.mark.e2e, pytest.mark.dbt, requires("prometheus")]


def alerts(prometheus: servers.Server) -> list[dict[str, Any]]:
    with urllib.request.urlopen(prometheus.url + "/api/v1/alerts", timeout=10) as resp:
        found: list[dict[str, Any]] = json.loads(resp.read())["data"]["alerts"]
    return found


def test_dbt_build_model_alerts_fire_in_prometheus(
    sample_project: DbtProjectEnv, pushgateway: servers.Server, tmp_path: Path
) -> None:
    dbt_bin = Path(sys.executable).parent / "dbt"
    dbt_prom = Path(sys.executable).parent / "dbt-prom"
    args = sample_project.cli_args()
    hook = subprocess.run(
        [
            str(dbt_prom),
            "run",
            *args,
            "--gateway",
            pushgateway.url,
            "--meta-label",
            "owner",
            "--spill-dir",
            str(tmp_path / "spill"),
            "--",
            str(dbt_bin),
            "build",
            *args,
        ],
        env=sample_project.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # dbt build's exit code (orders_enriched fails on purpose); models and sources pushed anyway
    assert hook.returncode == 1, hook.stderr
    assert "models in dbt_prom_demo/dev" in hook.stderr and "orders_enriched: error" in hook.stderr, (
        hook.stderr
    )
    held = {
        (n, lbl.get("model"), lbl.get("status"))
        for n, lbl, v in scrape(pushgateway.url + "/metrics")
        if v == 1
    }
    assert ("dbt_model_build_status", "orders_enriched", "error") in held
    assert ("dbt_model_build_status", "orders_enriched_daily", "skipped") in held
    assert ("dbt_model_build_status", "hourly_revenue", "success") in held
    assert any(n == "dbt_source_freshness_status" for n, _m, _s in held), "freshness was checked too"

    rule_files = []
    # the rule files a user generates: `dbt-prom rules`, sources and models
    for mode in ("per-source", "dynamic"):
        path = tmp_path / f"rules-{mode}.yml"
        generated = subprocess.run(
            [
                str(dbt_prom),
                "rules",
                "--manifest",
                str(sample_project.manifest_json),
                "--mode",
                mode,
                "--for",
                "1s",
                "--meta-label",
                "owner",
                "--out",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert generated.returncode == 0, generated.stderr
        assert "DbtModelBuildFailed" in path.read_text()
        rule_files.append(str(path))
    config = tmp_path / "prom" / "prometheus.yml"
    config.parent.mkdir(parents=True)
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": rule_files,
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"{servers.LOOPBACK}:{pushgateway.port}"]}],
                    }
                ],
            }
        )
    )
    prometheus = servers.start_prometheus(tmp_path / "prom", config)
    try:
        deadline = time.monotonic() + 90
        firing: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            firing = [
                a
                for a in alerts(prometheus)
                if a["state"] == "firing" and a["labels"]["alertname"] == "DbtModelBuildFailed"
            ]
            if len(firing) == 2:
                break
            time.sleep(0.5)
        assert len(firing) == 2, (alerts(prometheus), prometheus.log_tail())
        per_mode = [{k: v for k, v in a["labels"].items() if k not in ("instance",)} for a in firing]
        assert per_mode[0] == per_mode[1]
        assert per_mode[0]["model"] == "orders_enriched" and per_mode[0]["owner"] == "orders-data"
        assert per_mode[0]["severity"] == "warning" and per_mode[0]["target"] == TARGET
        # built right now: no model is late, none is configured-but-never-built
        names = {a["labels"]["alertname"] for a in alerts(prometheus)}
        assert {n for n in names if n.startswith("DbtModel")} == {"DbtModelBuildFailed"}
    finally:
        prometheus.stop()
