"""The promotion policy evaluated with anytime-valid statistics, for a replay that may stop early.

`replay --sequential POLICY` replays the suite in a pre-committed random order and, after every
round, asks `decide` whether the policy is decided on the cases so far. A fixed-n interval or test
looked at after every round would inflate its error rates (benchmarks/policy_errors.py measures
by how much), so here every number a rule compares is anytime-valid (docs/sequential.md):

- a rate (success@1, pass_rate, rule_violation_rate, …) has a confidence sequence (CS, the beta
  mixture) instead of a Wilson interval; a delta on matched cases has the paired-difference CS, and its `p_value` is
  the always-valid p-value of the mixture sign test on the discordant pairs (Holm/BH across slices);
- latency percentiles and the median steps to solve have quantile CSs; tokens per request a CS
  scaled by `sampling.max_tokens`; cost per 1k tokens is a measurement of throughput, read as is.

A rule is a claim about the true values, decided when the CSs' box lies wholly on one side of it:
**pass** when the comparison holds for every value in the box, **fail** when it holds for none,
**undecided** otherwise (`inconclusive` in gate.json). A pass and a fail are one-sided claims, each
wrong with probability ≤ α/2 at whatever round the replay stops: a rate against a constant reads
one-sided sequences tuned to that constant, a paired delta the betting CS on the paired
differences, and any other expression every metric's CS at α/(2k) for its k metrics. A wrong
promotion needs one rule to pass wrongly, so no split across rules is needed. A
`.point` rule therefore needs evidence here (the fixed-n gate compares the point estimate), and
`policy.min_cases_per_slice` is not applied: a CS is valid from the first case.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from releasectl.contracts.gate import COMPARATORS, RuleResult, Verdict, verdict_of
from releasectl.gate.metrics import PERCENTILES, RATE_METRICS, _rate_vector, cost_per_1k
from releasectl.gate.rules import (
    BinOp,
    Comparison,
    Expr,
    MetricRef,
    NoRegressions,
    Number,
    Observation,
    Rule,
    metric_refs,
)
from releasectl.gate.runs import RunData
from releasectl.stats.sequential import (
    bernoulli_cs,
    bernoulli_side_bounds,
    mean_cs,
    paired_side_bounds,
    paired_sign_test,
    quantile_cs,
)

ORDER = "sha256(seed:case_id)"  # how the pre-committed order is derived; recorded in run.json
RuleState = Literal["pass", "fail", "undecided"]


# --- the pre-committed order -----------------------------------------------------------------


def order_key(seed: int, case_id: str) -> str:
    """A case's place in the replay order: a keyed hash, so any subset's order is known without
    the suite, and the order cannot depend on outcomes."""
    return hashlib.sha256(f"{seed}:{case_id}".encode()).hexdigest()


def replay_order(case_ids: Iterable[str], seed: int) -> list[str]:
    return sorted(case_ids, key=lambda cid: order_key(seed, cid))


def in_order(run: RunData, seed: int) -> RunData:
    """The run's cases in the pre-committed order (the order a sequential replay used)."""
    ids = replay_order(run.case_ids, seed)
    position = {cid: i for i, cid in enumerate(run.case_ids)}
    return _take(run, np.asarray([position[c] for c in ids], dtype=np.int64))


def head(run: RunData, k: int) -> RunData:
    """The run's first `k` cases (of a run `in_order`: the uniform prefix of the order)."""
    return _take(run, np.arange(min(k, run.n), dtype=np.int64))


def _take(run: RunData, idx: np.ndarray) -> RunData:
    ids = [run.case_ids[int(i)] for i in idx]
    slice_names = [run.slices[int(i)] for i in run.slice_idx[idx]] if run.n else []
    names: dict[str, int] = {}
    new_idx = np.asarray([names.setdefault(s, len(names)) for s in slice_names], dtype=np.int32)
    return replace(
        run,
        case_ids=ids,
        slices=list(names),
        slice_idx=new_idx,
        passed=run.passed[idx],
        rule_ok=run.rule_ok[idx],
        format_ok=run.format_ok[idx],
        latency_ms=run.latency_ms[idx],
        completion_tokens=run.completion_tokens[idx],
        prompt_tokens=run.prompt_tokens[idx],
        steps=run.steps[idx],
        verifier_pass={k: v[idx] for k, v in run.verifier_pass.items()},
    )


