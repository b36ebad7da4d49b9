"""The `openai` engine against a real `vllm serve` (vLLM's CPU build) on 127.0.0.1, and agreement
with the offline `vllm` engine on the same subset.

Both replays are greedy (v1.3 pins temperature 0) on the same converted snapshot, adapter and
vLLM version, so outputs should agree. They can still differ, which is why agreement is measured
and not asserted equal: the server batches concurrent requests with whatever else is in flight
(the offline engine runs one batch of the whole subset), and vLLM's CPU kernels are not
guaranteed batch-invariant (VLLM_BATCH_INVARIANT needs Triton/CUDA), so a near-tie between two
tokens can break differently; the server also renders the chat template itself, over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_server import ADAPTER, SERVED_NAME, VllmServer
from vllm_server import vllm_server as vllm_server  # the session fixture

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1500)]

OFFLINE_TIMEOUT_S = 900


def pin_served_version(repo: Path, server: VllmServer) -> str:
    """Write the server's reported version into the temp manifest's runtime.engine_versions.openai."""
    version = httpx.get(server.base_url.removesuffix("/v1") + "/version", timeout=10, trust_env=False).json()[
        "version"
    ]
    path = repo / "releases" / "v1.3.yaml"
    text = path.read_text()
    assert '    vllm: "0.32.0"' in text
    path.write_text(text.replace('    vllm: "0.32.0"', f'    vllm: "0.32.0"\n    openai: "{version}"'))
    return str(version)


def outputs(run_dir: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    return {r["case_id"]: r["output"] for r in rows}


def test_openai_replay_on_vllm_serve_agrees_with_offline_vllm(
    cli: Any,
    example_repo: Path,
    vllm_server: VllmServer,  # noqa: F811
    record_property: Any,
) -> None:
    version = pin_served_version(example_repo, vllm_server)
    manifest = example_repo / "releases" / "v1.3.yaml"
    served_dir = example_repo / "runs" / "served"
    result = cli(
        "replay",
        str(manifest),
        "--engine",
        "openai",
        "--base-url",
        vllm_server.base_url,
        "--served-model-name",
        SERVED_NAME,
        "--limit",
        "1",
        "--out",
        str(served_dir),
        "--format",
        "json",
    )
    assert result.code == 0, result.output + vllm_server.log_tail()
    run = json.loads((served_dir / "run.json").read_text())
    runtime = run["runtime"]
    assert (runtime["engine"], runtime["engine_version"], runtime["device_class"]) == (
        "openai",
        version,
        "remote",
    )
    assert runtime["extra"]["server"] == "vllm" and runtime["extra"]["base_url"] == vllm_server.base_url
    served_ids = {m["id"]: m for m in runtime["extra"]["models"]}
    assert served_ids[ADAPTER]["parent"] == SERVED_NAME
    assert runtime["extra"]["identity"]["sha256"] == run["model"]["sha256"]
    assert ADAPTER in runtime["extra"]["identity"]["adapters"]
    rows = [json.loads(line) for line in (served_dir / "results.jsonl").read_text().splitlines()]
    assert rows and all(r["ttft_ms"] is not None and 0 < r["ttft_ms"] <= r["latency_ms"] for r in rows)

    offline_dir = example_repo / "runs" / "offline"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "DVC_NO_ANALYTICS": "1"}
    offline = subprocess.run(
        [sys.executable, "-m", "releasectl", "replay", str(manifest), "--engine", "vllm", "--limit", "1"]
        + ["--out", str(offline_dir), "--format", "json"],
        cwd=example_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=OFFLINE_TIMEOUT_S,
        check=False,
    )
    assert offline.returncode == 0, offline.stdout[-2000:] + offline.stderr[-4000:]
    served, local = outputs(served_dir), outputs(offline_dir)
    assert served.keys() == local.keys()
    same = [case for case in served if served[case] == local[case]]
    agreement = len(same) / len(served)
    differing = sorted(set(served) - set(same))
    print(
        f"agreement openai(vllm serve) vs vllm offline: {len(same)}/{len(served)} = {agreement:.3f}; differing: {differing}"
    )
    record_property("agreement", round(agreement, 4))
    record_property("agreement_cases", len(served))
    record_property("agreement_differing", ",".join(differing))
    # completion_tokens means the same on both engines (EOS not counted): equal texts, equal counts.
    served_rows = {r["case_id"]: r for r in rows}
    offline_rows = {
        r["case_id"]: r
        for r in (json.loads(line) for line in (offline_dir / "results.jsonl").read_text().splitlines())
    }
    for case in same:
        assert served_rows[case]["completion_tokens"] == offline_rows[case]["completion_tokens"], case
        assert served_rows[case]["prompt_tokens"] == offline_rows[case]["prompt_tokens"], case
    assert agreement >= 0.75, differing
