"""Regenerate ``sources.json`` and ``manifest.json`` here from a real run of OUR sample project.

    .venv/bin/python -m tests.data.sample.regenerate

Starts a throwaway embedded PostgreSQL, seeds a copy of ``dbt_project/``, runs the real
``dbt source freshness`` CLI (so these are exactly the files dbt writes: the runtime error of
``orders.refunds`` is absent from sources.json), and copies the artifacts here. The manifest
is trimmed of dbt's ~500 macros and docs (nothing here reads them) and absolute paths of the
temporary copy are replaced by ``dbt_project``. Then refresh the goldens that depend on them:
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/exposition/test_sample_golden.py``.
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

    with started_postgres() as server, tempfile.TemporaryDirectory(prefix="dbt-prom-sample-") as tmp:
        project = copy_project(Path(tmp) / "dbt_project")
        env = DbtProjectEnv(project_dir=project, profiles_dir=project, env=server.env(), postgres=server)
        env.seed()
        proc = env.dbt("source", "freshness", check=False)
        if proc.returncode not in (0, 1):
            raise SystemExit(
                f"dbt source freshness failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        prefix = str(project)
        for name in ("sources.json", "manifest.json"):
            doc = json.loads((env.target_dir / name).read_text().replace(prefix, "dbt_project"))
            if name == "manifest.json":
                doc.update({key: {} for key in TRIMMED})
                doc["metadata"]["user_id"] = None
            (dest / name).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            print(f"wrote {dest / name}", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
