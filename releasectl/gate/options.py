"""Command-line values the gate and `replay --sequential` share, checked before any work (no heavy
imports: command modules import this at their top)."""

from __future__ import annotations

import math
from typing import Any

import click

MAX_SEED = 10**15  # run.json's seed range (contracts._types.MAX_COUNT)
MAX_ROUND = 10**15


def margin(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """`--no-regressions-margin`: a finite number in [0, 1). click's FloatRange lets NaN through
    (every comparison with NaN is false), which would fail only after the replay or as exit 3."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise click.BadParameter(f"expected a finite number in [0, 1), found {value!r}")
    return value


def bounded_int(low: int, high: int) -> Any:
    """A click callback refusing an int outside [low, high] (exit 2 before any replay)."""

    def check(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        if value is not None and not low <= value <= high:
            shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "…"
            raise click.BadParameter(f"expected an integer in [{_short(low)}, {_short(high)}], found {shown}")
        return value

    return check


def _short(v: int) -> str:
    return f"{v:.0e}" if abs(v) >= 10**6 else str(v)
