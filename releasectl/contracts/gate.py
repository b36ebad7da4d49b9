"""gate.json: the gate's decision and every rule behind it. The one reader and writer of the file.

A record is consistent by construction: each pass/fail rule that carries observed, comparator and
threshold must agree with them, and the verdict must be the one its rules give (`verdict_of`).
`promote` relies on that (releasectl/channels/verified.py); docs/trust.md says what it does not
catch (a consistent forgery) and what does.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from releasectl.contracts._types import MAX_TEXT, Artifact, Bool, Count, Finite, Name, Text

Outcome = Literal["pass", "fail", "inconclusive"]
Verdict = Literal["promote", "block", "hold"]
Comparator = Literal[">=", "<=", ">", "<", "==", "!="]

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12),
}
MAX_RULES = 10_000
HINT = "regenerate it with `releasectl gate`; the format is `releasectl schema --artifact gate`"


class RuleResult(Artifact):
    """One rule's evaluation. `extra` keys (e.g. a canary rule's facts) are kept as written."""

    model_config = {**Artifact.model_config, "validate_assignment": False}

    rule: Text
    line: Annotated[int, Field(ge=0, le=10**9)]
    metric: Text
    observed: Finite | None
    comparator: Comparator
    threshold: Finite | None
    threshold_expr: Text
    outcome: Outcome
    detail: Text
    n: Count | None = None
    lower_ci: Finite | None = None
    upper_ci: Finite | None = None
    source: Text | None = None

    @field_validator("outcome")
    @classmethod
    def _outcome_follows_from_values(cls, outcome: str, info: ValidationInfo) -> str:
        if outcome == "inconclusive":
            return outcome  # too little data: an interval can straddle the threshold
        if not {"observed", "threshold", "comparator"} <= set(info.data):
            return outcome  # one of them is invalid and reported on its own
        observed, threshold, comparator = (
            info.data["observed"],
            info.data["threshold"],
            info.data["comparator"],
        )
        if observed is None or threshold is None:
            raise ValueError(f"outcome '{outcome}' without an observed value and a threshold")
        holds = COMPARATORS[comparator](observed, threshold)
        if holds != (outcome == "pass"):
            raise ValueError(
                f"outcome '{outcome}' contradicts observed {observed:g} {comparator} threshold {threshold:g}"
                f" (which is {str(holds).lower()})"
            )
        return outcome

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _HasOutcome(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def rule(self) -> str: ...


def verdict_of(outcomes: Sequence[_HasOutcome]) -> tuple[Verdict, str]:
    """promote when every rule passes; block when any fails; hold when some are inconclusive."""
    failed = [o for o in outcomes if o.outcome == "fail"]
    pending = [o for o in outcomes if o.outcome == "inconclusive"]
    if failed:
        return "block", f"{len(failed)} of {len(outcomes)} rules fail: " + "; ".join(
            o.rule for o in failed[:3]
        ) + (" …" if len(failed) > 3 else "")
    if pending:
        return (
            "hold",
            f"{len(pending)} of {len(outcomes)} rules are inconclusive (too little data): "
            + "; ".join(o.rule for o in pending[:3])
            + (" …" if len(pending) > 3 else ""),
        )
    if not outcomes:
        return "hold", "no rules were evaluated"
    return "promote", f"all {len(outcomes)} rules pass"


class SequentialGate(Artifact):
    """How a `replay --sequential` run was gated: with anytime-valid statistics only, on the cases it
    replayed before it stopped (docs/sequential.md)."""

    statistics: Literal["anytime-valid"]
    policy: Text
    policy_sha256: Text
    same_policy: Bool  # whether the gate's rules are the ones the replay stopped on
    order: Text
    order_seed: Annotated[int, Field(ge=-(10**15), le=10**15)]
    round_size: Annotated[int, Field(ge=1)]
    rounds: Count
    cases_used: Count
    cases_total: Count
    cases_saved: Count
    stopped_early: Bool
    decided: Bool  # whether the policy is decided on these cases (else its undecided rules hold)
    no_regressions_margin: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _counts_add_up(self) -> SequentialGate:
        if self.cases_used > self.cases_total or self.cases_saved != self.cases_total - self.cases_used:
            raise ValueError(
                f"cases_used {self.cases_used} + cases_saved {self.cases_saved} must equal cases_total {self.cases_total}"
            )
        if self.stopped_early != (self.cases_saved > 0):
            raise ValueError("stopped_early must say whether any case was saved")
        if self.rounds > max(1, self.cases_used):
            raise ValueError(
                f"rounds {self.rounds} > cases_used {self.cases_used}: a round has at least one case"
            )
        return self

    def problems(self, record: GateRecord, margin: Any) -> list[tuple[str, str, str, str]]:
        """(field, message, expected, found) where this record contradicts the gate.json around it."""
        out: list[tuple[str, str, str, str]] = []
        if record.verdict == "promote" and not self.decided:
            out.append(("decided", "a promote verdict on a policy not decided", "decided: true", "false"))
        same = record.policy.get("sha256") == self.policy_sha256
        if self.same_policy != same:
            out.append(
                (
                    "same_policy",
                    "does not say whether policy.sha256 is the policy the replay stopped on",
                    f"same_policy: {str(same).lower()}",
                    str(self.same_policy).lower(),
                )
            )
        if record.policy.get("statistics") != "anytime-valid":
            out.append(
                (
                    "statistics",
                    "policy.statistics differs",
                    "anytime-valid",
                    str(record.policy.get("statistics")),
                )
            )
        if margin != self.no_regressions_margin:
            out.append(
                (
                    "no_regressions_margin",
                    "differs from policy.no_regressions_margin",
                    str(self.no_regressions_margin),
                    str(margin),
                )
            )
        n = (record.aggregate.get("candidate") or {}).get("n") if isinstance(record.aggregate, dict) else None
        if n is not None and n != self.cases_used:
            out.append(
                (
                    "cases_used",
                    "differs from the aggregate's candidate cases",
                    f"aggregate n {n}",
                    str(self.cases_used),
                )
            )
        return out


NO_REGRESSIONS = "min delta.success@1 over "  # the metric text of a no_regressions_on rule


def _holds(op: str, a: float | None, b: float | None) -> bool | None:
    return None if a is None or b is None else COMPARATORS[op](a, b)


def rule_problems(rule: RuleResult, *, sequential: bool) -> list[tuple[str, str, str]]:
    """(message, expected, found) for a pass/fail the rule's own interval contradicts.

    A rule decided on an interval (every rule of a sequential gate, and `no_regressions_on` with
    a margin, whose CS or paired interval is `lower_ci`/`upper_ci`) passes only when the whole
    interval is on the passing side of the threshold and fails only when it is wholly on the other:
    `observed` is the deciding end, so an edited `observed` next to its own bounds is caught. A
    fixed-n rule on `.lower_ci` / `.upper_ci` observes that bound, and fails only when the other
    bound misses too (`gate.rules.evaluate_rule`)."""
    if rule.outcome == "inconclusive":
        return []
    op, t, lo, hi = rule.comparator, rule.threshold, rule.lower_ci, rule.upper_ci
    interval = sequential or (rule.metric.startswith(NO_REGRESSIONS) and lo is not None and hi is not None)
    if interval:
        if op in (">=", ">"):
            holds = _holds(op, lo, t) if rule.outcome == "pass" else _holds(op, hi, t) is False
        elif op in ("<=", "<"):
            holds = _holds(op, hi, t) if rule.outcome == "pass" else _holds(op, lo, t) is False
        else:
            same = lo is not None and hi is not None and t is not None and COMPARATORS["=="](lo, hi)
            point = same and COMPARATORS["=="](lo, t)  # type: ignore[arg-type]
            apart = lo is not None and hi is not None and t is not None and (hi < t or lo > t)
            holds = (
                (point if op == "==" else apart)
                if rule.outcome == "pass"
                else (apart if op == "==" else point)
            )
        if not holds:
            return [
                (
                    f"outcome '{rule.outcome}' does not follow from the interval it was decided on",
                    f"every value of [lower_ci, upper_ci] {'' if rule.outcome == 'pass' else 'not '}{op} {t}",
                    f"[{lo}, {hi}]",
                )
            ]
        return []
    for field_name, bound in (("lower_ci", lo), ("upper_ci", hi)):
        if rule.metric.endswith("." + field_name) and bound is not None and rule.observed is not None:
            if not COMPARATORS["=="](rule.observed, bound):
                return [
                    (f"observed is not the rule's {field_name}", f"observed = {bound}", str(rule.observed))
                ]
            other = hi if field_name == "lower_ci" else lo
            if rule.outcome == "fail" and _holds(op, other, t):
                return [
                    (
                        f"outcome 'fail' while the other end of the interval meets {op} {t} (inconclusive)",
                        "both ends miss the threshold",
                        f"[{lo}, {hi}]",
                    )
                ]
    return []


class SideSummary(Artifact):
    """One run's side of a slice-table row (more keys, e.g. pass@k, are kept as written)."""

    n: Count
    success_at_1: Finite | None = None
    lower_ci: Finite | None = None
    upper_ci: Finite | None = None
    metrics: dict[Text, Finite | None] = Field(default_factory=dict)


