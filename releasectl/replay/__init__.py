"""Replay: plan (pure), engines (the I/O edge), the generation loop, and the run directory."""

from releasectl.replay.plan import Shard
from releasectl.replay.runner import run_replay
from releasectl.replay.writer import RunSummary

__all__ = ["RunSummary", "Shard", "run_replay"]
