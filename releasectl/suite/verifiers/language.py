"""`language_consistency`: the answer stays in one expected language (no code-switching).

1.0 guesses from stopword lists; 2.0 uses lingua-language-detector (benchmarks/language_detector.py
compares them). Both stay installed: a release pins the version it was evaluated with.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

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


def _consistency(output: str, want: str, s: LanguageSettings, detect: Callable[[str], str | None]) -> Verdict:
    """The verdict both versions give, with `detect` as the only difference."""
    sentences = [x for x in re.split(r"(?<=[.!?])\s+|\n+", output) if x.strip()]
    detected = [d for d in (detect(x) for x in sentences) if d is not None]
    overall = detect(output)
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


@verifier("language_consistency", "1.0", kind="quality", settings=LanguageSettings)
def language_consistency(output: str, s: LanguageSettings, ctx: VerifyContext) -> Verdict:
    """The whole answer is in the expected language, sentence by sentence."""
    return _consistency(output, str(ctx.expected[s.field]), s, detect_language)


# --- 2.0: lingua-language-detector (n-gram models shipped in the wheel, accurate on short text) --

# The suite's languages. The detector only weighs these (plus a case's expected language): a
# smaller set is faster and cannot confuse Spanish with Galician in a suite that has none.
SUITE_LANGUAGES = ("en", "fr", "es", "de", "it", "pt")
MIN_WORDS = 3  # below this a sentence says too little to judge, whatever the detector claims


@functools.lru_cache(maxsize=8)
def _detector(codes: tuple[str, ...]) -> Any:
    """One lingua detector per language set, built on first use (it loads n-gram models lazily)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    languages = [IsoCode639_1.from_str(c) for c in codes]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*languages).build()


def _languages_for(want: str) -> tuple[str, ...]:
    from lingua import IsoCode639_1

    try:
        IsoCode639_1.from_str(want)
    except ValueError:
        return SUITE_LANGUAGES
    return tuple(sorted({*SUITE_LANGUAGES, want}))


def detect_language_lingua(text: str, codes: tuple[str, ...] = SUITE_LANGUAGES) -> str | None:
    """The ISO 639-1 code lingua finds for `text`, or None when it has too few words to say."""
    if len(words(text)) < MIN_WORDS:
        return None
    found = _detector(codes).detect_language_of(text)
    return None if found is None else str(found.iso_code_639_1.name).lower()


@verifier("language_consistency", "2.0", kind="quality", settings=LanguageSettings)
def language_consistency_v2_0(output: str, s: LanguageSettings, ctx: VerifyContext) -> Verdict:
    """The whole answer is in the expected language, sentence by sentence (v2.0: lingua)."""
    want = str(ctx.expected[s.field]).lower()
    codes = _languages_for(want)
    return _consistency(output, want, s, lambda text: detect_language_lingua(text, codes))
