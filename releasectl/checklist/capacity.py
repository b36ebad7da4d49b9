"""Capacity planning (checklist item 5), with seed 001 M5-L07's formulas. Pure and fast to import.

- Traffic = QPS × average tokens; GPUs = generated tokens/s needed ÷ tokens/s per GPU, plus
  headroom for canaries and spikes, rounded up to whole GPUs.
- Cost per hour = GPUs × $/GPU-hr; per day ×24; per month ×24×30.
- Cost per 1k tokens ≈ $/GPU-hr ÷ (tokens/s/GPU × 3600) × 1000.
- Memory = params × bytes per param (+ KV cache: 2 × layers × kv_heads × head_dim × bytes ×
  tokens × concurrent requests), against GPU memory × tensor parallel size.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from releasectl.manifest.models import Infrastructure

HOURS_PER_DAY = 24
DAYS_PER_MONTH = 30

# Bytes per parameter. GGUF Q4_1 stores 4-bit weights plus an fp16 scale and min per 32 weights
# (5 bits/weight = 0.625 bytes); Q8_0 stores 8 bits plus an fp16 scale per 32 (8.5 bits).
BYTES_PER_PARAM = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "nf4": 0.5,
    "q4_1": 0.625,
    "q8_0": 1.0625,
}


def gpus_for_throughput(
    qps: float, output_tokens: float, tokens_per_second_per_gpu: float, headroom: float = 0.0
) -> int:
    """Whole GPUs to generate `qps × output_tokens` tokens/s, plus `headroom` (0.3 = +30 %)."""
    needed = qps * output_tokens / tokens_per_second_per_gpu
    return max(1, math.ceil(round(needed * (1.0 + headroom), 9)))


def gpus_for_concurrency(
    qps: float, concurrent_per_gpu: int, seconds_per_response: float
) -> tuple[float, int]:
    """Seed 000's exercise: throughput per GPU = concurrent requests ÷ seconds per response."""
    per_gpu_qps = concurrent_per_gpu / seconds_per_response
    return per_gpu_qps, math.ceil(round(qps / per_gpu_qps, 9))


def cost(gpus: int, hourly_usd: float) -> tuple[float, float, float]:
    """(per hour, per day, per month) in USD."""
    hour = gpus * hourly_usd
    return round(hour, 6), round(hour * HOURS_PER_DAY, 6), round(hour * HOURS_PER_DAY * DAYS_PER_MONTH, 6)


def cost_per_1k_tokens(hourly_usd: float, tokens_per_second_per_gpu: float) -> float:
    return hourly_usd / (tokens_per_second_per_gpu * 3600) * 1000


def weights_gb(params_b: float, precision: str) -> float:
    """Model weights in GB (10^9 bytes, as the seed's tables use): 7B at fp16 = 14 GB."""
    return params_b * BYTES_PER_PARAM[precision]


def kv_cache_gb(
    layers: int, kv_heads: int, head_dim: int, bytes_per_value: float, tokens: int, concurrent: int
) -> float:
    return 2 * layers * kv_heads * head_dim * bytes_per_value * tokens * concurrent / 1e9


class CapacityCheck(BaseModel):
    name: str
    ok: bool
    reason: str


class CapacityPlan(BaseModel):
    target_qps: float
    tokens_per_second_needed: float
    traffic_tokens_per_second: float
    gpus_needed_steady: float
    gpus_needed: int
    gpus_allocated: int
    headroom: float
    cost_per_hour_usd: float
    cost_per_day_usd: float
    cost_per_month_usd: float
    cost_per_1k_tokens_usd: float
    budget_per_1k_tokens_usd: float
    seconds_per_response: float
    weights_gb: float
    kv_cache_gb: float
    memory_needed_gb: float
    memory_available_gb: float
    precision: str
    checks: list[CapacityCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def plan(infra: Infrastructure) -> CapacityPlan:
    """Every figure of the capacity plan, and the four readiness checks of checklist item 5."""
    gen_tps = infra.target_qps * infra.avg_output_tokens
    steady = gen_tps / infra.tokens_per_second_per_gpu
    needed = gpus_for_throughput(
        infra.target_qps, infra.avg_output_tokens, infra.tokens_per_second_per_gpu, infra.headroom
    )
    hour, day, month = cost(infra.gpus_allocated, infra.gpu_hourly_usd)
    per_1k = cost_per_1k_tokens(infra.gpu_hourly_usd, infra.tokens_per_second_per_gpu)
    weights = weights_gb(infra.params_b, infra.precision)
    kv = 0.0
    if infra.kv_cache is not None:
        k = infra.kv_cache
        kv = kv_cache_gb(
            k.layers, k.kv_heads, k.head_dim, k.bytes_per_value, k.tokens_per_request, k.concurrent_requests
        )
    # Each replica holds the weights once across its tensor-parallel group; the KV cache budget
    # is per replica too.
    available = infra.gpu_memory_gb * infra.tensor_parallel_size
    memory = weights + kv
    # Even with a whole GPU's throughput to itself, a response takes this long: a lower bound on
    # latency. If it exceeds the p95 target, no number of GPUs meets it.
    seconds = infra.avg_output_tokens / infra.tokens_per_second_per_gpu
    checks = [
        CapacityCheck(
            name="throughput",
            ok=infra.gpus_allocated >= needed,
            reason=f"{infra.gpus_allocated} GPUs allocated, {needed} needed for {infra.target_qps:g} QPS × {infra.avg_output_tokens} tokens at {infra.tokens_per_second_per_gpu:g} tok/s/GPU with {infra.headroom:.0%} headroom",
        ),
        CapacityCheck(
            name="latency",
            ok=seconds * 1000 <= infra.p95_latency_ms_target,
            reason=f"generation alone takes ≥ {seconds * 1000:.0f} ms per response vs the p95 target {infra.p95_latency_ms_target:g} ms",
        ),
        CapacityCheck(
            name="memory",
            ok=memory <= available,
            reason=f"{memory:.2f} GB needed ({weights:.2f} GB weights at {infra.precision} + {kv:.2f} GB KV cache) of {available:g} GB on {infra.tensor_parallel_size}× {infra.gpu_type}",
        ),
        CapacityCheck(
            name="cost",
            ok=per_1k <= infra.budget_per_1k_tokens_usd,
            reason=f"${per_1k:.6f} per 1k tokens vs budget ${infra.budget_per_1k_tokens_usd:g}",
        ),
    ]
    return CapacityPlan(
        target_qps=infra.target_qps,
        tokens_per_second_needed=gen_tps,
        traffic_tokens_per_second=infra.target_qps * (infra.avg_prompt_tokens + infra.avg_output_tokens),
        gpus_needed_steady=round(steady, 4),
        gpus_needed=needed,
        gpus_allocated=infra.gpus_allocated,
        headroom=infra.headroom,
        cost_per_hour_usd=hour,
        cost_per_day_usd=day,
        cost_per_month_usd=month,
        cost_per_1k_tokens_usd=round(per_1k, 8),
        budget_per_1k_tokens_usd=infra.budget_per_1k_tokens_usd,
        seconds_per_response=round(seconds, 4),
        weights_gb=round(weights, 4),
        kv_cache_gb=round(kv, 4),
        memory_needed_gb=round(memory, 4),
        memory_available_gb=available,
        precision=infra.precision,
        checks=checks,
    )
