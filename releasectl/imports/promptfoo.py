"""promptfoo: the JSON of `promptfoo eval -o results.json`, results format versions 2 and 3.

Version 3 (promptfoo ≥ 0.50) lists one result per prompt × provider × test with `testIdx`,
`promptIdx`, `gradingResult.componentResults` (one per assertion), `latencyMs`, `tokenUsage` and
`cost`. Version 2 has the same per-result fields without the indices; a test's index is then the
order in which its vars first appear. One import takes one prompt × provider (`--select`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem
from releasectl.imports.common import (
    Choices,
    ImportedCase,
    ImportedRun,
    Verdict,
    as_dict,
    bad,
    check_scorers_seen,
    content_hash,
    keep_scorer,
    need,
    optional,
    read_json_source,
    score_passes,
    slice_for,
)

HARNESS = "promptfoo"
RESULT_VERSIONS = (2, 3)
SUPPORTED = "promptfoo `eval -o results.json` output with results.version 2 or 3"
SLICE_SOURCES = ("metadata", "vars", "prompt", "all")
# assertion type -> verifier kind (SPEC §5.1); anything else is a correctness check
_KINDS = {
    "is-json": "format", "contains-json": "format", "is-xml": "format", "contains-xml": "format",
    "is-sql": "format", "contains-sql": "format", "is-html": "format", "contains-html": "format",
    "is-valid-openai-tools-call": "tool", "is-valid-openai-function-call": "tool",
    "is-valid-function-call": "tool", "tool-call-f1": "tool", "trajectory:tool-used": "tool",
    "llm-rubric": "quality", "model-graded-closedqa": "quality", "factuality": "quality",
    "g-eval": "quality", "similar": "quality", "answer-relevance": "quality", "moderation": "rule",
    "latency": "rule", "cost": "rule", "perplexity": "quality", "classifier": "quality",
}  # fmt: skip


def _kind(assertion_type: str) -> str:
    return _KINDS.get(assertion_type.removeprefix("not-"), "correctness")


def _prompt_name(result: dict[str, Any], prompts: list[Any]) -> str:
    idx = result.get("promptIdx")
    if (
        isinstance(idx, int)
        and not isinstance(idx, bool)
        and 0 <= idx < len(prompts)
        and isinstance(prompts[idx], dict)
    ):
        p = prompts[idx]
    else:
        p = as_dict(result.get("prompt"))
    return str(p.get("label") or p.get("id") or p.get("raw") or "prompt")


def _provider_name(result: dict[str, Any]) -> str:
    provider = result.get("provider")
    if isinstance(provider, dict):
        return str(provider.get("label") or provider.get("id") or "provider")
    return str(provider or "provider")


def _verdicts(result: dict[str, Any], choices: Choices, where: str, seen: set[str]) -> dict[str, Verdict]:
    grading = optional(result, "gradingResult", dict, where)
    out: dict[str, Verdict] = {}
    components = (
        optional(grading, "componentResults", list, f"{where}.gradingResult") if grading else None
    ) or []
    for j, comp in enumerate(components):
        at = f"{where}.gradingResult.componentResults[{j}]"
        assertion = (
            need(comp, "assertion", dict, at)
            if isinstance(comp, dict) and comp.get("assertion") is not None
            else {}
        )
        a_type = str(assertion.get("type") or "assertion")
        name = str(assertion.get("metric") or a_type)
        if name in out:
            name = f"{name}#{j}"
        seen.add(name)
        if not keep_scorer(name, choices):
            continue
        passed = need(comp, "pass", bool, at)
        detail = str(comp.get("reason") or "")[:2000]
        if choices.threshold(name) is not None:
            score = need(comp, "score", (int, float), at)
            passed, decided = score_passes(name, score, choices, f"{at}.score")
            detail = f"{decided}: {detail}"
        out[name] = Verdict(passed, _kind(a_type), detail)
    error = result.get("error")
    if error:
        out["provider_error"] = Verdict(False, "correctness", f"the provider failed: {str(error)[:500]}")
    return out


def read(path: Path, choices: Choices) -> ImportedRun:
    doc = read_json_source(path, "promptfoo results file")
    root = f"{path}:$"
    if not isinstance(doc, dict):
        raise bad("not a promptfoo results file", root, expected="an object", found=doc)
    body = need(doc, "results", dict, root, expected="the object `promptfoo eval -o` writes")
    version = body.get("version")
    if version not in RESULT_VERSIONS or isinstance(version, bool):
        raise bad(
            f"unsupported promptfoo results version {version!r}",
            f"{root}.results.version",
            expected=SUPPORTED,
            found=version,
        )
    rows = need(body, "results", list, f"{root}.results")
    prompts = body.get("prompts") if isinstance(body.get("prompts"), list) else []
    combos: dict[tuple[str, str], int] = {}
    for i, result in enumerate(rows):
        if not isinstance(result, dict):
            raise bad("expected an object", f"{root}.results.results[{i}]", found=result)
        key = (_prompt_name(result, prompts), _provider_name(result))
        combos[key] = combos.get(key, 0) + 1
    wanted_prompt, wanted_provider = choices.select.get("prompt"), choices.select.get("provider")
    chosen = [c for c in combos if wanted_prompt in (None, c[0]) and wanted_provider in (None, c[1])]
    listing = ", ".join(f"prompt={p} provider={q}" for p, q in combos)
    if not chosen:
        raise BadInput(
            f"{path}: no results for the selection",
            [Problem("nothing selected", file=str(path), expected=listing, found=str(choices.select))],
        )
    if len(chosen) > 1:
        raise BadInput(
            f"{path} holds {len(chosen)} prompt × provider combinations; import one at a time",
            [Problem("more than one run", file=str(path), field="--select", expected="one of: " + listing)],
            hint="give --select prompt=LABEL and/or --select provider=ID",
        )
    prompt_name, provider_name = chosen[0]
    slice_from = choices.slice_from or "all"
    first_seen: dict[str, int] = {}
    cases: list[ImportedCase] = []
    seen: set[str] = set()
    success_disagrees = 0
    cost = 0.0
    latency_total = 0.0
    for i, result in enumerate(rows):
        if (_prompt_name(result, prompts), _provider_name(result)) != (prompt_name, provider_name):
            continue
        where = f"{root}.results.results[{i}]"
        test_case = optional(result, "testCase", dict, where) or {}
        variables = optional(result, "vars", dict, where)
        if variables is None:
            variables = optional(test_case, "vars", dict, f"{where}.testCase") or {}
        vars_hash = content_hash(variables)
        test_idx = optional(result, "testIdx", int, where)
        if test_idx is None:  # results version 2
            test_idx = first_seen.setdefault(vars_hash, len(first_seen))
        verdicts = _verdicts(result, choices, where, seen)
        if not verdicts:
            raise bad(
                "no assertion to decide pass/fail",
                where,
                expected=", ".join(choices.scorers) or "assertions on the test",
            )
        success = optional(result, "success", bool, where)
        if success is not None and success != all(v.passed for v in verdicts.values()):
            success_disagrees += 1
        response = optional(result, "response", dict, where) or {}
        output = response.get("output", "")
        usage = optional(result, "tokenUsage", dict, where) or optional(
            response, "tokenUsage", dict, f"{where}.response"
        )
        latency = optional(result, "latencyMs", (int, float), where)
        latency_total += latency or 0.0
        cost += optional(result, "cost", (int, float), where) or 0.0
        metadata = as_dict(test_case.get("metadata"))
        cases.append(
            ImportedCase(
                key=f"test{test_idx}",
                content_hash=vars_hash,
                slice=slice_for(
                    slice_from,
                    {"metadata": metadata, "vars": variables, "prompt": prompt_name, "all": "all"},
                    where,
                    SLICE_SOURCES,
                ),
                verifiers=verdicts,
                output=output if isinstance(output, str) else json.dumps(output, ensure_ascii=False),
                prompt_tokens=optional(usage, "prompt", int, f"{where}.tokenUsage") if usage else None,
                completion_tokens=optional(usage, "completion", int, f"{where}.tokenUsage")
                if usage
                else None,
                latency_ms=None if latency is None else float(latency),
                where=where,
            )
        )
    check_scorers_seen(seen, choices, str(path), "assertion metric")
    meta = as_dict(doc.get("metadata"))
    stats = as_dict(body.get("stats"))
    duration = stats.get("durationMs")
    seconds = (
        duration / 1000
        if isinstance(duration, int | float) and not isinstance(duration, bool)
        else latency_total / 1000
    )
    version_text = meta.get("promptfooVersion") if isinstance(meta.get("promptfooVersion"), str) else None
    return ImportedRun(
        harness=HARNESS,
        harness_version=version_text,
        format=f"promptfoo results v{version}",
        sources=[path],
        cases=cases,
        model={"provider": provider_name, "prompt": prompt_name, "revision": None},
        device=None,
        generation_seconds=seconds,
        started_at=body.get("timestamp") if isinstance(body.get("timestamp"), str) else None,
        details={
            "eval_id": doc.get("evalId"),
            "description": (doc.get("config") or {}).get("description")
            if isinstance(doc.get("config"), dict)
            else None,
            "node": meta.get("nodeVersion"),
            "cost_usd": cost,
            "success_disagrees_with_assertions": success_disagrees,
        },
        unmapped=["model revision (promptfoo records the provider id only)"]
        + ([] if version_text else ["harness version (not in results v2)"]),
    )
