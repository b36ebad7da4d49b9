"""`releases/history.jsonl`: one event per line, the audit log behind every channel move.

`HistoryEvent` is the one definition of an event. The rollback path does not import pydantic
(~250 ms): `releasectl.channels.state.fast_event_ok` accepts only events this model accepts (a
property test holds the two together), and everything else is decided, and its error rendered
with file:line and field path, by this model.

A traffic-step rollout (`releasectl rollout`) adds `action: "rollout"` events, which do not move the
channel: `from` is the release the channel holds (the baseline), `to` the candidate taking
`rollout.weight` % of its traffic. The move that completes a rollout is a `promote` carrying
`rollout.state: completed`; a `rollback` during one carries `rollout.state: aborted`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from releasectl.contracts._types import MAX_TEXT

CHANNEL_NAMES = ("staging", "canary", "production")
MAX_REVISION = 10**12
RELEASE_PATTERN = r"^v\d{1,9}\.\d{1,9}(\.\d{1,9})?$"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_STEPS = 20
ROLLOUT_STATES = ("started", "advanced", "paused", "resumed", "aborted", "completed")
ACTIVE_STATES = ("started", "advanced", "paused", "resumed")
DECISIONS = ("pass", "fail", "undecided", "not_tracked")


def _real_time(value: str) -> str:
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # 2026-13-45 parses the pattern, not this
    return value


Release = Annotated[StrictStr, Field(pattern=RELEASE_PATTERN, max_length=40)]
Text = Annotated[StrictStr, Field(max_length=MAX_TEXT)]
Time = Annotated[StrictStr, Field(pattern=TIME_PATTERN), AfterValidator(_real_time)]


class GateRelied(BaseModel):
    """The gate result a move relied on (recorded by promote, repeated by rollback)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    verdict: Text | None = None
    stage: Text | None = None
    sha256: Annotated[StrictStr, Field(pattern=SHA256_PATTERN)] | None = None
    file: Text | None = None
    run_url: Text | None = None


Weight = Annotated[StrictInt, Field(ge=0, le=100)]
Decision = Literal["pass", "fail", "undecided", "not_tracked"]
Requests = Annotated[StrictInt, Field(ge=0, le=10**15)]


class RolloutAnalysis(BaseModel):
    """The step analysis a rollout move relied on (`releasectl rollout analyze`)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    outcome: Literal["pass", "fail", "hold"]
    canary_requests: Requests
    baseline_requests: Requests
    task_completion: Decision
    latency_p95_ms: Decision
    error_rate: Decision
    satisfaction: Decision


class RolloutRecord(BaseModel):
    """Where a traffic-step rollout stands after this event (seed 004: 5 → 20 → 50 → 100 %)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    release: Release
    """The candidate being rolled out."""
    plan: Annotated[
        list[Annotated[StrictInt, Field(ge=1, le=100)]], Field(min_length=1, max_length=MAX_STEPS)
    ]
    """Canary weight of each step, in %: strictly increasing, ending at 100."""
    step: Annotated[StrictInt, Field(ge=0, lt=MAX_STEPS)]
    """Index of the current step in `plan`."""
    weight: Weight
    """The candidate's share of the channel's traffic now, in %: plan[step]; 0 once aborted."""
    state: Literal["started", "advanced", "paused", "resumed", "aborted", "completed"]
    started: Time
    """When the rollout started."""
    step_started: Time
    """When the current step started: its analysis reads traffic from here on."""
    analysis: RolloutAnalysis | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RolloutRecord:
        plan = self.plan
        if any(b <= a for a, b in zip(plan, plan[1:], strict=False)) or plan[-1] != 100:
            raise ValueError(f"plan {plan}: steps must increase strictly and end at 100")
        if self.step >= len(plan):
            raise ValueError(f"step {self.step} is past the plan's last step ({len(plan) - 1})")
        expected = {"aborted": 0, "completed": 100}.get(self.state, plan[self.step])
        if self.weight != expected:
            raise ValueError(
                f"weight {self.weight} in state {self.state} at step {self.step}: expected {expected}"
            )
        if self.state == "completed" and self.step != len(plan) - 1:
            raise ValueError("a completed rollout is at its last step")
        if self.state == "started" and (self.step != 0 or self.step_started != self.started):
            raise ValueError("a rollout starts at step 0, and its first step when it starts")
        if self.step_started < self.started:
            raise ValueError("step_started is before started")
        return self


# Which rollout states each action may carry.
ROLLOUT_STATES_OF = {
    "rollout": frozenset(("started", "advanced", "paused", "resumed", "aborted")),
    "promote": frozenset(("completed",)),
    "rollback": frozenset(("aborted",)),
}


class HistoryEvent(BaseModel):
    """One line of releases/history.jsonl: who moved which channel from what to what, and why."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    revision: Annotated[StrictInt, Field(ge=1, le=MAX_REVISION)]
    """1 for the first event, then +1 per event."""
    time: Time
    """UTC, ISO 8601 with seconds and a Z."""
    actor: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)]
    action: Literal["promote", "rollback", "rollout"]
    """promote and rollback move the channel to `to`; rollout records a traffic step (no move)."""
    channel: Literal["staging", "canary", "production"]
    from_: Release | None = Field(alias="from")
    """The release the channel held before (null for its first move)."""
    to: Release
    reason: Text
    forced: StrictBool
    """Moved without a passing gate, or past a refusal (`override` says which)."""
    gate: GateRelied | None
    override: Text | None = None
    trigger: dict[str, Any] | None = None
    """What fired an automatic rollback (monitor --auto-rollback, rollout analyze --auto-abort)."""
    rollout: RolloutRecord | None = None
    """The rollout this event starts, steps, pauses, resumes, aborts or completes."""

    @model_validator(mode="after")
    def _moves_somewhere(self) -> HistoryEvent:
        if self.from_ == self.to:
            raise ValueError(f"a move from {self.to} to itself")
        if self.rollout is None:
            if self.action == "rollout":
                raise ValueError("a rollout event needs its `rollout` record")
            return self
        if self.rollout.state not in ROLLOUT_STATES_OF[self.action]:
            allowed = ", ".join(sorted(ROLLOUT_STATES_OF[self.action]))
            raise ValueError(
                f"a {self.action} event carries rollout state {allowed}, not {self.rollout.state}"
            )
        if self.action != "rollback" and self.rollout.release != self.to:
            raise ValueError(f"rollout.release {self.rollout.release} is not the event's `to` ({self.to})")
        if self.action == "rollout" and self.from_ is None:
            raise ValueError("a rollout needs a baseline: the channel's current release in `from`")
        if self.rollout.step_started > self.time:
            raise ValueError("rollout.step_started is after the event's time")
        return self


SCHEMA_MODEL = HistoryEvent

__all__ = [
    "ACTIVE_STATES",
    "CHANNEL_NAMES",
    "MAX_REVISION",
    "ROLLOUT_STATES",
    "SCHEMA_MODEL",
    "GateRelied",
    "HistoryEvent",
    "RolloutAnalysis",
    "RolloutRecord",
]
