"""Streaming reader for inference logs (JSON lines, plain or gzip): one record at a time,
malformed lines counted with their line numbers and never fatal. The file itself is opened
through `releasectl.safeio` (regular files only; a damaged gzip stream is `BadInput`), and a log
of which no line is a record is "no data", never an all-clear (`require_records`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from releasectl import safeio
from releasectl.errors import BadInput, Problem

MAX_LISTED = 20  # malformed lines listed by number; the rest are counted

# Fields whose type we check: a record with a wrong type here is malformed, not silently zero.
NUMERIC_FIELDS = (
    "response_time_ms",
    "tokens_generated",
    "prompt_tokens",
    "user_satisfaction",
    "reward_score",
    "ctr",
    "cost_usd",
)
# The range of each numeric field with one (docs/logs.md): a value outside it is a malformed line,
# never clipped into range (a 1000 rating would move a mean of 1-5 ratings). Both readers, the
# streaming one here and DuckDB's (fastscan.py), check this one table.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "response_time_ms": (0.0, math.inf),
    "tokens_generated": (0.0, math.inf),
    "prompt_tokens": (0.0, math.inf),
    "user_satisfaction": (1.0, 5.0),
    "ctr": (0.0, 1.0),
    "cost_usd": (0.0, math.inf),
}
BOOL_FIELDS = ("timeout", "abandoned", "safety_incident")
# String fields monitor reads: a number or an object there is malformed, not silently coerced.
STRING_FIELDS = ("expected_format", "output", "topic", "prompt")
# Fields only `feedback` reads, checked by its reader on top of the ones above.
FEEDBACK_FIELDS = (*STRING_FIELDS, "request_id", "release", "locale", "user_segment")
# Strict ISO 8601, as the DuckDB reader reads it (releasectl/monitoring/fastscan.py TS_RE); the
# instant must lie between 1970 and the end of 9998 so every window start is a real date.
TS_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?",
    re.ASCII,
)


@dataclass
class Malformed:
    """Lines that could not be read as a log record."""

    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)
    lines_read: int = 0

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append({"line": line, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "lines": self.listed}

    def merge(self, other: Malformed) -> None:
        """Append `other`, whose line numbers count from the end of this part."""
        offset = self.lines_read
        self.count += other.count
        self.listed.extend({**m, "line": m["line"] + offset} for m in other.listed)
        del self.listed[MAX_LISTED:]
        self.lines_read += other.lines_read


def open_log(path: Path) -> IO[bytes]:
    """Open a log file for binary line reading, gunzipping (and verifying) when the file starts
    with gzip magic. Not a regular file, missing, or damaged gzip: `BadInput` naming it."""
    return safeio.open_stream(path, what="log file")


def timestamp_problem(ts: Any) -> str | None:
    """Why a record's `timestamp` value is not a usable time (None when it is, or is absent)."""
    if ts is None:
        return None
    if not isinstance(ts, str):
        return f"timestamp: expected an ISO 8601 string, found {ts!r:.40}"
    if not TS_RE.fullmatch(ts):
        return f"timestamp: expected ISO 8601 like 2026-11-20T13:05:00Z, found {ts!r:.40}"
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(ts)
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        seconds = t.timestamp()
    except (ValueError, OverflowError, OSError):
        return f"timestamp: not a real date and time, found {ts!r:.40}"
    if not 0 <= seconds < _YEAR_9999:
        return f"timestamp: outside 1970-01-01 .. 9998-12-31, found {ts!r:.40}"
    return None


_YEAR_9999 = 253370764800  # 9999-01-01T00:00:00Z as a POSIX time (fastscan uses it too)


def _in_range(name: str, v: float) -> bool:
    lo, hi = NUMERIC_RANGES[name]
    return lo <= v <= hi


def _range_text(name: str) -> str:
    lo, hi = NUMERIC_RANGES[name]
    return f">= {lo:g}" if hi == math.inf else f"from {lo:g} to {hi:g}"


def _problem(rec: Any, strings: tuple[str, ...] = STRING_FIELDS) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, found {type(rec).__name__}"
    for name in NUMERIC_FIELDS:
        v = rec.get(name)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            return f"{name}: expected a number, found {v!r:.40}"
        if v is not None and name in NUMERIC_RANGES and not _in_range(name, v):
            return f"{name}: expected a number {_range_text(name)}, found {v!r:.40}"
    for name in BOOL_FIELDS:
        v = rec.get(name)
        if v is not None and not isinstance(v, bool):
            return f"{name}: expected true/false, found {v!r:.40}"
    for name in strings:
        v = rec.get(name)
        if v is not None and not isinstance(v, str):
            return f"{name}: expected a string, found {v!r:.40}"
    if strings is FEEDBACK_FIELDS:
        flags = rec.get("rule_violations")
        if flags is not None and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
            return f"rule_violations: expected a list of strings, found {flags!r:.40}"
    return timestamp_problem(rec.get("timestamp"))


