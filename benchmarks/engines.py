"""hf against vllm on the same demo cases: cold engine load and generation tokens/s.

Each engine runs in a fresh process (a cold load, as in CI), on the demo's 28 cases (4 per slice)
of v1.2 with its pinned sampling, through `run_replay`. vLLM's time includes the converted
snapshot's verification; the one-off GGUF conversion is reported separately when it happens.

    python benchmarks/engines.py [--limit 4] [--release v1.2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(engine_name: str, release: str, limit: int) -> dict[str, float]:
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.runner import check_pins, make_engine, probe_runtime, run_replay

    loaded = load_manifest(ROOT / "releases" / f"{release}.yaml")
    inputs = check_pins(loaded)
    t0 = time.perf_counter()
    runtime = probe_runtime(loaded, engine_name, None)
    engine = make_engine(loaded, engine_name, inputs, runtime)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_replay(loaded, Path(tmp) / "run", limit=limit, engine_instance=engine)
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "results.jsonl").read_text().splitlines()]
    tokens = sum(r["completion_tokens"] for r in rows)
    gen = summary.run["generation_seconds"]
    return {
        "load_s": load_s,
        "generation_s": gen,
        "tokens": tokens,
        "tokens_per_s": tokens / gen,
        "cases": len(rows),
        "p50_latency_ms": sorted(r["latency_ms"] for r in rows)[len(rows) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--release", default="v1.2")
    parser.add_argument("--one", choices=["hf", "vllm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.release, args.limit)))
        return
    results = {}
    for name in ("hf", "vllm"):
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--limit", str(args.limit), "--release", args.release],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.release}, {results['hf']['cases']} cases, pinned sampling, cold process per engine")
    print(f"{'engine':8} {'load s':>8} {'gen s':>8} {'tokens':>7} {'tokens/s':>9} {'p50 latency ms':>15}")
    for name, r in results.items():
        print(
            f"{name:8} {r['load_s']:8.1f} {r['generation_s']:8.1f} {r['tokens']:7d} "
            f"{r['tokens_per_s']:9.1f} {r['p50_latency_ms']:15.0f}"
        )
    print(f"vllm / hf tokens/s: {results['vllm']['tokens_per_s'] / results['hf']['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
