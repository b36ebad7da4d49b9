"""Sample gate.json documents for the report and GitHub tests (the format in docs/ARCHITECTURE.md).

Built by hand, not by `releasectl gate`, so the report can be tested against hostile content
that a real gate would only produce from a hostile model.
"""

from __future__ import annotations

from typing import Any

SLICES = ["headache_redflags", "math_basic", "division_hard", "debug_search_api"]


def _side(success: float, n: int = 20) -> dict[str, Any]:
    return {
        "n": n,
        "success_at_1": success,
        "lower_ci": max(0.0, success - 0.2),
        "upper_ci": min(1.0, success + 0.1),
        "metrics": {"rule_violation_rate": round(1 - success, 3), "latency_p95_ms": 800.0},
    }


def sample_gate(
    verdict: str = "block",
    n_slices: int = 4,
    n_failing: int = 6,
    output: str = "The answer is <answer>42</answer>",
    slice_names: list[str] | None = None,
) -> dict[str, Any]:
    """A complete gate result with `n_slices` slices and `n_failing` failing examples."""
    names = slice_names or [SLICES[i] if i < len(SLICES) else f"slice_{i:04d}" for i in range(n_slices)]
    slices = [
        {
            "slice": name,
            "n_paired": 20,
            "candidate": _side(0.84 - (i % 7) * 0.05),
            "baseline": _side(0.31 + (i % 5) * 0.1),
            "delta": round(0.53 - (i % 7) * 0.05 - (i % 5) * 0.1, 3),
            "p_value": 0.004,
            "p_value_adjusted": 0.016,
            "discordant": {"b": 1, "c": 12},
        }
        for i, name in enumerate(names)
    ]
    rules = [
        {
            "rule": "aggregate.success@1.lower_ci >= 0.82",
            "line": 1,
            "metric": "aggregate.success@1.lower_ci",
            "observed": 0.85,
            "comparator": ">=",
            "threshold": 0.82,
            "threshold_expr": "0.82",
            "outcome": "pass",
            "detail": "",
            "n": 80,
        },
        {
            "rule": "latency_p95_ms.point <= 900",
            "line": 2,
            "metric": "latency_p95_ms.point",
            "observed": 950.2 if verdict == "block" else 850.2,
            "comparator": "<=",
            "threshold": 900,
            "threshold_expr": "900",
            "outcome": "fail" if verdict == "block" else "pass",
            "detail": "950.2 > 900" if verdict == "block" else "850.2 <= 900",
            "n": 80,
        },
        {
            "rule": "delta.success@1{division_hard}.p_value < 0.05",
            "line": 3,
            "metric": "delta.success@1.p_value",
            "observed": None if verdict == "hold" else 0.01,
            "comparator": "<",
            "threshold": 0.05,
            "threshold_expr": "0.05",
            "outcome": "inconclusive" if verdict == "hold" else "pass",
            "detail": "only 4 paired cases",
            "n": 4,
        },
    ]
    failing = [
        {
            "case_id": f"case-{k}",
            "slice": names[k % len(names)] if names else "s",
            "output": output,
            "failed_verifiers": [{"name": "answer_tag", "kind": "format", "detail": "no <answer> tag"}],
        }
        for k in range(n_failing)
    ]
    run = {
        "manifest_digest": "sha256:" + "a" * 64,
        "suite_digest": "md5:" + "c" * 32,
        "engine": {"name": "vllm", "version": "0.33.0"},
        "device": "NVIDIA H100 80GB HBM3",
        "seed": 1234,
        "cases": 80,
    }
    return {
        "schema_version": 1,
        "release": "v1.3",
        "baseline_release": "v1.2",
        "stage": "staging",
        "verdict": verdict,
        "verdict_reason": {
            "block": "1 rule fails",
            "hold": "1 rule is inconclusive",
            "promote": "all rules pass",
        }[verdict],
        "manifest_digest": "sha256:" + "a" * 64,
        "baseline_manifest_digest": "sha256:" + "b" * 64,
        "suite_digest": "md5:" + "c" * 32,
        "policy": {
            "source": "checklists/policies/dev_to_staging.rules",
            "sha256": "d" * 64,
            "confidence_level": 0.95,
            "correction": "holm",
            "min_cases_per_slice": 20,
        },
        "rules": rules,
        "slices": slices,
        "aggregate": {
            "candidate": _side(0.83, 80),
            "baseline": _side(0.76, 80),
            "delta": 0.07,
            "p_value": 0.03,
        },
        "unmatched_cases": {"only_in_candidate": [], "only_in_baseline": []},
        "failing_examples": failing,
        "provenance": {
            "candidate_run": {**run, "release": "v1.3", "output_digest": "sha256:" + "e" * 64},
            "baseline_run": {
                **run,
                "release": "v1.2",
                "manifest_digest": "sha256:" + "b" * 64,
                "output_digest": "sha256:" + "f" * 64,
            },
            "pins": [
                {
                    "field": "model",
                    "ref": "hf://HuggingFaceTB/SmolLM2-135M-Instruct@" + "1" * 40,
                    "digest": "sha256:" + "2" * 64,
                },
                {"field": "code.repo_sha", "ref": "git", "digest": "3" * 40},
            ],
        },
        "run_url": "https://github.com/acme/releases/actions/runs/1",
        "created_at": "2026-11-23T08:00:00Z",
    }
