"""Build run directories (SPEC §5.1) with exact per-slice outcomes, for gate and report tests."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any


def case_row(
    case_id: str,
    slice_name: str,
    verifiers: dict[str, tuple[bool, str]],
    *,
    latency_ms: float = 500.0,
    completion_tokens: int = 50,
    steps: int | None = None,
    output: str = "ok",
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "slice": slice_name,
        "passed": all(ok for ok, _ in verifiers.values()),
        "verifiers": {
            name: {"passed": ok, "kind": kind, "detail": "crafted"} for name, (ok, kind) in verifiers.items()
        },
        "output": output,
        "prompt_tokens": 40,
        "completion_tokens": completion_tokens,
        "latency_ms": latency_ms,
        "steps": steps,
    }


def write_run(
    path: Path,
    release: str,
    rows: list[dict[str, Any]],
    *,
    manifest_digest: str = "sha256:" + "0" * 64,
    suite_digest: str = "f" * 32 + ".dir",
    generation_seconds: float | None = None,
    gpu_hourly_usd: Any = 1.99,
    gpus: Any = 1,
    engine: dict[str, Any] | None = None,
    device: str = "cpu",
    runtime: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """A run directory; `runtime` (run.json's block, issue 10) is written only when given, as a run
    made by another harness would leave it out. `extra` keys go into run.json as they are."""
    path.mkdir(parents=True, exist_ok=True)
    tokens = sum(r["completion_tokens"] for r in rows)
    run = {
        "release": release,
        "manifest_digest": manifest_digest,
        "suite_digest": suite_digest,
        "engine": engine or {"name": "hf", "version": "test"},
        "device": device,
        "seed": 1234,
        "output_digest": "sha256:" + "1" * 64,
        "cases": len(rows),
        "generation_seconds": generation_seconds if generation_seconds is not None else tokens / 30.0,
        "gpus": gpus,
        "gpu_hourly_usd": gpu_hourly_usd,
        **({"runtime": runtime} if runtime is not None else {}),
        **extra,
    }
    (path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    with (path / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def runtime_block(
    engine: str = "hf", version: str = "5.19.0", device: str = "cpu", **facts: Any
) -> dict[str, Any]:
    """run.json's `runtime` as the replay writes it."""
    return {
        "engine": engine,
        "engine_version": version,
        "device": device,
        "device_class": "cpu" if device == "cpu" else "cuda",
        "torch": "2.13.0+cpu",
        "transformers": version if engine == "hf" else None,
        "vllm": version if engine == "vllm" else None,
        "cuda": None,
        "cpu_isa": "AVX2",
        "gpu_name": None if device == "cpu" else device,
        "driver": None,
        "python": "3.11.9",
        **facts,
    }


@functools.cache
def pinned_suite(release: str) -> tuple[str, int]:
    """(the suite digest releases/<release>.yaml of this repository pins, its case count), or a
    made-up suite for a release this repository does not have."""
    from releasectl.manifest.loader import load_manifest
    from releasectl.suite import load_suite

    path = Path(__file__).resolve().parent.parent / "releases" / f"{release}.yaml"
    if not path.is_file():
        return "f" * 32 + ".dir", 100
    loaded = load_manifest(path)
    suite = load_suite(loaded.resolve(loaded.manifest.data.suite.path or ""))
    return loaded.manifest.data.suite.md5 or suite.digest, len(suite.cases)


def gate_document(
    release: str,
    *,
    stage: str = "staging",
    manifest_digest: str = "sha256:" + "0" * 64,
    outcomes: tuple[str, ...] = ("pass",),
) -> dict[str, Any]:
    """A consistent gate.json (GateRecord) whose rules have `outcomes`; its verdict follows from
    them. It covers the suite the release pins (its digest, every case), as promote requires."""
    suite_digest, cases = pinned_suite(release)
    rules = []
    for i, outcome in enumerate(outcomes, start=1):
        observed = {"pass": 0.9, "fail": 0.5, "inconclusive": None}[outcome]
        rules.append(
            {
                "rule": f"aggregate.success@1.point >= 0.8  # rule {i}",
                "line": i,
                "metric": "aggregate.success@1.point",
                "observed": observed,
                "comparator": ">=",
                "threshold": 0.8,
                "threshold_expr": "0.8",
                "outcome": outcome,
                "detail": "crafted",
                "n": 100,
                "source": "policy.rules",
            }
        )
    verdict = (
        "block" if "fail" in outcomes else "hold" if "inconclusive" in outcomes or not outcomes else "promote"
    )
    return {
        "schema_version": 1,
        "release": release,
        "baseline_release": None,
        "stage": stage,
        "verdict": verdict,
        "verdict_reason": "crafted",
        "manifest_digest": manifest_digest,
        "baseline_manifest_digest": None,
        "suite_digest": suite_digest,
        "policy": {"source": "policy.rules"},
        "rules": rules,
        "slices": [],
        "aggregate": {"slice": "aggregate", "candidate": {"n": cases, "metrics": {}}},
        "unmatched_cases": {"only_in_candidate": [], "only_in_baseline": []},
        "failing_examples": [],
        "provenance": {},
        "created_at": "2026-12-01T00:00:00Z",
    }
