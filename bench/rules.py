"""Benchmark: generating alert rules at scale, promtool on them, and what Prometheus pays to evaluate them.

Figures (printed, never asserted):

- ``dbt-prom rules`` generation for synthetic manifests of 10,000 and 100,000 sources
  (``devtools.synthetic``, the shapes real projects have), both modes: reading the
  manifest, generating, peak RSS, rules and bytes written (target: <= 2 s at 10,000 sources);
- ``promtool check rules`` wall time on each file;
- evaluation cost in one real Prometheus with 10,000 sources pushed through a real Pushgateway
  (``dbt-prom push --no-run``): the sum over rule groups of
  ``prometheus_rule_group_last_duration_seconds``, per-source vs dynamic rules, as a ratio
  (target: dynamic >= 10x cheaper), with every source fresh (the cost of the rules themselves)
  and with the synthetic mix of stale sources (each active alert adds the same template and
  ALERTS-series work in both modes).

Self-contained: writes its artifacts to a temporary directory, starts its own Pushgateway and
Prometheus on loopback and stops them. ``python -m bench.rules`` runs it alone; ``make bench``
collects it with the others. ``BENCH_RULES_SIZES`` (default ``10000,100000``) and
``BENCH_RULES_EVAL_SOURCES`` (default ``10000``; 0 skips the Prometheus part) change the sizes.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools import servers

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIZES = tuple(int(n) for n in os.environ.get("BENCH_RULES_SIZES", "10000,100000").split(",") if n)
EVAL_SOURCES = int(os.environ.get("BENCH_RULES_EVAL_SOURCES", "10000"))
MODES = ("per-source", "dynamic")
#: Dynamic mode with Warn/Error written as ``time() > deadline`` (no join with the thresholds).
DEADLINE_MODE = "dynamic-deadline"
META = ("owner", "team")
EVAL_INTERVAL = 5
#: Evaluations to wait for before sampling, and samples (one per evaluation interval) per mode.
WARMUP, SAMPLES = 3, 6

_GENERATE = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from dbt_prom_bridge import rules
from dbt_prom_bridge.artifacts import read_manifest
t1 = time.perf_counter()
manifest = read_manifest(Path(sys.argv[1]))
t2 = time.perf_counter()
opts = rules.RulesOptions(mode=rules.Mode(sys.argv[2]), meta_labels=("owner", "team"), slo=0.99)
generated = rules.generate([manifest], opts, rules.Outputs(out=Path(sys.argv[3])))
t3 = time.perf_counter()
Path(sys.argv[3]).write_text(generated.files[0].text, encoding="utf-8")
t4 = time.perf_counter()
print(json.dumps({
    "import": t1 - t0, "read": t2 - t1, "generate": t3 - t2, "write": t4 - t3,
    "rules": generated.rule_count, "sources": generated.source_count,
    "bytes": len(generated.files[0].text.encode()),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _run(argv: list[str], timeout: float = 1800, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, **kw)


def _generate(manifest: Path, mode: str, out: Path) -> dict[str, Any]:
    proc = _run([sys.executable, "-c", _GENERATE, str(manifest), mode, str(out)])
    if proc.returncode != 0:
        raise RuntimeError(f"rules generation failed: {proc.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def _promtool_check(path: Path) -> str:
    if shutil.which("promtool") is None:
        return "promtool not installed"
    start = time.perf_counter()
    try:
        proc = _run(["promtool", "check", "rules", str(path)], timeout=900)
    except subprocess.TimeoutExpired:
        return "timed out after 900 s"
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return f"FAILED ({proc.stdout[-200:]}{proc.stderr[-200:]})"
    return f"{wall:.2f} s"


def _query(prometheus: servers.Server, expr: str) -> list[dict[str, Any]]:
    url = prometheus.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=60) as resp:
        result: list[dict[str, Any]] = json.load(resp)["data"]["result"]
    return result


def _scalar(prometheus: servers.Server, expr: str) -> float | None:
    result = _query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def _reload(prometheus: servers.Server) -> None:
    req = urllib.request.Request(prometheus.url + "/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=120):
        pass


def _own_samples(prometheus: servers.Server) -> Iterator[Any]:
    """The samples of Prometheus's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(prometheus.url + "/metrics", timeout=60) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def _own_metrics(prometheus: servers.Server, name: str, file: str) -> dict[str, float]:
    """``name`` per rule group of ``file``, from Prometheus's own /metrics."""
    out = {}
    for sample in _own_samples(prometheus):
        group = sample.labels.get("rule_group", "")
        if sample.name == name and group.split(";", 1)[0].endswith("/" + file):
            out[group] = sample.value
    return out


