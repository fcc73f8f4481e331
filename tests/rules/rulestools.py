"""Shared helpers of the rules tests: manifests, generation into a directory, real promtool runs."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbt_prom_bridge import rules
from dbt_prom_bridge.artifacts import read_manifest
from dbt_prom_bridge.model import Manifest, SourceDef, Threshold
from dbt_prom_bridge.model_artifacts import read_manifest_models
from dbt_prom_bridge.nodes import ModelDef
from dbt_prom_bridge.rules import Generated

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MANIFEST = ROOT / "tests" / "data" / "sample" / "manifest.json"
#: The options `make rules` ships ops/prometheus/rules with.
SAMPLE_META = ("owner", "team")

#: Names no generated file may be confused by: PromQL/YAML/Go-template/shell syntax, unicode.
HOSTILE = (
    'quo"te',
    "back\\slash",
    "new\nline",
    "{{ $labels.job }}",
    '{{ printf "%s" "x" }}',
    "$1 ${x} $$",
    "naïve ✓ 数据 🚀",
    "colon: hash # dash -",
    "'single' `tick`",
    "yes",
    "1e3",
    "tab\tand\rcr",
    "line\u2028sep\x85nel",
    "a}}b{{",
)


HOUR = Threshold(1, "hour")
SIX_HOURS = Threshold(6, "hour")


def sample_manifest() -> Manifest:
    return read_manifest(SAMPLE_MANIFEST)


def sample_models() -> list[list[ModelDef]]:
    """The models of the sample manifest (one list: the ``models`` argument of ``rules.generate``)."""
    return [list(read_manifest_models(SAMPLE_MANIFEST).models.values())]


def source(
    source_name: str,
    table_name: str,
    warn: Threshold | None = HOUR,
    error: Threshold | None = SIX_HOURS,
    meta: Sequence[tuple[str, str]] = (),
    problems: Sequence[str] = (),
    package: str = "pkg",
) -> SourceDef:
    return SourceDef(
        unique_id=f"source.{package}.{source_name}.{table_name}",
        package=package,
        source_name=source_name,
        table_name=table_name,
        database="db",
        schema="raw",
        identifier=table_name,
        warn_after=warn,
        error_after=error,
        filter=None,
        loaded_at_field="_loaded_at",
        loaded_at_query=None,
        meta=tuple(sorted(meta)),
        threshold_problems=tuple(problems),
    )


def manifest_of(project: str | None, *sources: SourceDef, path: str | None = None) -> Manifest:
    return Manifest(project, "manifest/v12", "1.11.0", None, None, {s.unique_id: s for s in sources}, path)


def hostile_manifest() -> Manifest:
    """Every hostile name as a source, a table and a meta value (owner, runbook_url, team)."""
    defs = []
    for i, name in enumerate(HOSTILE):
        defs.append(
            source(
                name,
                f"t{i}_{name}",
                warn=Threshold(i + 1, "minute"),
                error=Threshold(i + 2, "hour") if i % 3 else None,
                meta=(("owner", name), ("runbook_url", f"https://rb.example/{name}"), ("team", f"{name}!")),
            )
        )
    defs.append(source("plain", name_of_all(), warn=None, error=Threshold(1, "day")))
    return manifest_of('pro"ject {{ x }}', *defs)


def name_of_all() -> str:
    return "".join(HOSTILE)


@dataclass(frozen=True)
class Written:
    rules: Path
    tests: Path | None
    generated: Generated


def write(
    tmp: Path,
    manifests: Sequence[Manifest],
    opts: rules.RulesOptions,
    name: str = "rules",
    tests: bool = True,
) -> Written:
    """Generate into ``tmp/<name>.yml`` (+ ``tmp/tests/<name>.test.yml``) and write the files."""
    out = tmp / f"{name}.yml"
    test_file = tmp / "tests" / f"{name}.test.yml" if tests else None
    generated = rules.generate(manifests, opts, rules.Outputs(out=out, tests=test_file))
    for item in generated.files:
        assert item.path is not None
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text, encoding="utf-8")
    return Written(out, test_file, generated)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (make system-deps)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False, timeout=600)


def assert_check_rules(*files: Path) -> None:
    """``promtool check rules --lint-fatal``: valid, and no duplicate rules (which also fail tests)."""
    result = promtool("check", "rules", "--lint-fatal", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def assert_test_rules(*files: Path) -> None:
    result = promtool("test", "rules", *map(str, files))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
