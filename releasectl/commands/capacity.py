"""`releasectl capacity`: the capacity plan of a release (seed 001 M5-L07)."""

from __future__ import annotations

from pathlib import Path

import click

from releasectl.console import console, emit_json, esc, format_option

_OPTIONS = {  # what-if option → the infrastructure field it overrides
    "--qps": "target_qps",
    "--gpus": "gpus_allocated",
    "--precision": "precision",
    "--gpu-hourly-usd": "gpu_hourly_usd",
    "--tokens-per-second": "tokens_per_second_per_gpu",
}


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--qps", type=float, default=None, help="What if: target queries per second.")
@click.option("--gpus", type=int, default=None, help="What if: GPUs allocated.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "bf16", "fp8", "int8", "int4", "nf4", "q4_1", "q8_0"]),
    default=None,
    help="What if: weight precision.",
)
@click.option("--gpu-hourly-usd", type=float, default=None, help="What if: price per GPU-hour.")
@click.option(
    "--tokens-per-second",
    type=float,
    default=None,
    help="What if: generated tokens/s per GPU at the p95 target.",
)
@format_option()
def capacity(
    manifest: Path,
    qps: float | None,
    gpus: int | None,
    precision: str | None,
    gpu_hourly_usd: float | None,
    tokens_per_second: float | None,
    fmt: str,
) -> int:
    """Print GPUs needed, cost per hour/day/month and per 1k tokens, and whether the model fits.

    Inputs come from the manifest's `infrastructure`; the options override them for what-if
    questions. Exit 0 when the plan meets QPS, latency, memory and budget; 1 otherwise.
    """
    from releasectl.checklist.capacity import plan
    from releasectl.manifest.loader import load_manifest

    loaded = load_manifest(manifest)
    infra = loaded.manifest.infrastructure
    overrides = {
        "target_qps": qps,
        "gpus_allocated": gpus,
        "precision": precision,
        "gpu_hourly_usd": gpu_hourly_usd,
        "tokens_per_second_per_gpu": tokens_per_second,
    }
    from pydantic import ValidationError

    try:
        infra = infra.model_validate(
            {**infra.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValidationError as e:
        from releasectl.errors import BadInput, Problem

        option = {v: k for k, v in _OPTIONS.items()}
        problems = [
            Problem(
                f"{option.get(str(err['loc'][0]), str(err['loc'][0]))}: {err['msg']}",
                found=repr(err.get("input"))[:40],
            )
            for err in e.errors()
        ]
        raise BadInput(f"capacity: {problems[0].message}", problems) from None
    p = plan(infra)
    if fmt == "json":
        emit_json({"release": loaded.manifest.release, **p.model_dump(), "ok": p.ok})
        return 0 if p.ok else 1
    from rich.table import Table

    table = Table(
        title=f"capacity plan · {loaded.manifest.release} · {infra.gpu_type}",
        title_justify="left",
        show_header=False,
    )
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        (
            "traffic",
            f"{p.target_qps:g} QPS × {infra.avg_prompt_tokens + infra.avg_output_tokens} tokens = {p.traffic_tokens_per_second:,.0f} tokens/s ({p.tokens_per_second_needed:,.0f} generated)",
        ),
        (
            "GPUs",
            f"{p.gpus_needed_steady:.2f} steady-state → {p.gpus_needed} with {p.headroom:.0%} headroom; {p.gpus_allocated} allocated",
        ),
        (
            "cost",
            f"${p.cost_per_hour_usd:,.2f}/hour · ${p.cost_per_day_usd:,.2f}/day · ${p.cost_per_month_usd:,.2f}/month ({p.gpus_allocated} × ${infra.gpu_hourly_usd:g}/GPU-hr)",
        ),
        ("cost per 1k tokens", f"${p.cost_per_1k_tokens_usd:.6f} (budget ${p.budget_per_1k_tokens_usd:g})"),
        (
            "memory",
            f"{p.weights_gb:.2f} GB weights ({p.precision}) + {p.kv_cache_gb:.2f} GB KV cache = {p.memory_needed_gb:.2f} of {p.memory_available_gb:g} GB",
        ),
    ]
    for k, v in rows:
        table.add_row(k, esc(v))
    out = console()
    out.print(table)
    for c in p.checks:
        out.print(f"{'[green]✓[/]' if c.ok else '[red]✗[/]'} {esc(c.name)}: {esc(c.reason)}")
    return 0 if p.ok else 1
