"""The promotion-rules language: parse (lark grammar `rules.lark`), check names, evaluate.

Usage from any context (gate, canary, monitor alerts):

    rules = parse_rules(text, source="checklists/policies/dev_to_staging.rules")
    outcomes = evaluate_rules(rules, resolver)      # resolver: MetricResolver for that context

A resolver turns a `MetricRef` (namespace, name, args, field) into an `Observation`. The
grammar is in docs/rules.md. Nothing here calls `eval`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, Union

from releasectl.contracts.gate import COMPARATORS as _OPS
from releasectl.contracts.gate import Outcome, verdict_of
from releasectl.contracts.gate import RuleResult as RuleOutcome
from releasectl.errors import BadInput, Problem

__all__ = ["RuleOutcome", "verdict_of"]  # re-exported: the one definition is releasectl.contracts.gate

NAMESPACES = ("aggregate", "delta", "canary", "baseline")
FIELDS = ("point", "lower_ci", "upper_ci", "p_value", "count", "n", "value")


@dataclass(frozen=True)
class MetricRef:
    namespace: str | None
    name: str
    args: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()
    field: str = "point"
    column: int = 1
    # Columns of the positional arguments, then of the keyword arguments, and of the field (for
    # the signature check's messages); not part of the reference's identity.
    arg_columns: tuple[int, ...] = dc_field(default=(), compare=False, repr=False)
    field_column: int | None = dc_field(default=None, compare=False, repr=False)

    @property
    def slice(self) -> str | None:
        return self.args[0] if self.args else None

    def __str__(self) -> str:
        sel = ""
        if self.args or self.kwargs:
            parts = list(self.args) + [f"{k}={v if v.isdigit() else repr(v)}" for k, v in self.kwargs]
            sel = "(" + ", ".join(parts) + ")"
        ns = f"{self.namespace}." if self.namespace else ""
        return f"{ns}{self.name}{sel}.{self.field}"


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


Expr = Union[Number, MetricRef, BinOp]  # noqa: UP007


@dataclass(frozen=True)
class Comparison:
    left: Expr
    op: str
    right: Expr
    text: str
    line: int = 1
    source: str | None = None


@dataclass(frozen=True)
class NoRegressions:
    slices: tuple[str, ...]
    text: str
    line: int = 1
    source: str | None = None


Rule = Union[Comparison, NoRegressions]  # noqa: UP007


@dataclass(frozen=True)
class Observation:
    """A metric's value in some context, with what is known about its uncertainty."""

    value: float | None
    n: int | None = None
    lower_ci: float | None = None
    upper_ci: float | None = None
    p_value: float | None = None
    count: int | None = None
    inconclusive_reason: str | None = None

    def get(self, field_name: str) -> float | None:
        if field_name in ("point", "value"):
            return self.value
        v = getattr(self, field_name)
        return None if v is None else float(v)


class MetricResolver(Protocol):
    def resolve(self, ref: MetricRef) -> Observation: ...

    def known_metrics(self) -> list[str]: ...

    def known_slices(self) -> list[str]: ...

    def slice_regression(self, slice_name: str) -> Observation:
        """For no_regressions_on: candidate minus baseline success@1 on one slice."""
        ...


# --- parsing ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Any:
    import logging

    from lark import Lark
    from lark import logger as lark_logger

    grammar = (Path(__file__).with_name("rules.lark")).read_text(encoding="utf-8")
    # cache=True keeps the built LALR tables in the temp dir: ~100 ms saved on every validate. A
    # cache torn by a concurrent writer is rebuilt by lark; silence its log so no traceback shows.
    lark_logger.setLevel(logging.CRITICAL)
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, cache=True)


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"" else s


