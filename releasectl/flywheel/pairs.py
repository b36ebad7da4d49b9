"""Preference pairs from responses to the same (normalised) prompt: safe, concise, satisfying
answers are chosen over unsafe or verbose ones (seed 001: "safe and concise > unsafe and verbose",
"correct and concise > verbose but correct")."""

from __future__ import annotations

import re
from typing import Any


def _key(prompt: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", prompt.lower())).strip()


def _tokens(rec: dict[str, Any]) -> int:
    return int(rec.get("tokens_generated") or len((rec.get("output") or "").split()))


def _rank(rec: dict[str, Any]) -> tuple[int, int, int, str]:
    # Safe first, then higher satisfaction, then shorter; request_id breaks ties deterministically.
    return (
        1 if rec.get("safety_incident") is True else 0,
        -(rec.get("user_satisfaction") or 0),
        _tokens(rec),
        str(rec.get("request_id")),
    )


def preference_pairs(
    records: list[dict[str, Any]], *, min_chosen_satisfaction: int = 4
) -> list[dict[str, Any]]:
    """One pair per prompt with a clearly better and a clearly worse answer."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if (rec.get("output") or "").strip() and rec.get("prompt"):
            groups.setdefault(_key(rec["prompt"]), []).append(rec)
    pairs = []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=_rank)
        chosen, rejected = ranked[0], ranked[-1]
        if (
            chosen is rejected
            or chosen.get("safety_incident") is True
            or (chosen.get("user_satisfaction") or 0) < min_chosen_satisfaction
        ):
            continue
        if rejected.get("safety_incident") is True:
            why = "safe > unsafe"
        elif _tokens(rejected) >= 2 * _tokens(chosen) and (rejected.get("user_satisfaction") or 5) < (
            chosen.get("user_satisfaction") or 0
        ):
            why = "concise > verbose"
        elif (rejected.get("user_satisfaction") or 5) <= 2:
            why = "satisfying > unsatisfying"
        else:
            continue
        pairs.append(
            {
                "prompt": chosen["prompt"],
                "chosen": chosen["output"],
                "rejected": rejected["output"],
                "why": why,
                "chosen_id": chosen.get("request_id"),
                "rejected_id": rejected.get("request_id"),
            }
        )
    return pairs