def run_from_rows(rows: Sequence[dict[str, Any]], run: dict[str, Any], path: Path) -> RunData:
    """Columns of results rows already checked by the writer (a replay's rounds, in memory)."""
    from releasectl.gate.runs import _extract, _verifier_table

    cols = [_extract(r) for r in rows]
    if any(c is None for c in cols):
        raise ValueError("a results row the contract refuses reached the sequential gate")
    slice_names: dict[str, int] = {}
    shapes: dict[tuple[str, ...], tuple[list[int], list[tuple[bool, ...]]]] = {}
    for i, c in enumerate(cols):
        assert c is not None
        shape = shapes.setdefault(c[5], ([], []))
        shape[0].append(i)
        shape[1].append(c[6])
    ok = [c for c in cols if c is not None]
    return RunData(
        path=path,
        run=run,
        case_ids=[c[0] for c in ok],
        slices=[*dict.fromkeys(c[1] for c in ok)],
        slice_idx=np.asarray([slice_names.setdefault(c[1], len(slice_names)) for c in ok], dtype=np.int32),
        passed=np.asarray([c[2] for c in ok], dtype=bool),
        rule_ok=np.asarray([c[3] for c in ok], dtype=bool),
        format_ok=np.asarray([c[4] for c in ok], dtype=bool),
        latency_ms=np.asarray([c[7] for c in ok], dtype=np.float64),
        completion_tokens=np.asarray([c[8] for c in ok], dtype=np.int64),
        prompt_tokens=np.asarray([c[9] for c in ok], dtype=np.int64),
        steps=np.asarray([c[10] for c in ok], dtype=np.float64),
        verifier_pass=_verifier_table(
            len(ok),
            (
                (names, np.asarray(idx, dtype=np.int64), np.asarray(passes, dtype=np.int8))
                for names, (idx, passes) in shapes.items()
            ),
        ),
    )


# --- the resolver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequentialPolicy:
    """What the anytime-valid gate needs beyond the rules."""

    confidence_level: float = 0.95
    correction: str = "holm"
    no_regressions_margin: float = 0.0
    max_tokens: int | None = None  # the bound that makes tokens per request a bounded mean
    cases_total: int | None = None  # the full suite: at it, facts and p-values are final
    # --skip-decided-slices: the rules of the whole suite are read on its first `uniform_cases`
    # cases in the order (a uniform sample), decided there; slices are read on all their cases
    uniform_cases: int | None = None

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence_level


@dataclass(frozen=True)
class Box:
    """What a rule knows about one number: an interval holding the truth (anytime-valid), the
    estimate, and how it may be decided (`cs` by the interval; `fact` and `p_value` are exact
    values that change with more cases; `measured` and `external` are read as they are)."""

    lower: float
    upper: float
    point: float
    kind: Literal["cs", "fact", "p_value", "measured", "external", "constant"]
    n: int | None = None
    reason: str | None = None  # why there is no value (no cases yet, no canary data, …)


def _box(lower: float, upper: float, point: float, n: int | None, kind: Any = "cs") -> Box:
    return Box(float(lower), float(upper), float(point), kind, n)


def _none(reason: str, kind: Any = "cs") -> Box:
    return Box(-math.inf, math.inf, math.nan, kind, None, reason)


