"""Whole artifacts from hypothesis: numbers of any size and precision, every JSON string escape
(lone surrogates included), any schema-version string, any timestamp text. Whatever the file
holds, `push --no-run --dry-run` and `status` end with a documented exit code (0-4), one
`dbt-prom: error:` line at most, and never an internal error (70)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_dbt import run_cli

SCHEMAS = [
    "https://schemas.getdbt.com/dbt/sources/v3.json",
    "https://schemas.getdbt.com/dbt/sources/v1.json",
    "https://schemas.getdbt.com/dbt/freshness/v0.json",
    "https://schemas.getdbt.com/dbt/sources/v99999999999999999999999.json",
    "https://schemas.getdbt.com/dbt/manifest/v12.json",
]
NOW = time.time()

#: Strings with every kind of character JSON can carry: controls, quotes, backslashes, astral
#: characters and lone surrogates (json.dumps writes them as \\ud800 escapes).
text = st.text(
    st.one_of(
        st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00", "\x1b", "\u2028", "\\", '"', "."])
    ),
    max_size=12,
)
numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: float(d) if d.is_finite() else 0.0),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` 9 times in 10: most examples get past the first check and reach the deep paths."""
    return st.integers(0, 9).flatmap(lambda i: usual if i else odd)


def iso(offset: float) -> str:
    return dt.datetime.fromtimestamp(NOW + offset, dt.timezone.utc).isoformat()


timestamps = mostly(
    st.floats(min_value=-400 * 86400, max_value=600, allow_nan=False).map(iso),
    st.one_of(
        st.sampled_from(
            ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-30T00:00:00Z", ""]
        ),
        scalars,
    ),
)
thresholds = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "count": st.one_of(st.integers(-5, 10**30), numbers, text),
            "period": st.one_of(st.sampled_from(["minute", "hour", "day", "HOUR", "week"]), text),
        }
    ),
    scalars,
)
unique_ids = mostly(
    st.one_of(st.builds(lambda p, s, t: f"source.{p}.{s}.{t}", text, text, text), st.just("source.p.s.t")),
    st.one_of(st.sampled_from(["model.p.m", "sample_source"]), text),
)
results = st.fixed_dictionaries(
    {
        "unique_id": unique_ids,
        "status": st.one_of(
            st.sampled_from(["pass", "warn", "error", "runtime error", "Pass", "skipped"]), scalars
        ),
    },
    optional={
        "max_loaded_at": timestamps,
        "snapshotted_at": timestamps,
        "max_loaded_at_time_ago_in_s": numbers,
        "execution_time": numbers,
        "criteria": st.one_of(
            st.fixed_dictionaries({"warn_after": thresholds, "error_after": thresholds, "filter": scalars}),
            scalars,
        ),
        "error": scalars,
        "resource_type": st.sampled_from(["source", "model"]),
        "thread_id": scalars,
    },
)
artifacts = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {
                "dbt_schema_version": mostly(
                    st.sampled_from(SCHEMAS[:3]), st.one_of(st.sampled_from(SCHEMAS), scalars)
                )
            },
            optional={"generated_at": timestamps, "dbt_version": scalars, "invocation_id": scalars},
        ),
        "results": mostly(st.lists(results, max_size=6), scalars),
    },
    optional={"elapsed_time": numbers},
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hyp-artifacts")


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=artifacts)
def test_any_artifact_ends_in_a_documented_exit_code(
    doc: dict[str, Any], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "sources.json"
    path.write_text(json.dumps(doc, allow_nan=True))  # NaN/Infinity and \\ud800 escapes as written
    for args in (
        [
            "push",
            "--no-run",
            "--dry-run",
            "--target",
            "dev",
            "--allow-stale-artifact",
            "--sources-json",
            str(path),
        ],
        ["status", "--format", "json", "--target", "dev", "--sources-json", str(path)],
        ["status", "--target", "dev", "--sources-json", str(path)],
    ):
        code, out, err = run_cli(args, capsys)
        assert code in (0, 1, 2, 3, 4), err
        assert "internal error" not in err and "Traceback" not in err, err
        assert len([ln for ln in err.splitlines() if ln.startswith("dbt-prom: error:")]) <= 1, err
        (out + err).encode("utf-8")  # a lone surrogate would stop a real process from writing it
        assert "\x1b" not in err  # nothing read from the file drives the terminal
