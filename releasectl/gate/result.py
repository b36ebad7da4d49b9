"""gate.json: the gate's decision and everything behind it (format in docs/ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class RuleResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    rule: str
    line: int
    metric: str
    observed: float | None
    comparator: str
    threshold: float | None
    threshold_expr: str
    outcome: Literal["pass", "fail", "inconclusive"]
    detail: str
    n: int | None = None
    lower_ci: float | None = None
    upper_ci: float | None = None
    source: str | None = None


class GateResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int = 1
    release: str
    baseline_release: str | None
    stage: str | None
    verdict: Literal["promote", "block", "hold"]
    verdict_reason: str
    manifest_digest: str
    baseline_manifest_digest: str | None
    suite_digest: str
    policy: dict[str, Any]
    rules: list[RuleResult]
    slices: list[dict[str, Any]]
    aggregate: dict[str, Any]
    unmatched_cases: dict[str, list[str]]
    failing_examples: list[dict[str, Any]]
    provenance: dict[str, Any]
    run_url: str | None = None
    created_at: str

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "promote" else 1
