"""Regenerate ``run_results.json`` and ``manifest.json`` here from a real ``dbt build`` of OUR
sample project (its models: one builds, one fails, one is skipped because of it, one declares
``freshness.build_after``), and the ``run_results.json`` a ``dbt compile`` writes afterwards
(``run_results_compile.json``: every model "success", nothing built).

    .venv/bin/python -m tests.data.models.regenerate

Starts a throwaway embedded PostgreSQL, seeds a copy of ``dbt_project/``, runs the real
``dbt build`` CLI (exit 1: a model fails on purpose) and copies the artifacts here, trimmed as
in ``tests/data/sample/regenerate.py``. Then refresh the goldens that depend on them:
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/nodes``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: manifest.json keys whose contents nothing in this repo reads, emptied to keep the file small.
TRIMMED = ("macros", "docs")


def regenerate(dest: Path = HERE) -> None:
    from tests.fixtures_dbt import DbtProjectEnv, copy_project, started_postgres

    with started_postgres() as server, tempfile.TemporaryDirectory(prefix="dbt-prom-models-") as tmp:
        project = copy_project(Path(tmp) / "dbt_project")
        env = DbtProjectEnv(project_dir=project, profiles_dir=project, env=server.env(), postgres=server)
        env.seed()
        proc = env.dbt("build", check=False)
        if proc.returncode != 1:
            raise SystemExit(
                f"dbt build should fail one model (exit 1), not {proc.returncode}:\n{proc.stdout}"
            )
        prefix = str(project)
        for name in ("run_results.json", "manifest.json"):
            copy(env.target_dir / name, dest / name, prefix)
        env.dbt("compile")
        copy(env.target_dir / "run_results.json", dest / "run_results_compile.json", prefix)


def copy(src: Path, dest: Path, prefix: str) -> None:
    """The artifact without what nothing here reads (macros, docs; args except the command,
    compiled SQL)."""
    doc = json.loads(src.read_text().replace(prefix, "dbt_project"))
    if "nodes" in doc:
        doc.update({key: {} for key in TRIMMED})
        doc["metadata"]["user_id"] = None
    else:
        doc["args"] = {"which": doc.get("args", {}).get("which")}
        for result in doc["results"]:
            result["compiled_code"] = ""
    dest.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
