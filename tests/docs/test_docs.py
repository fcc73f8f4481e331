"""The generated docs (CLI reference, metric contract, environment variables) match the code,
and the README stays the short front door linking to existing pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import docs

ROOT = Path(__file__).resolve().parents[2]
CLI_MD = ROOT / "docs" / "cli.md"


def section(text: str, title: str) -> str:
    """The text of the ``## `title` `` section of a Markdown page."""
    start = text.index(f"## `{title}`\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def help_block(path: tuple[str, ...]) -> str:
    """The code block of ``dbt-prom <path>`` in docs/cli.md."""
    body = section(CLI_MD.read_text(), " ".join(("dbt-prom", *path)))
    match = re.search(r"```text\n(.*?)\n```", body, re.DOTALL)
    assert match is not None, path
    return match.group(1)


@pytest.mark.parametrize("name", docs.GENERATED)
def test_generated_blocks_are_current(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--verbosity=1", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} is out of date with the code; regenerate it with `make docs`\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("path", list(docs.commands()), ids=lambda p: " ".join(("dbt-prom", *p)))
def test_every_command_and_option_is_documented(path: tuple[str, ...]) -> None:
    block = help_block(path)
    for param in docs.command_of(path).params:
        if getattr(param, "hidden", False):
            continue
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", block), (
                    f"docs/cli.md does not document {opt} of {' '.join(('dbt-prom', *path))}"
                )


@pytest.mark.parametrize("path", list(docs.commands()), ids=lambda p: " ".join(("dbt-prom", *p)))
def test_reference_is_what_the_installed_command_prints(path: tuple[str, ...]) -> None:
    """The console script itself (not click objects rebuilt by the generator) prints each block."""
    script = Path(sys.executable).parent / "dbt-prom"
    env = {**os.environ, "COLUMNS": str(docs.COLUMNS)}
    env.pop("DBT_PROM_DEBUG", None)
    result = subprocess.run(
        [str(script), *path, "--help"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == help_block(path)
    short = subprocess.run(
        [str(script), *path, "-h"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert short.stdout == result.stdout


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    source = "\n".join(p.read_text() for p in (ROOT / "dbt_prom_bridge").rglob("*.py"))
    named = set(re.findall(r"\bDBT_PROM_[A-Z][A-Z_]*[A-Z]\b", source))
    named |= set(docs.env_variables())
    assert named, "no variables found"
    missing = sorted(v for v in named if f"`{v}`" not in text)
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_metric_is_documented() -> None:
    """The README's generated table has the source and run metrics; every other metric of the
    contract (models, the state revision) is documented on a docs page."""
    from dbt_prom_bridge.exposition import HELP, PER_SOURCE_METRICS, RUN_METRICS

    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in (*PER_SOURCE_METRICS, *RUN_METRICS))
    pages = readme + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing = [name for name in HELP if not re.search(rf"`{name}[`{{]", pages)]
    assert not missing, f"no page documents {missing}"


def test_readme_is_the_front_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert len(text.splitlines()) <= 300
    for page in ("cli", "configuration", "alerts", "integrations", "performance", "reliability", "state"):
        assert f"docs/{page}.md" in text, page


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, blanks to '-')."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_point_at_existing_files_and_headings(page: str) -> None:
    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    text = path.read_text()
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        linked = (path.parent / target) if target else path
        assert linked.exists(), f"{page} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), (
                f"{page} links to {target}#{anchor}: no such heading"
            )