#: The alerts whose rules differ between the modes (one pair per source vs one pair in all);
#: the other rules are the same text in both modes.
THRESHOLD_ALERTS = frozenset({"DbtSourceFreshnessWarn", "DbtSourceFreshnessError"})
#: The later-than-usual and SLO rules (recording rules and their alerts).
HISTORY_ALERTS = frozenset({"DbtSourceLaterThanUsual", "DbtSourceFreshnessBudgetBurn"})


def _rule_times(prometheus: servers.Server, file: str) -> tuple[float, float, float]:
    """Last evaluation seconds of ``file``'s rules, summed: (threshold alerts, the other existing
    rules, the later-than-usual and SLO rules)."""
    with urllib.request.urlopen(prometheus.url + "/api/v1/rules", timeout=120) as resp:
        groups = json.load(resp)["data"]["groups"]
    threshold = shared = history = 0.0
    for group in groups:
        if not group["file"].endswith("/" + file):
            continue
        for rule in group["rules"]:
            name = rule.get("name", "")
            if os.environ.get("BENCH_RULES_DETAIL"):
                print(f"    {file} {name:<48} {rule['evaluationTime'] * 1000:8.2f} ms", file=sys.stderr)
            if name in THRESHOLD_ALERTS:
                threshold += rule["evaluationTime"]
            elif name in HISTORY_ALERTS or rule.get("type") == "recording":
                history += rule["evaluationTime"]
            else:
                shared += rule["evaluationTime"]
    return threshold, shared, history


def _deadline_rules(dynamic: Path, out: Path) -> None:
    """The dynamic rules with Warn/Error as ``time() > deadline`` (same selectors, no join)."""
    text = dynamic.read_text()
    for kind in ("warn", "error"):
        after = f"dbt_source_freshness_{kind}_after_seconds"
        deadline = f"dbt_source_freshness_{kind}_deadline_timestamp_seconds"
        start = text.index(
            "expr: 'time() - dbt_source_max_loaded_at_timestamp_seconds", text.index(after) - 400
        )
        end = text.index("'\n", start)
        selector = text[text.index("{", start) : text.index("}", start) + 1]
        text = text[:start] + f"expr: 'time() > {deadline}{selector}" + text[end:]
    out.write_text(text)


def _push_deadlines(prometheus: servers.Server, gateway: servers.Server) -> int:
    """Push the per-source deadline series (max_loaded_at + threshold, as the bridge computes
    them for a source without a calendar) into the run's own gateway group."""
    from dbt_prom_bridge.exposition import escape_label_value

    lines: list[str] = []
    groups: set[tuple[str, str]] = set()
    errors = 0
    for kind in ("warn", "error"):
        name = f"dbt_source_freshness_{kind}_deadline_timestamp_seconds"
        lines.append(f"# TYPE {name} gauge")
        expr = (
            "dbt_source_max_loaded_at_timestamp_seconds + on (project, target, source_name, table_name) "
            f"group_left dbt_source_freshness_{kind}_after_seconds"
        )
        for item in _query(prometheus, expr):
            labels = {k: v for k, v in item["metric"].items() if k not in ("job", "instance")}
            groups.add((labels.pop("project"), labels.pop("target")))
            inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{inner}}} {item['value'][1]}")
            errors += kind == "error"
    ((project, target),) = groups
    url = f"{gateway.url}/metrics/job/dbt_source_freshness/project/{project}/target/{target}"
    body = ("\n".join(lines) + "\n").encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=120):
        pass
    return errors


def _cpu_seconds(prometheus: servers.Server) -> float:
    """Prometheus's ``process_cpu_seconds_total`` (user + system CPU of the server process)."""
    for sample in _own_samples(prometheus):
        if sample.name == "process_cpu_seconds_total":
            return float(sample.value)
    raise RuntimeError("Prometheus does not report process_cpu_seconds_total")


