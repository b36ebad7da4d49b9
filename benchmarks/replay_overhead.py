"""Harness overhead: `run_replay` vs the raw engine library on the same prompts, per engine.

Same process, same loaded model, same batches (hf) or chunks (vllm). The raw pass calls the
library itself — `model.generate` for transformers, `LLM.chat` for vLLM — with the same sampling;
the replay also renders templates, scores with every verifier (including sandboxed unit tests),
writes and fsyncs results. Target: overhead <= 5 %.

    python benchmarks/replay_overhead.py --engine hf|vllm [--limit 2] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def raw_generate(engine, prompts, sampling, seed):  # type: ignore[no-untyped-def]
    """The library call alone, without releasectl's wrapping."""
    if engine.name == "vllm":
        from releasectl.replay.engines.vllm import sampling_kwargs

        params = engine._vllm.SamplingParams(**sampling_kwargs(sampling, seed=seed))
        return engine.llm.chat([p.messages for p in prompts], sampling_params=params, use_tqdm=False)
    import torch

    texts = [engine.render(p.messages) for p in prompts]
    enc = engine.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.inference_mode():
        return engine.model.generate(
            **enc,
            max_new_tokens=sampling.max_tokens,
            do_sample=False,
            pad_token_id=engine.tokenizer.pad_token_id,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--limit", type=int, default=2, help="cases per slice")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--release", default="v1.2", help="v1.2 (no adapter) keeps both raw passes comparable"
    )
    args = parser.parse_args()
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.plan import plan_replay, select_cases
    from releasectl.replay.runner import check_pins, make_engine, probe_runtime, render_prompt, run_replay

    work = Path(tempfile.mkdtemp())
    try:
        for part in ("releases", "checklists", "suites", "prompts", "adapters", "data", "training"):
            shutil.copytree(ROOT / part, work / part)
        m = work / "releases" / f"{args.release}.yaml"
        m.write_text(m.read_text().replace("max_tokens: 96", f"max_tokens: {args.max_tokens}"))
        loaded = load_manifest(m)
        inputs = check_pins(loaded)
        t0 = time.perf_counter()
        engine = make_engine(loaded, args.engine, inputs, probe_runtime(loaded, args.engine, None))
        load_s = time.perf_counter() - t0
        sampling = loaded.manifest.sampling
        plan = plan_replay(
            select_cases(inputs.suite, args.limit), batch_size=engine.batch_size, seed=sampling.seed
        )
        prompts = [[render_prompt(inputs.template, dict(c.input)) for c in b.cases] for b in plan.batches]
        raw_generate(engine, prompts[0][:1], sampling, 0)  # warm-up

        def raw_pass() -> float:
            t0 = time.perf_counter()
            for batch, p in zip(plan.batches, prompts, strict=True):
                raw_generate(engine, p, sampling, batch.seed)
            return time.perf_counter() - t0

        def replay_pass(k: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            summary = run_replay(loaded, work / f"run{k}", limit=args.limit, engine_instance=engine)
            rows = (work / f"run{k}" / "results.jsonl").read_text().splitlines()
            tokens = sum(__import__("json").loads(r)["completion_tokens"] for r in rows)
            assert summary.run["cases"] == plan.total
            return time.perf_counter() - t0, tokens

        # Interleaved, best of three each: the machine is shared, so take the least-disturbed pass.
        raws, replays = [], []
        tokens = 0
        for k in range(3):
            raws.append(raw_pass())
            seconds, tokens = replay_pass(k)
            replays.append(seconds)
        raw, replay = min(raws), min(replays)
        print(
            f"engine {args.engine}: {plan.total} cases in {len(plan.batches)} calls, max_tokens {args.max_tokens}"
        )
        print(f"engine load           {load_s:8.2f} s")
        print(f"raw library calls     {raw:8.2f} s")
        print(f"releasectl replay     {replay:8.2f} s  ({tokens / replay:.1f} tokens/s)")
        print(f"harness overhead      {(replay - raw) / raw * 100:+7.1f} %  (target <= 5 %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
