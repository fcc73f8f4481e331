"""Airflow DAG: ``dbt build``, then push source freshness through the dbt-prom-bridge library.

The push task calls the Python API (no shell-out to ``dbt-prom``): it runs ``dbt source
freshness`` in the worker's process, pushes the metrics to the Pushgateway, and fails the task
when dbt could not run or the push failed. Stale sources do not fail it by default (the alert
rules page the owners); set ``FAIL_ON`` to ``"error"`` to make them fail the task as well.

Copy to your DAGs folder; the worker needs ``pip install dbt-prom-bridge dbt-postgres`` and the
Airflow connection/variables below. Tested with Airflow 2.7+ (``airflow.decorators.task``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow import DAG
from airflow.decorators import task
from airflow.exceptions import AirflowException
from airflow.operators.bash import BashOperator

PROJECT_DIR = Path(os.environ.get("DBT_PROJECT_DIR", "/opt/airflow/dbt/my_project"))
PROFILES_DIR = Path(os.environ.get("DBT_PROFILES_DIR", str(PROJECT_DIR)))
GATEWAY_URL = os.environ.get("DBT_PROM_GATEWAY", "http://pushgateway:9091")
META_LABELS = ("owner", "team")
FAIL_ON = os.environ.get("DBT_PROM_FAIL_ON", "never")


def push_freshness(
    project_dir: Path = PROJECT_DIR,
    profiles_dir: Path = PROFILES_DIR,
    gateway_url: str = GATEWAY_URL,
    fail_on: str = FAIL_ON,
) -> dict[str, Any]:
    """Run dbt source freshness in-process and push it; returns the summary (an XCom)."""
    from dbt_prom_bridge import api, summary
    from dbt_prom_bridge.config import (
        DbtOptions,
        DeliveryOptions,
        GatewayConfig,
        HttpAuth,
        RunOptions,
        Secret,
    )
    from dbt_prom_bridge.errors import DbtPromError
    from dbt_prom_bridge.model import FailOn

    password = os.environ.get("DBT_PROM_GATEWAY_PASSWORD")
    auth = HttpAuth(
        username=os.environ.get("DBT_PROM_GATEWAY_USER"),
        password=Secret(password) if password else None,
    )
    dbt = DbtOptions(project_dir=project_dir, profiles_dir=profiles_dir)
    opts = RunOptions(meta_labels=META_LABELS, fail_on=FailOn(fail_on))
    try:
        run = api.run_freshness(dbt, opts)
        report = api.deliver(run, DeliveryOptions(gateway=GatewayConfig(url=gateway_url, auth=auth)))
    except DbtPromError as exc:
        raise AirflowException(f"dbt-prom: {exc}") from None
    print(summary.table(run))
    if not run.success:
        raise AirflowException(f"dbt could not run source freshness: {run.error}")
    tripped = run.tripped(opts.fail_on)
    if tripped:
        names = ", ".join(f"{c.source_name}.{c.table_name}" for c in tripped)
        raise AirflowException(f"sources at or past {fail_on}: {names}")
    return {"destinations": list(report.destinations), **summary.as_dict(run)}


with DAG(
    dag_id="dbt_build_and_freshness",
    description="dbt build, then push dbt source freshness to Prometheus",
    start_date=datetime(2024, 1, 1),
    schedule="*/30 * * * *",
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["dbt", "freshness", "prometheus"],
) as dag:
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command=f"dbt build --project-dir {PROJECT_DIR} --profiles-dir {PROFILES_DIR}",
    )

    @task(task_id="push_freshness", trigger_rule="all_done")
    def push_freshness_task() -> dict[str, Any]:
        """Runs even when dbt build failed: stale sources are often the reason it failed."""
        return push_freshness()

    dbt_build >> push_freshness_task()