class SequentialResolver:
    """Resolves metric references to anytime-valid boxes on the cases replayed so far.

    `candidate` and `baseline` must be in the pre-committed order (`in_order`): a CS's bets are
    predictable, so its value depends on the order the cases arrived in."""

    def __init__(
        self,
        candidate: RunData,
        baseline: RunData | None,
        canary: dict[str, Any] | None,
        policy: SequentialPolicy,
    ) -> None:
        self.cand, self.base, self.canary, self.policy = candidate, baseline, canary, policy
        self._base_index = {c: i for i, c in enumerate(baseline.case_ids)} if baseline else {}
        self._p_adjusted: dict[str, float] = {}
        self._p_raw: dict[str, float] = {}
        # Suite-wide references (no slice) on the uniform prefix, once cases have been skipped.
        self._suite: SequentialResolver | None = None
        k = policy.uniform_cases
        if k is not None and k < candidate.n:
            whole = replace(policy, uniform_cases=None, cases_total=None)
            self._suite = SequentialResolver(head(candidate, k), baseline, canary, whole)
        if baseline is not None:
            self._p_family()

    @property
    def final(self) -> bool:
        total = self.policy.cases_total
        return total is not None and self.cand.n >= total

    # --- the rules' resolver protocol (for name checks and observed values) ------------------

    def known_metrics(self) -> list[str]:
        from releasectl.gate.rules import GATE_METRICS

        return list(GATE_METRICS)

    def known_slices(self) -> list[str]:
        return list(self.cand.slices)

    def resolve(self, ref: MetricRef) -> Observation:
        return _observation(self.box(ref, self.policy.alpha), ref)

    def slice_regression(self, slice_name: str) -> Observation:
        return _observation(
            self.paired_box(MetricRef("delta", "success@1", (slice_name,)), self.policy.alpha), None
        )

    # --- boxes ------------------------------------------------------------------------------

    def box(self, ref: MetricRef, alpha: float) -> Box:
        if self._suite is not None and ref.slice is None and ref.namespace != "canary":
            return self._suite.box(ref, alpha)
        if ref.namespace == "canary":
            return self._canary(ref)
        if ref.field in ("n", "count"):
            obs = self._fact(ref)
            return obs
        if ref.namespace == "delta":
            if ref.field == "p_value":
                return self._p_value(ref)
            if ref.name in RATE_METRICS:
                return self.paired_box(ref, alpha)
            if self.base is None:
                return _none("no baseline run")
            c, b = self.observe(self.cand, ref, alpha / 2), self.observe(self.base, ref, alpha / 2)
            if c.reason or b.reason:
                return _none(c.reason or b.reason or "no value", c.kind)
            return Box(c.lower - b.upper, c.upper - b.lower, c.point - b.point, c.kind, c.n)
        if ref.field == "p_value":
            return _none(f"{ref}: a p-value needs delta.", "p_value")
        if ref.namespace == "baseline":
            if self.base is None:
                return _none("no baseline run")
            return self.observe(self.base, ref, alpha)
        return self.observe(self.cand, ref, alpha)

    def observe(self, run: RunData, ref: MetricRef, alpha: float) -> Box:
        mask = run.slice_mask(ref.slice)
        name = ref.name
        if name in RATE_METRICS:
            vec = _rate_vector(run, ref)
            if isinstance(vec, str):
                return _none(vec)
            values, valid = vec
            sel = values[mask & valid]
            if sel.size == 0:
                return _none(f"no cases{' in slice ' + ref.slice if ref.slice else ''} yet")
            iv = bernoulli_cs(int(np.sum(sel)), int(sel.size), alpha)
            return _box(iv.lower, iv.upper, iv.estimate, iv.n)
        if name in PERCENTILES:
            return self._quantile(run.latency_ms[mask], PERCENTILES[name] / 100, alpha)
        if name == "steps_to_solve_median":
            solved = run.steps[mask & run.passed]
            return self._quantile(solved[~np.isnan(solved)], 0.5, alpha, "no solved case with a step count")
        if name == "tokens_per_request":
            tokens = run.completion_tokens[mask].astype(float)
            bound = self.policy.max_tokens
            if tokens.size == 0:
                return _none("no cases yet")
            if not bound or float(np.max(tokens)) > bound:
                point = float(np.mean(tokens))
                return Box(0.0, math.inf, point, "cs", int(tokens.size), None)
            iv = mean_cs(tokens / bound, alpha)
            return _box(iv.lower * bound, iv.upper * bound, iv.estimate * bound, iv.n)
        if name == "cost_per_1k_tokens_usd":
            cost = cost_per_1k(run)
            if math.isnan(cost):
                return _none("no tokens or no generation time", "measured")
            return _box(cost, cost, cost, run.n, "measured")
        return _none(f"unknown metric {name}")

    def _quantile(self, x: np.ndarray, p: float, alpha: float, empty: str = "no cases yet") -> Box:
        if x.size == 0:
            return _none(empty)
        iv = quantile_cs(x, p, alpha)
        return _box(iv.lower, iv.upper, iv.estimate, iv.n)

    def paired(self, ref: MetricRef) -> tuple[np.ndarray, np.ndarray] | str:
        """(candidate, baseline) 0/1 values of a rate on matched cases, in the candidate's order."""
        if self.base is None:
            return "no baseline run"
        cv, bv = _rate_vector(self.cand, ref), _rate_vector(self.base, ref)
        if isinstance(cv, str) or isinstance(bv, str):
            return cv if isinstance(cv, str) else str(bv)
        ci = [i for i, c in enumerate(self.cand.case_ids) if c in self._base_index]
        bi = [self._base_index[self.cand.case_ids[i]] for i in ci]
        cidx, bidx = np.asarray(ci, dtype=np.int64), np.asarray(bi, dtype=np.int64)
        keep = self.cand.slice_mask(ref.slice)[cidx] & cv[1][cidx] & bv[1][bidx]
        return cv[0][cidx][keep], bv[0][bidx][keep]

    def horizon(self, slice_name: str | None) -> int | None:
        """The slice's size in the frozen suite (the baseline replayed all of it), known before the
        replay: the paired e-processes' bets are tuned to it (`stats.sequential.bet_fractions`)."""
        if self.base is None:
            return None
        return int(np.sum(self.base.slice_mask(slice_name))) or None

    def paired_box(self, ref: MetricRef, alpha: float) -> Box:
        """The paired delta's (1 − α) CS: each end a one-sided sequence at α/2."""
        return self.paired_side_box(ref, alpha / 2, alpha / 2)

    def paired_side_box(self, ref: MetricRef, alpha_lower: float, alpha_upper: float) -> Box:
        """The paired delta's lower bound at α_lower and upper bound at α_upper (betting CS on the
        paired differences; `stats.sequential.paired_side_bounds`)."""
        if self._suite is not None and ref.slice is None:
            return self._suite.paired_side_box(ref, alpha_lower, alpha_upper)
        pair = self.paired(ref)
        if isinstance(pair, str):
            return _none(pair)
        c, b = pair
        if c.size == 0:
            return _none("no paired cases yet")
        wins, losses, n = int(np.sum(c & ~b)), int(np.sum(~c & b)), int(c.size)
        horizon = self.horizon(ref.slice)
        lower, _ = paired_side_bounds(wins, losses, n, alpha_lower, horizon=horizon)
        _, upper = paired_side_bounds(wins, losses, n, alpha_upper, horizon=horizon)
        return _box(float(lower), float(upper), (wins - losses) / n, n)

    def threshold_box(self, ref: MetricRef, threshold: float, alpha: float) -> Box:
        """A candidate rate for a rule against a constant: each end a one-sided sequence at α whose
        mixture lies on its side of the threshold (`stats.sequential.bernoulli_side_bounds`)."""
        if self._suite is not None and ref.slice is None:
            return self._suite.threshold_box(ref, threshold, alpha)
        vec = _rate_vector(self.cand, ref)
        if isinstance(vec, str):
            return _none(vec)
        values, valid = vec
        sel = values[self.cand.slice_mask(ref.slice) & valid]
        if sel.size == 0:
            return _none(f"no cases{' in slice ' + ref.slice if ref.slice else ''} yet")
        k, n = int(np.sum(sel)), int(sel.size)
        lower, upper = bernoulli_side_bounds(k, n, alpha, threshold)
        return _box(float(lower), float(upper), k / n, n)

    def _p_family(self) -> None:
        """Always-valid p-values of success@1 for every slice of either run, adjusted like the
        fixed-n gate's (an anytime-valid p-value is valid at the stopping round, so Holm is too)."""
        from releasectl.gate.stats import adjust

        assert self.base is not None
        names = list(dict.fromkeys([*self.base.slices, *self.cand.slices]))
        raw = []
        for s in names:
            pair = self.paired(MetricRef("delta", "success@1", (s,)))
            raw.append(1.0 if isinstance(pair, str) else paired_sign_test(pair[0], pair[1]).p_value)
        self._p_raw = dict(zip(names, raw, strict=True))
        self._p_adjusted = dict(zip(names, adjust(raw, self.policy.correction), strict=True))

    def _p_value(self, ref: MetricRef) -> Box:
        if ref.name not in RATE_METRICS:
            return _none(f"{ref}: p-values exist for rates only", "p_value")
        if ref.name == "success@1" and ref.slice in self._p_adjusted:
            p = self._p_adjusted[ref.slice]
            return _box(p, p, p, None, "p_value")
        pair = self.paired(ref)
        if isinstance(pair, str):
            return _none(pair, "p_value")
        p = paired_sign_test(pair[0], pair[1]).p_value
        return _box(p, p, p, int(pair[0].size), "p_value")

    def _fact(self, ref: MetricRef) -> Box:
        from releasectl.gate.metrics import GateResolver, Policy

        obs = GateResolver(self.cand, self.base, None, Policy(min_cases_per_slice=0)).resolve(ref)
        v = obs.get(ref.field)
        if v is None:
            return _none(obs.inconclusive_reason or "no value", "fact")
        return _box(v, v, v, obs.n, "fact")

    def _canary(self, ref: MetricRef) -> Box:
        m = ((self.canary or {}).get("metrics") or {}).get(ref.name)
        if not isinstance(m, dict):
            why = "no canary data" if self.canary is None else f"canary data has no '{ref.name}'"
            return _none(why, "external")
        if m.get("inconclusive_reason"):
            return _none(str(m["inconclusive_reason"]), "external")
        v = m.get("value") if ref.field in ("point", "value") else m.get(ref.field)
        if v is None:
            return _none("no value", "external")
        return _box(v, v, v, m.get("n"), "external")

    # --- tables for gate.json ---------------------------------------------------------------

    def slice_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The fixed-n gate's slice table with its statistics replaced by anytime-valid ones."""
        alpha = self.policy.alpha
        out = []
        for row in rows:
            name = None if row["slice"] == "aggregate" else row["slice"]
            if name is None and self._suite is not None:
                out.extend(self._suite.slice_rows([row]))  # the aggregate is the uniform prefix's
                continue
            ref = MetricRef(None, "success@1", (name,) if name else ())
            row = {**row, "statistics": "anytime-valid"}
            for side, run in (("candidate", self.cand), ("baseline", self.base)):
                if run is None or side not in row:
                    continue
                b = self.observe(run, ref, alpha)
                row[side] = {**row[side], "lower_ci": _finite(b.lower), "upper_ci": _finite(b.upper)}
            if self.base is not None and "delta" in row:
                d = self.paired_box(MetricRef("delta", "success@1", ref.args), alpha)
                row["delta_lower_ci"], row["delta_upper_ci"] = _finite(d.lower), _finite(d.upper)
                p = self._p_raw.get(name or "")
                if p is None:
                    pair = self.paired(ref)
                    p = 1.0 if isinstance(pair, str) else paired_sign_test(pair[0], pair[1]).p_value
                row["p_value"] = p
                row["p_value_adjusted"] = self._p_adjusted.get(name or "", p)
            out.append(row)
        return out


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _observation(b: Box, ref: MetricRef | None) -> Observation:
    return Observation(
        None if math.isnan(b.point) else b.point,
        n=b.n,
        lower_ci=_finite(b.lower),
        upper_ci=_finite(b.upper),
        p_value=b.point if b.kind == "p_value" else None,
        inconclusive_reason=b.reason,
    )


