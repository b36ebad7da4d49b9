"""Replay the frozen suite on a release's pinned model and write the run directory."""

from releasectl.replay.runner import RunSummary, Shard, run_replay

__all__ = ["RunSummary", "Shard", "run_replay"]