def parse_line(
    line: bytes, number: int, malformed: Malformed, strings: tuple[str, ...] = STRING_FIELDS
) -> dict[str, Any] | None:
    """The record on one non-blank line, or None after counting it in `malformed` with why."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        malformed.add(number, f"invalid JSON: {str(e).split(':')[0]}")
        return None
    reason = _problem(rec, strings)
    if reason:
        malformed.add(number, reason)
        return None
    return rec  # type: ignore[no-any-return]


_NUMBER_TYPES = frozenset({int, float, type(None)})
_BOOL_TYPES = frozenset({bool, type(None)})
_STRING_TYPES = frozenset({str, type(None)})


def _batch_ok(recs: list[Any]) -> bool:
    """True when every record is an object with well-typed known fields (checked column-wise,
    at C speed via map/set, so the common case costs little per record)."""
    if set(map(type, recs)) != {dict}:
        return False
    for name in NUMERIC_FIELDS:
        column = [r.get(name) for r in recs]
        if not set(map(type, column)) <= _NUMBER_TYPES:
            return False
        if name in NUMERIC_RANGES and (values := [v for v in column if v is not None]):
            lo, hi = NUMERIC_RANGES[name]
            if min(values) < lo or max(values) > hi:
                return False
    if not all(set(map(type, [r.get(name) for r in recs])) <= _BOOL_TYPES for name in BOOL_FIELDS):
        return False
    if not all(
        set(map(type, [r.get(name) for r in recs])) <= _STRING_TYPES for name in (*STRING_FIELDS, "timestamp")
    ):
        return False
    stamps = {r.get("timestamp") for r in recs}
    stamps.discard(None)
    return not any(map(timestamp_problem, stamps))


def read_batches(
    path: Path, malformed: Malformed, batch_bytes: int = 4 << 20, span: tuple[int, int] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Well-formed records of `path` in batches: each chunk of lines is parsed as one JSON array
    (one orjson call); a chunk with any bad line is re-read line by line to find and count it.
    `span` (start, end) reads only those bytes of a plain file; both must be line starts, and
    line numbers then count from `start`."""
    loads = orjson.loads
    number = 0
    with open_log(path) as f, safeio.reading(path, what="log file"):
        pos, end = span if span else (0, None)
        if pos:
            f.seek(pos)
        while True:
            if end is not None and pos >= end:
                return
            # readlines stops once the lines read exceed the hint, so a hint one short of the
            # bytes left ends exactly at `end` (a line start); a hint of 0 would mean "all".
            left = batch_bytes if end is None else min(batch_bytes, end - pos)
            lines = f.readlines(left - 1) if left > 1 else [f.readline()]
            if not lines:
                return
            pos += sum(map(len, lines))
            first = number + 1
            number += len(lines)
            malformed.lines_read = number
            body = [line for line in lines if not line.isspace()]
            if not body:
                continue
            try:
                recs = loads(b"[" + b",".join(body) + b"]")
                if len(recs) == len(body) and _batch_ok(recs):
                    yield recs
                    continue
            except orjson.JSONDecodeError:
                pass
            good = []
            for offset, line in enumerate(lines):
                if not line.isspace() and (rec := parse_line(line, first + offset, malformed)) is not None:
                    good.append(rec)
            if good:
                yield good


def read_records(
    path: Path, malformed: Malformed, strings: tuple[str, ...] = STRING_FIELDS
) -> Iterator[dict[str, Any]]:
    """Yield each well-formed record of `path`; count the rest in `malformed`. A damaged gzip
    stream is `BadInput` naming the file (what was read before it is not an answer)."""
    for number, line in safeio.iter_lines(path, what="log file", max_line_bytes=1 << 62):
        malformed.lines_read = number
        if line.strip() and (rec := parse_line(line, number, malformed, strings)) is not None:
            yield rec


def require_records(path: Path | str, records: int, malformed: Malformed) -> None:
    """ "No data" is never an all-clear: `BadInput` (exit 2) when not one line of `path` is a
    log record, naming the file and the first malformed lines."""
    if records:
        return
    if not malformed.count:
        why = "it is empty or holds only blank lines"
    else:
        first = "; ".join(f"line {m['line']}: {m['reason']}" for m in malformed.listed[:3])
        why = f"none of its {malformed.count:,} non-blank lines is a valid record ({first})"
    raise BadInput(
        f"{path}: no data: no log record could be read, {why}",
        [Problem(f"no log record could be read: {why}", file=str(path))],
        hint="a log nothing can be read from is not an all-clear; see docs/logs.md (record schema)",
    )
