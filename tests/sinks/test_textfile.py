"""node_exporter textfile sink: atomic write, merge rules, and a real node_exporter reading it."""

from __future__ import annotations

import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from dbt_prom_bridge import api
from dbt_prom_bridge.config import DeliveryOptions, GatewayConfig
from dbt_prom_bridge.errors import PushError, UsageError
from dbt_prom_bridge.exposition import RUN_SUCCESS, STATUS
from dbt_prom_bridge.model import FreshnessRun, SourceCheck, Status, Threshold
from dbt_prom_bridge.sinks import textfile
from devtools import servers
from tests.conftest import requires, scrape

NOW = 1_800_000_000.0


def check(table: str, status: Status = Status.PASS, owner: str = "alice") -> SourceCheck:
    return SourceCheck(
        unique_id=f"source.shop.orders.{table}",
        source_name="orders",
        table_name=table,
        database="db",
        schema="raw",
        identifier=table,
        status=status,
        max_loaded_at=NOW - 60,
        has_data=True,
        checked_at=NOW,
        warn_after=Threshold(1, "hour"),
        error_after=Threshold(1, "day"),
        duration=0.05,
        meta_values=(owner,),
    )


RUN = FreshnessRun(
    project="shop",
    target="prod",
    checks=(check("orders"), check("refunds", Status.WARN), check('we"ird\\name\n', Status.ERROR)),
    generated_at=NOW,
    elapsed=2.0,
    success=True,
    meta_labels=("owner",),
)


def series(path: Path) -> list[tuple[str, dict[str, str], float]]:
    return textfile.read_series(path)


def current_status(path: Path) -> dict[str, str]:
    return {
        labels["table_name"]: labels["status"]
        for name, labels, v in series(path)
        if name == STATUS and v == 1
    }


