"""Gate over 1,000,000 cases in 20 slices: wall time and peak memory of `releasectl gate`.

Writes a candidate and a baseline run directory (SPEC §5.1) in a temp dir, then times the real
command in a subprocess and reads its peak RSS. Target: under 5 s and under 1 GiB.

The floor, measured in the same run: DuckDB's own `read_json` of both results files, joined on
case_id, with per-slice counts, success, format-pass and McNemar discordant counts and the latency
p95 — the aggregates the gate needs, without strict validation. Target: the gate within 2× of it.

    python benchmarks/gate_scale.py [--cases 1000000] [--slices 20] [--readers python,duckdb]

Each reader (RELEASECTL_GATE_READER) is timed in the same run as the floor, which is measured
before and after (the shared machine's load drifts). 1M cases, 2 shared cores, 2026-12-01:
- strict Python reader, machine at load 7.7: gate 32.00 s, floor 5.94 s (5.4×);
- later, load about 2.5: floor 1.68 s then 1.34 s; Python reader 13.77 s and 10.50 s
  (6.3-8.2×); DuckDB reader (`gate.fastrows`) 20.26 s (12×). Peak RSS 451 / 593 MiB.
- 2026-12-02, after the Python reader's blocks went to msgspec (gate/fastrows_msgspec.py): floor
  1.45 s then 1.16 s; Python reader 5.51 s (3.8-4.7×, peak 417 MiB); DuckDB reader 14.06 s.
The 2× target is not met: the floor counts four typed columns, where the gate builds every
row as a typed object (~1 s per million rows in msgspec), checks it, keeps per-row columns and
evaluates 43 rules over them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson


def write_run(path: Path, release: str, n: int, slices: int, p: float, rng: np.random.Generator) -> None:
    path.mkdir(parents=True)
    passed = rng.random(n) < p
    fmt_ok = rng.random(n) < 0.98
    lat = rng.gamma(4.0, 120.0, n)
    with (path / "results.jsonl").open("wb") as f:
        for i in range(n):
            ok = bool(passed[i])
            f.write(
                orjson.dumps(
                    {
                        "case_id": f"c{i:07d}",
                        "slice": f"slice_{i % slices:02d}",
                        "passed": ok and bool(fmt_ok[i]),
                        "verifiers": {
                            "correct": {"passed": ok, "kind": "correctness", "detail": ""},
                            "tag": {"passed": bool(fmt_ok[i]), "kind": "format", "detail": ""},
                        },
                        "output": "",
                        "prompt_tokens": 40,
                        "completion_tokens": 60,
                        "latency_ms": float(lat[i]),
                        "steps": None,
                    }
                )
                + b"\n"
            )
    run = {
        "release": release,
        "manifest_digest": "sha256:" + "0" * 64,
        "suite_digest": "s.dir",
        "engine": {"name": "hf", "version": "x"},
        "device": "cpu",
        "cases": n,
        "generation_seconds": n * 60 / 3000,
        "gpus": 1,
        "gpu_hourly_usd": 2.0,
        "output_digest": "x",
    }
    (path / "run.json").write_text(json.dumps(run))


def duckdb_floor(cand: Path, base: Path) -> tuple[float, int]:
    """Seconds for DuckDB to read both runs, pair them and count per slice; and the slice rows."""
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    columns = "{case_id: 'VARCHAR', slice: 'VARCHAR', passed: 'BOOLEAN', verifiers: 'JSON', latency_ms: 'DOUBLE', completion_tokens: 'BIGINT'}"
    for name, path in (("c", cand), ("b", base)):
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT case_id, slice, passed, latency_ms, completion_tokens,"
            " json_extract(verifiers, '$.tag.passed')::BOOLEAN AS fmt"
            f" FROM read_json('{path / 'results.jsonl'}', format='newline_delimited', columns={columns})"
        )
    rows = con.execute(
        "SELECT c.slice, count(*), sum(c.passed::INT), sum(b.passed::INT), sum(c.fmt::INT),"
        " sum((b.passed AND NOT c.passed)::INT) AS disc_b, sum((c.passed AND NOT b.passed)::INT) AS disc_c,"
        " quantile_cont(c.latency_ms, 0.95), sum(c.completion_tokens)"
        " FROM c JOIN b USING (case_id) GROUP BY c.slice ORDER BY c.slice"
    ).fetchall()
    con.close()
    return time.perf_counter() - t0, len(rows)


def time_gate(work: Path, rules: Path, reader: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and verdict of `releasectl gate` with one results reader."""
    out = work / f"gate-{reader}.json"
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "releasectl",
            "gate",
            "--run",
            str(work / "cand"),
            "--baseline-run",
            str(work / "base"),
            "--rules",
            str(rules),
            "--out",
            str(out),
            "--format",
            "json",
        ],
        capture_output=True,
        check=False,
        env={**os.environ, "RELEASECTL_GATE_READER": reader},
    )
    wall = time.perf_counter() - t0
    # ru_maxrss of children is the largest child so far: exact for the first, a bound after.
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    verdict = json.loads(out.read_text())["verdict"] if out.exists() else f"error: {proc.stderr[-300:]!r}"
    return wall, peak, verdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument(
        "--readers", default="python,duckdb", help="RELEASECTL_GATE_READER values to time, comma-separated"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    try:
        rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        write_run(work / "cand", "v2.0", args.cases, args.slices, 0.83, rng)
        write_run(work / "base", "v1.9", args.cases, args.slices, 0.80, rng)
        rules = work / "policy.rules"
        rules.write_text(
            "aggregate.success@1.lower_ci >= 0.8\n"
            f"no_regressions_on: [{', '.join(repr(f'slice_{i:02d}') for i in range(args.slices))}]\n"
            + "".join(
                f"delta.success@1(slice_{i:02d}).p_value < 0.05\nformat_pass_rate(slice_{i:02d}).lower_ci >= 0.95\n"
                for i in range(args.slices)
            )
            + "latency_p95_ms.point <= 1200\ncost_per_1k_tokens_usd.point <= 0.02\n"
        )
        print(f"wrote 2 × {args.cases:,} cases in {time.perf_counter() - t0:.1f} s")
        floor, floor_rows = duckdb_floor(work / "cand", work / "base")
        print(
            f"releasectl gate over {args.cases:,} cases × 2 runs, {args.slices} slices, {2 * args.slices + 3} rules"
        )
        print(f"DuckDB floor {floor:6.2f} s (read_json both runs, join, {floor_rows} slices' counts)")
        for reader in args.readers.split(","):
            wall, peak_mib, verdict = time_gate(work, rules, reader)
            print(
                f"reader {reader:6s} wall {wall:6.2f} s (target < 5 s), {wall / floor:5.2f} × the floor"
                f" (target ≤ 2×), peak RSS {peak_mib:5.0f} MiB (target < 1024), verdict {verdict}"
            )
        floor2, _ = duckdb_floor(work / "cand", work / "base")
        print(f"DuckDB floor again {floor2:6.2f} s (the machine's load drifts; compare with both)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