def _cpu_per_second(prometheus: servers.Server, seconds: float) -> float:
    """Prometheus's CPU seconds per wall second over ``seconds``, sampled as the modes are."""
    start, wall = _cpu_seconds(prometheus), time.monotonic()
    for _ in range(int(seconds // EVAL_INTERVAL)):
        time.sleep(EVAL_INTERVAL)
        _own_metrics(prometheus, "prometheus_rule_group_last_duration_seconds", "-")
    return (_cpu_seconds(prometheus) - start) / (time.monotonic() - wall)


def _evaluation_cost(workdir: Path, manifest_dir: Path, results: int) -> dict[str, dict[str, float]]:
    """Push the synthetic run, then load each mode's rules in the same Prometheus in turn."""
    rules_dir = workdir / "loaded"
    rules_dir.mkdir()
    gateway = servers.start_pushgateway(workdir / "gateway")
    started = [gateway]
    try:
        push = _run(
            [
                str(BIN / "dbt-prom"),
                "push",
                "--no-run",
                "--artifacts-dir",
                str(manifest_dir),
                "--allow-stale-artifact",
                "--gateway",
                gateway.url,
                *(arg for key in META for arg in ("--meta-label", key)),
            ],
            cwd=manifest_dir,
        )
        if push.returncode != 0:
            raise RuntimeError(f"push failed ({push.returncode}): {push.stderr[-2000:]}")
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "15s", "evaluation_interval": f"{EVAL_INTERVAL}s"},
                    "rule_files": [str(rules_dir / "*.yml")],
                    "scrape_configs": [
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,
                            "scrape_timeout": "14s",
                            "static_configs": [{"targets": [f"{servers.LOOPBACK}:{gateway.port}"]}],
                        }
                    ],
                }
            )
        )
        prometheus = servers.start_prometheus(workdir / "prometheus", config)
        started.append(prometheus)
        servers.wait_for(
            "the gateway's series in Prometheus",
            lambda: (_scalar(prometheus, "count(dbt_source_has_data)") or 0) >= results,
            180,
        )
        deadlines = _push_deadlines(prometheus, gateway)
        servers.wait_for(
            "the deadline series in Prometheus",
            lambda: (
                (_scalar(prometheus, "count(dbt_source_freshness_error_deadline_timestamp_seconds)") or 0)
                >= deadlines // 2
            ),
            180,
        )
        # Prometheus's CPU with no rules loaded over the same window: scrapes and our own
        # sampling requests, subtracted from each mode's CPU below.
        base_cpu = _cpu_per_second(prometheus, SAMPLES * EVAL_INTERVAL)
        out: dict[str, dict[str, float]] = {"baseline": {"cpu_per_s": base_cpu}}
        for mode in (*MODES, DEADLINE_MODE):
            for old in rules_dir.glob("*.yml"):
                old.unlink()
            shutil.copy(workdir / f"{mode}.yml", rules_dir / f"{mode}.yml")
            _reload(prometheus)
            file = f"{mode}.yml"
            groups = servers.wait_for(
                f"{mode} rules to be loaded",
                functools.partial(_own_metrics, prometheus, "prometheus_rule_group_rules", file),
                300,
            )
            rule_count = sum(groups.values())
            iterations = functools.partial(
                _own_metrics, prometheus, "prometheus_rule_group_iterations_total", file
            )
            servers.wait_for(
                f"{WARMUP} evaluations of every {mode} group",
                lambda: min(iterations().values(), default=0) >= WARMUP,  # noqa: B023 (called now)
                600,
            )
            sums, slowest, thresholds, shared, history = [], [], [], [], []
            cpu_start, wall_start = _cpu_seconds(prometheus), time.monotonic()
            for _ in range(SAMPLES):
                time.sleep(EVAL_INTERVAL)
                last = _own_metrics(prometheus, "prometheus_rule_group_last_duration_seconds", file)
                sums.append(sum(last.values()))
                slowest.append(max(last.values(), default=0.0))
                if mode == "per-source":
                    # The shared rules are the project's own group ("dbt-freshness/<project>");
                    # the per-source groups ("dbt-freshness/<project>/<source>") hold Warn/Error.
                    # (/api/v1/rules of 15k rules would itself slow the evaluations down.) The
                    # later-than-usual and SLO rules, in the project's group, are the same text
                    # as in dynamic mode: their share is taken from there.
                    own = sum(v for g, v in last.items() if g.split(";", 1)[1].count("/") == 1)
                    shared.append(own)
                    thresholds.append(sum(last.values()) - own)
                else:
                    by_kind = _rule_times(prometheus, file)
                    thresholds.append(by_kind[0])
                    shared.append(by_kind[1])
                    history.append(by_kind[2])
            cpu_per_s = (_cpu_seconds(prometheus) - cpu_start) / (time.monotonic() - wall_start)
            firing = _scalar(prometheus, "count(ALERTS)") or 0
            out[mode] = {
                # CPU seconds the rules cost per evaluation: no concurrency or wait in it.
                "cpu": max(cpu_per_s - base_cpu, 0.0) * EVAL_INTERVAL,
                "sum": statistics.median(sums),
                "max": statistics.median(slowest),
                "threshold": statistics.median(thresholds),
                "shared": statistics.median(shared),
                "history": statistics.median(history) if history else float("nan"),
                "groups": float(len(groups)),
                "rules": rule_count,
                "firing": firing,
            }
        return out
    finally:
        for server in reversed(started):
            server.stop()


