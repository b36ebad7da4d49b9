"""benchmarks/policy_errors.py measures the gate itself: its vectorised copies of the rules give the
same outcome, rule by rule, as `run_gate` (fixed n, with and without the margin) and as
`gate.sequential.decide` after every round, on simulated runs written as real run directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import policy_errors as bench  # noqa: E402

from releasectl.gate.evaluate import run_gate  # noqa: E402
from releasectl.gate.metrics import Policy  # noqa: E402
from releasectl.gate.rules import parse_rules_file  # noqa: E402
from releasectl.gate.sequential import (  # noqa: E402
    SequentialPolicy,
    SequentialResolver,
    decide,
    in_order,
    open_slices,
    order_key,
    run_from_rows,
)

POLICY = ROOT / "checklists" / "policies" / "dev_to_staging.rules"
SEED = 1234
VERIFIERS = {  # slice -> verifier instance -> (kind, which simulated outcome it reads)
    "headache_redflags": {"urgent_referral": ("quality", "urgent"), "no_diagnosis": ("rule", "no_violation")},
    "math_basic": {"answer_tag": ("format", "format"), "math_correct": ("correctness", "math")},
    "debug_search_api": {
        "unit_tests": ("correctness", "success"),
        "tool_call_schema": ("tool", "schema"),
        "api_version_match": ("correctness", "api"),
    },
}


def rows_of(sim: bench.Sim, i: int, side: str) -> list[dict]:
    """Simulated release i as results rows, with case ids whose pre-committed order (seed 1234) is
    the simulation's arrival order."""
    ids = sorted((f"c{k:05d}" for k in range(sim.total)), key=lambda c: order_key(SEED, c))
    rows: list[dict] = [{} for _ in range(sim.total)]
    for s, ss in sim.slices.items():
        out = ss.cand if side == "cand" else ss.base
        for j, pos in enumerate(ss.arrival[i]):
            success = bool(out["success"][i, j])
            facts = {k: bool(v[i, j]) for k, v in out.items()}
            facts["no_violation"] = not facts.get("violation", False)
            facts["urgent"] = success or not facts["no_violation"]
            verdicts = {
                name: {"passed": facts[what], "kind": kind, "detail": ""}
                for name, (kind, what) in VERIFIERS.get(s, {"check": ("correctness", "success")}).items()
            }
            assert success == all(v["passed"] for v in verdicts.values())
            steps = int(ss.steps[i, j]) if ss.steps is not None and side == "cand" else None
            rows[pos] = {
                "case_id": ids[pos], "slice": s, "passed": success, "verifiers": verdicts, "output": "",
                "prompt_tokens": 10, "completion_tokens": 100,
                "latency_ms": float(sim.latency[i, pos]) if side == "cand" else 400.0, "steps": steps,
            }  # fmt: skip
    return rows


RUN = {
    "manifest_digest": "sha256:x",
    "suite_digest": "md5:suite",
    "engine": {"name": "hf", "version": "5.19.0"},
    "device": "cpu",
    "generation_seconds": 1.0,
    "gpus": 1,
    "gpu_hourly_usd": 2.0,
}


def write_run(path: Path, rows: list[dict], release: str) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({**RUN, "release": release, "cases": len(rows)}))
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def sims():
    rng = np.random.default_rng(3)
    return [
        bench.simulate(rng, 2, bench.BASELINE, q, 5, 0.7)
        for q in (
            bench.candidate(0.1, focus=0.30),  # clearly better
            bench.candidate(0.01, protected=-0.3, focus=-0.2, violation=0.15),  # broken
            bench.candidate(0.0, focus=0.05, violation=0.08),  # near the thresholds
        )
    ]


@pytest.mark.parametrize("margin", [None, 0.02])
def test_the_benchmarks_fixed_gate_is_releasectl_gate(sims, tmp_path, margin):
    rules = parse_rules_file(POLICY)
    for k, sim in enumerate(sims):
        expected = bench.fixed_gate(sim, np.asarray([sim.total]), margin)
        for i in range(sim.sims):
            base = write_run(tmp_path / f"b{k}{i}", rows_of(sim, i, "base"), "v1.2")
            cand = write_run(tmp_path / f"c{k}{i}", rows_of(sim, i, "cand"), "v1.3")
            record = run_gate(
                rules=rules, rules_source="p", rules_sha256=None, stage=None, run_dir=cand,
                baseline_dir=base, canary=None, policy=Policy(), loaded=None, no_regressions_margin=margin,
            )  # fmt: skip
            got = [r.outcome for r in record.rules]
            assert got == [str(v[i, 0]) for v in expected.values()] + ["pass"], (k, i)  # + cost