# --- interval arithmetic over a rule's expression ---------------------------------------------


def _combine(op: str, a: Box, b: Box) -> Box:
    kinds = {a.kind, b.kind}
    kind: Any = next(k for k in ("fact", "p_value", "cs", "measured", "external", "constant") if k in kinds)
    reason = a.reason or b.reason
    if op == "+":
        lo, hi, pt = a.lower + b.lower, a.upper + b.upper, a.point + b.point
    elif op == "-":
        lo, hi, pt = a.lower - b.upper, a.upper - b.lower, a.point - b.point
    else:
        if op == "/":
            if b.lower <= 0 <= b.upper:
                return Box(
                    -math.inf, math.inf, math.nan, kind, a.n, reason or "division by an interval with 0"
                )
            b = Box(1 / b.upper, 1 / b.lower, 1 / b.point if b.point else math.nan, b.kind, b.n, b.reason)
        with np.errstate(invalid="ignore"):
            products = [x * y for x in (a.lower, a.upper) for y in (b.lower, b.upper)]
        products = [0.0 if math.isnan(p) else p for p in products]  # 0 × ∞ at a degenerate end
        lo, hi, pt = min(products), max(products), a.point * b.point
    return Box(lo, hi, pt, kind, a.n if a.n is not None else b.n, reason)


