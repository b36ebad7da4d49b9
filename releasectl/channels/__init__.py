"""Channels (staging, canary, production), promotion, rollback and the audit trail."""

from releasectl.channels.moves import MoveResult, Refused, promote_channel, rollback_channel
from releasectl.channels.state import CHANNELS, read_history, read_state

# The name the monitoring code and the issue use for what rollback_channel returns.
RollbackResult = MoveResult

__all__ = [
    "CHANNELS",
    "MoveResult",
    "Refused",
    "RollbackResult",
    "promote_channel",
    "read_history",
    "read_state",
    "rollback_channel",
]
