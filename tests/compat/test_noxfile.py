"""noxfile.py (`make test-compat`) stays in step with the tests and the pin files (read as text:
nox is not installed in the compat venvs that collect this directory)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _constants() -> dict[str, object]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    out: dict[str, object] = {}
    for node in tree.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id.isupper():
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out


def test_every_compat_test_is_on_the_sessions_paths() -> None:
    paths = _constants()["COMPAT_TESTS"]
    assert isinstance(paths, tuple)
    marked = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").rglob("test_*.py")
        if "pytest.mark.compat" in p.read_text()
    }
    assert marked, "no test is marked compat"
    for test in marked:
        assert any(test == p or test.startswith(p + "/") for p in paths), f"{test} is not in COMPAT_TESTS"
    for p in paths:
        assert (ROOT / p).exists(), p


def test_each_version_has_a_pin_file_that_agrees() -> None:
    consts = _constants()
    versions = consts["DBT"]
    assert isinstance(versions, dict)
    ends = consts["ENDS"]
    assert isinstance(ends, tuple) and set(ends) <= set(versions)
    for minor, packages in versions.items():
        pins = {
            line.split("==")[0].lower(): line
            for line in (ROOT / "compat" / f"dbt-{minor}.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        }
        for package in packages:
            assert pins[package.split("==")[0]] == package, (minor, package)
        assert pins["dbt-core"].split("==")[1].startswith(minor), minor