def _expr_box(expr: Expr, resolver: SequentialResolver, alpha: float) -> Box:
    if isinstance(expr, Number):
        return Box(expr.value, expr.value, expr.value, "constant")
    if isinstance(expr, MetricRef):
        return resolver.box(expr, alpha)
    return _combine(expr.op, _expr_box(expr.left, resolver, alpha), _expr_box(expr.right, resolver, alpha))


def _kinds(expr: Expr, resolver: SequentialResolver, alpha: float) -> set[str]:
    """The kinds of every number in an expression (a sum's box keeps only the strongest)."""
    if isinstance(expr, Number):
        return {"constant"}
    if isinstance(expr, MetricRef):
        return {resolver.box(expr, alpha).kind}
    return _kinds(expr.left, resolver, alpha) | _kinds(expr.right, resolver, alpha)


def _decide(op: str, left: Box, right: Box) -> tuple[RuleState, float, float]:
    """(state, observed, threshold): for pass/fail, the ends that decided, so `observed op
    threshold` holds exactly when the rule passes (gate.json's consistency check)."""
    a, b, c, d = left.lower, left.upper, right.lower, right.upper
    ops = COMPARATORS
    if op in (">=", ">"):
        if ops[op](a, d):
            return "pass", a, d
        if not ops[op](b, c):
            return "fail", b, c
    elif op in ("<=", "<"):
        if ops[op](b, c):
            return "pass", b, c
        if not ops[op](a, d):
            return "fail", a, d
    else:
        degenerate = ops["=="](a, b) and ops["=="](c, d) and ops["=="](a, c)
        apart = b < c or a > d
        if (op == "==" and degenerate) or (op == "!=" and apart):
            return ("pass", b, c) if b < c else ("pass", a, d)
        if op == "==" and apart:
            return ("fail", b, c) if b < c else ("fail", a, d)
        if op == "!=" and degenerate:
            return "fail", a, c
    return "undecided", left.point, right.point


