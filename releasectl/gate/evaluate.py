"""Evaluate a policy on a candidate run against a baseline run and build gate.json."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.ci import run_url
from releasectl.contracts.gate import GateRecord
from releasectl.errors import BadInput
from releasectl.gate.metrics import GateResolver, Policy
from releasectl.gate.rules import Rule, evaluate_rules, unknown_names, verdict_of
from releasectl.gate.runs import RunData, load_runs
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
        "allow_engine_drift",
        "runtime",
        "drift",
        "limit",
        "shard",
        "finished_at",
    )
    from releasectl.replay.cache import read_reuse

    facts = {"run_dir": str(path), **{k: run.get(k) for k in keep if k in run}}
    reuse = read_reuse(path)  # a baseline restored from the replay cache instead of replayed
    if reuse is not None:
        facts["reused_from"] = reuse["reused_from"]
    return facts


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


def runtime_mismatch(cand: RunData, base: RunData) -> list[dict[str, Any]]:
    """The runtime facts that differ between two runs: engine, engine version, device, and the
    `runtime` block's versions where both runs recorded one (issue 10 §3)."""
    from releasectl.contracts.run import RunRecord

    a = RunRecord.model_validate(cand.run).runtime_identity()
    b = RunRecord.model_validate(base.run).runtime_identity()
    return [
        {"field": k, "candidate": a[k], "baseline": b[k]}
        for k in a
        if k in b
        and a[k] != b[k]
        and (not k.startswith("runtime.") or (a[k] is not None and b[k] is not None))
    ]


def _check_comparable(
    cand: RunData, base: RunData, run_dir: Path, baseline_dir: Path, allow_mismatched_runtime: bool
) -> list[dict[str, Any]]:
    c_file, b_file = run_dir / "run.json", baseline_dir / "run.json"
    if base.run.get("suite_digest") != cand.run.get("suite_digest"):
        raise BadInput(
            f"the baseline and candidate runs used different suites, so they cannot be compared:"
            f" candidate {c_file} has suite_digest {cand.run.get('suite_digest')},"
            f" baseline {b_file} has suite_digest {base.run.get('suite_digest')}",
            hint="replay the baseline on the candidate's suite",
        )
    mismatch = runtime_mismatch(cand, base)
    if mismatch and not allow_mismatched_runtime:
        diffs = "; ".join(
            f"{m['field']}: candidate {m['candidate']!r}, baseline {m['baseline']!r}" for m in mismatch
        )
        raise BadInput(
            f"the candidate ({c_file}) and the baseline ({b_file}) were replayed on different runtimes, so their outputs are not comparable: {diffs}",
            hint="replay both on the same engine, engine version and device, or pass --allow-mismatched-runtime (recorded in gate.json and shown in the report)",
        )
    return mismatch


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
    allow_mismatched_runtime: bool = False,
) -> GateRecord:
    cand, base = load_runs(run_dir, baseline_dir)
    if loaded is not None and cand.run.get("manifest_digest") != loaded.digest:
        raise BadInput(
            f"{run_dir} was replayed from a different manifest than {loaded.display}",
            hint=f"run manifest_digest {cand.run.get('manifest_digest')} ≠ manifest {loaded.digest}; replay the manifest again",
        )
    mismatch: list[dict[str, Any]] = []
    if base is not None and baseline_dir is not None:
        mismatch = _check_comparable(cand, base, run_dir, baseline_dir, allow_mismatched_runtime)
    verifiers = set(cand.verifier_pass) | set(base.verifier_pass if base else ())
    slices = set(cand.slices) | set(base.slices if base else ())
    problems = unknown_names(rules, slices=slices, verifiers=verifiers)
    if problems:
        raise BadInput(
            f"{rules_source}: {len(problems)} rule(s) name a metric, slice or verifier the runs do not have",
            problems,
            hint="a rule that cannot be evaluated would silently weaken the policy; fix the name",
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
            "runtime_mismatch": mismatch or None,
        },
        "run_url": run_url(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return GateRecord.model_validate(json.loads(json.dumps(_finite(doc), default=str)))


def _finite(value: Any) -> Any:
    """NaN and infinities (e.g. a cost with no tokens) as null: gate.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
