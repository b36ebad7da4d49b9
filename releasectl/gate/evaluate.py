"""Evaluate a policy on a candidate run against a baseline run and build gate.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.ci import run_url
from releasectl.errors import BadInput
from releasectl.gate.metrics import GateResolver, Policy
from releasectl.gate.result import GateResult
from releasectl.gate.rules import Rule, evaluate_rules, verdict_of
from releasectl.gate.runs import load_runs
from releasectl.manifest.loader import LoadedManifest, iter_artifacts

MAX_EXAMPLES_IN_GATE = 200


def _run_facts(run: dict[str, Any], path: Path) -> dict[str, Any]:
    keep = (
        "release",
        "manifest_digest",
        "suite_digest",
        "engine",
        "device",
        "seed",
        "cases",
        "output_digest",
        "generation_seconds",
        "gpus",
        "gpu_hourly_usd",
        "allow_device_drift",
        "limit",
        "shard",
        "finished_at",
    )
    return {"run_dir": str(path), **{k: run.get(k) for k in keep if k in run}}


def pins(loaded: LoadedManifest) -> list[dict[str, Any]]:
    out = []
    for field_name, art in iter_artifacts(loaded.manifest):
        digest = f"sha256:{art.sha256}" if art.sha256 else f"md5:{art.md5}" if art.md5 else art.revision or ""
        out.append({"field": field_name, "ref": art.uri or art.path, "digest": digest})
    out.append(
        {
            "field": "code.repo_sha",
            "ref": loaded.manifest.code.repository or "git",
            "digest": loaded.manifest.code.repo_sha,
        }
    )
    return out


def run_gate(
    *,
    rules: list[Rule],
    rules_source: str,
    rules_sha256: str | None,
    stage: str | None,
    run_dir: Path,
    baseline_dir: Path | None,
    canary: dict[str, Any] | None,
    policy: Policy,
    loaded: LoadedManifest | None,
) -> GateResult:
    cand, base = load_runs(run_dir, baseline_dir)
    if loaded is not None and cand.run.get("manifest_digest") != loaded.digest:
        raise BadInput(
            f"{run_dir} was replayed from a different manifest than {loaded.display}",
            hint=f"run manifest_digest {cand.run.get('manifest_digest')} ≠ manifest {loaded.digest}; replay the manifest again",
        )
    if base is not None and base.run.get("suite_digest") != cand.run.get("suite_digest"):
        raise BadInput(
            "the baseline and candidate runs used different suites, so they cannot be compared",
            hint=f"candidate suite {cand.run.get('suite_digest')}, baseline {base.run.get('suite_digest')}; replay the baseline on the candidate's suite",
        )
    resolver = GateResolver(cand, base, canary, policy)
    outcomes = evaluate_rules(rules, resolver)
    verdict, reason = verdict_of(outcomes)
    failing = sorted(cand.failing, key=lambda e: e["case_id"])[:MAX_EXAMPLES_IN_GATE]
    doc: dict[str, Any] = {
        "schema_version": 1,
        "release": cand.run["release"],
        "baseline_release": base.run["release"] if base else None,
        "stage": stage,
        "verdict": verdict,
        "verdict_reason": reason,
        "manifest_digest": cand.run["manifest_digest"],
        "baseline_manifest_digest": base.run["manifest_digest"] if base else None,
        "suite_digest": cand.run["suite_digest"],
        "policy": {
            "source": rules_source,
            "sha256": rules_sha256,
            "confidence_level": policy.confidence_level,
            "correction": policy.correction,
            "min_cases_per_slice": policy.min_cases_per_slice,
        },
        "rules": [o.to_dict() for o in outcomes],
        "slices": resolver.slice_table(),
        "aggregate": resolver.aggregate(),
        "unmatched_cases": resolver.unmatched(),
        "failing_examples": failing,
        "failing_total": cand.failing_total,
        "provenance": {
            "candidate_run": _run_facts(cand.run, run_dir),
            "baseline_run": _run_facts(base.run, baseline_dir) if base and baseline_dir else None,
            "pins": pins(loaded) if loaded else [],
            "canary": canary.get("source") if canary else None,
        },
        "run_url": run_url(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return GateResult.model_validate(json.loads(json.dumps(doc, allow_nan=True, default=str)))
