"""Plain-text rules: `must_contain`, `must_not_contain`, `word_cap`."""

from __future__ import annotations

import re

from releasectl.suite.registry import Settings, Verdict, VerifyContext, verifier
from releasectl.suite.verifiers._extract import words


class ContainSettings(Settings):
    any_of: list[str] = []
    """Literal phrases; at least one must appear (must_contain) / none may appear (must_not_contain)."""
    all_of: list[str] = []
    """Literal phrases that must all appear (must_contain only)."""
    patterns: list[str] = []
    """Regular expressions, treated like `any_of`."""
    ignore_case: bool = True
    """Compare case-insensitively."""
    expected_field: str | None = None
    """Also require (must_contain) the case's `expected[expected_field]` as a literal."""


def _hits(output: str, s: ContainSettings, phrases: list[str]) -> list[str]:
    flags = re.IGNORECASE if s.ignore_case else 0
    hits = [p for p in phrases if re.search(r"(?<!\w)" + re.escape(p) + r"(?!\w)", output, flags)]
    hits += [p for p in s.patterns if re.search(p, output, flags | re.MULTILINE)]
    return hits


@verifier("must_contain", "1.0", kind="rule", settings=ContainSettings)
def must_contain(output: str, s: ContainSettings, ctx: VerifyContext) -> Verdict:
    """The output contains at least one of `any_of`/`patterns` and every phrase of `all_of`."""
    missing_all = [p for p in s.all_of if not _hits(output, s.model_copy(update={"patterns": []}), [p])]
    if s.expected_field is not None:
        want = str(ctx.expected[s.expected_field])
        if not _hits(output, s.model_copy(update={"patterns": []}), [want]):
            missing_all.append(want)
    if missing_all:
        return Verdict(False, "missing " + ", ".join(repr(p) for p in missing_all))
    if s.any_of or s.patterns:
        hits = _hits(output, s, s.any_of)
        if not hits:
            return Verdict(False, "none of " + ", ".join(repr(p) for p in (s.any_of + s.patterns)[:6]))
        return Verdict(True, f"found {hits[0]!r}")
    return Verdict(True, "all required phrases present")


@verifier("must_not_contain", "1.0", kind="rule", settings=ContainSettings)
def must_not_contain(output: str, s: ContainSettings, ctx: VerifyContext) -> Verdict:
    """The output contains none of `any_of`/`patterns`."""
    hits = _hits(output, s, s.any_of)
    if hits:
        return Verdict(False, f"found forbidden {hits[0]!r}")
    return Verdict(True, "no forbidden phrase")


class WordCapSettings(Settings):
    max_words: int
    """Most words allowed (inclusive)."""


@verifier("word_cap", "1.0", kind="rule", settings=WordCapSettings)
def word_cap_v1_0(output: str, s: WordCapSettings, ctx: VerifyContext) -> Verdict:
    """At most `max_words` whitespace-separated tokens (v1.0 counts every token, symbols too)."""
    n = len(output.split())
    return Verdict(n <= s.max_words, f"{n} words (cap {s.max_words})")


@verifier("word_cap", "1.1", kind="rule", settings=WordCapSettings)
def word_cap_v1_1(output: str, s: WordCapSettings, ctx: VerifyContext) -> Verdict:
    """At most `max_words` words; v1.1 counts words only, not markdown bullets, numbers or symbols."""
    n = len(words(output))
    return Verdict(n <= s.max_words, f"{n} words (cap {s.max_words})")
