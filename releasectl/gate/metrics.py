"""Metrics over runs (SPEC §6) and the gate's resolver for the rules language.

Rates carry a Wilson interval; deltas are paired on matched case ids with the exact McNemar
test, p-values adjusted (Holm or BH, per policy) across the suite's slices.

With several samples per case (`sampling.n` > 1, docs/repeated_sampling.md) the case is the unit:
a rate is the mean over cases of each case's success fraction, its interval the cluster Wilson
interval over those fractions, and a delta's p-value the sign-flip test on the paired per-case
differences (`releasectl.stats.cluster`); `pass@k` and `pass^k` are per-case unbiased estimators
averaged the same way. A run with one sample per case is gated exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from releasectl.errors import Problem
from releasectl.gate.rules import ALIASES, GATE_METRICS, SAMPLED_METRICS, MetricRef, Observation, Rule
from releasectl.gate.runs import RunData
from releasectl.gate.stats import adjust, mcnemar_exact, wilson_interval
from releasectl.stats.cluster import cluster_interval, pass_at_k, pass_hat_k, sign_flip_pvalue

RATE_METRICS = {"success@1", "pass_rate", "rule_violation_rate", "format_pass_rate", *ALIASES}
PERCENTILES = {"latency_p50_ms": 50, "latency_p95_ms": 95, "latency_p99_ms": 99}
CaseValues = tuple[np.ndarray, np.ndarray, np.ndarray, int | None]  # values, case mask, samples, lattice


@dataclass(frozen=True)
class Policy:
    min_cases_per_slice: int = 20
    confidence_level: float = 0.95
    correction: str = "holm"


def _rate_vector(run: RunData, ref: MetricRef) -> tuple[np.ndarray, np.ndarray] | str:
    """(values, valid mask) of a per-case 0/1 metric, or an error text."""
    name = ref.name
    if name == "success@1":
        return run.passed, np.ones(run.n, dtype=bool)
    if name == "rule_violation_rate":
        return ~run.rule_ok, np.ones(run.n, dtype=bool)
    if name == "format_pass_rate":
        return run.format_ok, np.ones(run.n, dtype=bool)
    verifier = ALIASES.get(name) or (ref.args[1] if len(ref.args) > 1 else None)
    if verifier is None:
        return f"{name} needs a verifier: pass_rate(slice, 'verifier')"
    arr = run.verifier_pass.get(verifier)
    if arr is None:
        return f"no verifier '{verifier}' in {run.path}"
    return arr == 1, arr >= 0


def sample_k(ref: MetricRef) -> int | None:
    """The k of `pass@k(S, k=5)` / `pass^k(S, k=5)`, or None when it is missing or not a positive integer."""
    text = dict(ref.kwargs).get("k")
    if text is None or not text.isdigit() or int(text) < 1:
        return None
    return int(text)


def case_values(run: RunData, ref: MetricRef) -> CaseValues | str:
    """One value per case of a sampled rate metric: (values, valid-case mask, samples per case,
    lattice), or an error text. Values are success fractions c/t for rates and the unbiased
    estimators for pass@k / pass^k; the lattice L (every fraction a multiple of 1/L) lets the
    sign-flip test be exact, None for the estimators."""
    base = MetricRef(ref.namespace, "success@1", ref.args) if ref.name in SAMPLED_METRICS else ref
    vec = _rate_vector(run, base)
    if isinstance(vec, str):
        return vec
    values, valid = vec
    cases = run.n_cases
    index = run.case_index if run.case_index is not None else np.arange(run.n)
    counts = np.bincount(index, weights=values & valid, minlength=cases).astype(np.int64)
    totals = np.bincount(index, weights=valid, minlength=cases).astype(np.int64)
    mask = run.case_slice_mask(ref.slice) & (totals > 0)
    if ref.name in SAMPLED_METRICS:
        k = sample_k(ref)
        assert k is not None and k <= run.samples_per_case, "check_rules refuses these first"
        estimator = pass_at_k if ref.name == "pass@k" else pass_hat_k
        out = np.zeros(cases)
        out[mask] = estimator(totals[mask], counts[mask], k)
        return out, mask, totals, None
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(totals > 0, counts / np.maximum(totals, 1), 0.0)
    lattice = int(np.lcm.reduce(np.unique(totals[mask]))) if mask.any() else 1
    return fractions, mask, totals, lattice


def clustered(*runs: RunData | None) -> bool:
    """Whether any of the runs has several samples per case: then the case is the unit."""
    return any(r is not None and r.sampled for r in runs)


def fields_of(ref: MetricRef) -> tuple[str, ...] | None:
    """The fields the fixed-n gate gives `ref`'s metric (`point` ≡ `value`); None: any (canary.json
    carries its own). A rate has an interval and a count; a delta a p-value and the count of
    cases that differ, but no interval; a percentile, mean, median or cost only a value and n."""
    if ref.namespace == "canary":
        return None
    rate = ref.name in RATE_METRICS or ref.name in SAMPLED_METRICS
    if ref.namespace == "delta":
        return ("point", "value", "p_value", "count", "n") if rate else ("point", "value", "n")
    if ref.name in RATE_METRICS:
        return ("point", "value", "lower_ci", "upper_ci", "count", "n")
    if ref.name in SAMPLED_METRICS:  # an estimator, not a count of passing cases
        return ("point", "value", "lower_ci", "upper_ci", "n")
    return ("point", "value", "n")


class GateResolver:
    """Resolves metric references against a candidate run, a baseline run and canary data."""

    def __init__(
        self, candidate: RunData, baseline: RunData | None, canary: dict[str, Any] | None, policy: Policy
    ) -> None:
        self.cand = candidate
        self.base = baseline
        self.canary = canary
        self.policy = policy
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._identity = False
        self._adjusted: dict[str, float] = {}
        self._raw: dict[str, float] = {}
        if baseline is not None:
            self._compute_family()

    # --- pairing ---------------------------------------------------------------------------

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (candidate, baseline) of cases present in both runs."""
        if self._pairs is None:
            assert self.base is not None
            if self.cand.case_ids == self.base.case_ids:  # the usual case: same suite, same order
                idx = np.arange(self.cand.n, dtype=np.int64)
                self._pairs = (idx, idx)
                self._identity = True
                return self._pairs
            base_index = {cid: i for i, cid in enumerate(self.base.case_ids)}
            ci, bi = [], []
            for i, cid in enumerate(self.cand.case_ids):
                j = base_index.get(cid)
                if j is not None:
                    ci.append(i)
                    bi.append(j)
            self._pairs = (np.asarray(ci, dtype=np.int64), np.asarray(bi, dtype=np.int64))
        return self._pairs

    def unmatched(self) -> dict[str, list[str]]:
        if self.base is None or self.cand.case_list == self.base.case_list:
            return {"only_in_candidate": [], "only_in_baseline": []}
        c, b = set(self.cand.case_list), set(self.base.case_list)
        return {"only_in_candidate": sorted(c - b), "only_in_baseline": sorted(b - c)}

    def case_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (candidate, baseline) into each run's distinct cases, for cases in both."""
        assert self.base is not None
        memo = self.__dict__.get("_case_pairs")
        if memo is None:
            c_list, b_list = self.cand.case_list, self.base.case_list
            if c_list == b_list:
                idx = np.arange(len(c_list), dtype=np.int64)
                memo = (idx, idx)
            else:
                where = {cid: i for i, cid in enumerate(b_list)}
                found = [(i, where[cid]) for i, cid in enumerate(c_list) if cid in where]
                ci = np.asarray([i for i, _ in found], dtype=np.int64)
                bi = np.asarray([j for _, j in found], dtype=np.int64)
                memo = (ci, bi)
            self.__dict__["_case_pairs"] = memo
        return memo  # type: ignore[no-any-return]

    def paired_cases(self, ref: MetricRef) -> tuple[np.ndarray, np.ndarray, int | None] | str:
        """(candidate, baseline) per-case values on the cases both runs have, in `ref`'s slice,
        and the lattice of their differences (None: not on one)."""
        assert self.base is not None
        key = ("cases", ref.name, ref.args, ref.kwargs)
        memo = self.__dict__.setdefault("_paired", {})
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        cv, bv = case_values(self.cand, ref), case_values(self.base, ref)
        if isinstance(cv, str) or isinstance(bv, str):
            memo[key] = cv if isinstance(cv, str) else bv
            return memo[key]  # type: ignore[no-any-return]
        ci, bi = self.case_pairs()
        keep = cv[1][ci] & bv[1][bi]
        lattice = None if cv[3] is None or bv[3] is None else int(np.lcm(cv[3], bv[3]))
        memo[key] = (cv[0][ci][keep], bv[0][bi][keep], lattice)
        return memo[key]  # type: ignore[no-any-return]

    def paired_test(self, ref: MetricRef) -> tuple[float, int, int, int] | str:
        """(p-value, n pairs, b, c) of the paired test on `ref`: exact McNemar with one sample per
        case, else the sign-flip test on per-case differences; b and c count the pairs where the
        baseline / the candidate is ahead (McNemar's discordant pairs with one sample)."""
        if not clustered(self.cand, self.base) and ref.name not in SAMPLED_METRICS:
            pair = self.paired(ref)
            if isinstance(pair, str):
                return pair
            cand, base = pair
            b, c = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
            return mcnemar_exact(b, c), int(cand.size), b, c
        got = self.paired_cases(ref)
        if isinstance(got, str):
            return got
        cand_v, base_v, lattice = got
        d = cand_v - base_v
        b, c = int(np.sum(d < 0)), int(np.sum(d > 0))
        return sign_flip_pvalue(d, lattice=lattice), int(d.size), b, c

    def paired(self, ref: MetricRef) -> tuple[np.ndarray, np.ndarray] | str:
        """(candidate, baseline) 0/1 values of a rate metric on matched cases (memoised).

        Row by row: only for runs with one sample per case. When `clustered(cand, base)`, pair
        cases with `paired_cases` (pairing sample j with sample j would treat a case's samples
        as independent pairs, the error benchmarks/repeated_sampling.py measures)."""
        assert self.base is not None
        key = (ref.name, ref.args)
        memo = self.__dict__.setdefault("_paired", {})
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        ci, bi = self.pairs()
        cv = _rate_vector(self.cand, ref)
        bv = _rate_vector(self.base, ref)
        if isinstance(cv, str) or isinstance(bv, str):
            memo[key] = cv if isinstance(cv, str) else bv
            return memo[key]  # type: ignore[no-any-return]
        if self.cand.case_ids is self.base.case_ids or (
            ci.size == self.cand.n == self.base.n and self._identity
        ):
            mask = self.cand.slice_mask(ref.slice) & cv[1] & bv[1]
            memo[key] = (cv[0][mask], bv[0][mask])
        else:
            mask = (self.cand.slice_mask(ref.slice)[ci]) & cv[1][ci] & bv[1][bi]
            memo[key] = (cv[0][ci][mask], bv[0][bi][mask])
        return memo[key]  # type: ignore[no-any-return]

    def _compute_family(self) -> None:
        """Raw and adjusted paired p-values of success@1 for every slice both runs share
        (McNemar, or the sign-flip test when a run has several samples per case)."""
        shared = [s for s in self.cand.slices if self.base is not None and s in self.base.slices]
        raw = []
        for s in shared:
            test = self.paired_test(MetricRef(None, "success@1", (s,)))
            assert not isinstance(test, str)
            raw.append(test[0])
        self._raw = dict(zip(shared, raw, strict=True))
        self._adjusted = dict(zip(shared, adjust(raw, self.policy.correction), strict=True))

    # --- resolver protocol -------------------------------------------------------------------

    def known_metrics(self) -> list[str]:
        return list(GATE_METRICS)

    def known_slices(self) -> list[str]:
        return list(self.cand.slices)

    def resolve(self, ref: MetricRef) -> Observation:
        ns = ref.namespace
        if ns == "canary":
            return self._canary(ref)
        if ns == "delta":
            return self._delta(ref)
        if ns == "baseline":
            if self.base is None:
                return Observation(None, inconclusive_reason="no baseline run (pass --baseline-run)")
            return self.observe(self.base, ref)
        return self.observe(self.cand, ref)

    def slice_regression(self, slice_name: str) -> Observation:
        return self._delta(MetricRef("delta", "success@1", (slice_name,)))

    # --- observations -----------------------------------------------------------------------

    def _enough(self, n: int, ref: MetricRef) -> str | None:
        if n == 0:
            return f"no cases{' in slice ' + ref.slice if ref.slice else ''}"
        if ref.slice is not None and n < self.policy.min_cases_per_slice:
            return f"{n} cases < policy minimum {self.policy.min_cases_per_slice} per slice"
        return None

    def observe(self, run: RunData, ref: MetricRef) -> Observation:
        mask = run.slice_mask(ref.slice)
        name = ref.name
        if name in SAMPLED_METRICS and not run.sampled:
            return self.observe(run, MetricRef(ref.namespace, "success@1", ref.args))  # pass@1 ≡ success@1
        if name in SAMPLED_METRICS or (name in RATE_METRICS and run.sampled):
            return self._observe_cases(run, ref)
        if name in RATE_METRICS:
            vec = _rate_vector(run, ref)
            if isinstance(vec, str):
                return Observation(None, inconclusive_reason=vec)
            values, valid = vec
            sel = values[mask & valid]
            n, k = int(sel.size), int(np.sum(sel))
            if n == 0:
                return Observation(None, n=0, inconclusive_reason=self._enough(0, ref))
            lo, hi = wilson_interval(k, n, self.policy.confidence_level)
            return Observation(
                k / n, n=n, lower_ci=lo, upper_ci=hi, count=k, inconclusive_reason=self._enough(n, ref)
            )
        n = int(np.sum(mask))
        if name in PERCENTILES:
            if n == 0:
                return Observation(None, n=0, inconclusive_reason=self._enough(0, ref))
            return Observation(float(np.percentile(run.latency_ms[mask], PERCENTILES[name])), n=n)
        if name == "tokens_per_request":
            return Observation(
                float(np.mean(run.completion_tokens[mask])) if n else None,
                n=n,
                inconclusive_reason=None if n else "no cases",
            )
        if name == "cost_per_1k_tokens_usd":
            return Observation(cost_per_1k(run), n=run.n)
        if name == "steps_to_solve_median":
            solved = run.steps[mask & run.passed]
            solved = solved[~np.isnan(solved)]
            if solved.size == 0:
                return Observation(None, n=0, inconclusive_reason="no solved case with a step count")
            return Observation(float(np.median(solved)), n=int(solved.size))
        return Observation(None, inconclusive_reason=f"unknown metric {name}")

    def _observe_cases(self, run: RunData, ref: MetricRef) -> Observation:
        """A rate, pass@k or pass^k with several samples per case: the mean over cases of the
        per-case values, with the cluster Wilson interval (the case is the unit; n counts cases)."""
        got = case_values(run, ref)
        if isinstance(got, str):
            return Observation(None, inconclusive_reason=got)
        values, mask, totals, _ = got
        v = values[mask]
        n = int(v.size)
        if n == 0:
            return Observation(None, n=0, inconclusive_reason=self._enough(0, ref))
        samples = totals[mask]
        lo, hi = cluster_interval(v, self.policy.confidence_level, max_effective=float(samples.sum()))
        count = None if ref.name in SAMPLED_METRICS else int(np.rint(np.sum(v * samples)))
        return Observation(
            float(np.mean(v)),
            n=n,
            lower_ci=lo,
            upper_ci=hi,
            count=count,
            inconclusive_reason=self._enough(n, ref),
        )

    def _delta(self, ref: MetricRef) -> Observation:
        if self.base is None:
            return Observation(None, inconclusive_reason="no baseline run (pass --baseline-run)")
        if ref.name in SAMPLED_METRICS and not clustered(self.cand, self.base):
            return self._delta(MetricRef(ref.namespace, "success@1", ref.args))  # pass@1 ≡ success@1
        if ref.name in SAMPLED_METRICS or (ref.name in RATE_METRICS and clustered(self.cand, self.base)):
            return self._delta_cases(ref)
        if ref.name not in RATE_METRICS:
            c, b = self.observe(self.cand, ref), self.observe(self.base, ref)
            if c.value is None or b.value is None:
                return Observation(
                    None, inconclusive_reason=c.inconclusive_reason or b.inconclusive_reason or "no value"
                )
            return Observation(c.value - b.value, n=c.n)
        pair = self.paired(ref)
        if isinstance(pair, str):
            return Observation(None, inconclusive_reason=pair)
        cand, base = pair
        n = int(cand.size)
        if n == 0:
            return Observation(None, n=0, inconclusive_reason="no paired cases")
        disc_b, disc_c = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
        if ref.name == "success@1" and ref.slice in self._adjusted:
            p = self._adjusted[ref.slice]
        else:
            p = mcnemar_exact(disc_b, disc_c)
        delta = float(np.mean(cand) - np.mean(base))
        return Observation(
            delta, n=n, p_value=p, count=disc_b + disc_c, inconclusive_reason=self._enough(n, ref)
        )

    def _delta_cases(self, ref: MetricRef) -> Observation:
        """Paired per-case difference of means, with the sign-flip test's p-value (Holm/BH
        adjusted across slices for success@1, as McNemar's is); `count` = cases that differ."""
        got = self.paired_cases(ref)
        if isinstance(got, str):
            return Observation(None, inconclusive_reason=got)
        cand, base, _ = got
        n = int(cand.size)
        if n == 0:
            return Observation(None, n=0, inconclusive_reason="no paired cases")
        if ref.name == "success@1" and ref.slice in self._adjusted:
            p = self._adjusted[ref.slice]
        else:
            test = self.paired_test(ref)
            assert not isinstance(test, str)
            p = test[0]
        d = cand - base
        return Observation(
            float(np.mean(d)),
            n=n,
            p_value=p,
            count=int(np.count_nonzero(d)),
            inconclusive_reason=self._enough(n, ref),
        )

    # --- rules the runs cannot answer ---------------------------------------------------------

    def check_rules(self, rules: list[Rule]) -> list[Problem]:
        """Policy errors the fixed-n gate reveals (exit 2 before anything is evaluated): a field
        the metric does not have here (`fields_of`), and a pass@k or pass^k whose k exceeds the
        samples per case of a run it reads."""
        from releasectl.gate.rules import metric_refs

        problems = []
        for rule in rules:
            for ref in metric_refs(rule):
                fields = fields_of(ref)
                if fields is not None and ref.field not in fields:
                    shown = f"{ref.namespace}.{ref.name}" if ref.namespace else ref.name
                    problems.append(
                        Problem(
                            f"{shown} has no field .{ref.field}",
                            file=rule.source,
                            line=rule.line,
                            col=ref.field_column or ref.column,
                            expected="one of " + ", ".join(f".{f}" for f in fields if f != "value"),
                            found=f".{ref.field}",
                            hint="a field the metric does not have would never decide the rule"
                            + (
                                " (a delta's uncertainty is its .p_value)"
                                if ref.namespace == "delta" and ref.field in ("lower_ci", "upper_ci")
                                else ""
                            ),
                        )
                    )
                    continue
                if ref.name not in SAMPLED_METRICS or ref.namespace == "canary":
                    continue
                k = sample_k(ref)
                if k is None:
                    continue  # validate_rules reports it
                reads = {"baseline": [self.base], "delta": [self.cand, self.base]}.get(
                    ref.namespace or "", [self.cand]
                )
                for run in reads:
                    if run is not None and k > run.samples_per_case:
                        problems.append(
                            Problem(
                                f"{ref.name} with k={k} needs at least {k} samples per case, but"
                                f" {run.path} has {run.samples_per_case} (sampling.n)",
                                file=rule.source,
                                line=rule.line,
                                col=ref.column,
                                expected=f"k <= {run.samples_per_case}",
                                found=f"k={k}",
                                hint="lower k, or replay with sampling.n >= k (the unbiased estimator needs n >= k)",
                            )
                        )
        return problems

    def _canary(self, ref: MetricRef) -> Observation:
        if self.canary is None:
            return Observation(
                None,
                inconclusive_reason="no canary data (run `releasectl canary --out canary.json`, then gate with --canary canary.json)",
            )
        m = (self.canary.get("metrics") or {}).get(ref.name)
        if not isinstance(m, dict):
            return Observation(None, inconclusive_reason=f"canary data has no '{ref.name}'")
        return Observation(
            m.get("value"),
            n=m.get("n"),
            lower_ci=m.get("lower_ci"),
            upper_ci=m.get("upper_ci"),
            p_value=m.get("p_value"),
            count=m.get("count"),
            inconclusive_reason=m.get("inconclusive_reason"),
        )

    # --- tables for gate.json -------------------------------------------------------------

    def side_summary(self, run: RunData, slice_name: str | None) -> dict[str, Any]:
        ref = MetricRef(None, "success@1", (slice_name,) if slice_name else ())
        s = self.observe(run, ref)
        metrics: dict[str, Any] = {}
        for name in ("rule_violation_rate", "format_pass_rate"):
            o = self.observe(run, MetricRef(None, name, ref.args))
            if o.value is not None:
                metrics[name] = round(o.value, 6)
        mask = run.slice_mask(slice_name)
        for vname, arr in run.verifier_pass.items():
            sel = arr[mask & (arr >= 0)]
            if sel.size:
                metrics[f"pass_rate:{vname}"] = round(float(np.mean(sel == 1)), 6)
        for name in ("latency_p95_ms", "tokens_per_request", "steps_to_solve_median"):
            o = self.observe(run, MetricRef(None, name, ref.args))
            if o.value is not None:
                metrics[name] = round(o.value, 4)
        if slice_name is None:
            metrics["cost_per_1k_tokens_usd"] = round(cost_per_1k(run), 8)
        side = {
            "n": s.n or 0,
            "success_at_1": s.value,
            "lower_ci": s.lower_ci,
            "upper_ci": s.upper_ci,
            "metrics": metrics,
        }
        if run.sampled:  # the case is the unit: n counts cases; pass@n and pass^n at the run's n
            k = run.samples_per_case
            side["samples_per_case"] = k
            for name, key in (("pass@k", "pass_at_k"), ("pass^k", "pass_hat_k")):
                o = self.observe(run, MetricRef(None, name, ref.args, (("k", str(k)),)))
                side[key] = {"k": k, "point": o.value, "lower_ci": o.lower_ci, "upper_ci": o.upper_ci}
        return side

    def slice_table(self) -> list[dict[str, Any]]:
        names = list(self.cand.slices) + [
            s for s in (self.base.slices if self.base else []) if s not in self.cand.slices
        ]
        return [self._row(s) for s in sorted(names)]

    def aggregate(self) -> dict[str, Any]:
        return self._row(None)

    def _row(self, slice_name: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "slice": slice_name or "aggregate",
            "candidate": self.side_summary(self.cand, slice_name),
        }
        if self.base is not None:
            row["baseline"] = self.side_summary(self.base, slice_name)
            d = self._delta(MetricRef("delta", "success@1", (slice_name,) if slice_name else ()))
            row["n_paired"] = d.n or 0
            row["delta"] = d.value
            test = self.paired_test(MetricRef(None, "success@1", (slice_name,) if slice_name else ()))
            if not isinstance(test, str):
                p, _, b, c = test
                # With one sample per case: McNemar's discordant pairs. With several: the cases
                # whose success fraction is higher on the baseline (b) / the candidate (c).
                row["discordant"] = {"b": b, "c": c}
                row["p_value"] = self._raw.get(slice_name or "", p)
                row["p_value_adjusted"] = self._adjusted.get(slice_name or "", row["p_value"])
                if clustered(self.cand, self.base):
                    row["paired_test"] = "sign-flip"
        return row


def cost_per_1k(run: RunData) -> float:
    """SPEC §6: gpu_hourly_usd × gpus / (completion tokens / generation_seconds × 3600) × 1000."""
    tokens = float(np.sum(run.completion_tokens))
    seconds = float(run.run.get("generation_seconds") or 0.0)
    if tokens <= 0 or seconds <= 0:
        return float("nan")
    tps = tokens / seconds
    return float(run.run["gpu_hourly_usd"]) * float(run.run["gpus"]) / (tps * 3600) * 1000
