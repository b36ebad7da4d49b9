"""Evaluate a policy on a candidate run against a baseline run and build gate.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.ci import run_url
from releasectl.contracts.gate import GateRecord, RuleResult
from releasectl.errors import BadInput
from releasectl.gate.metrics import GateResolver, Policy
from releasectl.gate.rules import (
    NoRegressions,
    Rule,
    evaluate_rules,
    needs_baseline,
    unknown_names,
    verdict_of,
)
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


@dataclass(frozen=True)
class PlannedRun:
    """What the policy checks read of a run: where it is and its samples per case (for a replay
    not yet made: the manifest's sampling.n)."""

    path: Path
    samples_per_case: int


def check_policy(
    rules: list[Rule],
    source: str,
    *,
    slices: set[str],
    verifiers: set[str],
    candidate: Any,
    baseline: Any,
    what: str,
) -> None:
    """The policy errors that need the runs, not just the rules (exit 2): an unknown metric, slice
    or verifier (nearest names), a field a metric does not have, a pass@k / pass^k whose k exceeds
    a run's samples per case (`GateResolver.check_rules`). One function for `gate` (on the runs)
    and `replay --sequential` (on the suite, the planned candidate and the baseline, before any
    case is replayed). `candidate` and `baseline` need only `path` and `samples_per_case`."""
    from types import SimpleNamespace

    problems = unknown_names(rules, slices=slices, verifiers=verifiers)
    if problems:
        raise BadInput(
            f"{source}: {len(problems)} rule(s) name a metric, slice or verifier {what} do not have",
            problems,
            hint="a rule that cannot be evaluated would silently weaken the policy; fix the name",
        )
    # check_rules reads only the runs' path and samples per case: a planned run will do
    problems = GateResolver.check_rules(SimpleNamespace(cand=candidate, base=baseline), rules)  # type: ignore[arg-type]
    if problems:
        raise BadInput(
            f"{source}: {len(problems)} rule(s) ask for more than {what} hold",
            problems,
            hint="a rule that cannot be evaluated would silently weaken the policy; fix the rule",
        )


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
    no_regressions_margin: float | None = None,
) -> GateRecord:
    """Evaluate `rules` on the candidate run (against the baseline) and build gate.json. A run that
    `replay --sequential` stopped early is evaluated with the anytime-valid statistics it stopped on
    (`gate.sequential`), never with fixed-n intervals and tests, which optional stopping invalidates.
    `no_regressions_margin` reads `no_regressions_on` as non-inferiority (`gate.noninferiority`)."""
    cand, base = load_runs(run_dir, baseline_dir)
    if loaded is not None and cand.run.get("manifest_digest") != loaded.digest:
        raise BadInput(
            f"{run_dir} was replayed from a different manifest than {loaded.display}",
            hint=f"run manifest_digest {cand.run.get('manifest_digest')} ≠ manifest {loaded.digest}; replay the manifest again",
        )
    mismatch: list[dict[str, Any]] = []
    if base is not None and baseline_dir is not None:
        mismatch = _check_comparable(cand, base, run_dir, baseline_dir, allow_mismatched_runtime)
    _check_complete(cand, base, run_dir, baseline_dir, loaded)
    if base is not None:
        _check_paired_labels(cand, base)
        _check_baseline_manifest(base, loaded.root if loaded is not None else _repo_of(base.path))
    verifiers = set(cand.verifier_pass) | set(base.verifier_pass if base else ())
    slices = set(cand.slices) | set(base.slices if base else ())
    check_policy(
        rules,
        rules_source,
        slices=slices,
        verifiers=verifiers,
        candidate=PlannedRun(run_dir, cand.samples_per_case),
        baseline=base,
        what="the runs",
    )
    resolver = GateResolver(cand, base, canary, policy)
    sequential = cand.run.get("sequential")
    extra: dict[str, Any] = {}
    if sequential is not None:
        outcomes, slice_rows, aggregate, extra = _sequential(
            rules, rules_sha256, cand, base, canary, policy, resolver, no_regressions_margin, loaded
        )
    else:
        outcomes = _fixed(rules, resolver, no_regressions_margin)
        slice_rows, aggregate = resolver.slice_table(), resolver.aggregate()
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
            **extra.get("policy", {}),
            **({"no_regressions_margin": no_regressions_margin} if no_regressions_margin is not None else {}),
        },
        "rules": [o.to_dict() for o in outcomes],
        "slices": slice_rows,
        "aggregate": aggregate,
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
        **({"sequential": extra["sequential"]} if "sequential" in extra else {}),
        "run_url": run_url(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return GateRecord.model_validate(json.loads(json.dumps(_finite(doc), default=str)))


def _fixed(rules: list[Rule], resolver: GateResolver, margin: float | None) -> list[RuleResult]:
    """The fixed-n gate: every rule as SPEC §6 says; `no_regressions_on` with a margin, if given."""
    if margin is None:
        return evaluate_rules(rules, resolver)
    from releasectl.gate.noninferiority import no_regressions_with_margin

    return [
        no_regressions_with_margin(r, resolver, margin).result
        if isinstance(r, NoRegressions)
        else evaluate_rules([r], resolver)[0]
        for r in rules
    ]


def _sequential(
    rules: list[Rule],
    rules_sha256: str | None,
    cand: RunData,
    base: RunData | None,
    canary: dict[str, Any] | None,
    policy: Policy,
    resolver: GateResolver,
    margin: float | None,
    loaded: LoadedManifest | None,
) -> tuple[list[RuleResult], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """A sequential run's rules and slice table by anytime-valid statistics, and what gate.json
    records about it: how far the replay went and whether these are the rules it stopped on."""
    from releasectl.contracts.run import SequentialRun
    from releasectl.gate.sequential import SequentialPolicy, SequentialResolver, decide, in_order

    seq = SequentialRun.model_validate(cand.run["sequential"])
    if cand.sampled or (base is not None and base.sampled):
        raise BadInput(
            f"{cand.path}: a sequential run is gated one sample per case, and a run here has several",
            hint="replay the whole suite for sampled releases",
        )
    if cand.n != seq.cases_used:
        raise BadInput(
            f"{cand.path}: run.json says the sequential replay used {seq.cases_used} cases,"
            f" results.jsonl has {cand.n}",
            hint="the run directory was changed after the replay; replay again",
        )
    _check_recorded_baseline(seq, base, cand.path, rules)
    manifest = _sequential_manifest(cand, loaded)
    order, slice_of = _suite_order(manifest, cand, seq)
    _check_prefix(cand, order, slice_of, seq)
    if base is not None:
        _check_labels(base, slice_of, "the suite of " + manifest.display)
    ordered_base = in_order(base, seq.order_seed) if base is not None else None
    chosen = _sequential_margin(rules, seq, margin, cand.path)
    s_policy = SequentialPolicy(
        confidence_level=policy.confidence_level,
        correction=policy.correction,
        no_regressions_margin=chosen,
        max_tokens=manifest.manifest.sampling.max_tokens,  # the manifest's, never run.json's
        cases_total=len(order),
        uniform_cases=seq.uniform_cases,
    )
    s_resolver = SequentialResolver(in_order(cand, seq.order_seed), ordered_base, canary, s_policy)
    decision = decide(rules, s_resolver)
    slices = s_resolver.slice_rows(resolver.slice_table())
    aggregate = s_resolver.slice_rows([resolver.aggregate()])[0]
    record = {
        "statistics": "anytime-valid",
        "policy": seq.policy,
        "policy_sha256": seq.policy_sha256,
        "same_policy": rules_sha256 == seq.policy_sha256,
        "order": seq.order,
        "order_seed": seq.order_seed,
        "round_size": seq.round_size,
        "rounds": len(seq.rounds),
        "cases_used": seq.cases_used,
        "cases_total": seq.cases_total,
        "cases_saved": seq.cases_total - seq.cases_used,
        "stopped_early": seq.stopped_early,
        **(
            {"skip_decided_slices": True, "uniform_cases": seq.uniform_cases}
            if seq.skip_decided_slices
            else {}
        ),
        "decided": decision.decided,
        "no_regressions_margin": chosen,
    }
    extra = {
        "sequential": record,
        "policy": {"statistics": "anytime-valid", "no_regressions_margin": chosen},
    }
    return [d.result for d in decision.rules], slices, aggregate, extra


def _repo_of(run_dir: Path) -> Path | None:
    """The releases repository a run directory lies in (the nearest folder up with releases/)."""
    here = Path(run_dir).resolve()
    return next((d for d in here.parents if (d / "releases").is_dir()), None)


def _partial_reason(run: dict[str, Any]) -> str | None:
    """Why a run may hold fewer cases than its suite, as run.json records it."""
    if run.get("sequential") is not None:
        return "sequential"
    if run.get("limit") is not None:
        return f"limit {run['limit']}"
    if run.get("shard") is not None:
        return f"shard {run['shard']}"
    if run.get("merged_from"):
        return "merged shards"
    return None


def _check_complete(
    cand: RunData,
    base: RunData | None,
    run_dir: Path,
    baseline_dir: Path | None,
    loaded: LoadedManifest | None,
) -> None:
    """A candidate that misses cases of its suite must say why in run.json (a `limit`, a `shard`,
    merged shards, or a `sequential` record): otherwise exit 2 naming run.json and the count. A
    run whose `sequential` record was deleted would be gated with fixed-n statistics on an
    early-stopped prefix, and the report would not say it stopped. The suite is the baseline's
    cases (same suite digest, checked before) or, without a baseline, the manifest's suite."""
    if base is not None and baseline_dir is not None and _partial_reason(base.run) is None:
        # the mirror: a baseline without the candidate's cases (rows deleted where it won)
        # would leave the candidate's losses unpaired
        extra = 0 if cand.case_list == base.case_list else len(set(cand.case_list) - set(base.case_list))
        if extra:
            raise BadInput(
                f"{baseline_dir / 'run.json'}: the baseline misses {extra} case(s) the candidate"
                f" {run_dir} has, and records no reason (no limit, shard or merged shards)",
                hint="gate against the baseline run directory replay wrote, unchanged",
            )
    if _partial_reason(cand.run) is not None:
        return
    if base is not None and baseline_dir is not None:
        # the usual case, same suite in the same order, without two sets of a million ids
        same = cand.case_list == base.case_list
        missing = 0 if same else len(set(base.case_list) - set(cand.case_list))
        against = f"the baseline {baseline_dir / 'run.json'} ({len(base.case_list)} cases)"
    elif loaded is not None and loaded.manifest.data.suite.path:
        from releasectl.suite import load_suite

        try:
            suite = load_suite(loaded.resolve(loaded.manifest.data.suite.path))
        except BadInput:
            return  # the suite is not here (e.g. not pulled): the baseline is the only reference
        if suite.digest != cand.run.get("suite_digest"):
            return  # another suite: the manifest check refuses it on its own
        missing = len({c.id for c in suite.cases} - set(cand.case_list))
        against = f"the suite of {loaded.display} ({len(suite.cases)} cases)"
    else:
        return
    if missing:
        raise BadInput(
            f"{run_dir / 'run.json'}: the run misses {missing} case(s) of its suite ({against})"
            " and records no reason (no limit, shard, merged shards or sequential record)",
            hint="gate the run directory replay wrote, unchanged; a sequential run keeps its `sequential` record",
        )


def _check_recorded_baseline(seq: Any, base: RunData | None, path: Path, rules: list[Rule]) -> None:
    """The baseline a sequential run stopped against is part of its decision: another baseline
    (release, results or manifest other than run.json's `sequential` record says) is exit 2, and
    so is a record that names none while the policy compares with one (deleting it must not make
    any baseline acceptable)."""
    if base is None:
        return
    if seq.baseline_release is None:
        reads = needs_baseline(rules)
        if reads:
            raise BadInput(
                f"{path / 'run.json'}: the sequential record names no baseline, and the policy compares"
                f" with one ({reads[0].text!r}, line {reads[0].line})",
                hint="a sequential run is gated against the baseline it stopped against: replay with --baseline",
            )
        return
    recorded = {
        "release": seq.baseline_release,
        "output_digest": seq.baseline_output_digest,
        "manifest_digest": seq.baseline_manifest_digest,
    }
    for key, want in recorded.items():
        got = base.run.get(key)
        if want is not None and got != want:
            raise BadInput(
                f"{path / 'run.json'}: the sequential replay stopped against a baseline with {key} {want},"
                f" and the --baseline-run {base.path / 'run.json'} has {key} {got}",
                hint=f"gate against the baseline the replay used ({seq.baseline_run or 'its --baseline'}), unchanged",
            )


def _check_baseline_manifest(base: RunData, root: Path | None) -> None:
    """A baseline run replayed from another manifest than releases/<its release>.yaml is now (when
    that file exists) is not the release it says: exit 2 naming both digests."""
    release = base.run.get("release")
    if root is None or not isinstance(release, str):
        return
    manifest = root / "releases" / f"{release}.yaml"
    from releasectl import safeio

    if not safeio.present(manifest, what="release manifest"):
        return
    from releasectl.manifest.loader import load_manifest

    digest = load_manifest(manifest).digest
    if base.run.get("manifest_digest") != digest:
        raise BadInput(
            f"the baseline run {base.path / 'run.json'} says release {release} with manifest_digest"
            f" {base.run.get('manifest_digest')}, and {manifest} has digest {digest}",
            hint=f"replay the baseline again: releasectl replay {manifest}",
        )


def _sequential_margin(rules: list[Rule], seq: Any, margin: float | None, path: Path) -> float:
    """The gate's own margin (`--no-regressions-margin`, else 0): never the one run.json records,
    which is provenance. The replay's stopping decision depended on the margin it stopped under, so
    where a `no_regressions_on` rule reads it a different margin here is exit 2 naming both."""
    chosen = 0.0 if margin is None else margin
    reads_margin = any(isinstance(r, NoRegressions) for r in rules) or any(
        text.lstrip().startswith("no_regressions_on") for text in seq.rules
    )
    if reads_margin and seq.no_regressions_margin != chosen:
        raise BadInput(
            f"{path / 'run.json'}: the sequential replay stopped under no_regressions_margin"
            f" {seq.no_regressions_margin:g}, and this gate's margin is {chosen:g}"
            + ("" if margin is not None else " (no --no-regressions-margin given)"),
            hint=f"gate with --no-regressions-margin {seq.no_regressions_margin:g} to check the decision"
            " the replay stopped on, or replay again under this margin; the margin is the gate's"
            " policy, never read from run.json",
        )
    return chosen


def _sequential_manifest(cand: RunData, loaded: LoadedManifest | None) -> LoadedManifest:
    """The manifest a sequential run was replayed from: MANIFEST (its digest checked against the
    run's already), else releases/<release>.yaml of the run's repository when its digest is the
    run's. Its suite fixes the order's cases and their slices, and its sampling the order seed and
    the tokens bound: none of them is taken from the run's own run.json."""
    if loaded is not None:
        return loaded
    from releasectl import safeio
    from releasectl.channels.state import release_name_ok
    from releasectl.manifest.loader import load_manifest
    from releasectl.repo import find_repo_root

    release, digest = cand.run.get("release"), cand.run.get("manifest_digest")
    root = _repo_of(cand.path) or find_repo_root()
    hint = f"give the manifest: releasectl gate releases/{release}.yaml --run {cand.path} ..."
    if root is not None and release_name_ok(release):
        path = root / "releases" / f"{release}.yaml"
        if safeio.present(path, what="release manifest"):
            found = load_manifest(path)
            if found.digest == digest:
                return found
            raise BadInput(
                f"{cand.path / 'run.json'}: the sequential run was replayed from manifest {digest},"
                f" and {path} is now {found.digest}",
                hint="gate with the manifest it was replayed from, or replay again",
            )
    raise BadInput(
        f"{cand.path}: a sequential run is gated with the manifest it was replayed from (its suite"
        " fixes the order and the slices, its sampling the order seed), and none was found",
        hint=hint,
    )


def _suite_order(manifest: LoadedManifest, cand: RunData, seq: Any) -> tuple[list[str], dict[str, str]]:
    """(the suite's case ids in the pre-committed order, each case's slice), from the manifest's
    suite, after checking what run.json says of them: the suite's size, the order seed (the
    manifest's `sampling.seed`: a seed picked at replay time could be shopped for a lucky order)
    and the tokens bound. A disagreement is exit 2 naming the field."""
    from releasectl.gate.sequential import replay_order
    from releasectl.suite import load_suite, select_cases

    where = f"{cand.path / 'run.json'}"
    suite_path = manifest.manifest.data.suite.path
    if not suite_path:
        raise BadInput(
            f"{manifest.display} pins no local suite, and a sequential run is gated against its suite",
            hint="pin the suite with a path in the releases repository",
        )
    suite = load_suite(manifest.resolve(suite_path))
    pinned = manifest.manifest.data.suite.md5
    if pinned and suite.digest != pinned:
        raise BadInput(
            f"the suite on disk ({suite_path}, {suite.digest}) is not the one {manifest.display} pins ({pinned})",
            hint="restore the pinned suite: a sequential run is gated against the suite its manifest pins",
        )
    if suite.digest != cand.run.get("suite_digest"):
        raise BadInput(
            f"{where}: replayed suite {cand.run.get('suite_digest')}, and {manifest.display} pins {suite.digest}",
            hint="gate with the manifest the run was replayed from",
        )
    sampling = manifest.manifest.sampling
    limit = cand.run.get("limit")
    # a --limit run is ordered over the limited suite (the first `limit` cases of each slice)
    replayed = select_cases(suite, limit if type(limit) is int else None)
    facts = (
        (
            "cases_total",
            seq.cases_total,
            len(replayed),
            "the suite's case count" + (f" at --limit {limit}" if limit else ""),
        ),
        ("order_seed", seq.order_seed, sampling.seed, f"{manifest.display}'s sampling.seed"),
        ("max_tokens", seq.max_tokens, sampling.max_tokens, f"{manifest.display}'s sampling.max_tokens"),
    )
    for name, found, want, what in facts:
        if found != want:
            raise BadInput(
                f"{where}: sequential.{name} is {found}, and {what} is {want}",
                hint="the order is pre-committed by the manifest: gate the run `releasectl replay"
                " --sequential` wrote, unchanged, without --order-seed",
            )
    slice_of = {c.id: c.slice for c in suite.cases}
    _check_labels(cand, slice_of, f"the suite of {manifest.display}")
    return replay_order([c.id for c in replayed], seq.order_seed), slice_of


def _check_labels(run: RunData, slice_of: dict[str, str], against: str, *, absent_ok: bool = False) -> None:
    """Every case of `run` is in the reference's slice for it (and, unless `absent_ok`, is a case
    of the reference): a row relabelled into another slice would move its outcome into that
    slice's statistics. Exit 2 naming the first such case."""
    for i, (cid, k) in enumerate(zip(run.case_ids, run.slice_idx.tolist(), strict=True)):
        want = slice_of.get(cid)
        if want != run.slices[k] and not (want is None and absent_ok):
            raise BadInput(
                f"{run.path / 'results.jsonl'}: case {cid!r} (row {i + 1}) is in slice {run.slices[k]!r}, and "
                + (
                    f"{against} has it in slice {want!r}"
                    if want is not None
                    else f"{against} has no such case"
                ),
                hint="gate the rows the replay wrote, unchanged",
            )


def _check_paired_labels(cand: RunData, base: RunData) -> None:
    """A case is in the same slice in both runs: the paired deltas and `no_regressions_on` read
    a slice's pairs (cases only one run has are reported as unmatched). In the same order, one
    vectorized comparison clears the usual case."""
    import numpy as np

    if cand.case_ids == base.case_ids:
        where = {name: i for i, name in enumerate(base.slices)}
        trans = np.asarray([where.get(name, -1) for name in cand.slices], dtype=np.int64)
        if not np.any(trans[cand.slice_idx] != base.slice_idx):
            return
    slice_of = dict(zip(base.case_ids, (base.slices[k] for k in base.slice_idx.tolist()), strict=True))
    _check_labels(cand, slice_of, f"the baseline {base.path / 'results.jsonl'}", absent_ok=True)


def _check_prefix(cand: RunData, order: list[str], slice_of: dict[str, str], seq: Any) -> None:
    """The candidate's cases must be the first `cases_used` of the pre-committed order over the
    manifest's suite (a hand-picked subset would bias the gate); with --skip-decided-slices, the
    uniform prefix and each slice's own prefix (`_check_slice_prefixes`)."""
    if seq.uniform_cases is not None:
        _check_slice_prefixes(cand, order, slice_of, seq)
        return
    expected = set(order[: seq.cases_used])
    got = set(cand.case_ids)
    if got != expected:
        stray = sorted(got - expected)[:3]
        raise BadInput(
            f"{cand.path}: the sequential run's cases are not the first {seq.cases_used} of its order"
            f" ({seq.order}, seed {seq.order_seed}) over the suite"
            + (f"; e.g. {', '.join(stray)}" if stray else ""),
            hint="gate a run that `releasectl replay --sequential` wrote, unchanged",
        )


def _check_slice_prefixes(cand: RunData, order: list[str], slice_of: dict[str, str], seq: Any) -> None:
    """--skip-decided-slices: the first `uniform_cases` cases of the order are all there (the
    suite-wide rules are read on them), and each slice's cases are the first of that slice's own
    order (a slice's statistics hold at any count of its cases, however it was chosen, but not
    on a hand-picked subset)."""
    got = set(cand.case_ids)
    missing = [c for c in order[: seq.uniform_cases] if c not in got]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the first {seq.uniform_cases} cases of the order are missing")
    orders: dict[str, list[str]] = {}  # each slice's cases in the order, in one pass
    for c in order:
        orders.setdefault(slice_of[c], []).append(c)
    for name, within in orders.items():
        have = [c for c in within if c in got]
        if set(within[: len(have)]) != set(have):
            problems.append(f"the cases of slice {name!r} are not the first {len(have)} of its order")
    if problems:
        raise BadInput(
            f"{cand.path}: the sequential run's cases are not what --skip-decided-slices replays"
            f" ({seq.order}, seed {seq.order_seed}): " + "; ".join(problems[:3]),
            hint="gate a run that `releasectl replay --sequential` wrote, unchanged",
        )


def _finite(value: Any) -> Any:
    """NaN and infinities (e.g. a cost with no tokens) as null: gate.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
