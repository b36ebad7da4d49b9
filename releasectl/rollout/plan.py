"""The step plan and the rollout record (`releasectl.contracts.history.RolloutRecord`) each
rollout event carries: pure functions from one record to the next."""

from __future__ import annotations

from typing import Any

from releasectl.channels.state import ACTIVE_STATES, aborted_rollout
from releasectl.errors import BadInput, Problem

DEFAULT_STEPS = "5,20,50,100"
MAX_STEPS = 20

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_STEPS",
    "aborted",
    "aborted_rollout",
    "advanced",
    "completed",
    "describe",
    "is_last_step",
    "parse_steps",
    "paused",
    "resumed",
    "started",
]


def parse_steps(text: str) -> list[int]:
    """`5,20,50,100` → [5, 20, 50, 100]: canary weights in %, strictly increasing, ending at 100,
    with at least one partial step (all at once is `promote`)."""

    def bad(why: str) -> BadInput:
        return BadInput(
            f"--steps {text!r}: {why}",
            [Problem(why, field="--steps", expected="weights in % like 5,20,50,100", found=repr(text))],
            hint="whole percentages between 1 and 100, increasing, the last one 100 (full traffic)",
        )

    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p.isascii() or not p.isdigit() or len(p) > 3 for p in parts):
        raise bad("not a comma-separated list of whole percentages")
    plan = [int(p) for p in parts]
    if len(plan) > MAX_STEPS:
        raise bad(f"{len(plan)} steps; at most {MAX_STEPS}")
    if any(not 1 <= w <= 100 for w in plan):
        raise bad("every weight is between 1 and 100")
    if any(b <= a for a, b in zip(plan, plan[1:], strict=False)):
        raise bad("weights must increase from step to step")
    if plan[-1] != 100:
        raise bad("the last step must be 100 (the rollout ends with the candidate on all traffic)")
    if len(plan) == 1:
        raise BadInput(
            f"--steps {text!r}: a rollout needs at least one partial step before 100",
            [
                Problem(
                    "a one-step plan at 100 % moves all traffic at once",
                    field="--steps",
                    expected="a partial step first, e.g. 5,20,50,100",
                    found=repr(text),
                )
            ],
            hint="to move all traffic at once, promote: releasectl promote vX.Y --to CHANNEL",
        )
    return plan


def started(release: str, plan: list[int], when: str) -> dict[str, Any]:
    return {
        "release": release,
        "plan": list(plan),
        "step": 0,
        "weight": plan[0],
        "state": "started",
        "started": when,
        "step_started": when,
    }


def _active(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "analysis"}


def advanced(record: dict[str, Any], when: str, analysis: dict[str, Any] | None) -> dict[str, Any]:
    """The next step, starting now (its analysis reads traffic from `when` on)."""
    step = record["step"] + 1
    out = {
        **_active(record),
        "step": step,
        "weight": record["plan"][step],
        "state": "advanced",
        "step_started": when,
    }
    return _with(out, analysis)


def completed(record: dict[str, Any], analysis: dict[str, Any] | None) -> dict[str, Any]:
    """Past the last step: the candidate holds the channel (the promote carries this record)."""
    return _with({**_active(record), "state": "completed", "weight": 100}, analysis)


def paused(record: dict[str, Any]) -> dict[str, Any]:
    return {**_active(record), "state": "paused"}


def resumed(record: dict[str, Any]) -> dict[str, Any]:
    return {**_active(record), "state": "resumed"}


def aborted(record: dict[str, Any], analysis: dict[str, Any] | None) -> dict[str, Any]:
    return _with(aborted_rollout(record), analysis)


def _with(record: dict[str, Any], analysis: dict[str, Any] | None) -> dict[str, Any]:
    return {**record, "analysis": analysis} if analysis is not None else record


def is_last_step(record: dict[str, Any]) -> bool:
    return bool(record["step"] == len(record["plan"]) - 1)


def describe(record: dict[str, Any]) -> str:
    """`v1.3 step 2/4 at 20 % (advanced)`."""
    return (
        f"{record['release']} step {record['step'] + 1}/{len(record['plan'])} at {record['weight']} % "
        f"({record['state']})"
    )
