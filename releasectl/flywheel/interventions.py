"""Route each failure cluster to the fastest intervention that could work (seed 001 M5-L04:
"Matching Interventions to Issues")."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

INTERVENTIONS = {
    "prompt_engineering": "~1 day",
    "rag_index_update": "~1 day",
    "sft": "~1 week",
    "rl": "~1 week",
    "sft_and_rl": "~2 weeks (SFT, then RL)",
}
STALE = re.compile(r"\b(latest|current|newest|today|this year|recent|now)\b|\b(19|20)[0-2]\d\b", re.I)
UNSEEN = re.compile(
    r"not familiar|don't know|do not know|not sure|cannot help|can't help|no information", re.I
)


def route(members: list[dict[str, Any]], reasons: list[list[str]], median_tokens: float) -> dict[str, str]:
    """The intervention for one cluster with the evidence for it, checked from fastest to slowest."""
    n = len(members)
    tally: Counter[str] = Counter(r.split(":")[0] for rs in reasons for r in set(rs))
    share = {k: v / n for k, v in tally.items()}
    texts = [f"{m.get('prompt') or ''} {m.get('output') or ''}" for m in members]
    if share.get("format", 0) >= 0.5:
        return _pick(
            "prompt_engineering",
            f"{share['format']:.0%} malformed structured output: a small consistency issue a prompt/template change can fix",
        )
    stale = sum(1 for t in texts if STALE.search(t)) / n
    if stale >= 0.5:
        return _pick(
            "rag_index_update",
            f"{stale:.0%} ask about or answer with time-sensitive facts: outdated knowledge, update the RAG index",
        )
    unseen = sum(1 for m in members if UNSEEN.search(m.get("output") or "")) / n
    if unseen >= 0.5:
        return _pick(
            "sft", f"{unseen:.0%} of answers show the topic is unseen (drift): fine-tune on curated examples"
        )
    if share.get("safety_incident", 0) >= 0.5:
        return _pick(
            "rl",
            f"{share['safety_incident']:.0%} safety incidents: a preference shift (safe > unsafe), train with preference pairs",
        )
    verbose = sum(1 for m in members if (m.get("tokens_generated") or 0) > 2 * max(median_tokens, 1)) / n
    if verbose >= 0.5:
        return _pick(
            "rl",
            f"{verbose:.0%} answers are over twice the median length with low satisfaction: preference shift (concise > verbose)",
        )
    if share.get("error", 0) >= 0.5:
        return _pick(
            "sft_and_rl", f"{share['error']:.0%} hard errors (tool/serving/context): a major capability gap"
        )
    return _pick(
        "sft", "low satisfaction without a narrower cause: consistent style/behaviour change via fine-tuning"
    )


def _pick(name: str, reason: str) -> dict[str, str]:
    return {"intervention": name, "time_to_fix": INTERVENTIONS[name], "reason": reason}
