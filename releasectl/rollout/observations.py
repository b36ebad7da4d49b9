"""Request logs → the observation arrays of one traffic step (`analysis.Observations`).

The log is read by the monitor's reader (`releasectl.monitoring.logs.read_batches`: safeio,
malformed lines counted and listed, a log with no record at all is exit 2), and the request-level
definitions are the monitor's: an error is an `error` value other than "none" (`no_error`) or a
timeout; task completion is 1 − `abandoned`; `user_satisfaction` is a 1–5 rating. Only records
timestamped at or after the step's start count; records without a timestamp cannot be placed in
a step and are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.monitoring.logs import Malformed, read_batches, require_records
from releasectl.monitoring.logstats import no_error
from releasectl.rollout.analysis import Observations


@dataclass
class LogWindow:
    """One log read for one step: what fell in the window, and what did not."""

    path: str
    since: str
    observations: Observations
    records: int  # well-formed records in the file
    before: int  # records timestamped before `since` (an earlier step's traffic)
    untimed: int  # records without a timestamp
    malformed: Malformed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "since": self.since,
            "requests": self.observations.requests,
            "records": self.records,
            "before_window": self.before,
            "untimed": self.untimed,
            "malformed": self.malformed.to_dict(),
        }


def _instant(ts: str) -> float:
    t = datetime.fromisoformat(ts)  # the reader has checked the format and the range
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def read_window(path: Path, since: str) -> LogWindow:
    """The requests of `path` timestamped at or after `since` (UTC, ISO 8601), in file order."""
    start = _instant(since)
    malformed = Malformed()
    parsed: dict[str, float] = {}  # logs repeat timestamps: parse each string once
    records = before = untimed = 0
    completed: list[float] = []
    errors: list[float] = []
    latency: list[float] = []
    ratings: list[float] = []
    for batch in read_batches(path, malformed):
        records += len(batch)
        for r in batch:
            ts = r.get("timestamp")
            if ts is None:
                untimed += 1
                continue
            at = parsed.get(ts)
            if at is None:
                at = parsed[ts] = _instant(ts)
            if at < start:
                before += 1
                continue
            e = r.get("error")
            completed.append(0.0 if r.get("abandoned") is True else 1.0)
            errors.append(1.0 if r.get("timeout") is True or e == "timeout" or not no_error(e) else 0.0)
            if (ms := r.get("response_time_ms")) is not None:
                latency.append(float(ms))
            if (rating := r.get("user_satisfaction")) is not None:
                ratings.append(float(rating))
    require_records(path, records, malformed)
    obs = Observations(np.array(completed), np.array(errors), np.array(latency), np.array(ratings))
    return LogWindow(str(path), since, obs, records, before, untimed, malformed)
