"""Build run directories (SPEC §5.1) with exact per-slice outcomes, for gate and report tests."""

from __future__ import annotations

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
    gpu_hourly_usd: float = 1.99,
    gpus: int = 1,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tokens = sum(r["completion_tokens"] for r in rows)
    run = {
        "release": release,
        "manifest_digest": manifest_digest,
        "suite_digest": suite_digest,
        "engine": {"name": "hf", "version": "test"},
        "device": "cpu",
        "seed": 1234,
        "output_digest": "sha256:" + "1" * 64,
        "cases": len(rows),
        "generation_seconds": generation_seconds if generation_seconds is not None else tokens / 30.0,
        "gpus": gpus,
        "gpu_hourly_usd": gpu_hourly_usd,
    }
    (path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    with (path / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path
