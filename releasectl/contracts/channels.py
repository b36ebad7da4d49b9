"""`releases/channels.yaml`: which release each channel serves, a view rebuilt from the log.

`ChannelsView` is the one definition of the file. As with the history, the rollback path checks
the file by hand (`releasectl.channels.state._fast_view`) and asks this model only to explain a
file that the fast check refuses.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from releasectl.contracts.history import MAX_REVISION, Release


class ChannelMap(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    staging: Release | None = None
    canary: Release | None = None
    production: Release | None = None


class ChannelsView(BaseModel):
    """The current view: each channel's release, and the history revision it reflects."""

    model_config = ConfigDict(strict=True, extra="forbid")

    channels: ChannelMap
    revision: Annotated[StrictInt, Field(ge=0, le=MAX_REVISION)] = 0
    """The revision of the last history event this view includes (0: none)."""


SCHEMA_MODEL = ChannelsView

__all__ = ["SCHEMA_MODEL", "ChannelMap", "ChannelsView"]
