"""Request logs → the observation arrays of one traffic step (`analysis.Observations`).

The log is read by the monitor's reader (`releasectl.monitoring.logs.read_batches`: safeio,
malformed lines counted and listed, a log with no record at all is exit 2), and the request-level
definitions are the monitor's: an error is an `error` value other than "none" (`no_error`) or a
timeout; task completion is 1 − `abandoned`; `user_satisfaction` is a 1–5 rating.

A step's window is [step start, analysis time], and a side counts only its own release's records:

- a record timestamped before the start is an earlier step's traffic (counted apart);
- a record later than the analysis time by more than `CLOCK_SKEW_S` (5 minutes) cannot have been
  served yet: the log is bad input (exit 2 naming the file, the first such line and how many), so
  a log stamped in the future never counts in every step; within the allowance it is clock skew
  and counts;
- a record of another release is left out and counted per release (mixed logs are normal); a
  side with no record of its release is exit 2 naming the releases found;
- a record with no `release` (or not a string) cannot be attributed to a side: bad input, as
  above;
- a record without a timestamp cannot be placed in a step and is counted apart.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.errors import BadInput, Problem
from releasectl.monitoring.logs import Malformed, parse_line, read_batches, require_records
from releasectl.monitoring.logstats import no_error
from releasectl.rollout.analysis import Observations

CLOCK_SKEW_S = 300
"""How far past the analysis time a record may be stamped and still count (clock skew)."""


@dataclass
class LogWindow:
    """One log read for one step: what fell in the window, and what did not."""

    path: str
    since: str
    until: str  # the analysis time: the window's end
    release: str  # the release whose records count
    observations: Observations
    records: int  # well-formed records in the file
    before: int  # records of `release` timestamped before `since` (an earlier step's traffic)
    untimed: int  # records of `release` without a timestamp
    other_releases: dict[str, int]  # records of other releases, per release
    malformed: Malformed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "release": self.release,
            "since": self.since,
            "until": self.until,
            "requests": self.observations.requests,
            "records": self.records,
            "before_window": self.before,
            "untimed": self.untimed,
            "other_releases": self.other_releases,
            "malformed": self.malformed.to_dict(),
        }


def _instant(ts: str) -> float:
    t = datetime.fromisoformat(ts)  # the reader has checked the format and the range
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same inode, or the same resolved path)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _first_line(path: Path, bad: Callable[[dict[str, Any]], bool]) -> tuple[int | None, Any]:
    """(line number, value) of the first record of `path` that is `bad`; a second read, on the
    error path only (the batch reader does not keep line numbers)."""
    from releasectl import safeio

    scratch = Malformed()
    for number, line in safeio.iter_lines(path, what="log file", max_line_bytes=1 << 62):
        if line.strip() and (rec := parse_line(line, number, scratch)) is not None and bad(rec):
            return number, rec
    return None, None


def _unattributed(rec: dict[str, Any]) -> bool:
    return type(rec.get("release")) is not str


def _bad_records(path: Path, side: str, future: int, unattributed: int, limit: float) -> BadInput:
    """Exit 2 for records no step may count: stamped after the analysis time, or with no release."""
    name = str(path)
    problems: list[Problem] = []
    if future:

        def late(rec: dict[str, Any]) -> bool:
            ts = rec.get("timestamp")
            return ts is not None and _instant(ts) > limit

        line, rec = _first_line(path, late)
        problems.append(
            Problem(
                f"{future:,} record(s) stamped after the analysis time (beyond the {CLOCK_SKEW_S // 60}-minute "
                "clock-skew allowance): traffic that cannot have been served yet",
                file=name,
                line=line,
                field="timestamp",
                expected=f"at or before {iso(limit)}",
                found=str((rec or {}).get("timestamp")),
            )
        )
    if unattributed:
        line, rec = _first_line(path, _unattributed)
        problems.append(
            Problem(
                f"{unattributed:,} record(s) without a `release` string: they cannot be attributed to the "
                f"{side} or the baseline",
                file=name,
                line=line,
                field="release",
                expected="the release that served the request, e.g. v1.3",
                found="no release" if rec is None or "release" not in rec else repr(rec["release"]),
            )
        )
    return BadInput(
        f"{problems[0].render()}" + (f" (and {problems[1].render()})" if len(problems) > 1 else ""),
        problems,
        hint="; ".join(
            h
            for h, wanted in (
                ("a step's window ends at the analysis time: fix the clock of what writes the log", future),
                ("tag every record with the release that served it (docs/logs.md `release`)", unattributed),
            )
            if wanted
        ),
    )


def _no_release_records(path: Path, side: str, release: str, others: Counter[str]) -> BadInput:
    found = ", ".join(f"{r} ({n:,})" for r, n in others.most_common(5)) or "none"
    why = f"no record of {release} (the {side}'s release); records are of: {found}"
    return BadInput(
        f"{path}: {why}",
        [Problem(why, file=str(path), field="release", expected=release, found=found)],
        hint=f"--{side}-logs must hold {release}'s requests: check which log goes to which side",
    )


def read_window(path: Path, since: str, *, release: str, until: float, side: str = "canary") -> LogWindow:
    """The requests of `release` in `path` timestamped in [since, until] (UTC), in file order;
    records stamped after `until` + the clock-skew allowance, or without a release, are exit 2."""
    start = _instant(since)
    limit = until + CLOCK_SKEW_S
    malformed = Malformed()
    parsed: dict[str, float] = {}  # logs repeat timestamps: parse each string once
    records = before = untimed = future = unattributed = 0
    others: Counter[str] = Counter()
    completed: list[float] = []
    errors: list[float] = []
    latency: list[float] = []
    ratings: list[float] = []
    for batch in read_batches(path, malformed):
        records += len(batch)
        for r in batch:
            ts = r.get("timestamp")
            at = None
            if ts is not None:
                at = parsed.get(ts)
                if at is None:
                    at = parsed[ts] = _instant(ts)
                if at > limit:
                    future += 1
                    continue
            rel = r.get("release")
            if type(rel) is not str:
                unattributed += 1
                continue
            if rel != release:
                others[rel] += 1
                continue
            if at is None:
                untimed += 1
                continue
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
    if future or unattributed:
        raise _bad_records(path, side, future, unattributed, limit)
    if not (completed or before or untimed):
        raise _no_release_records(path, side, release, others)
    obs = Observations(np.array(completed), np.array(errors), np.array(latency), np.array(ratings))
    return LogWindow(
        str(path), since, iso(until), release, obs, records, before, untimed, dict(others), malformed
    )
