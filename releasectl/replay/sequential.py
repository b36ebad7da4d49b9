"""`replay --sequential POLICY`: replay in a pre-committed random order, in rounds, and stop when
the anytime-valid gate has decided (docs/sequential.md).

The order is a keyed hash of each case id (`gate.sequential.order_key`), seeded by the run's seed,
so it is fixed before any output exists and a gate can rebuild it from the results alone. After
every round (`round_size` cases, at a batch boundary) the cases so far are paired with the baseline
run by case id and the policy is evaluated with `gate.sequential.decide`; the replay stops at the
first round where it is decided, or at the end of the suite. The same seed gives the same order
and, with a deterministic engine, the same stopping round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasectl import safeio
from releasectl.errors import BadInput
from releasectl.gate.rules import Rule, needs_baseline
from releasectl.gate.runs import RunData
from releasectl.gate.sequential import (
    ORDER,
    RoundDecision,
    SequentialPolicy,
    SequentialResolver,
    decide,
    in_order,
    open_slices,
    order_key,
    run_from_rows,
)
from releasectl.manifest.loader import LoadedManifest
from releasectl.suite import Case

DEFAULT_ROUND = 32
ROUNDS_STATE = ".sequential-rounds.json"  # every round so far, for --resume (beside writer.STATE)


@dataclass
class SequentialPlan:
    """What the replay was asked to do (the command's options, checked)."""

    rules: list[Rule]
    policy_display: str
    policy_sha256: str
    order_seed: int
    round_size: int
    baseline: RunData | None
    baseline_dir: Path | None
    confidence_level: float = 0.95
    correction: str = "holm"
    no_regressions_margin: float = 0.0
    skip_decided_slices: bool = False


@dataclass
class SequentialSchedule:
    """The runner's CaseSchedule for a sequential replay (releasectl/replay/runner.py)."""

    plan: SequentialPlan
    loaded: LoadedManifest
    on_round: Callable[[dict[str, Any], RoundDecision], None] | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    used: int = 0
    last: RoundDecision | None = None
    uniform: int | None = None  # --skip-decided-slices: the uniform prefix, once cases are skipped
    open: set[str] | None = None  # the slices still replayed (None: all)
    _base: RunData | None = None
    _state_file: Path | None = None
    _ordered: list[Case] = field(default_factory=list)

    def restore(self, run_dir: Path, rows: int) -> None:
        """Called once the run directory is started: take back the rounds a resumed run already
        looked at (those within the `rows` rows it kept), or forget them for a fresh run. The
        writer has checked that the directory holds this run (same policy, seed, round size,
        baseline and margin: `state`)."""
        from releasectl.contracts.run import SequentialRound

        self._state_file = run_dir / ROUNDS_STATE
        kept: list[dict[str, Any]] = []
        if rows and safeio.present(self._state_file, what="sequential rounds"):
            from releasectl.safeio import read_json

            try:
                saved = read_json(self._state_file, what="sequential resume state")
                kept = [
                    SequentialRound.model_validate(r).model_dump(mode="json", exclude_unset=True)
                    for r in saved
                ]
            except (BadInput, ValueError, TypeError):
                raise BadInput(
                    f"{self._state_file}: unreadable sequential resume state",
                    hint="start over without --resume, or use another --out",
                ) from None
            kept = [r for r in kept if r["cases"] <= rows]
        self.rounds = kept
        self.used = kept[-1]["cases"] if kept else 0
        if kept and self.plan.skip_decided_slices:
            # the last undecided round's focus (the round that decided records none)
            focus: dict[str, Any] = next((r for r in reversed(kept) if "open_slices" in r), {})
            self.uniform = focus.get("uniform_cases")
            opened = focus.get("open_slices")
            self.open = None if opened is None else set(opened)
        self._save()

    def _save(self) -> None:
        if self._state_file is not None:
            import json

            from releasectl.fsutil import atomic_write_text

            atomic_write_text(self._state_file, json.dumps(self.rounds))

    def order(self, cases: list[Case]) -> list[Case]:
        self.total = len(cases)
        if self.plan.baseline is not None:
            self._base = in_order(self.plan.baseline, self.plan.order_seed)
        self._ordered = sorted(cases, key=lambda c: order_key(self.plan.order_seed, c.id))
        return self._ordered

    def skip(self, case: Case) -> bool:
        """--skip-decided-slices: a case of a slice no undecided rule reads is not replayed."""
        return self.open is not None and case.slice not in self.open

    def _last_reachable(self, rows: list[dict[str, Any]]) -> int:
        """How many rows the replay ends with if no slice opens or closes again."""
        if self.open is None:
            return self.total
        done = {r["case_id"] for r in rows}
        return len(rows) + sum(1 for c in self._ordered if c.id not in done and c.slice in self.open)

    def state(self) -> dict[str, Any]:
        p = self.plan
        return {
            "policy_sha256": p.policy_sha256,
            "order_seed": p.order_seed,
            "round_size": p.round_size,
            "baseline_run": str(p.baseline_dir) if p.baseline_dir else None,
            "no_regressions_margin": p.no_regressions_margin,
            **({"skip_decided_slices": True} if p.skip_decided_slices else {}),
        }

    def policy(self) -> SequentialPolicy:
        m = self.loaded.manifest
        return SequentialPolicy(
            confidence_level=self.plan.confidence_level,
            correction=self.plan.correction,
            no_regressions_margin=self.plan.no_regressions_margin,
            max_tokens=m.sampling.max_tokens,
            cases_total=self.total,
            uniform_cases=self.uniform,
        )

    def after_batch(self, rows: list[dict[str, Any]], generation_seconds: float) -> bool:
        n = len(rows)
        if self.rounds and self.rounds[-1]["cases"] == n and self.rounds[-1]["decided"]:
            return n < self.total  # a resumed run that had decided at its last look: stop there
        # the next multiple of the round size after the last round (a resumed run picks up there)
        boundary = (self.used // self.plan.round_size + 1) * self.plan.round_size
        if n < boundary and n < self._last_reachable(rows):
            return False
        m = self.loaded.manifest
        facts = {
            "release": m.release,
            # as run.json will record them, so the gate's cost figure is the one decided on here
            "generation_seconds": round(generation_seconds, 3),
            "gpus": max(1, m.runtime.tensor_parallel_size),
            "gpu_hourly_usd": m.infrastructure.gpu_hourly_usd,
        }
        cand = in_order(run_from_rows(rows, facts, Path(".")), self.plan.order_seed)
        resolver = SequentialResolver(cand, self._base, None, self.policy())
        decision = decide(self.plan.rules, resolver)
        record: dict[str, Any] = {
            "round": len(self.rounds) + 1,
            "cases": n,
            "verdict": decision.verdict,
            "decided": decision.decided,
            "states": [d.state for d in decision.rules],
        }
        if self.plan.skip_decided_slices and not decision.decided:
            self._focus(decision, resolver, n)
            record["uniform_cases"] = self.uniform
            record["open_slices"] = None if self.open is None else sorted(self.open)
        self.rounds.append(record)
        self.used, self.last = n, decision
        self._save()  # atomically, after the round's rows are durable: a kill loses no look
        if self.on_round is not None:
            self.on_round(record, decision)
        return decision.decided and n < self.total

    def _focus(self, decision: RoundDecision, resolver: SequentialResolver, n: int) -> None:
        """After a round: once no rule of the whole suite is undecided, the cases so far are the
        uniform prefix those rules are read on from now on, and only the slices that an undecided
        rule reads are replayed next (`gate.sequential.open_slices`)."""
        opened = open_slices(self.plan.rules, decision, resolver)
        if self.uniform is None and opened is not None:
            self.uniform = n
        if self.uniform is not None:
            self.open = opened

    def record(self) -> dict[str, Any]:
        p = self.plan
        base_release = p.baseline.run.get("release") if p.baseline is not None else None
        return {
            "sequential": {
                "policy": p.policy_display,
                "policy_sha256": p.policy_sha256,
                "rules": [r.text for r in p.rules],
                "order": ORDER,
                "order_seed": p.order_seed,
                "round_size": p.round_size,
                "baseline_run": str(p.baseline_dir) if p.baseline_dir else None,
                "baseline_release": base_release,
                **(
                    {
                        "baseline_output_digest": p.baseline.run.get("output_digest"),
                        "baseline_manifest_digest": p.baseline.run.get("manifest_digest"),
                    }
                    if p.baseline is not None
                    else {}
                ),
                "confidence_level": p.confidence_level,
                "no_regressions_margin": p.no_regressions_margin,
                "max_tokens": self.loaded.manifest.sampling.max_tokens,
                "cases_used": self.used,
                "cases_total": self.total,
                "stopped_early": self.used < self.total,
                "rounds": self.rounds,
                **(
                    {"skip_decided_slices": True, "uniform_cases": self.uniform}
                    if p.skip_decided_slices
                    else {}
                ),
            }
        }


def check_plan(plan: SequentialPlan, loaded: LoadedManifest) -> None:
    """Refuse, before the model loads, what a sequential replay cannot do."""
    from releasectl.gate.evaluate import PlannedRun, check_policy
    from releasectl.replay.runner import check_pins

    m = loaded.manifest
    if m.sampling.n > 1:
        raise BadInput(
            f"{loaded.display}: replay --sequential with sampling.n = {m.sampling.n} is not supported",
            hint="the anytime-valid gate treats one sample per case; replay the whole suite for sampled releases",
        )
    suite = check_pins(loaded).suite
    verifiers = {v for s in suite.slices.values() for v in s.verifiers}
    # the gate's own policy checks, on the suite, the planned candidate and the baseline: a rule
    # the gate would refuse is refused now, not after the GPU replay
    check_policy(
        plan.rules,
        plan.policy_display,
        slices=set(suite.slices),
        verifiers=verifiers,
        candidate=PlannedRun(Path(f"the planned replay of {loaded.display}"), m.sampling.n),
        baseline=plan.baseline,
        what="the suite and the runs",
    )
    if plan.baseline is None:
        missing = needs_baseline(plan.rules)
        if missing:
            raise BadInput(
                f"{plan.policy_display} compares with a baseline ({missing[0].text!r}, line {missing[0].line}),"
                " and no --baseline run was given",
                hint="pass --baseline runs/<release in the target channel>",
            )
        return
    base_run, where = plan.baseline.run, f"{plan.baseline_dir}/run.json"
    if base_run.get("sequential") is not None:
        raise BadInput(
            f"the baseline run {where} is itself a sequential run (it stopped after"
            f" {base_run['sequential'].get('cases_used')} cases): a baseline must hold the whole suite",
            hint="replay the baseline release in full (`releasectl replay releases/<baseline>.yaml`)",
        )
    partial = next((k for k in ("limit", "shard") if base_run.get(k) is not None), None)
    if partial is not None:
        raise BadInput(
            f"the baseline run {where} holds part of the suite ({partial} {base_run[partial]}):"
            " a sequential replay pairs every round with the whole suite",
            hint="replay the baseline in full, or merge its shards first",
        )
    if base_run.get("release") == m.release:
        raise BadInput(
            f"the baseline run {where} is of {m.release}, the candidate's own release",
            hint="pass --baseline runs/<the release in the target channel>",
        )
    if plan.baseline.run.get("suite_digest") != suite.digest:
        raise BadInput(
            f"the baseline run {plan.baseline_dir} replayed a different suite"
            f" (suite_digest {plan.baseline.run.get('suite_digest')}, {loaded.display} pins {suite.digest})",
            hint="replay the baseline on the candidate's suite",
        )
    if plan.baseline.sampled:
        raise BadInput(
            f"the baseline run {plan.baseline_dir} has several samples per case;"
            " replay --sequential pairs one sample per case",
        )
