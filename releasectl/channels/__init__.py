"""Channels (staging, canary, production), promotion, rollback and the audit trail."""

from releasectl.channels.moves import MoveResult, Refused, promote_channel, rollback_channel
from releasectl.channels.state import CHANNELS, read_history, read_state

__all__ = [
    "CHANNELS",
    "MoveResult",
    "Refused",
    "promote_channel",
    "read_history",
    "read_state",
    "rollback_channel",
]
