"""Harness overhead: `run_replay` on N cases vs the raw engine `generate` on the same prompts.

Same process, same loaded model, same batches; the raw loop only generates, the replay also
renders templates, scores with every verifier (including sandboxed unit tests), writes and
fsyncs results. Target: overhead <= 5 %.

    python benchmarks/replay_overhead.py [--limit 2] [--max-tokens 32]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=2, help="cases per slice")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.runner import (
        _check_pins,
        load_template,
        make_engine,
        plan_batches,
        render_prompt,
        run_replay,
        select_cases,
    )

    work = Path(tempfile.mkdtemp())
    try:
        for part in ("releases", "checklists", "suites", "prompts", "adapters", "data", "training"):
            shutil.copytree(ROOT / part, work / part)
        m = work / "releases" / "v1.2.yaml"
        m.write_text(m.read_text().replace("max_tokens: 96", f"max_tokens: {args.max_tokens}"))
        loaded = load_manifest(m)
        suite, model_path, digest = _check_pins(loaded)
        engine = make_engine(loaded, "hf", model_path, digest, None)
        cases = select_cases(suite, args.limit)
        batches = plan_batches(cases, loaded.manifest.runtime.batch_size)
        template = load_template(loaded.resolve(loaded.manifest.input.template.path or ""))
        prompts = [[render_prompt(template, dict(c.input)) for c in b] for b in batches]
        engine.generate(prompts[0][:1], loaded.manifest.sampling, batch_seed=0)  # warm-up

        def raw_pass() -> float:
            t0 = time.perf_counter()
            for i, p in enumerate(prompts):
                engine.generate(p, loaded.manifest.sampling, batch_seed=loaded.manifest.sampling.seed + i)
            return time.perf_counter() - t0

        def replay_pass(k: int) -> float:
            t0 = time.perf_counter()
            run_replay(loaded, work / f"run{k}", limit=args.limit, engine_instance=engine)
            return time.perf_counter() - t0

        # Interleaved, best of three each: the machine is shared, so take the least-disturbed pass.
        raws, replays = [], []
        for k in range(3):
            raws.append(raw_pass())
            replays.append(replay_pass(k))
        raw, replay = min(raws), min(replays)
        print(f"cases: {len(cases)} in {len(batches)} batches, max_tokens {args.max_tokens}")
        print(f"raw engine.generate   {raw:8.2f} s")
        print(f"releasectl replay     {replay:8.2f} s")
        print(f"harness overhead      {(replay - raw) / raw * 100:+7.1f} %  (target <= 5 %)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
