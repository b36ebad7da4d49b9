"""Mine high-signal failures and strong successes from log records (seed 001 M5-L04)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from releasectl.monitoring.stats import NO_ERROR


class MiningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low_satisfaction: int = Field(default=2, ge=1, le=5, description="At or below: a failure.")
    high_satisfaction: int = Field(
        default=5, ge=1, le=5, description="At or above (and clean): a strong success."
    )


def failure_reasons(rec: dict[str, Any], s: MiningSettings) -> list[str]:
    """Why a record is a high-signal failure (empty when it is not)."""
    reasons = []
    err = rec.get("error")
    if err not in NO_ERROR or rec.get("timeout") is True:
        reasons.append(f"error:{err or 'timeout'}")
    if rec.get("expected_format") == "json" and err in NO_ERROR:
        try:
            orjson.loads(rec.get("output") or "")
        except orjson.JSONDecodeError:
            reasons.append("format:malformed_json")
    for flag in rec.get("rule_violations") or []:
        reasons.append(f"rule:{flag}")
    sat = rec.get("user_satisfaction")
    if sat is not None and sat <= s.low_satisfaction:
        reasons.append("low_satisfaction")
    if rec.get("safety_incident") is True:
        reasons.append("safety_incident")
    if rec.get("abandoned") is True:
        reasons.append("abandoned")
    return reasons


def is_strong_success(rec: dict[str, Any], s: MiningSettings) -> bool:
    sat = rec.get("user_satisfaction")
    return (
        sat is not None
        and sat >= s.high_satisfaction
        and not failure_reasons(rec, s)
        and bool((rec.get("output") or "").strip())
    )
