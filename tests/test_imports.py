"""Every module imports on its own, first, in a fresh interpreter (no import cycle that only
works in one order)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import dbt_prom_bridge


def test_every_module_imports_first() -> None:
    modules = sorted(
        m.name for m in pkgutil.walk_packages(dbt_prom_bridge.__path__, prefix="dbt_prom_bridge.")
    )
    assert "dbt_prom_bridge.rules.model_rules" in modules
    # one interpreter per module, several at once (each import is a fresh process)
    procs = {
        m: subprocess.Popen([sys.executable, "-c", f"import {m}"], stderr=subprocess.PIPE, text=True)
        for m in modules
    }
    failed = {m: p.communicate(timeout=300)[1].strip().splitlines()[-1:] for m, p in procs.items()}
    assert {m: e for m, e in failed.items() if procs[m].returncode != 0} == {}