def test_writes_world_readable_file_without_timestamps(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    outcome = textfile.write(RUN, target)
    assert outcome.url == str(target) and outcome.pushed
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    text = target.read_text()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    # name{labels} value -- never a third (timestamp) field after the labels
    assert all(len(line.rsplit("}", 1)[-1].split()) == 1 for line in samples)
    assert current_status(target) == {"orders": "pass", "refunds": "warn", 'we"ird\\name\n': "error"}
    assert list(tmp_path.iterdir()) == [target], "no temporary file left behind"


@requires("promtool")
def test_output_passes_promtool(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=target.read_bytes(), capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_replaces_existing_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    inode = target.stat().st_ino
    # a newer run whose manifest declares only "orders": the others were removed from the project
    smaller = replace(RUN, checks=(later(check("orders")),), generated_at=NOW + 60, complete=True)
    textfile.write(smaller, target)
    assert target.stat().st_ino != inode, "a new file is renamed over the old one"
    assert current_status(target) == {"orders": "pass"}, "sources the project no longer has go"


def test_a_run_with_nothing_newer_leaves_the_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    inode = target.stat().st_ino
    outcome = textfile.write(RUN, target)
    assert not outcome.pushed and target.stat().st_ino == inode


def later(c: SourceCheck, by: float = 60.0) -> SourceCheck:
    assert c.checked_at is not None
    return replace(c, checked_at=c.checked_at + by)


def test_failed_rename_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    before = target.read_bytes()

    def boom(self: Path, other: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", boom)
    with pytest.raises(PushError, match="No space left on device"):
        textfile.write(replace(RUN, checks=(later(check("orders", Status.ERROR)),)), target)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_partial_run_keeps_unselected_sources(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    partial = replace(
        RUN, checks=(later(check("refunds", Status.PASS)),), partial=True, generated_at=NOW + 60
    )
    outcome = textfile.write(partial, target)
    assert outcome.carried_over == 2
    assert current_status(target) == {"orders": "pass", "refunds": "pass", 'we"ird\\name\n': "error"}
    owners = {labels.get("owner") for name, labels, _ in series(target) if name == STATUS}
    assert owners == {"alice"}, "meta labels survive the merge"


def test_partial_run_does_not_take_other_projects(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(replace(RUN, project="other"), target)
    partial = replace(RUN, checks=(check("refunds"),), partial=True)
    outcome = textfile.write(partial, target)
    assert outcome.carried_over == 0
    projects = {labels["project"] for name, labels, _ in series(target) if name == STATUS}
    assert projects == {"shop"}


def test_failed_run_keeps_last_good_sources(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    textfile.write(RUN, target)
    failed = FreshnessRun(
        project="shop",
        target="prod",
        checks=(),
        generated_at=None,
        elapsed=None,
        success=False,
        meta_labels=("owner",),
        error="could not connect",
    )
    textfile.write(failed, target)
    assert current_status(target) == {"orders": "pass", "refunds": "warn", 'we"ird\\name\n': "error"}
    success = [v for name, _, v in series(target) if name == RUN_SUCCESS]
    assert success == [0.0]


def test_failed_run_on_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    failed = FreshnessRun("shop", "prod", (), None, None, False, error="down")
    textfile.write(failed, target)
    assert [name for name, _, _ in series(target)] == [RUN_SUCCESS, "dbt_prom_bridge_build_info"]


def test_corrupt_existing_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "dbt.prom"
    target.write_text("this is { not exposition\n")
    textfile.write(replace(RUN, partial=True), target)
    assert len(current_status(target)) == 3


@pytest.mark.parametrize(
    ("name", "message"),
    [("dbt.txt", "only reads files ending in .prom"), ("missing/dbt.prom", "does not exist")],
)
def test_refuses_paths_node_exporter_would_not_read(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        textfile.write(RUN, tmp_path / name)


def test_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d.prom").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        textfile.check_path(tmp_path / "d.prom")


@requires("prometheus-node-exporter")
def test_real_node_exporter_serves_the_file(tmp_path: Path) -> None:
    collector_dir = tmp_path / "textfile"
    collector_dir.mkdir()
    textfile.write(RUN, collector_dir / "dbt_freshness.prom")
    port = servers.free_port()
    argv = [
        servers.binary("prometheus-node-exporter", "node_exporter"),
        f"--web.listen-address={servers.LOOPBACK}:{port}",
        f"--collector.textfile.directory={collector_dir}",
        "--collector.disable-defaults",
        "--collector.textfile",
    ]
    server = servers.start("node_exporter", argv, port, tmp_path / "ne", "/metrics")
    try:
        scraped = scrape(server.url + "/metrics")
    finally:
        server.stop()
    statuses = {
        labels["table_name"]: labels["status"] for name, labels, v in scraped if name == STATUS and v == 1
    }
    assert statuses == {"orders": "pass", "refunds": "warn", 'we"ird\\name\n': "error"}
    errors = [v for name, _, v in scraped if name == "node_textfile_scrape_error"]
    assert errors == [0.0], "node_exporter accepted the file"


@pytest.mark.e2e
@requires("prometheus-pushgateway")
def test_a_textfile_that_cannot_be_written_does_not_stop_the_gateway_push(
    tmp_path: Path, pushgateway: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(path: Path, text: str) -> None:
        raise PushError(f"cannot write the textfile {path}: No space left on device")

    monkeypatch.setattr(textfile, "write_file", full_disk)
    delivery = DeliveryOptions(
        gateway=GatewayConfig(url=pushgateway.url, retries=0), textfile=tmp_path / "dbt.prom"
    )
    with pytest.raises(PushError) as failed:
        api.deliver(RUN, delivery)
    message = str(failed.value)
    assert "No space left on device" in message and "all the same" in message
    held = [s for s in scrape(f"{pushgateway.url}/metrics") if s[0] == RUN_SUCCESS]
    assert [(labels["project"], value) for _, labels, value in held] == [("shop", 1.0)]
