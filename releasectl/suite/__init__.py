"""The frozen suite: slices of cases, and the pinned verifiers that score every output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput
from releasectl.suite.loader import Case, SliceInfo, Suite, VerifierSpec, load_suite
from releasectl.suite.registry import Verdict, VerifierInfo, VerifyContext, installed_verifiers


@dataclass(frozen=True)
class ScoredCase:
    verifiers: dict[str, dict[str, Any]]
    passed: bool
    steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def score_case(
    case: Case,
    output: str,
    versions: Mapping[str, str],
    *,
    fixtures_dir: Path | None = None,
    steps_from: str | None = None,
) -> ScoredCase:
    """Score one output with the case's verifiers at the versions the manifest pins.

    A verifier that is not pinned, or pinned at a version that is not installed, is bad input:
    the checklist (item 1) reports it before a replay gets here.
    """
    from releasectl.suite import registry

    results: dict[str, dict[str, Any]] = {}
    tool_calls: int | None = None
    plan_steps: int | None = None
    for spec in case.verifiers:
        version = versions.get(spec.verifier)
        if version is None:
            raise BadInput(
                f"verifier '{spec.verifier}' (used by slice {case.slice}) is not pinned in the manifest's verifiers"
            )
        try:
            reg = registry.get(spec.verifier, version)
        except KeyError:
            info = installed_verifiers().get(spec.verifier)
            have = ", ".join(info.versions) if info else "none"
            raise BadInput(
                f"verifier {spec.verifier} {version} is not installed (installed: {have})"
            ) from None
        settings = reg.settings.model_validate(dict(spec.settings))
        try:
            verdict = reg.fn(output, settings, VerifyContext(case.expected, fixtures_dir))
        except Exception as e:  # a verifier crash on odd output is a failed check, not a failed run
            verdict = Verdict(False, f"verifier error: {type(e).__name__}: {e}")
        results[spec.name] = {
            "passed": bool(verdict.passed),
            "kind": spec.kind or reg.kind,
            "detail": verdict.detail,
        }
        if verdict.steps is not None:
            if spec.verifier == "tool_call_schema":
                tool_calls = verdict.steps
            else:
                plan_steps = verdict.steps
    steps_from = steps_from or case.steps
    steps = {"tool_calls": tool_calls, "numbered_lines": plan_steps}.get(steps_from or "")
    if steps_from == "numbered_lines" and steps is None:
        from releasectl.suite.verifiers.code import count_steps

        steps = count_steps(output)
    return ScoredCase(results, all(r["passed"] for r in results.values()), steps)


def select_cases(suite: Suite, limit: int | None) -> list[Case]:
    """All cases, or the first `limit` cases of every slice (by id), so every slice is
    represented: what `replay --limit` replays, and what the gate rebuilds a limited run from."""
    if limit is None:
        return list(suite.cases)
    taken: dict[str, int] = {}
    out = []
    for case in suite.cases:
        if taken.get(case.slice, 0) < limit:
            taken[case.slice] = taken.get(case.slice, 0) + 1
            out.append(case)
    return out


__all__ = [
    "select_cases",
    "Case",
    "ScoredCase",
    "SliceInfo",
    "Suite",
    "VerifierInfo",
    "VerifierSpec",
    "installed_verifiers",
    "load_suite",
    "score_case",
]