@dataclass
class RuleDecision:
    """One rule after a round: its gate.json row and whether replaying more could change it."""

    result: RuleResult
    state: RuleState
    replay_decides: bool  # False for rules only canary data decides
    early: bool  # whether a fail here may stop the replay (CS or p-value evidence, not a measurement)


def _paired_form(rule: Comparison) -> tuple[MetricRef, float] | None:
    """`M op baseline.M ± c` (or `baseline.M` alone) for a rate M: the paired delta decides it."""
    left, right = rule.left, rule.right
    if not isinstance(left, MetricRef) or left.namespace not in (None, "aggregate"):
        return None
    if left.name not in RATE_METRICS or left.field not in ("point", "value", "lower_ci", "upper_ci"):
        return None
    const = 0.0
    if isinstance(right, BinOp) and right.op in "+-" and isinstance(right.right, Number):
        const = right.right.value if right.op == "+" else -right.right.value
        right = right.left
    if (
        isinstance(right, MetricRef)
        and right.namespace == "baseline"
        and (right.name, right.args, right.kwargs) == (left.name, left.args, left.kwargs)
        and right.field in ("point", "value", "lower_ci", "upper_ci")
    ):
        return left, const
    return None


def _threshold_form(rule: Comparison) -> tuple[MetricRef, float] | None:
    """`rate op c` (a candidate rate, or a `delta.` rate, against a constant, op an inequality):
    decided by one-sided sequences tuned to c."""
    left, right = rule.left, rule.right
    if (
        rule.op not in ("<", "<=", ">", ">=")
        or not isinstance(left, MetricRef)
        or not isinstance(right, Number)
    ):
        return None
    if left.name not in RATE_METRICS or left.field not in ("point", "value", "lower_ci", "upper_ci"):
        return None
    if left.namespace not in (None, "aggregate", "delta"):
        return None
    return left, right.value


def _settled_fact(rule: Comparison, state: str) -> bool:
    """`n` and `count` only grow as cases are added, so `fact >= c` that passes now passes at any
    later count, and `fact <= c` that fails now fails at any later count: final before the end."""
    left, right = rule.left, rule.right
    if not isinstance(left, MetricRef) or not isinstance(right, Number) or left.field not in ("n", "count"):
        return False
    if left.namespace == "canary":
        return False
    return (rule.op in (">=", ">") and state == "pass") or (rule.op in ("<=", "<") and state == "fail")


def evaluate_rule(rule: Rule, resolver: SequentialResolver) -> RuleDecision:
    if isinstance(rule, NoRegressions):
        return _no_regressions(rule, resolver)
    alpha = resolver.policy.alpha
    refs = metric_refs(rule)
    k = max(1, sum(1 for r in refs if r.namespace != "canary" and r.field not in ("p_value", "n", "count")))
    paired = _paired_form(rule)
    against = _threshold_form(rule)
    # Each side of a rule errs with probability ≤ α/2: a pass and a fail are one-sided claims, and
    # a wrong promotion needs one rule to pass wrongly, so no split across rules is needed.
    if paired is not None and resolver.base is not None:
        ref, const = paired
        left = resolver.paired_side_box(
            MetricRef("delta", ref.name, ref.args, ref.kwargs), alpha / 2, alpha / 2
        )
        right = Box(const, const, const, "constant")
        metric = f"{ref} − baseline (paired delta)"
    elif against is not None:
        ref, threshold = against
        if ref.namespace == "delta":
            left = resolver.paired_side_box(ref, alpha / 2, alpha / 2)
        else:
            left = resolver.threshold_box(ref, threshold, alpha / 2)
        right = Box(threshold, threshold, threshold, "constant")
        metric = _text(rule.left)
    else:
        # a general expression: every metric's two-sided CS at α/(2k), so each side of the rule
        # errs with probability ≤ α/2 by the union bound over its k metrics
        left = _expr_box(rule.left, resolver, alpha / (2 * k))
        right = _expr_box(rule.right, resolver, alpha / (2 * k))
        metric = _text(rule.left)
    kinds = (
        _kinds(rule.left, resolver, alpha) | _kinds(rule.right, resolver, alpha) if paired is None else {"cs"}
    )
    replay_decides = not kinds - {"constant"} <= {"external"}
    reason = left.reason or right.reason
    state: RuleState
    if reason:
        state, observed, threshold = "undecided", math.nan, right.point
    else:
        state, observed, threshold = _decide(rule.op, left, right)
        monotone_p = kinds == {"p_value", "constant"} and rule.op in ("<", "<=")
        exact_only = bool(kinds & {"fact", "p_value"})
        if (
            exact_only
            and not resolver.final
            and not (monotone_p and state == "pass")
            and not _settled_fact(rule, state)
        ):
            state = "undecided"  # more cases change facts; a p-value only ever falls
    early = bool(kinds & {"cs", "p_value"})  # decided on evidence, not on a measurement
    detail = _detail(state, rule.op, left, right, reason, resolver)
    return RuleDecision(
        RuleResult(
            rule=rule.text,
            line=rule.line,
            metric=metric,
            observed=_clean(observed),
            comparator=rule.op,  # type: ignore[arg-type]  # the grammar admits only these
            threshold=_clean(threshold),
            threshold_expr=_text(rule.right),
            outcome="inconclusive" if state == "undecided" else state,
            detail=detail,
            n=left.n,
            lower_ci=_clean(left.lower),
            upper_ci=_clean(left.upper),
            source=rule.source,
        ),
        state,
        replay_decides,
        early,
    )


