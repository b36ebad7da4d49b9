"""Streaming reader for inference logs (JSON lines, plain or gzip): one record at a time,
malformed lines counted with their line numbers and never fatal."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from releasectl.errors import BadInput

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
BOOL_FIELDS = ("timeout", "abandoned", "safety_incident")


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
    """Open a log file for binary line reading, gunzipping when the file starts with gzip magic."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise BadInput(
            f"{path}: log file not found", hint="pass an existing JSON-lines file with --logs"
        ) from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read log file ({e.strerror})") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def _problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, found {type(rec).__name__}"
    for name in NUMERIC_FIELDS:
        v = rec.get(name)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            return f"{name}: expected a number, found {v!r:.40}"
    for name in BOOL_FIELDS:
        v = rec.get(name)
        if v is not None and not isinstance(v, bool):
            return f"{name}: expected true/false, found {v!r:.40}"
    return None


def parse_line(line: bytes, number: int, malformed: Malformed) -> dict[str, Any] | None:
    """The record on one non-blank line, or None after counting it in `malformed` with why."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        malformed.add(number, f"invalid JSON: {str(e).split(':')[0]}")
        return None
    reason = _problem(rec)
    if reason:
        malformed.add(number, reason)
        return None
    return rec  # type: ignore[no-any-return]


_NUMBER_TYPES = frozenset({int, float, type(None)})
_BOOL_TYPES = frozenset({bool, type(None)})


def _batch_ok(recs: list[Any]) -> bool:
    """True when every record is an object with well-typed known fields (checked column-wise,
    at C speed via map/set, so the common case costs little per record)."""
    if set(map(type, recs)) != {dict}:
        return False
    for name in NUMERIC_FIELDS:
        if not set(map(type, [r.get(name) for r in recs])) <= _NUMBER_TYPES:
            return False
    return all(set(map(type, [r.get(name) for r in recs])) <= _BOOL_TYPES for name in BOOL_FIELDS)


def read_batches(
    path: Path, malformed: Malformed, batch_bytes: int = 4 << 20, span: tuple[int, int] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Well-formed records of `path` in batches: each chunk of lines is parsed as one JSON array
    (one orjson call); a chunk with any bad line is re-read line by line to find and count it.
    `span` (start, end) reads only those bytes of a plain file; both must be line starts, and
    line numbers then count from `start`."""
    loads = orjson.loads
    number = 0
    with open_log(path) as f:
        pos, end = span if span else (0, None)
        f.seek(pos)
        while True:
            if end is not None and pos >= end:
                return
            try:
                # readlines stops once the lines read exceed the hint, so a hint one short of the
                # bytes left ends exactly at `end` (a line start); a hint of 0 would mean "all".
                left = batch_bytes if end is None else min(batch_bytes, end - pos)
                lines = f.readlines(left - 1) if left > 1 else [f.readline()]
            except (OSError, EOFError) as e:
                malformed.add(number + 1, f"unreadable: {e}")
                return
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


def read_records(path: Path, malformed: Malformed) -> Iterator[dict[str, Any]]:
    """Yield each well-formed record of `path`; count the rest in `malformed`."""
    with open_log(path) as f:
        try:
            for number, line in enumerate(f, start=1):
                if line.strip() and (rec := parse_line(line, number, malformed)) is not None:
                    yield rec
        except (OSError, EOFError) as e:
            # A truncated gzip stream: keep what was read, report where it broke.
            malformed.add(number + 1 if "number" in locals() else 1, f"unreadable: {e}")
