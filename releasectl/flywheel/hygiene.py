"""Data hygiene for the flywheel (seed 001 M5-L04): quality filter, exact and near-duplicate
removal (MinHash LSH), and a bias audit. PII scrubbing is in `pii.py`."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENGLISH_HINTS = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "was",
        "were",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "as",
        "my",
        "me",
        "i",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "how",
        "what",
        "why",
        "which",
        "who",
        "where",
        "when",
        "can",
        "could",
        "do",
        "does",
        "did",
        "with",
        "be",
        "not",
        "no",
        "have",
        "has",
        "will",
        "would",
        "should",
        "if",
        "but",
        "all",
        "any",
        "about",
    ]
)


class FilterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_chars: int = Field(default=3, ge=0, description="Shorter prompts/targets are dropped.")
    max_chars: int = Field(default=4000, gt=0, description="Longer prompts/targets are dropped.")
    min_letter_ratio: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Share of letters among non-space characters below which text is garbage (JSON and prose stay well above).",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="'en' keeps text with English function words (a stop-word heuristic; no language model is available offline).",
    )


class DedupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jaccard_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Estimated Jaccard similarity of word 3-gram shingles at or above which two records are near-duplicates.",
    )
    num_perm: int = Field(default=128, ge=16, description="MinHash permutations.")
    shingle_words: int = Field(default=3, ge=1)


class BiasSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attributes: list[str] = Field(default_factory=lambda: ["locale", "user_segment"])
    max_ratio: float = Field(
        default=1.5,
        gt=1,
        description="A value is skewed when its share is above max_ratio x (or below 1/max_ratio x) the expected share.",
    )
    alpha: float = Field(default=0.01, gt=0, lt=1, description="Chi-square significance level.")
    expected: str = Field(
        default="population",
        pattern="^(population|uniform)$",
        description="Expected shares: the whole input log, or uniform over observed values.",
    )


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def quality_problem(text: str, s: FilterSettings, *, language: bool = True) -> str | None:
    """Why `text` fails the quality filter, or None; `language` checks user text, not outputs
    (which may be JSON or code)."""
    t = text.strip()
    if len(t) < max(1, s.min_chars):
        return "empty" if not t else "too short"
    if len(t) > s.max_chars:
        return "too long"
    visible = [ch for ch in t if not ch.isspace()]
    letters = sum(1 for ch in visible if ch.isalpha())
    if letters / len(visible) < s.min_letter_ratio or re.search(r"(.)\1{7,}", t):
        return "garbage"
    if language and s.languages == ["en"]:
        words = re.findall(r"[a-z']+", t.lower())
        if len(words) >= 4 and not (set(words) & ENGLISH_HINTS):
            return "not English"
    return None


def dedup(
    records: list[dict[str, Any]], key: Any, s: DedupSettings
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Drop exact duplicates (normalised text hash), then near-duplicates (MinHash LSH); the
    first record of each group is kept, so the result is deterministic."""
    from datasketch import MinHash, MinHashLSH

    seen: set[str] = set()
    lsh = MinHashLSH(threshold=s.jaccard_threshold, num_perm=s.num_perm)
    kept: list[dict[str, Any]] = []
    exact = near = 0
    for i, rec in enumerate(records):
        text = _normalise(key(rec))
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            exact += 1
            continue
        seen.add(digest)
        words = text.split()
        n = s.shingle_words
        shingles = {" ".join(words[j : j + n]) for j in range(max(1, len(words) - n + 1))}
        mh = MinHash(num_perm=s.num_perm, seed=1)
        for sh in sorted(shingles):
            mh.update(sh.encode())
        if lsh.query(mh):
            near += 1
            continue
        lsh.insert(str(i), mh)
        kept.append(rec)
    return kept, {"exact_duplicates": exact, "near_duplicates": near}


def bias_audit(
    kept: list[dict[str, Any]], population: list[dict[str, Any]], s: BiasSettings
) -> list[dict[str, Any]]:
    """Per attribute: shares in the kept data vs expected, a chi-square test, and flagged skews."""
    from scipy.stats import chisquare

    report = []
    for attr in s.attributes:
        got = Counter(str(r[attr]) for r in kept if r.get(attr) is not None)
        pop = Counter(str(r[attr]) for r in population if r.get(attr) is not None)
        values = sorted(set(got) | set(pop))
        total = sum(got.values())
        if total == 0 or len(values) < 2:
            report.append({"attribute": attr, "n": total, "skipped": "fewer than 2 values present"})
            continue
        if s.expected == "uniform":
            expected_share = {v: 1 / len(values) for v in values}
        else:
            pop_total = sum(pop.values())
            expected_share = {v: pop[v] / pop_total for v in values}
        f_exp = [max(expected_share[v], 1e-9) * total for v in values]
        scale = total / sum(f_exp)
        test = chisquare([got[v] for v in values], [f * scale for f in f_exp])
        shares = {v: got[v] / total for v in values}
        skews = [
            v
            for v in values
            if expected_share[v] > 0 and not (1 / s.max_ratio <= shares[v] / expected_share[v] <= s.max_ratio)
        ]
        report.append(
            {
                "attribute": attr,
                "n": total,
                "shares": {v: round(shares[v], 4) for v in values},
                "expected": {v: round(expected_share[v], 4) for v in values},
                "chi2": round(float(test.statistic), 4),
                "p_value": float(test.pvalue),
                "skewed": skews if test.pvalue < s.alpha else [],
                "flagged": bool(skews) and bool(test.pvalue < s.alpha),
            }
        )
    return report
