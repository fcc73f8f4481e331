"""``python -m bench`` (``make bench``): run every benchmark module, print one table.

Each ``bench/<name>.py`` with a ``run() -> list[tuple[str, str]]`` runs in its own Python process
(a module that crashes, hangs or leaks cannot take the others down, and peak-RSS figures are not
mixed up); a module that is missing, cannot be imported, fails or times out gets a row saying
why, and the others still run. Figures are printed, never asserted: the exit code is 0 unless
``BENCH_STRICT=1`` and a module failed.

Environment:
  BENCH_ONLY=scale,contract   run only these modules
  BENCH_SKIP=serve            skip these modules
  BENCH_TIMEOUT=1200          seconds per module before it is stopped
  (each module documents its own knobs, e.g. BENCH_SCALE_SIZES, BENCH_ROUNDS)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench import ROOT, machine

HERE = Path(__file__).resolve().parent
_CHILD = """
import json, sys, traceback
name = sys.argv[1]
try:
    import importlib
    module = importlib.import_module("bench." + name)
except Exception as exc:
    print(json.dumps({"error": f"cannot import: {type(exc).__name__}: {exc}"}))
    raise SystemExit(0)
run = getattr(module, "run", None)
if not callable(run):
    print(json.dumps({"error": "has no run() function"}))
    raise SystemExit(0)
try:
    rows = [(str(a), str(b)) for a, b in run()]
except Exception as exc:
    traceback.print_exc()
    print(json.dumps({"error": f"failed: {type(exc).__name__}: {exc}"}))
else:
    print(json.dumps({"rows": rows}))
"""


def modules() -> list[str]:
    """Benchmark modules in ``bench/``, filtered by BENCH_ONLY / BENCH_SKIP (in the order given)."""
    found = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    only = [m.strip() for m in os.environ.get("BENCH_ONLY", "").split(",") if m.strip()]
    skip = {m.strip() for m in os.environ.get("BENCH_SKIP", "").split(",") if m.strip()}
    chosen = only or found
    return [m for m in chosen if m not in skip]


def run_module(name: str, timeout: float) -> tuple[list[tuple[str, str]], str | None, float]:
    """``(rows, error, seconds)`` of one module, run in a child process."""
    if not (HERE / f"{name}.py").exists():
        return [], f"no module bench/{name}.py", 0.0
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, name],
            stdout=subprocess.PIPE,
            stderr=None,  # progress and tracebacks go straight to the terminal
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s (BENCH_TIMEOUT)", time.perf_counter() - start
    took = time.perf_counter() - start
    last = done.stdout.strip().splitlines()[-1:] if done.stdout else []
    try:
        result = json.loads(last[0]) if last else {}
    except json.JSONDecodeError:
        result = {}
    if "rows" in result:
        return [(str(a), str(b)) for a, b in result["rows"]], None, took
    if "error" in result:
        return [], str(result["error"]), took
    return [], f"exited {done.returncode} without results", took


def table(rows: list[tuple[str, str, str]]) -> str:
    """Three columns; long figures wrap under their own column."""
    width_a = max((len(r[0]) for r in rows), default=6)
    width_b = min(70, max((len(r[1]) for r in rows), default=6))
    lines = []
    for module, name, figure in rows:
        wrapped = textwrap.wrap(figure, 60) or [""]
        names = textwrap.wrap(name, width_b) or [""]
        for i in range(max(len(wrapped), len(names))):
            left = module if i == 0 else ""
            mid = names[i] if i < len(names) else ""
            right = wrapped[i] if i < len(wrapped) else ""
            lines.append(f"{left:<{width_a}}  {mid:<{width_b}}  {right}".rstrip())
    return "\n".join(lines)


def main() -> int:
    timeout = float(os.environ.get("BENCH_TIMEOUT", "1200"))
    chosen = modules()
    print(f"bench: {len(chosen)} module(s): {', '.join(chosen)}", file=sys.stderr, flush=True)
    rows: list[tuple[str, str, str]] = [("machine", name, value) for name, value in machine()]
    failed = 0
    started = time.perf_counter()
    for name in chosen:
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        figures, error, took = run_module(name, timeout)
        if error is not None:
            failed += 1
            rows.append((name, "NOT MEASURED", error))
            print(f"bench: {name}: {error}", file=sys.stderr, flush=True)
        rows.extend((name, a, b) for a, b in figures)
        rows.append((name, "(module wall time)", f"{took:.1f} s"))
    rows.append(("bench", "total wall time", f"{time.perf_counter() - started:.1f} s"))
    print(table(rows))
    return 1 if failed and os.environ.get("BENCH_STRICT") == "1" else 0


if __name__ == "__main__":
    raise SystemExit(main())