def _build(tree: Any, text: str, line: int, source: str | None) -> Rule:
    from lark import Token, Tree

    def metric(node: Tree) -> MetricRef:
        segments: list[tuple[str, Any]] = []
        for seg in node.children:
            name = str(seg.children[0])
            selector = seg.children[1] if len(seg.children) > 1 else None
            segments.append((name, selector))
        namespace = None
        if len(segments) > 1 and segments[0][0] in NAMESPACES and segments[0][1] is None:
            namespace = segments.pop(0)[0]
        field_name = "point"
        field_column: int | None = None
        if len(segments) > 1 and segments[-1][0] in FIELDS and segments[-1][1] is None:
            field_name = segments.pop()[0]
            field_column = node.children[-1].meta.column
        selectors = [s for _, s in segments if s is not None]
        if len(selectors) > 1:
            raise _syntax(text, node.meta.column, line, source, "a metric takes one (…) or {…} selector")
        args: list[str] = []
        kwargs: list[tuple[str, str]] = []
        pos_columns: list[int] = []
        kw_columns: list[int] = []
        if selectors and selectors[0].children:
            for arg in selectors[0].children[0].children:
                if arg.data in ("kw_arg", "kw_neg"):
                    sign = "-" if arg.data == "kw_neg" else ""
                    kwargs.append((str(arg.children[0]), sign + _unquote(str(arg.children[1]))))
                    kw_columns.append(arg.meta.column)
                else:
                    if kwargs:
                        raise _syntax(
                            text,
                            arg.meta.column,
                            line,
                            source,
                            "positional argument after a keyword argument",
                        )
                    args.append(_unquote(str(arg.children[0])))
                    pos_columns.append(arg.meta.column)
        return MetricRef(
            namespace,
            ".".join(n for n, _ in segments),
            tuple(args),
            tuple(kwargs),
            field_name,
            node.meta.column,
            arg_columns=(*pos_columns, *kw_columns),
            field_column=field_column,
        )

    def finite(token: Any) -> Number:
        value = float(token)
        if not math.isfinite(value):
            column = getattr(token, "column", None) or 1
            raise _syntax(text, column, line, source, f"{token} is not a finite number", "a finite threshold")
        return Number(value)

    def expr(node: Any) -> Expr:
        if isinstance(node, Token):
            return finite(node)
        if node.data == "number":
            return finite(node.children[0])
        if node.data == "neg":
            inner = expr(node.children[0])
            return Number(-inner.value) if isinstance(inner, Number) else BinOp("*", Number(-1.0), inner)
        if node.data == "binop":
            return BinOp(str(node.children[1]), expr(node.children[0]), expr(node.children[2]))
        if node.data == "metric":
            return metric(node)
        raise _syntax(text, 1, line, source, f"unexpected {node.data}")

    if tree.data == "no_regressions":
        names: list[str] = []
        if tree.children:
            names = [_unquote(str(t)) for t in tree.children[0].children]
        return NoRegressions(tuple(names), text, line, source)
    left, op, right = tree.children
    return Comparison(expr(left), str(op), expr(right), text, line, source)


_QUOTE = 100  # characters of a long rule quoted around the error's column


