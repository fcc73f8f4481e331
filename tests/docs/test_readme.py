"""The README's generated parts (CLI and metrics reference) must match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_generated_sections_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--verbosity=1", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "README.md is out of date with the code; regenerate it with `make docs`\n"
        + result.stdout
        + result.stderr
    )


def test_readme_documents_every_command() -> None:
    from dbt_prom_bridge.cli import COMMANDS

    text = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        assert f"### `dbt-prom {name}`" in text, f"README has no reference section for `dbt-prom {name}`"


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
