"""docs/alerts.md: a runbook section per alert at the anchor the rules link to, every option documented."""

from __future__ import annotations

import re

import click

from dbt_prom_bridge import rules
from tests.rules.rulestools import ROOT

DOC = ROOT / "docs" / "alerts.md"


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_runbook_section_at_its_stable_anchor() -> None:
    text = DOC.read_text()
    runbooks = text.split("\n# Runbooks\n", 1)[1]
    headings = re.findall(r"^### (.+)$", runbooks, flags=re.MULTILINE)
    assert headings == list(rules.ALERTS), "one `### <AlertName>` runbook section per alert, in order"
    for alert in rules.ALERTS:
        assert github_anchor(alert) == rules.anchor(alert)
        assert f"(#{rules.anchor(alert)})" in text, f"index links to {alert}"
    assert rules.DEFAULT_RUNBOOK_BASE_URL.endswith("/docs/alerts.md")


def test_every_option_of_the_command_is_documented() -> None:
    from dbt_prom_bridge.cli.rules import command

    text = DOC.read_text()
    options = {
        opt for p in command.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")
    }
    missing = sorted(
        o for o in options - {"--help", "--target-path"} if f"`{o}" not in text and f" {o}" not in text
    )
    assert not missing, f"docs/alerts.md does not mention {missing}"