def _no_regressions(rule: NoRegressions, resolver: SequentialResolver) -> RuleDecision:
    """Every protected slice's paired delta (`no_regressions_decision`). A pass needs every slice
    shown within the margin, so a wrong pass needs the one truly worse slice's lower bound to be
    wrong: α/2 each, no split (an intersection-union test). A fail needs one slice shown worse, so
    a wrong fail may come from any slice: their upper bounds split α/2."""
    margin = resolver.policy.no_regressions_margin
    return no_regressions_decision(
        rule, _no_regression_boxes(rule, resolver), margin, "anytime-valid paired CS"
    )


def _no_regression_boxes(rule: NoRegressions, resolver: SequentialResolver) -> dict[str, Box]:
    """Each protected slice's paired delta: the lower bound at α/2, the upper at α/2 split over
    the k slices (see `_no_regressions`)."""
    alpha = resolver.policy.alpha / 2
    k = max(1, len(rule.slices))
    return {
        s: resolver.paired_side_box(MetricRef("delta", "success@1", (s,)), alpha, alpha / k)
        for s in rule.slices
    }


def _slice_settled(b: Box, margin: float) -> bool:
    """A protected slice's delta is shown within the margin or shown worse (`no_regressions_decision`)."""
    return not b.reason and (b.lower >= -margin or b.upper < 0)


def no_regressions_decision(
    rule: NoRegressions, boxes: dict[str, Box], margin: float, how: str
) -> RuleDecision:
    """`no_regressions_on` from per-slice intervals of the paired delta Δ = candidate − baseline
    (shared with the fixed-n gate's `--no-regressions-margin`, which passes Newcombe intervals):

    - fail when some slice's upper bound is below 0: a regression, of any size, is shown;
    - pass when every slice's lower bound is ≥ −margin: no regression beyond the margin;
    - undecided otherwise (too few cases to tell, or a regression within the margin not yet shown).

    So a slice truly worse than −margin passes, and a slice truly no worse fails, each with at most
    the interval's one-sided error; between −margin and 0 either answer is accepted."""
    missing = [f"{s}: {b.reason}" for s, b in boxes.items() if b.reason]
    worse = {s: b for s, b in boxes.items() if not b.reason and b.upper < 0}
    shown = all(not b.reason and b.lower >= -margin for b in boxes.values())
    state: RuleState
    if worse:
        _, b = min(worse.items(), key=lambda kv: kv[1].upper)
        state, observed, threshold = "fail", b.upper, 0.0
        detail = "regression shown: " + ", ".join(f"{n} (Δ ≤ {v.upper:+.3f})" for n, v in worse.items())
    elif shown:
        state, observed, threshold = "pass", min(b.lower for b in boxes.values()), -margin
        detail = f"no protected slice is worse than −{margin:g} (Δ ≥ {observed:+.3f})"
    else:
        state, threshold = "undecided", -margin
        points = [b.point for b in boxes.values() if not math.isnan(b.point)]
        observed = min(points) if points else math.nan
        open_ = [f"{s} Δ ∈ [{b.lower:+.3f}, {b.upper:+.3f}]" for s, b in boxes.items() if not b.reason]
        detail = "; ".join(missing + open_) + f": neither Δ ≥ −{margin:g} nor a regression is shown"
    detail += f" ({how})"
    lows = [b.lower for b in boxes.values() if not b.reason]
    ups = [b.upper for b in boxes.values() if not b.reason]
    return RuleDecision(
        RuleResult(
            rule=rule.text,
            line=rule.line,
            metric="min delta.success@1 over " + ", ".join(rule.slices),
            observed=_clean(observed),
            comparator=">=",
            threshold=threshold,
            threshold_expr=f"−{margin:g} to pass (margin), 0 to fail" if margin else "0 (baseline)",
            outcome="inconclusive" if state == "undecided" else state,
            detail=detail,
            n=min((b.n or 0 for b in boxes.values()), default=0),
            lower_ci=_clean(min(lows)) if lows else None,
            upper_ci=_clean(min(ups)) if ups else None,
            source=rule.source,
        ),
        state,
        True,
        True,
    )