def _syntax(
    text: str, column: int, line: int, source: str | None, message: str, expected: str | None = None
) -> BadInput:
    whole = text.rstrip("\n")
    start = max(0, column - 1 - _QUOTE // 2) if len(whole) > _QUOTE else 0
    text = (
        ("…" if start else "") + whole[start : start + _QUOTE] + ("…" if start + _QUOTE < len(whole) else "")
    )
    caret = " " * (max(0, column - 1 - start) + (1 if start else 0)) + "^"
    return BadInput(
        f"rule syntax error: {message}",
        [
            Problem(
                message,
                file=source,
                line=line,
                col=column,
                expected=expected,
                found=None,
                hint=f"here:\n    {text}\n    {caret}",
            )
        ],
    )


def _describe_expected(tokens: Iterable[str]) -> str:
    names = {
        "COMPARATOR": "a comparator (>=, <=, ==, <, >, !=)",
        "NUMBER": "a number",
        "SEG": "a metric name",
        "STRING": "a quoted string",
        "LPAR": "'('",
        "RPAR": "')'",
        "LSQB": "'['",
        "RSQB": "']'",
        "DOT": "'.'",
        "COMMA": "','",
        "COLON": "':'",
        "LBRACE": "'{'",
        "RBRACE": "'}'",
        "ADDOP": "'+' or '-'",
        "MULOP": "'*' or '/'",
        "EQUAL": "'='",
        "MINUS": "'-'",
    }
    return ", ".join(sorted({names.get(t, t) for t in tokens}))


def parse_rule(text: str, *, line: int = 1, source: str | None = None) -> Rule:
    """Parse one rule. Syntax errors are `BadInput` with the column and a caret under it."""
    from lark.exceptions import (
        LarkError,
        UnexpectedCharacters,
        UnexpectedEOF,
        UnexpectedInput,
        UnexpectedToken,
    )

    stripped = text.split("#", 1)[0].rstrip() if "'" not in text and '"' not in text else text.rstrip()
    if not stripped.strip():
        raise _syntax(text, 1, line, source, "empty rule")
    if len(text) > MAX_RULE_CHARS:
        raise _syntax(
            text, 1, line, source, f"rule is {len(text):,} characters long", f"at most {MAX_RULE_CHARS:,}"
        )
    try:
        tree = _parser().parse(stripped)
    except UnexpectedToken as e:
        found = "end of rule" if e.token.type == "$END" else repr(str(e.token))
        column = len(stripped) + 1 if e.token.type == "$END" or not e.column or e.column < 1 else e.column
        raise _syntax(
            text, column, line, source, f"unexpected {found}", _describe_expected(e.expected)
        ) from None
    except UnexpectedCharacters as e:
        raise _syntax(
            text,
            e.column,
            line,
            source,
            f"unexpected character {text[e.pos_in_stream]!r}"
            if e.pos_in_stream is not None and e.pos_in_stream < len(text)
            else "unexpected character",
        ) from None
    except UnexpectedEOF as e:
        raise _syntax(
            text, len(stripped) + 1, line, source, "the rule ends too early", _describe_expected(e.expected)
        ) from None
    except (UnexpectedInput, LarkError) as e:
        raise _syntax(text, 1, line, source, f"cannot parse: {type(e).__name__}") from None
    except RecursionError:
        raise _syntax(text, 1, line, source, "rule is nested too deeply") from None
    if (depth := _depth(tree)) > MAX_RULE_DEPTH:
        raise _syntax(
            text,
            1,
            line,
            source,
            f"expression nested {depth} levels deep",
            f"at most {MAX_RULE_DEPTH} levels",
        )
    return _build(tree, text.strip(), line, source)


MAX_RULE_CHARS = 8192  # one rule's line; what gate.json records of it stays within its bounds
MAX_RULE_DEPTH = 64  # operators and signs nested in one rule; every later step walks the tree recursively


def _depth(tree: Any) -> int:
    """The parse tree's depth, walked without recursion (so any depth lark returns is measured)."""
    from lark import Tree

    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return deepest


def parse_rules(
    text: str, *, source: str | None = None, base_dir: Path | None = None, _seen: tuple[str, ...] = ()
) -> list[Rule]:
    """Parse a rules file: one rule per line, `#` comments, and `include: other.rules` lines
    (resolved relative to `base_dir`). Every syntax error in the file is reported at once."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("include:"):
            target = line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"")
            if base_dir is None:
                problems.append(Problem("include is only allowed in rules files", file=source, line=lineno))
                continue
            path = (base_dir / target).resolve()
            if str(path) in _seen:
                problems.append(Problem(f"include cycle through {target}", file=source, line=lineno))
                continue
            try:
                rules += parse_rules_file(
                    path,
                    display=str(Path(source).parent / target) if source else target,
                    _seen=(*_seen, str(path)),
                )
            except BadInput as e:
                problems += e.problems or [Problem(e.message, file=source, line=lineno)]
            continue
        try:
            rule = parse_rule(raw, line=lineno, source=source)
        except BadInput as e:
            problems += e.problems
            continue
        rules.append(rule)
        problems += signature_problems([rule])
    if problems:
        raise BadInput(f"{source or 'rules'}: {len(problems)} rule error(s)", problems)
    return rules


def parse_rules_file(path: Path, *, display: str | None = None, _seen: tuple[str, ...] = ()) -> list[Rule]:
    from releasectl.safeio import read_text

    display = display or str(path)
    if not Path(path).exists() and not Path(path).is_symlink():
        raise BadInput(
            f"rules file {display} does not exist",
            hint="promotion policies live in checklists/policies/*.rules",
        )
    text = read_text(path, what="rules file", name=display)
    return parse_rules(
        text, source=display, base_dir=Path(path).parent, _seen=(*_seen, str(Path(path).resolve()))
    )


# --- names -----------------------------------------------------------------------------------

# Metrics over run results, and which take a slice. Aliases are the seed's names over verifier
# pass rates (SPEC §6).
GATE_METRICS: dict[str, str] = {
    "success@1": "share of cases where every verifier passed",
    "pass_rate": "share of cases whose verifier V passed: pass_rate(S, 'V')",
    "rule_violation_rate": "share of cases where any verifier of kind 'rule' failed",
    "format_pass_rate": "share of cases where every verifier of kind 'format' passed",
    "math_correct_rate": "alias: pass_rate(S, 'math_correct')",
    "api_version_match_rate": "alias: pass_rate(S, 'api_version_match')",
    "tool_call_correctness.schema": "alias: pass_rate(S, 'tool_call_schema')",
    "steps_to_solve_median": "median steps over solved cases",
    "latency_p50_ms": "latency percentile over cases (ms)",
    "latency_p95_ms": "latency percentile over cases (ms)",
    "latency_p99_ms": "latency percentile over cases (ms)",
    "tokens_per_request": "mean completion tokens per case",
    "cost_per_1k_tokens_usd": "gpu_hourly_usd × gpus / (completion tokens/s × 3600) × 1000",
    "pass@k": "chance that k of a case's samples include a pass (unbiased, Chen et al. 2021): pass@k(S, k=5)",
    "pass^k": "chance that k of a case's samples all pass (unbiased): pass^k(S, k=5)",
}
# Metrics over a case's repeated samples (sampling.n), which take k as `k=`.
SAMPLED_METRICS = ("pass@k", "pass^k")
# Metrics `releasectl canary` observes on live traffic (namespace `canary.`).
CANARY_METRICS = (
    "abandon_rate",
    "safety_incidents",
    "latency_p95_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "cost_per_1k_tokens_usd",
    "error_rate",
    "requests",
    "latency_mann_whitney",
    "latency_histogram_test",
)
ALIASES = {
    "math_correct_rate": "math_correct",
    "api_version_match_rate": "api_version_match",
    "tool_call_correctness.schema": "tool_call_schema",
}


@dataclass(frozen=True)
class Signature:
    """What a metric takes: positional arguments in order (the first, when named "slice", is the
    slice), how many are required, and keyword arguments (each at most once). Anything else is a
    policy error: an argument the gate would not read would silently change what a rule means."""

    positional: tuple[str, ...] = ("slice",)
    required: int = 0
    keywords: tuple[str, ...] = ()
    required_keywords: tuple[str, ...] = ()

    def usage(self, name: str, namespace: str | None) -> str:
        """How to write it, e.g. `pass@k(S, k=K)`, `success@1 or success@1(S)`."""
        ns = f"{namespace}." if namespace else ""
        pos = self.positional_in(namespace)
        spelled = {"slice": "S", "verifier": "'V'", "version": "'v'"}
        args = [spelled.get(p, p) for p in pos] + [f"{k}={'K' if k == 'k' else '…'}" for k in self.keywords]
        if not args:
            return f"{ns}{name} (no arguments)"
        full = f"{ns}{name}({', '.join(args)})"
        if self.required == 0 and not self.required_keywords:
            return f"{ns}{name} or {full}"
        return full

    def positional_in(self, namespace: str | None) -> tuple[str, ...]:
        """`aggregate.` pools every case: it takes no slice (nor what follows one)."""
        return () if namespace == "aggregate" else self.positional


_SLICE_ONLY = Signature()
SIGNATURES: dict[str, Signature] = {
    "success@1": _SLICE_ONLY,
    "pass_rate": Signature(("slice", "verifier"), required=2),
    "rule_violation_rate": _SLICE_ONLY,
    "format_pass_rate": Signature(keywords=("tag",)),
    "math_correct_rate": _SLICE_ONLY,
    "api_version_match_rate": Signature(("slice", "version")),
    "tool_call_correctness.schema": _SLICE_ONLY,
    "steps_to_solve_median": _SLICE_ONLY,
    "latency_p50_ms": _SLICE_ONLY,
    "latency_p95_ms": _SLICE_ONLY,
    "latency_p99_ms": _SLICE_ONLY,
    "tokens_per_request": _SLICE_ONLY,
    "cost_per_1k_tokens_usd": Signature(()),  # the run's cost: no slice has its own GPU time
    "pass@k": Signature(keywords=("k",), required_keywords=("k",)),
    "pass^k": Signature(keywords=("k",), required_keywords=("k",)),
}
CANARY_SIGNATURE = Signature(())  # canary.json metrics are over all live traffic


def _signature_problem(ref: MetricRef) -> tuple[int, str, str, str, str] | None:
    """(column, message, expected, found, hint) when `ref`'s arguments do not fit its metric's
    signature; None when they do or the metric is unknown (`validate_rules` names those)."""
    if ref.namespace == "canary":
        if ref.name not in CANARY_METRICS:
            return None
        sig = CANARY_SIGNATURE
    elif ref.name in SIGNATURES:
        sig = SIGNATURES[ref.name]
    else:
        return None
    shown = f"{ref.namespace}.{ref.name}" if ref.namespace else ref.name
    usage = sig.usage(ref.name, ref.namespace)
    cols = ref.arg_columns or (ref.column,) * (len(ref.args) + len(ref.kwargs))
    pos_cols, kw_cols = cols[: len(ref.args)], cols[len(ref.args) :]
    allowed = sig.positional_in(ref.namespace)
    found_args = ", ".join([*ref.args, *(f"{k}={v}" for k, v in ref.kwargs)])
    if len(ref.args) > len(allowed):
        extra = ref.args[len(allowed)]
        if ref.namespace == "aggregate" and sig.positional:
            why = f"{shown} pools every case and takes no slice"
            hint = f"for one slice write {ref.name}({', '.join(ref.args)}{', ' if ref.kwargs else ''}{', '.join(f'{k}={v}' for k, v in ref.kwargs)})"
        else:
            takes = ", ".join(allowed) if allowed else "none"
            why = f"{shown} takes {len(allowed)} positional argument(s) ({takes}); '{extra}' is one too many"
            hint = "an argument the gate does not read would change what the rule means"
        return pos_cols[len(allowed)], why, usage, found_args, hint
    if len(ref.args) < sig.required and ref.namespace != "aggregate":
        missing = sig.positional[len(ref.args)]
        return (
            ref.column,
            f"{shown} needs its {missing}",
            usage,
            found_args or "no arguments",
            f"write {usage}",
        )
    seen: set[str] = set()
    for (key, value), col in zip(ref.kwargs, kw_cols, strict=True):
        if key in seen:
            return col, f"{key}= is given twice in {shown}", usage, found_args, f"keep one {key}="
        seen.add(key)
        if key not in sig.keywords:
            if key in allowed:
                hint = f"the {key} is positional: {ref.name}({value})"
            elif sig.keywords:
                hint = f"{shown} takes the keyword(s) {', '.join(k + '=' for k in sig.keywords)} only"
            else:
                hint = f"{shown} takes no keyword argument"
            return col, f"{shown} has no argument {key}=", usage, f"{key}={value}", hint
        if key == "k" and (not value.isdigit() or int(value) < 1):
            example = (
                f"{ref.name}({ref.slice or 'S'}, k=5)" if ref.namespace != "aggregate" else f"{shown}(k=5)"
            )
            return col, f"{shown} needs k, a positive integer", "k=1, 2, …", f"k={value}", f"e.g. {example}"
    for key in sig.required_keywords:
        if key not in seen:
            example = (
                f"{ref.name}({ref.slice or 'S'}, k=5)" if ref.namespace != "aggregate" else f"{shown}(k=5)"
            )
            return (
                ref.column,
                f"{shown} needs {key}=, a positive integer",
                usage,
                f"no {key}=",
                f"e.g. {example}",
            )
    return None


def signature_problems(rules: list[Rule]) -> list[Problem]:
    """Every metric reference whose arguments do not fit its metric's signature (`SIGNATURES`):
    too many or too few positional arguments, an unknown or repeated keyword, a k that is not a
    positive integer. Checked when a rules file is parsed, so `gate`, `validate` and
    `replay --sequential` refuse exactly the same rules."""
    problems = []
    for rule in rules:
        for ref in metric_refs(rule):
            got = _signature_problem(ref)
            if got is not None:
                col, message, expected, found, hint = got
                problems.append(
                    Problem(
                        message,
                        file=rule.source,
                        line=rule.line,
                        col=col,
                        expected=expected,
                        found=found,
                        hint=f"{hint}\n    {rule.text}\n    " + " " * max(0, col - 1) + "^",
                    )
                )
    return problems


def _metric_refs(expr: Expr) -> list[MetricRef]:
    if isinstance(expr, MetricRef):
        return [expr]
    if isinstance(expr, BinOp):
        return _metric_refs(expr.left) + _metric_refs(expr.right)
    return []


def metric_refs(rule: Rule) -> list[MetricRef]:
    if isinstance(rule, NoRegressions):
        return []
    return _metric_refs(rule.left) + _metric_refs(rule.right)


def _near(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else None


def validate_rules(
    rules: list[Rule],
    *,
    slices: set[str],
    verifiers: set[str] | None = None,
    metrics: Iterable[str] | None = None,
    canary_metrics: Iterable[str] | None = None,
) -> list[Problem]:
    """Static check for checklist item 2: every metric, slice and verifier named exists."""
    known = set(metrics or GATE_METRICS)
    canary_known = set(canary_metrics or CANARY_METRICS)
    problems: list[Problem] = []

    def problem(rule: Rule, col: int, message: str, hint: str | None) -> None:
        problems.append(Problem(message, file=rule.source, line=rule.line, col=col, hint=hint))

    for rule in rules:
        if isinstance(rule, NoRegressions):
            for s in rule.slices:
                if s not in slices:
                    problem(rule, 1, f"no_regressions_on: unknown slice '{s}'", _near(s, slices))
            continue
        for ref in metric_refs(rule):
            pool = canary_known if ref.namespace == "canary" else known
            if ref.name.lower() in ("nan", "inf", "infinity"):
                problem(rule, ref.column, f"{ref.name} is not a finite number", "thresholds must be finite")
                continue
            if ref.name not in pool:
                spelled = re.fullmatch(r"pass([@^])(\d+)", ref.name)
                problem(
                    rule,
                    ref.column,
                    f"unknown metric '{ref.name}'",
                    f"write pass{spelled[1]}k({ref.slice or 'slice'}, k={spelled[2]})"
                    if spelled and ref.namespace != "canary"
                    else _near(ref.name, pool) or "known: " + ", ".join(sorted(pool)),
                )
                continue
            if ref.slice is not None and ref.namespace != "canary" and ref.slice not in slices:
                problem(rule, ref.column, f"unknown slice '{ref.slice}' in {ref}", _near(ref.slice, slices))
            # Arguments (k=, a verifier, no extra ones) were checked when the file was parsed
            # (`signature_problems`); verifier instance names are checked at gate time.
    return problems


def unknown_names(rules: list[Rule], *, slices: set[str], verifiers: set[str]) -> list[Problem]:
    """At gate time: every metric and slice a rule names must exist (as `validate` checks), and
    every verifier a `pass_rate(S, 'V')` names must be in the runs."""
    problems = validate_rules(rules, slices=slices)
    for rule in rules:
        for ref in metric_refs(rule):
            if ref.name == "pass_rate" and ref.namespace != "canary" and len(ref.args) > 1:
                name = ref.args[1]
                if name not in verifiers:
                    problems.append(
                        Problem(
                            f"unknown verifier '{name}' in {ref}",
                            file=rule.source,
                            line=rule.line,
                            col=ref.column,
                            hint=_near(name, verifiers)
                            or "verifiers in the runs: " + ", ".join(sorted(verifiers)),
                        )
                    )
    return problems


# --- evaluation ------------------------------------------------------------------------------


class _Inconclusive(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _value(expr: Expr, resolver: MetricResolver) -> float:
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, MetricRef):
        obs = resolver.resolve(expr)
        if obs.inconclusive_reason:
            raise _Inconclusive(f"{expr}: {obs.inconclusive_reason}")
        v = obs.get(expr.field)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise _Inconclusive(f"{expr}: no value")
        return v
    a, b = _value(expr.left, resolver), _value(expr.right, resolver)
    if expr.op == "+":
        return a + b
    if expr.op == "-":
        return a - b
    if expr.op == "*":
        return a * b
    if b == 0:
        raise _Inconclusive("division by zero")
    return a / b


def _expr_text(expr: Expr) -> str:
    if isinstance(expr, Number):
        return f"{expr.value:g}"
    if isinstance(expr, MetricRef):
        return str(expr)
    return f"{_expr_text(expr.left)} {expr.op} {_expr_text(expr.right)}"


def evaluate_rule(rule: Rule, resolver: MetricResolver) -> RuleOutcome:
    if isinstance(rule, NoRegressions):
        return _evaluate_no_regressions(rule, resolver)
    left_text, right_text = _expr_text(rule.left), _expr_text(rule.right)
    base = RuleOutcome(
        rule=rule.text,
        line=rule.line,
        metric=left_text,
        observed=None,
        comparator=rule.op,  # type: ignore[arg-type]  # the grammar admits only these
        threshold=None,
        threshold_expr=right_text,
        outcome="inconclusive",
        detail="",
        source=rule.source,
    )
    try:
        threshold = _value(rule.right, resolver)
    except _Inconclusive as e:
        base.detail = e.reason
        return base
    base.threshold = threshold
    obs: Observation | None = None
    if isinstance(rule.left, MetricRef):
        obs = resolver.resolve(rule.left)
        base.n, base.lower_ci, base.upper_ci = obs.n, obs.lower_ci, obs.upper_ci
    try:
        observed = _value(rule.left, resolver)
    except _Inconclusive as e:
        base.detail = e.reason
        return base
    base.observed = observed
    ok = _OPS[rule.op](observed, threshold)
    # An interval bound that misses the threshold while the other bound meets it cannot decide:
    # the data are compatible with both outcomes, so the rule is inconclusive, not failed.
    if (
        not ok
        and isinstance(rule.left, MetricRef)
        and obs is not None
        and rule.left.field in ("lower_ci", "upper_ci")
    ):
        other = obs.upper_ci if rule.left.field == "lower_ci" else obs.lower_ci
        if other is not None and _OPS[rule.op](other, threshold):
            base.detail = f"{rule.left.field} {observed:.4g} misses {threshold:g} but the interval [{obs.lower_ci:.4g}, {obs.upper_ci:.4g}] reaches it: too few cases to decide (n={obs.n})"
            return base
    base.outcome = "pass" if ok else "fail"
    base.detail = f"{observed:.4g} {rule.op} {threshold:.4g}" + ("" if ok else " is false")
    return base


def _evaluate_no_regressions(rule: NoRegressions, resolver: MetricResolver) -> RuleOutcome:
    worst: tuple[float, str, int | None] | None = None
    inconclusive: list[str] = []
    regressed: list[str] = []
    for s in rule.slices:
        obs = resolver.slice_regression(s)
        if obs.inconclusive_reason:
            inconclusive.append(f"{s}: {obs.inconclusive_reason}")
            continue
        assert obs.value is not None
        if worst is None or obs.value < worst[0]:
            worst = (obs.value, s, obs.n)  # n: the paired cases (with several samples, cases, not samples)
        if obs.value < 0:
            regressed.append(f"{s} ({obs.value:+.3f})")
    outcome: Outcome = "fail" if regressed else ("inconclusive" if inconclusive else "pass")
    detail = (
        "regressed: " + ", ".join(regressed)
        if regressed
        else ("; ".join(inconclusive) if inconclusive else "no protected slice regressed")
    )
    return RuleOutcome(
        rule=rule.text,
        line=rule.line,
        metric="min delta.success@1 over " + ", ".join(rule.slices),
        observed=worst[0] if worst else None,
        n=worst[2] if worst else None,
        comparator=">=",
        threshold=0.0,
        threshold_expr="0 (baseline)",
        outcome=outcome,
        detail=detail,
        source=rule.source,
    )


def evaluate_rules(rules: list[Rule], resolver: MetricResolver) -> list[RuleOutcome]:
    """Every rule's outcome. A resolver with `check_rules` (the gate's) first refuses the policy
    errors only its data reveal, e.g. pass@k with k above the runs' samples per case (exit 2)."""
    check = getattr(resolver, "check_rules", None)
    if check is not None:
        problems = check(rules)
        if problems:
            source = next((p.file for p in problems if p.file), None) or "rules"
            raise BadInput(
                f"{source}: {len(problems)} rule(s) the gate cannot evaluate as written",
                problems,
                hint="a rule that cannot be evaluated would silently weaken the policy; fix the rule",
            )
    return [evaluate_rule(r, resolver) for r in rules]


def needs_baseline(rules: list[Rule]) -> list[Rule]:
    """The rules that compare with a baseline run (delta.*, baseline.*, no_regressions_on)."""
    return [
        r
        for r in rules
        if isinstance(r, NoRegressions)
        or any(ref.namespace in ("delta", "baseline") for ref in metric_refs(r))
    ]
