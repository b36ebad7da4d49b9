"""`releases/channels.yaml`: which release each channel serves, a view rebuilt from the log.

`ChannelsView` is the one definition of the file. As with the history, the rollout path checks
the file by hand (`releasectl.channels.state._fast_view`) and asks this model only to explain a
file that the fast check refuses.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from releasectl.contracts.history import ACTIVE_STATES, MAX_REVISION, Release, RolloutRecord


class ChannelMap(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    staging: Release | None = None
    canary: Release | None = None
    production: Release | None = None


def _active(record: RolloutRecord | None) -> RolloutRecord | None:
    if record is not None and record.state not in ACTIVE_STATES:
        raise ValueError(f"a rollout in state {record.state} is over; the view lists rollouts in progress")
    return record


class RolloutMap(BaseModel):
    """channel -> the rollout in progress there (`releasectl rollout`): candidate, plan, weight."""

    model_config = ConfigDict(strict=True, extra="forbid")

    staging: RolloutRecord | None = None
    canary: RolloutRecord | None = None
    production: RolloutRecord | None = None

    _in_progress = field_validator("staging", "canary", "production")(_active)


class ChannelsView(BaseModel):
    """The current view: each channel's release, rollouts in progress, and the history revision
    it reflects."""

    model_config = ConfigDict(strict=True, extra="forbid")

    channels: ChannelMap
    rollouts: RolloutMap = Field(default_factory=RolloutMap)
    """Written only while a rollout is in progress."""
    revision: Annotated[StrictInt, Field(ge=0, le=MAX_REVISION)] = 0
    """The revision of the last history event this view includes (0: none)."""


SCHEMA_MODEL = ChannelsView

__all__ = ["SCHEMA_MODEL", "ChannelMap", "ChannelsView", "RolloutMap"]
