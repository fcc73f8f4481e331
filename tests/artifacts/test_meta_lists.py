"""A list-valued dbt meta (``owner: ['@alice', '@bob']``) becomes one comma-joined label value,
and the Alertmanager matcher docs/reliability.md gives routes on it (checked with real amtool)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbt_prom_bridge.model import meta_value
from tests.conftest import requires
from tests.fixtures_dbt import run_cli
from tests.reliability.runs import write_artifacts

#: The matcher docs/reliability.md documents for "owned by @alice" on a comma-joined label.
ALICE = 'owner=~"(.*,)?@alice(,.*)?"'


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (["@alice", "@bob"], "@alice,@bob"),
        (["@alice"], "@alice"),
        ([], ""),
        ([1, True, "x"], "1,true,x"),
        (["a,b", "c"], '["a,b","c"]'),  # an item with a comma: JSON keeps it unambiguous
        ([{"team": "x"}], '[{"team":"x"}]'),
        ({"team": "x", "on_call": ["@a"]}, '{"on_call":["@a"],"team":"x"}'),
    ],
)
def test_meta_values(value: object, label: str) -> None:
    assert meta_value(value) == label


def test_a_list_owner_becomes_one_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = write_artifacts(tmp_path / "art", time.time() - 30)
    manifest = json.loads((art / "manifest.json").read_text())
    uid = next(u for u in manifest["sources"] if u.endswith("events.clicks"))
    manifest["sources"][uid]["meta"] = {"owner": ["@alice", "@bob"]}
    (art / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(
        [
            "push",
            "--no-run",
            "--dry-run",
            "--artifacts-dir",
            str(art),
            "--target",
            "dev",
            "--meta-label",
            "owner",
        ],
        capsys,
    )
    assert code == 0, err
    owners = {
        s.labels["owner"]
        for fam in text_string_to_metric_families(out)
        for s in fam.samples
        if s.name == "dbt_source_has_data" and s.labels["table_name"] == "clicks"
    }
    assert owners == {"@alice,@bob"}


@requires("amtool")
def test_the_documented_matcher_routes_list_owners(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: default\n  routes:\n"
        f"    - receiver: alice\n      matchers: ['{ALICE}']\n"
        "receivers:\n  - name: default\n  - name: alice\n"
    )
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    assert ALICE in docs

    def route(owner: str) -> str:
        proc = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={config}", f"owner={owner}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.stdout.strip()

    assert route("@alice,@bob") == "alice"
    assert route("@bob,@alice") == "alice"
    assert route("@alice") == "alice"
    assert route("@alicex,@bob") == "default"
    assert route("@bob") == "default"
