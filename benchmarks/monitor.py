"""`releasectl monitor` on a large log vs pandas (`read_json(lines=True)` + seed 001's snippet)
and vs the floor: DuckDB's own `read_json` computing the seed's aggregates (no strictness, no
drift sample, no windows), measured in the same run. Target: monitor within 2x of the floor.

Generates a JSONL log of --size-mb (default 1024) in a temp dir (deleted afterwards), then runs
each contender in its own child process and reports wall time and the child's peak RSS
(`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`). Target: monitor ≥ 5× faster than pandas and
under 500 MB peak memory. A plain log this large is aggregated by DuckDB in one SQL pass
(`releasectl/monitoring/fastscan.py`, with a 400 MB memory limit); `--reader python` times the
streaming orjson reader instead (one process per core), which gives the same statistics.

    python benchmarks/monitor.py [--size-mb 1024] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PANDAS_SNIPPET = """
import sys
import numpy as np
import pandas as pd
df = pd.read_json(sys.argv[1], lines=True)
df["_error_norm"] = df["error"].fillna("none").astype(str).str.lower()
avg_latency = df["response_time_ms"].mean()
p95_latency = float(np.percentile(df["response_time_ms"], 95))
avg_tokens = df["tokens_generated"].mean()
error_rate = (df["_error_norm"] != "none").mean() * 100.0
avg_satisfaction = df["user_satisfaction"].mean()
print(len(df), avg_latency, p95_latency, avg_tokens, error_rate, avg_satisfaction)
"""


# The floor: what DuckDB alone takes to read the log and compute the seed's aggregates.
DUCKDB_FLOOR = """
import sys
import duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
row = con.execute(
    "SELECT count(*), avg(response_time_ms), quantile_cont(response_time_ms, 0.95),"
    " avg(tokens_generated), avg(CASE WHEN lower(coalesce(CAST(error AS VARCHAR), 'none')) <> 'none'"
    " THEN 1 ELSE 0 END) * 100, avg(user_satisfaction)"
    " FROM read_json(?, format = 'newline_delimited', columns = {"
    "'response_time_ms': 'DOUBLE', 'tokens_generated': 'DOUBLE', 'error': 'VARCHAR',"
    " 'user_satisfaction': 'DOUBLE'})",
    [sys.argv[1]],
).fetchone()
print(*row)
"""


def generate(path: Path, size_mb: int) -> int:
    """Distinct records in a 20,000-line block, repeated (with fresh ids) up to the size."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_logs import TOPICS, _stream  # the example-log generator, for realistic records

    rng = random.Random(7)
    block = [json.loads(json.dumps(r)) for r in _stream(rng, 20_000, "v1.3", 24, topics=TOPICS)]
    target = size_mb * 1024 * 1024
    written = lines = 0
    with path.open("w") as f:
        while written < target:
            for rec in block:
                rec["request_id"] = f"req-{lines:09d}"
                line = json.dumps(rec, separators=(",", ":")) + "\n"
                f.write(line)
                written += len(line)
                lines += 1
                if written >= target:
                    break
    return lines


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, and stdout of one child process."""
    start = time.perf_counter()
    # A fresh grandchild per contender: RUSAGE_CHILDREN's maxrss is then that contender's own.
    wrapper = "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); print(p.stdout); print(p.stderr[-2000:], file=sys.stderr); print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)"
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss_kb = next(int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("MAXRSS"))
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, rss_kb / 1024, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--skip-pandas", action="store_true", help="Only time releasectl monitor.")
    ap.add_argument(
        "--reader",
        choices=("auto", "python"),
        default="auto",
        help="python: time the streaming reader instead of DuckDB.",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    try:
        log = tmp / "logs.jsonl"
        t0 = time.perf_counter()
        lines = generate(log, args.size_mb)
        size = log.stat().st_size / 1024 / 1024
        print(f"log: {size:,.0f} MB, {lines:,} lines (generated in {time.perf_counter() - t0:.0f} s)")
        exe = shutil.which("releasectl") or str(Path(sys.executable).parent / "releasectl")
        if args.reader == "python":
            os.environ["RELEASECTL_LOG_READER"] = "python"
        wall_m, rss_m, out = run_child([exe, "monitor", "--logs", str(log), "--format", "json"])
        doc = json.loads(out[out.index("{") : out.rindex("}") + 1]) if "{" in out else {}
        p95 = doc.get("metrics", {}).get("performance", {}).get("latency_p95_ms", {}).get("value")
        print(
            f"releasectl monitor: {wall_m:7.1f} s  {size / wall_m:6.1f} MB/s  peak {rss_m:6.0f} MB  (p95 {p95}, {doc.get('latency_estimate')}; read by {doc.get('reader', {}).get('engine')})"
        )
        wall_f, rss_f, out_f = run_child([sys.executable, "-c", DUCKDB_FLOOR, str(log)])
        print(
            f"duckdb read_json  : {wall_f:7.1f} s  {size / wall_f:6.1f} MB/s  peak {rss_f:6.0f} MB  (n, avg, p95, ...: {out_f.split(chr(10))[0]})"
        )
        print(f"monitor / floor: {wall_m / wall_f:.2f}x (target <= 2x)")
        if args.skip_pandas:
            return
        wall_p, rss_p, out_p = run_child([sys.executable, "-c", PANDAS_SNIPPET, str(log)])
        print(
            f"pandas read_json  : {wall_p:7.1f} s  {size / wall_p:6.1f} MB/s  peak {rss_p:6.0f} MB  (n, avg, p95, ...: {out_p.split(chr(10))[0]})"
        )
        print(
            f"speed-up: {wall_p / wall_m:.1f}x (target >= 5x); monitor memory {rss_m:.0f} MB (target < 500 MB)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