def run() -> list[tuple[str, str]]:
    from devtools import synthetic

    figures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dbt-prom-bench-rules-") as tmp:
        base = Path(tmp)
        for n in SIZES:
            workdir = base / f"size-{n}"
            written = synthetic.write(workdir / "artifacts", n, seed=1)
            for mode in MODES:
                out = workdir / f"{mode}.yml"
                g = _generate(written.manifest, mode, out)
                target = " (target <= 2 s)" if n == 10_000 else ""
                figures.append(
                    (
                        f"rules {mode}, {n:,} sources: read manifest + generate{target}",
                        f"{g['read']:.2f} s + {g['generate']:.2f} s; {g['rules']:,} rules for "
                        f"{g['sources']:,} sources with freshness, {g['bytes'] / 1e6:.1f} MB, "
                        f"peak RSS {g['rss_mb']:.0f} MB",
                    )
                )
                figures.append((f"promtool check rules, {mode}, {n:,} sources", _promtool_check(out)))

        # Evaluation cost. Active alerts cost the same in both modes (same alerts, same
        # templates), so the rule-evaluation cost proper is measured on a healthy platform (every
        # source fresh), then on the synthetic mix (~20% of the sources warn, error or no data).
        datasets = (
            (
                "all sources fresh",
                synthetic.Shape(warn=0, error=0, no_data=0, runtime_error=0, negative_age=0),
            ),
            ("synthetic mix", synthetic.Shape()),
        )
        for label, shape in datasets if EVAL_SOURCES else ():
            workdir = base / f"eval-{label.replace(' ', '-')}"
            written = synthetic.write(workdir / "artifacts", EVAL_SOURCES, seed=1, shape=shape)
            for mode in MODES:
                _generate(written.manifest, mode, workdir / f"{mode}.yml")
            _deadline_rules(workdir / "dynamic.yml", workdir / f"{DEADLINE_MODE}.yml")
            cost = _evaluation_cost(workdir, written.manifest.parent, written.n_results)
            cost.pop("baseline")
            for mode, c in cost.items():
                figures.append(
                    (
                        f"Prometheus rule evaluation, {mode}, {EVAL_SOURCES:,} sources, {label}",
                        f"{c['sum'] * 1000:.1f} ms per evaluation summed over {c['groups']:.0f} groups "
                        f"({c['rules']:,.0f} rules; slowest group {c['max'] * 1000:.1f} ms; "
                        f"{c['firing']:,.0f} active alerts)",
                    )
                )
                if mode == "per-source":
                    figures.append(
                        (
                            "  of which: Warn/Error threshold rules / the project's group (shared rules)",
                            f"{c['threshold'] * 1000:.1f} ms / {c['shared'] * 1000:.1f} ms",
                        )
                    )
                else:
                    figures.append(
                        (
                            "  of which: Warn/Error / other existing rules / later-than-usual + SLO rules",
                            f"{c['threshold'] * 1000:.1f} ms / {c['shared'] * 1000:.1f} ms / "
                            f"{c['history'] * 1000:.1f} ms",
                        )
                    )
            per, dyn, dl = cost["per-source"], cost["dynamic"], cost[DEADLINE_MODE]
            existing = {m: c["sum"] - cost["dynamic"]["history"] for m, c in cost.items()}
            figures.append(
                (
                    f"  later-than-usual + SLO rules / the existing rules, {label}",
                    f"{dyn['history'] * 1000:.1f} ms = {dyn['history'] / existing['per-source']:.1%} of "
                    f"per-source, {dyn['history'] / existing['dynamic']:.0%} of dynamic",
                )
            )
            figures.append(
                (
                    f"  Warn/Error as time() > deadline: threshold rules, join / deadline, {label}",
                    f"{dyn['threshold'] * 1000:.1f} ms / {dl['threshold'] * 1000:.1f} ms; per-source / "
                    f"dynamic-deadline (existing rules) "
                    f"{existing['per-source'] / existing[DEADLINE_MODE]:.1f}x "
                    f"(join: {existing['per-source'] / existing['dynamic']:.1f}x)",
                )
            )
            ratio = per["sum"] / dyn["sum"] if dyn["sum"] else float("inf")
            target = " (target >= 10x)" if label == datasets[0][0] else ""
            figures.append((f"evaluation cost per-source / dynamic, {label}{target}", f"{ratio:.1f}x"))
            figures.append(
                (
                    f"  Prometheus CPU per evaluation (above no rules), per-source / dynamic, {label}",
                    f"{per['cpu'] * 1000:.0f} ms / {dyn['cpu'] * 1000:.0f} ms = "
                    + (f"{per['cpu'] / dyn['cpu']:.1f}x" if dyn["cpu"] else "dynamic below noise"),
                )
            )
            only = per["threshold"] / dyn["threshold"] if dyn["threshold"] else float("inf")
            name = f"  Warn/Error threshold rules only, per-source / dynamic, {label}"
            figures.append((name, f"{only:.1f}x"))
    return figures


if __name__ == "__main__":
    for name, figure in run():
        print(f"{name:<72} {figure}")