def test_the_benchmarks_sequential_gate_is_gate_sequential_decide(sims):
    rules = parse_rules_file(POLICY)
    for k, sim in enumerate(sims):
        looks = np.asarray([100, 300, 600, sim.total])
        expected = bench.sequential_gate(sim, looks, 0.02)
        for i in range(sim.sims):
            cand_rows = rows_of(sim, i, "cand")
            base = in_order(run_from_rows(rows_of(sim, i, "base"), RUN, Path("b")), SEED)
            for j, n in enumerate(looks):
                cand = in_order(run_from_rows(cand_rows[:n], RUN, Path("c")), SEED)
                policy = SequentialPolicy(no_regressions_margin=0.02, max_tokens=256, cases_total=sim.total)
                decision = decide(rules, SequentialResolver(cand, base, None, policy))
                got = [d.state for d in decision.rules]
                assert got == [str(v[i, j]) for v in expected.values()] + ["pass"], (k, i, n)
            stopped = bench.stop(expected, looks)
            assert stopped.cases[i] == min(
                (n for j, n in enumerate(looks) if _decided(expected, i, j)), default=sim.total
            )


def _decided(states: dict[str, np.ndarray], i: int, j: int) -> bool:
    column = [str(v[i, j]) for v in states.values()]
    return "fail" in column or "undecided" not in column


@pytest.mark.parametrize(
    ("worse", "promoted"),
    [
        ({}, (0.5, 1.0)),  # the control: clearly better everywhere, promoted in most runs
        ({"schema": 0.99}, (0.0, bench.ALPHA / 2)),  # tool_call_correctness.schema exactly at its 0.99 floor
        ({"protected": -0.08}, (0.0, bench.ALPHA / 2)),  # protected slices exactly at −margin (+0.06 − 0.08)
    ],
)
def test_false_promotions_stay_under_half_alpha_when_the_replay_looks_after_every_81_cases(worse, promoted):
    """Optional stopping: a candidate clearly better on everything but one rule, which it fails by
    the smallest amount, is promoted in ≤ α/2 of 200 replays of the ×50 suite stopped at the first
    of 100 rounds that decides, while the clearly better one is promoted in most."""
    rng = np.random.default_rng(41)
    quality = bench.candidate(0.06, focus=0.30, **worse)
    sim = bench.simulate(rng, 200, bench.BASELINE, quality, 50, 0.7)
    looks = np.arange(81, sim.total + 1, 81)
    stopped = bench.stop(bench.sequential_gate(sim, looks, 0.02), looks)
    low, high = promoted
    assert low <= np.mean(stopped.verdict == "promote") <= high


def test_the_benchmarks_skipping_replay_is_gate_sequential_with_open_slices(sims):
    """`skipping_stop` (the benchmark's --skip-decided-slices) stops at the same number of cases
    with the same verdict as the real procedure: `decide` on the cases so far with the uniform
    prefix, then `open_slices` choosing which of the order's next cases are replayed (as
    `SequentialSchedule.after_batch` and `skip` do)."""
    rules = parse_rules_file(POLICY)
    size = 100
    skipped = 0
    for k, sim in enumerate(sims):
        expected = bench.skipping_stop(sim, size, 0.02)
        for i in range(sim.sims):
            order = rows_of(sim, i, "cand")  # in the pre-committed order
            base = in_order(run_from_rows(rows_of(sim, i, "base"), RUN, Path("b")), SEED)
            taken: list[dict] = []
            cursor, uniform, opened = 0, None, None
            while True:
                picked = 0
                while cursor < len(order) and picked < size:
                    if opened is None or order[cursor]["slice"] in opened:
                        taken.append(order[cursor])
                        picked += 1
                    cursor += 1
                cand = in_order(run_from_rows(taken, RUN, Path("c")), SEED)
                policy = SequentialPolicy(
                    no_regressions_margin=0.02, max_tokens=256, cases_total=sim.total, uniform_cases=uniform
                )
                resolver = SequentialResolver(cand, base, None, policy)
                decision = decide(rules, resolver)
                if decision.decided or picked == 0 or cursor >= len(order):
                    break
                now = open_slices(rules, decision, resolver)
                if uniform is None and now is not None:
                    uniform = len(taken)
                if uniform is not None:
                    opened = now
            assert len(taken) == expected.cases[i], (k, i, len(taken), expected.cases[i])
            assert decision.verdict == expected.verdict[i], (k, i)
            skipped += uniform is not None
    assert skipped >= 2  # the comparison does see replays that skip slices


@pytest.mark.parametrize(
    ("worse", "promoted"),
    [
        ({}, (0.5, 1.0)),
        ({"schema": 0.99}, (0.0, bench.ALPHA / 2)),
        ({"protected": -0.08}, (0.0, bench.ALPHA / 2)),
    ],
)
def test_false_promotions_stay_under_half_alpha_when_decided_slices_are_skipped(worse, promoted):
    """The same candidates with --skip-decided-slices (rounds of 405): skipping a slice's cases
    once its rules are decided keeps false promotions under α/2, and uses fewer cases."""
    rng = np.random.default_rng(43)
    sim = bench.simulate(rng, 200, bench.BASELINE, bench.candidate(0.06, focus=0.30, **worse), 50, 0.7)
    stopped = bench.skipping_stop(sim, 405, 0.02)
    low, high = promoted
    assert low <= np.mean(stopped.verdict == "promote") <= high
    looks = np.arange(405, sim.total + 1, 405)
    assert stopped.cases.mean() < bench.stop(bench.sequential_gate(sim, looks, 0.02), looks).cases.mean()
