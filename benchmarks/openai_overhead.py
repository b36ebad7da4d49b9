"""Overhead of the `openai` engine: `OpenAIEngine.generate` vs raw concurrent httpx calls to the same
`vllm serve`, on the same prompts, at the same concurrency.

Both passes send the same request bodies (the pinned sampling, the adapter's served name,
streaming with usage) through a pool of `--concurrency` threads and read every answer to its
end; the raw pass only POSTs and reads the stream, the engine also checks deadlines, parses
every chunk, retries, times each request and builds Generations. Passes are interleaved (the
order alternates each round, after one warm-up round) and the best of `--rounds` counts.
Target: overhead <= 5 %.

    python benchmarks/openai_overhead.py [--limit 2] [--rounds 3] [--concurrency 8] [--base-url URL]

Without --base-url it starts its own `vllm serve` (tests/vllm_server.py) and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def raw_pass(base_url: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int) -> tuple[float, int]:
    """POST every body with plain httpx, `concurrency` at a time; (seconds, completion tokens)."""
    import httpx

    def one(client: httpx.Client, item: tuple[str, dict[str, Any]]) -> int:
        path, body = item
        tokens = 0
        with client.stream("POST", f"{base_url}/{path}", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {") and '"usage"' in line:
                    usage = json.loads(line[6:]).get("usage")
                    if usage:
                        tokens = int(usage["completion_tokens"])
        return tokens

    with (
        httpx.Client(
            timeout=600, limits=httpx.Limits(max_connections=concurrency), trust_env=False
        ) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        t0 = time.perf_counter()
        tokens = sum(pool.map(lambda item: one(client, item), bodies))
        return time.perf_counter() - t0, tokens


@contextlib.contextmanager
def server(base_url: str | None) -> Iterator[str]:
    if base_url:
        yield base_url
        return
    from vllm_server import running_server

    with running_server() as started:
        yield started.base_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(ROOT / "releases" / "v1.3.yaml"))
    parser.add_argument("--limit", type=int, default=2, help="cases per slice")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--base-url", default=None, help="an already running vllm serve (…/v1)")
    args = parser.parse_args()

    from releasectl.manifest.loader import load_manifest
    from releasectl.manifest.models import Endpoint
    from releasectl.replay.engines.openai import OpenAIEngine, probe_runtime, request_body
    from releasectl.replay.runner import check_pins, render_prompt, select_cases

    loaded = load_manifest(Path(args.manifest))
    m = loaded.manifest
    inputs = check_pins(loaded)
    cases = select_cases(inputs.suite, args.limit)
    prompts = [render_prompt(inputs.template, dict(c.input)) for c in cases]
    with server(args.base_url) as base_url:
        endpoint = Endpoint(
            base_url=base_url, served_model_name="smollm2", concurrency=args.concurrency, timeout_s=600
        )
        runtime = probe_runtime(loaded, endpoint)
        engine = OpenAIEngine(loaded, endpoint, inputs.adapters, runtime=runtime)
        model = inputs.adapters[0].name if inputs.adapters else "smollm2"
        bodies = [
            (
                "chat/completions" if p.chat_template else "completions",
                request_body(p, m.sampling, model=model, seed=m.sampling.seed, stream=True, vllm=True),
            )
            for p in prompts
        ]

        def engine_pass() -> tuple[float, int]:
            with engine.use_adapters(inputs.adapters):
                t0 = time.perf_counter()
                gens = engine.generate(prompts, m.sampling, seed=m.sampling.seed)
                seconds = time.perf_counter() - t0
            # usage counts EOS, the engine does not: add it back to count the same tokens
            eos = sum(1 for g in gens if g.finish_reason == "stop")
            return seconds, sum(g.completion_tokens for g in gens) + eos

        print(
            f"{len(prompts)} prompts, concurrency {args.concurrency}, server {runtime.engine_version} at {base_url}"
        )
        engine_pass()  # warm-up: LoRA load, first-request costs
        raw_pass(base_url, bodies, args.concurrency)
        best: dict[str, float] = {"engine": 0.0, "raw": 0.0}
        for r in range(args.rounds):
            order = ("engine", "raw") if r % 2 == 0 else ("raw", "engine")
            for which in order:
                seconds, tokens = (
                    engine_pass() if which == "engine" else raw_pass(base_url, bodies, args.concurrency)
                )
                rate = tokens / seconds
                best[which] = max(best[which], rate)
                print(f"round {r + 1} {which:6s} {seconds:7.2f} s  {tokens:5d} tokens  {rate:7.1f} tokens/s")
        engine.close()
    overhead = (best["raw"] - best["engine"]) / best["raw"] * 100
    print(
        f"best of {args.rounds}: engine {best['engine']:.1f} tokens/s, raw httpx {best['raw']:.1f} tokens/s, "
        f"overhead {overhead:+.1f} % (target <= 5 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
