"""Batched vs one-at-a-time generation on the hf engine, in generated tokens per second.

python benchmarks/batching.py [--cases 16] [--max-tokens 48] [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.engines.hf import HfEngine
    from releasectl.replay.runner import check_pins, render_prompt

    loaded = load_manifest(ROOT / "releases" / "v1.2.yaml")
    inputs = check_pins(loaded)
    engine = HfEngine(inputs.model_path, inputs.model_digest)
    sampling = loaded.manifest.sampling.model_copy(update={"max_tokens": args.max_tokens})
    prompts = [render_prompt(inputs.template, dict(c.input)) for c in inputs.suite.cases[: args.cases]]
    engine.generate(prompts[:1], sampling, seed=0)  # warm-up

    def run(size: int) -> tuple[float, int]:
        t0, tokens = time.perf_counter(), 0
        for i in range(0, len(prompts), size):
            tokens += sum(
                g.completion_tokens for g in engine.generate(prompts[i : i + size], sampling, seed=i)
            )
        return time.perf_counter() - t0, tokens

    one_s, one_tok = run(1)
    batch_s, batch_tok = run(args.batch)
    print(
        f"{len(prompts)} prompts, max_tokens {args.max_tokens}, {engine.threads} threads, {engine.runtime.device}"
    )
    print(f"one at a time   {one_tok / one_s:7.1f} tokens/s  ({one_tok} tokens in {one_s:.1f} s)")
    print(
        f"batch of {args.batch:<3}    {batch_tok / batch_s:7.1f} tokens/s  ({batch_tok} tokens in {batch_s:.1f} s)"
    )
    print(f"speed-up        {batch_tok / batch_s / (one_tok / one_s):7.2f}x")


if __name__ == "__main__":
    main()