class SliceRow(Artifact):
    """A row of gate.json's slice table, or its aggregate."""

    slice: Name | None = None  # "aggregate" in the aggregate row
    candidate: SideSummary
    baseline: SideSummary | None = None
    n_paired: Count | None = None
    delta: Finite | None = None
    discordant: dict[Text, Count] | None = None
    p_value: Finite | None = None
    p_value_adjusted: Finite | None = None


MAX_FAILING_EXAMPLES = 10_000  # the gate writes at most 200


class GateRecord(Artifact):
    """gate.json."""

    schema_version: Literal[1] = 1
    release: Name
    baseline_release: Name | None
    stage: Name | None
    manifest_digest: Text
    baseline_manifest_digest: Text | None
    suite_digest: Text
    policy: dict[str, Any]
    rules: Annotated[list[RuleResult], Field(min_length=1, max_length=MAX_RULES)]
    verdict: Verdict  # after `rules`: it is checked against them
    verdict_reason: Annotated[str, Field(max_length=MAX_TEXT)]
    slices: list[dict[str, Any]]
    aggregate: dict[str, Any]
    unmatched_cases: dict[str, list[Text]]
    failing_examples: Annotated[list[dict[str, Any]], Field(max_length=MAX_FAILING_EXAMPLES)]
    failing_total: Count | None = None
    provenance: dict[str, Any]
    sequential: SequentialGate | None = None  # the run was a `replay --sequential` run
    run_url: Text | None = None
    created_at: Text

    @field_validator("slices", "aggregate")
    @classmethod
    def _rows_are_typed(cls, value: Any, info: ValidationInfo) -> Any:
        """Each row (the aggregate unless empty) is a `SliceRow`; kept as written, so gate.json's
        bytes do not change. A wrong count or a non-number is refused with its path."""
        from pydantic import ValidationError

        rows = value if isinstance(value, list) else ([value] if value else [])
        for i, row in enumerate(rows):
            try:
                SliceRow.model_validate(row)
            except ValidationError as e:
                err = e.errors()[0]
                where = (f"[{i}]" if info.field_name == "slices" else "") + "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]
                )
                raise ValueError(f"{info.field_name}{where}: {err['msg']}") from None
        return value

    @field_validator("failing_total")
    @classmethod
    def _examples_within_total(cls, total: int | None, info: ValidationInfo) -> int | None:
        shown = len(info.data.get("failing_examples") or [])
        if total is not None and shown > total:
            raise ValueError(f"{shown} failing examples, more than failing_total {total}")
        return total

    @field_validator("verdict")
    @classmethod
    def _verdict_follows_from_rules(cls, verdict: str, info: ValidationInfo) -> str:
        rules = info.data.get("rules")
        if rules is None:
            return verdict  # missing or invalid rules are reported on their own
        derived, _ = verdict_of(rules)
        if derived != verdict:
            counts = {o: sum(1 for r in rules if r.outcome == o) for o in ("pass", "fail", "inconclusive")}
            raise ValueError(
                f"verdict '{verdict}' disagrees with its rules ({counts['pass']} pass, {counts['fail']} fail,"
                f" {counts['inconclusive']} inconclusive give '{derived}')"
            )
        return verdict

    @model_serializer(mode="wrap")
    def _without_absent_sequential(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("sequential") is None:
            data.pop("sequential", None)  # gate.json of a fixed-n run stays as it was
        return data

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "promote" else 1

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def write(self, path: Path) -> None:
        from releasectl.fsutil import atomic_write_text

        atomic_write_text(path, self.dump())

    @classmethod
    def read(cls, path: Path) -> tuple[GateRecord, str]:
        """(record, sha256 of the file's bytes); BadInput (exit 2) with file:line and field path."""
        from releasectl.contracts._types import read_json_file

        data, raw = read_json_file(
            Path(path), what="gate file", missing_hint="run `releasectl gate ... --out gate.json` first"
        )
        return cls.parse(data, file=str(path), raw=raw), hashlib.sha256(raw).hexdigest()

    @classmethod
    def parse(cls, data: Any, *, file: str, raw: bytes | None = None) -> GateRecord:
        from pydantic import ValidationError

        from releasectl.contracts._types import describe, locate, problems_of
        from releasectl.errors import BadInput, Problem

        if not isinstance(data, dict):
            raise BadInput(
                f"{file}: not a gate result",
                [Problem("wrong type", file=file, line=1, expected="a JSON object", found=describe(data))],
                hint=HINT,
            )
        try:
            record = cls.model_validate(data)
        except ValidationError as e:
            raise BadInput(
                f"{file} is not a valid gate result", locate(problems_of(e, file=file), file, raw), hint=HINT
            ) from None
        problems = [Problem(m, file=file, field=f, expected=x, found=y) for f, m, x, y in record.derived()]
        if problems:
            raise BadInput(f"{file} disagrees with itself", locate(problems, file, raw), hint=HINT)
        return record

    def derived(self) -> list[tuple[str, str, str, str]]:
        """What the record's own statistics contradict, as (field, message, expected, found): each
        rule's outcome re-derived from the numbers that decide it (`rule_problems`), and a
        sequential record's counts, policy and decision against each other."""
        out: list[tuple[str, str, str, str]] = []
        sequential = self.sequential is not None
        margin = self.policy.get("no_regressions_margin")
        for i, rule in enumerate(self.rules):
            for message, expected, found in rule_problems(rule, sequential=sequential):
                out.append(
                    (f"rules[{i}].outcome", f"line {rule.line} ({rule.rule!r}): {message}", expected, found)
                )
        if self.sequential is not None:
            out += [(f"sequential.{f}", m, x, y) for f, m, x, y in self.sequential.problems(self, margin)]
        return out
