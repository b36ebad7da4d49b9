"""`releases/history.jsonl`: one event per line, the audit log behind every channel move.

`HistoryEvent` is the one definition of an event. The rollback path does not import pydantic
(~250 ms): `releasectl.channels.state.fast_event_ok` accepts only events this model accepts (a
property test holds the two together), and everything else is decided, and its error rendered
with file:line and field path, by this model.
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


class HistoryEvent(BaseModel):
    """One line of releases/history.jsonl: who moved which channel from what to what, and why."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    revision: Annotated[StrictInt, Field(ge=1, le=MAX_REVISION)]
    """1 for the first event, then +1 per event."""
    time: Time
    """UTC, ISO 8601 with seconds and a Z."""
    actor: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)]
    action: Literal["promote", "rollback"]
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
    """What fired an automatic rollback (monitor --auto-rollback)."""

    @model_validator(mode="after")
    def _moves_somewhere(self) -> HistoryEvent:
        if self.from_ == self.to:
            raise ValueError(f"a move from {self.to} to itself")
        return self


SCHEMA_MODEL = HistoryEvent

__all__ = ["CHANNEL_NAMES", "MAX_REVISION", "SCHEMA_MODEL", "GateRelied", "HistoryEvent"]
