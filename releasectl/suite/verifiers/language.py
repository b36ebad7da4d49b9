"""`language_consistency`: the answer stays in one expected language (no code-switching)."""

from __future__ import annotations

import re

from releasectl.suite.registry import Settings, Verdict, VerifyContext, verifier
from releasectl.suite.verifiers._extract import words

# Frequent function words; enough to tell these languages apart in a sentence or two.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "of",
            "to",
            "in",
            "that",
            "it",
            "for",
            "on",
            "with",
            "as",
            "was",
            "this",
            "be",
            "you",
            "at",
            "by",
            "not",
            "or",
            "have",
            "from",
            "an",
            "which",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "et",
            "est",
            "sont",
            "des",
            "du",
            "un",
            "une",
            "que",
            "qui",
            "dans",
            "pour",
            "pas",
            "sur",
            "avec",
            "au",
            "aux",
            "ce",
            "cette",
            "il",
            "elle",
            "nous",
            "vous",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "y",
            "es",
            "son",
            "de",
            "del",
            "un",
            "una",
            "que",
            "en",
            "por",
            "para",
            "con",
            "no",
            "se",
            "su",
            "al",
            "lo",
            "como",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "sind",
            "ein",
            "eine",
            "nicht",
            "mit",
            "den",
            "dem",
            "zu",
            "von",
            "auf",
            "für",
            "im",
            "sie",
            "es",
            "ich",
            "wir",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "lo",
            "la",
            "gli",
            "le",
            "e",
            "è",
            "sono",
            "di",
            "del",
            "della",
            "un",
            "una",
            "che",
            "per",
            "con",
            "non",
            "in",
            "si",
            "al",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "e",
            "é",
            "são",
            "de",
            "do",
            "da",
            "um",
            "uma",
            "que",
            "em",
            "para",
            "com",
            "não",
            "no",
            "na",
            "se",
            "ao",
        ]
    ),
}


def detect_language(text: str) -> str | None:
    """The language whose function words dominate `text`, or None when there is too little signal."""
    tokens = [w.lower() for w in words(text)]
    scores = {lang: sum(t in sw for t in tokens) for lang, sw in STOPWORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] < 2 or ranked[0] == ranked[1]:
        return None
    return best


class LanguageSettings(Settings):
    field: str = "language"
    """The case's `expected` field holding the language code (en, fr, es, de, it, pt)."""
    min_consistent: float = 0.8
    """Share of detectable sentences that must be in the expected language."""


@verifier("language_consistency", "1.0", kind="quality", settings=LanguageSettings)
def language_consistency(output: str, s: LanguageSettings, ctx: VerifyContext) -> Verdict:
    """The whole answer is in the expected language, sentence by sentence."""
    want = str(ctx.expected[s.field])
    sentences = [x for x in re.split(r"(?<=[.!?])\s+|\n+", output) if x.strip()]
    detected = [d for d in (detect_language(x) for x in sentences) if d is not None]
    overall = detect_language(output)
    if overall is None and not detected:
        return Verdict(False, f"too little text to tell the language; expected {want}")
    if overall != want:
        return Verdict(False, f"answer is in {overall or 'an unknown language'}, expected {want}")
    share = sum(d == want for d in detected) / len(detected) if detected else 1.0
    if share < s.min_consistent:
        others = sorted({d for d in detected if d != want})
        return Verdict(
            False, f"switches language: {share:.0%} of sentences in {want}, others in {', '.join(others)}"
        )
    return Verdict(True, f"{want} throughout ({len(detected)} sentences)")