def _clean(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _text(expr: Expr) -> str:
    if isinstance(expr, Number):
        return f"{expr.value:g}"
    if isinstance(expr, MetricRef):
        return str(expr)
    return f"{_text(expr.left)} {expr.op} {_text(expr.right)}"


def _detail(
    state: RuleState, op: str, left: Box, right: Box, reason: str | None, resolver: SequentialResolver
) -> str:
    where = f"after {resolver.cand.n}" + (
        f" of {resolver.policy.cases_total} cases" if resolver.policy.cases_total else " cases"
    )
    if reason:
        return f"undecided {where}: {reason}"
    span = (
        f"[{left.lower:.4g}, {left.upper:.4g}]"
        if left.kind == "cs" and left.lower != left.upper
        else f"{left.point:.4g}"
    )
    if state == "undecided":
        if resolver.final:
            return f"{span} {op} {right.point:.4g} is not decided by the full suite (anytime-valid)"
        return f"{span} {op} {right.point:.4g} undecided {where} (anytime-valid)"
    return f"{span} {op} {right.point:.4g}: {state} {where} (anytime-valid)"


# --- a round's decision ------------------------------------------------------------------------


@dataclass
class RoundDecision:
    rules: list[RuleDecision]
    verdict: Verdict
    verdict_reason: str
    decided: bool  # the replay may stop: replaying more cases cannot change the verdict's basis
    counts: dict[str, int] = field(default_factory=dict)


def decide(rules: list[Rule], resolver: SequentialResolver) -> RoundDecision:
    """Evaluate every rule on the cases so far. The replay may stop when every rule that replay
    data decides is decided, or when one is decided fail on evidence (the verdict is then block
    whatever the rest say); a measured figure (cost) alone never stops it."""
    decisions = [evaluate_rule(r, resolver) for r in rules]
    results = [d.result for d in decisions]
    verdict, reason = verdict_of(results)
    pending = [d for d in decisions if d.replay_decides and d.state == "undecided"]
    failed_on_evidence = any(d.state == "fail" and d.early for d in decisions)
    counts = {s: sum(1 for d in decisions if d.state == s) for s in ("pass", "fail", "undecided")}
    return RoundDecision(decisions, verdict, reason, not pending or failed_on_evidence, counts)


def reads_suite(rule: Rule) -> bool:
    """Whether the rule reads the whole suite (a metric with no slice; canary data aside)."""
    if isinstance(rule, NoRegressions):
        return False
    return any(ref.slice is None and ref.namespace != "canary" for ref in metric_refs(rule))


def open_slices(rules: list[Rule], decision: RoundDecision, resolver: SequentialResolver) -> set[str] | None:
    """`--skip-decided-slices`: the slices whose cases can still change a rule, after a round;
    None (every slice) while a rule of the whole suite is undecided. A slice is open when an
    undecided rule reads it; for `no_regressions_on`, when its own paired delta is neither shown
    within the margin nor shown worse."""
    pending = [
        (r, d)
        for r, d in zip(rules, decision.rules, strict=True)
        if d.replay_decides and d.state == "undecided"
    ]
    if any(reads_suite(r) for r, _ in pending):
        return None
    out: set[str] = set()
    margin = resolver.policy.no_regressions_margin
    for rule, _ in pending:
        if isinstance(rule, NoRegressions):
            boxes = _no_regression_boxes(rule, resolver)
            out.update(s for s, b in boxes.items() if not _slice_settled(b, margin))
        else:
            out.update(ref.slice for ref in metric_refs(rule) if ref.slice is not None)
    return out
