"""Channel state: `releases/history.jsonl` (append-only audit log, the source of truth) and
`releases/channels.yaml` (the current view, rewritten atomically from it).

Every change runs under one file lock: read → check → append the event (fsync) → rewrite
channels.yaml (temp file, fsync, rename). A writer killed between the two writes leaves a view
one revision behind the log; the next reader or writer sees it and rebuilds the view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput
from releasectl.fsutil import atomic_write_text, fsync_dir

CHANNELS = ("staging", "canary", "production")
CHANNELS_FILE = Path("releases") / "channels.yaml"
HISTORY_FILE = Path("releases") / "history.jsonl"
LOCK_FILE = Path("releases") / ".channels.lock"
LOCK_TIMEOUT_S = 30.0


@dataclass
class State:
    root: Path
    channels: dict[str, str | None]
    events: list[dict[str, Any]] = field(default_factory=list)
    view_revision: int = 0
    repaired: bool = False

    @property
    def revision(self) -> int:
        return self.events[-1]["revision"] if self.events else 0


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        import difflib

        close = difflib.get_close_matches(channel, CHANNELS, n=1)
        raise BadInput(
            f"unknown channel '{channel}'",
            hint=f"did you mean '{close[0]}'?" if close else "channels: " + ", ".join(CHANNELS),
        )


def read_history(root: Path) -> list[dict[str, Any]]:
    """Events in order. A torn last line (a writer killed mid-append) is ignored; a bad line
    elsewhere is an error, since the audit log must not silently lose events."""
    path = root / HISTORY_FILE
    if not path.exists():
        return []
    data = path.read_bytes()
    events = []
    lines = data.split(b"\n")
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            events.append(json.loads(raw))
        except ValueError:
            if i == len(lines) and not data.endswith(b"\n"):
                break  # torn tail from a killed writer: the event never happened
            raise BadInput(
                f"{HISTORY_FILE}:{i} is not valid JSON",
                hint="the audit log is append-only; restore it from git",
            ) from None
    return events


def _parse_view(root: Path) -> tuple[dict[str, str | None], int]:
    import yaml

    path = root / CHANNELS_FILE
    if not path.exists():
        return {c: None for c in CHANNELS}, 0
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise BadInput(f"{CHANNELS_FILE} is not valid YAML: {e}") from None
    raw = data.get("channels", {}) if isinstance(data, dict) else {}
    channels: dict[str, str | None] = {c: None for c in CHANNELS}
    for k, v in (raw or {}).items():
        channels[str(k)] = str(v) if v is not None else None
    return channels, int(data.get("revision", 0) or 0) if isinstance(data, dict) else 0


def channels_from_history(events: list[dict[str, Any]], base: dict[str, str | None]) -> dict[str, str | None]:
    channels = dict(base)
    for e in events:
        channels[e["channel"]] = e["to"]
    return channels


def read_state(root: Path) -> State:
    """The current state; when the view lags the log (a crash between writes), derive it."""
    events = read_history(root)
    channels, view_rev = _parse_view(root)
    state = State(root, channels, events, view_rev)
    if events and view_rev != events[-1]["revision"]:
        newer = [e for e in events if e["revision"] > view_rev]
        state.channels = channels_from_history(newer, channels)
        state.repaired = True
    return state


def render_view(channels: dict[str, str | None], revision: int) -> str:
    lines = [
        "# Which release each channel serves. Written by releasectl (promote, rollback) under a lock;",
        "# the audit trail behind it is releases/history.jsonl. Do not edit by hand.",
        "channels:",
    ]
    for c in CHANNELS:
        lines.append(f"  {c}: {channels.get(c) or 'null'}")
    lines.append(f"revision: {revision}")
    return "\n".join(lines) + "\n"


def write_view(root: Path, channels: dict[str, str | None], revision: int) -> None:
    atomic_write_text(root / CHANNELS_FILE, render_view(channels, revision))


def append_event(root: Path, event: dict[str, Any]) -> None:
    path = root / HISTORY_FILE
    line = (json.dumps(event, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


@contextmanager
def locked(root: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(root / LOCK_FILE))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        from releasectl.errors import EnvironmentFailure

        raise EnvironmentFailure(
            f"another releasectl holds {LOCK_FILE} for more than {timeout:g} s",
            hint="wait for it to finish, then retry",
        ) from None
    try:
        yield
    finally:
        lock.release()


def repair_view(root: Path) -> bool:
    """Rewrite channels.yaml from the history if it lags (a writer died between the two writes).
    Returns whether anything was repaired."""
    with locked(root):
        state = read_state(root)  # re-read under the lock: another writer may have fixed it
        if state.repaired:
            write_view(root, state.channels, state.revision)
        return state.repaired
