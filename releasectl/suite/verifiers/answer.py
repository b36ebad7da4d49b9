"""Answers in tags and numbers: `answer_tag`, `math_correct`, `numeric_tolerance`."""

from __future__ import annotations

import math

from releasectl.suite.registry import Settings, Verdict, VerifyContext, verifier
from releasectl.suite.verifiers._extract import last_number, parse_number, tag_contents


class AnswerTagSettings(Settings):
    tag: str = "answer"
    """The tag that must wrap the final answer, e.g. `answer` for `<answer>5</answer>`."""
    numeric: bool = True
    """Require the tag to hold exactly one number."""


@verifier("answer_tag", "1.0", kind="format", settings=AnswerTagSettings)
def answer_tag(output: str, s: AnswerTagSettings, ctx: VerifyContext) -> Verdict:
    """The final answer is wrapped in <tag>…</tag> (and is a number when numeric)."""
    found = tag_contents(output, s.tag)
    if not found:
        return Verdict(False, f"no <{s.tag}>…</{s.tag}> in the output")
    if s.numeric and parse_number(found[-1]) is None:
        return Verdict(False, f"<{s.tag}> holds {found[-1][:40]!r}, not a single number")
    return Verdict(True, f"<{s.tag}>{found[-1][:40]}</{s.tag}>")


class MathCorrectSettings(Settings):
    tag: str = "answer"
    """The tag holding the final answer."""
    field: str = "answer"
    """The case's `expected` field with the correct number."""


@verifier("math_correct", "1.0", kind="correctness", settings=MathCorrectSettings)
def math_correct(output: str, s: MathCorrectSettings, ctx: VerifyContext) -> Verdict:
    """The number in the final <answer> tag equals the expected answer exactly."""
    expected = float(ctx.expected[s.field])
    found = tag_contents(output, s.tag)
    got = parse_number(found[-1]) if found else None
    if got is None:
        return Verdict(False, f"no number in <{s.tag}>; expected {expected:g}")
    ok = math.isclose(got, expected, rel_tol=0, abs_tol=1e-9)
    return Verdict(ok, f"answer {got:g}, expected {expected:g}")


class NumericToleranceSettings(Settings):
    field: str = "value"
    """The case's `expected` field with the reference value."""
    abs_tol: float = 0.001
    """Largest accepted absolute difference."""
    rel_tol: float = 0.0
    """Largest accepted relative difference (either tolerance suffices)."""
    tag: str | None = "answer"
    """Read the value from this tag when present; otherwise the last number in the output."""


@verifier("numeric_tolerance", "1.0", kind="correctness", settings=NumericToleranceSettings)
def numeric_tolerance(output: str, s: NumericToleranceSettings, ctx: VerifyContext) -> Verdict:
    """The final numeric value is within tolerance of the expected value (e.g. 23 ÷ 13 ≈ 1.769)."""
    expected = float(ctx.expected[s.field])
    found = tag_contents(output, s.tag) if s.tag else []
    got = parse_number(found[-1]) if found else last_number(output)
    if got is None:
        return Verdict(False, f"no number in the output; expected ≈ {expected:g}")
    ok = math.isclose(got, expected, rel_tol=s.rel_tol, abs_tol=s.abs_tol)
    return Verdict(ok, f"value {got:g}, expected {expected:g} ± {s.abs_tol:g}")
