"""Channel state: `releases/history.jsonl` (a write-ahead audit log, the source of truth) and
`releases/channels.yaml` (the current view, rewritten atomically from it).

Every change runs under one file lock: read and check the whole log → append one event (one
write, fsync; undone on a short write) → rewrite channels.yaml (temp file, fsync, rename). A
writer killed between the two writes leaves a view one revision behind; the next reader rebuilds
it from the log. A line that is torn or wrong is never written after: see docs/channels.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from releasectl.channels.sequence import Sequence
from releasectl.errors import BadInput, EnvironmentFailure, Problem
from releasectl.fsutil import atomic_write_text, fsync_dir

CHANNELS = ("staging", "canary", "production")
CHANNELS_FILE = Path("releases") / "channels.yaml"
HISTORY_FILE = Path("releases") / "history.jsonl"
LOCK_FILE = Path("releases") / ".channels.lock"
LOCK_TIMEOUT_S = 30.0
MAX_LOG_BYTES = 256 << 20
REPAIR_HINT = (
    "run `releasectl history --repair`: it moves the bad tail aside next to the log, truncates the "
    "log to its last good line and rebuilds channels.yaml; then rerun this command"
)
RESTORE_HINT = (
    "the audit log is append-only: restore that line from git (`git log -p -- releases/history.jsonl`)"
)

# The fast check below mirrors releasectl.contracts.history.HistoryEvent (kept off the rollback
# path: pydantic costs ~250 ms to import). It may refuse what the model accepts (the model then
# decides), never the reverse; tests/test_history_wal.py checks that on generated events.
_MAX_REVISION = 10**12
_MAX_TEXT = 65_536
_RELEASE = re.compile(r"v\d{1,9}\.\d{1,9}(\.\d{1,9})?")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = frozenset(
    ("revision", "time", "actor", "action", "channel", "from", "to", "reason", "forced", "gate")
)
_KEYS = _REQUIRED | {"override", "trigger", "rollout"}
_GATE_KEYS = frozenset(("verdict", "stage", "sha256", "file", "run_url"))
# A traffic-step rollout (releasectl.contracts.history.RolloutRecord). "rollout" events record a
# step without moving the channel; the promote that completes one, and a rollback during one,
# carry the record too.
MOVES = ("promote", "rollback")
ROLLOUT_STATES_OF = {
    "rollout": ("started", "advanced", "paused", "resumed", "aborted"),
    "promote": ("completed",),
    "rollback": ("aborted",),
}
ACTIVE_STATES = ("started", "advanced", "paused", "resumed")
_MAX_STEPS = 20
_ROLLOUT_KEYS = frozenset(("release", "plan", "step", "weight", "state", "started", "step_started"))
_ANALYSIS_KEYS = frozenset(
    (
        "outcome",
        "canary_requests",
        "baseline_requests",
        "task_completion",
        "latency_p95_ms",
        "error_rate",
        "satisfaction",
    )
)
_DECISIONS = ("pass", "fail", "undecided", "not_tracked")
_MAX_REQUESTS = 10**15


def _text(v: Any, *, min_len: int = 0) -> bool:
    return type(v) is str and min_len <= len(v) <= _MAX_TEXT


def _release(v: Any) -> bool:
    return type(v) is str and len(v) <= 40 and _RELEASE.fullmatch(v) is not None


def release_name_ok(v: Any) -> bool:
    """Whether `v` is a release name the history accepts (vX.Y or vX.Y.Z)."""
    return _release(v)


def _time(v: Any) -> bool:
    if type(v) is not str or _TIME.fullmatch(v) is None:
        return False
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _one_of(v: Any, allowed: tuple[str, ...]) -> bool:
    return type(v) is str and v in allowed


def _analysis_ok(a: Any) -> bool:
    if a is None:
        return True
    if (
        type(a) is not dict
        or a.keys() != _ANALYSIS_KEYS
        or not _one_of(a["outcome"], ("pass", "fail", "hold"))
    ):
        return False
    if not all(
        type(a[k]) is int and 0 <= a[k] <= _MAX_REQUESTS for k in ("canary_requests", "baseline_requests")
    ):
        return False
    return all(
        _one_of(a[k], _DECISIONS)
        for k in _ANALYSIS_KEYS - {"outcome", "canary_requests", "baseline_requests"}
    )


def rollout_record_ok(r: Any) -> bool:
    """True only for a rollout record `RolloutRecord` accepts (the same invariants, by hand)."""
    if type(r) is not dict or not (_ROLLOUT_KEYS <= r.keys() <= _ROLLOUT_KEYS | {"analysis"}):
        return False
    plan, step, weight, state = r["plan"], r["step"], r["weight"], r["state"]
    if type(plan) is not list or not 1 <= len(plan) <= _MAX_STEPS:
        return False
    if not all(type(w) is int and 1 <= w <= 100 for w in plan):
        return False
    if any(b <= a for a, b in zip(plan, plan[1:], strict=False)) or plan[-1] != 100:
        return False
    if (
        type(step) is not int
        or not 0 <= step < len(plan)
        or not _one_of(state, ROLLOUT_STATES_OF["rollout"] + ("completed",))
    ):
        return False
    expected = {"aborted": 0, "completed": 100}.get(state, plan[step])
    if type(weight) is not int or weight != expected or (state == "completed" and step != len(plan) - 1):
        return False
    started, step_started = r["started"], r["step_started"]
    if not (_release(r["release"]) and _time(started) and _time(step_started)) or step_started < started:
        return False
    if state == "started" and (step != 0 or step_started != started):
        return False
    return _analysis_ok(r.get("analysis"))


def _event_rollout_ok(e: dict[str, Any]) -> bool:
    r = e.get("rollout")
    if r is None:
        return e["action"] != "rollout"
    if not rollout_record_ok(r) or r["state"] not in ROLLOUT_STATES_OF[e["action"]]:
        return False
    if e["action"] != "rollback" and r["release"] != e["to"]:
        return False
    return (e["action"] != "rollout" or e["from"] is not None) and r["step_started"] <= e["time"]


def fast_event_ok(e: Any) -> bool:
    """True only for an event `HistoryEvent` accepts as it stands."""
    if type(e) is not dict or not (_REQUIRED <= e.keys() <= _KEYS):
        return False
    rev, when, gate = e["revision"], e["time"], e["gate"]
    if type(rev) is not int or not 1 <= rev <= _MAX_REVISION:
        return False
    if not _time(when):
        return False
    if not (
        _text(e["actor"], min_len=1)
        and _text(e["reason"])
        and _one_of(e["action"], ("promote", "rollback", "rollout"))
    ):
        return False
    if type(e["channel"]) is not str or e["channel"] not in CHANNELS or type(e["forced"]) is not bool:
        return False
    if not _release(e["to"]) or not (e["from"] is None or _release(e["from"])) or e["from"] == e["to"]:
        return False
    if gate is not None:
        if type(gate) is not dict or not gate.keys() <= _GATE_KEYS:
            return False
        if not all(v is None or _text(v) for v in gate.values()):
            return False
        if gate.get("sha256") is not None and _SHA256.fullmatch(gate["sha256"]) is None:
            return False
    if e.get("override") is not None and not _text(e["override"]):
        return False
    trigger = e.get("trigger")
    if not (trigger is None or (type(trigger) is dict and all(type(k) is str for k in trigger))):
        return False
    return _event_rollout_ok(e)


def explain_event(obj: Any, *, file: str, line: int) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Ask the model: (the event as the model reads it, []) or (None, what is wrong, located)."""
    from pydantic import ValidationError

    from releasectl.contracts._types import problems_of
    from releasectl.contracts.history import HistoryEvent

    try:
        model = HistoryEvent.model_validate(obj)
    except ValidationError as e:
        return None, problems_of(e, file=file, line=line)
    event = model.model_dump(by_alias=True, mode="json")
    for optional in ("override", "trigger", "rollout"):
        if event.get(optional) is None:
            event.pop(optional, None)
    return event, []


@dataclass
class LogLine:
    number: int
    start: int  # byte offsets of the line in the file, newline excluded
    end: int
    event: dict[str, Any] | None
    problems: list[Problem]
    channel_hint: str | None = None  # the `channel` of a bad line, when it names a known one

    @property
    def ok(self) -> bool:
        return self.event is not None


@dataclass
class HistoryLog:
    """history.jsonl as read: every non-blank line, good or bad, and where the good prefix ends."""

    raw: bytes
    lines: list[LogLine]
    sequence: Sequence = field(default_factory=lambda: Sequence(str(HISTORY_FILE)))
    """The channels (holder, rollout in progress) after the last line: what a new event is checked on."""

    @property
    def events(self) -> list[dict[str, Any]]:
        return [ln.event for ln in self.lines if ln.event is not None]

    @property
    def tail(self) -> list[LogLine]:
        """The bad lines at the end (a torn or damaged tail): nothing may be appended after them."""
        out: list[LogLine] = []
        for ln in reversed(self.lines):
            if ln.ok:
                break
            out.append(ln)
        return out[::-1]

    @property
    def middle(self) -> list[LogLine]:
        """Bad lines with a good line after them."""
        n = len(self.tail)
        body = self.lines[: len(self.lines) - n] if n else self.lines
        return [ln for ln in body if not ln.ok]

    @property
    def good_end(self) -> int:
        """Byte offset just after the last good line's newline (where a repair truncates)."""
        tail = self.tail
        return tail[0].start if tail else len(self.raw)


def _read_bytes(path: Path, name: str) -> bytes:
    from releasectl import safeio

    return safeio.read_bytes(path, what="audit log", gunzip=False, max_bytes=MAX_LOG_BYTES, name=name)


def _parse_line(raw: bytes, number: int, start: int, end: int, has_newline: bool) -> LogLine:
    from releasectl import safeio

    name = str(HISTORY_FILE)
    text = raw[start:end]
    if not has_newline:
        why = "torn last line: no final newline (a write that was interrupted)"
        return LogLine(number, start, end, None, [Problem(why, file=name, line=number)])
    try:
        obj = safeio.loads_json(text, source=name, line=number)
    except BadInput as e:
        problems = e.problems or [Problem(e.message, file=name, line=number)]
        return LogLine(number, start, end, None, problems)
    if fast_event_ok(obj):
        return LogLine(number, start, end, obj, [])
    event, problems = explain_event(obj, file=name, line=number)
    hint = obj.get("channel") if isinstance(obj, dict) else None
    return LogLine(number, start, end, event, problems, hint if hint in CHANNELS else None)


def scan_history(root: Path) -> HistoryLog:
    """Every line of the log, checked against the event model, the revision sequence and the
    order of the events before it (`sequence`: a rollout's state machine, `from` = the holder)."""
    path = root / HISTORY_FILE
    if not os.path.lexists(path):
        return HistoryLog(b"", [])
    raw = _read_bytes(path, str(HISTORY_FILE))
    lines: list[LogLine] = []
    order = Sequence(str(HISTORY_FILE))
    pos, number, previous, gap = 0, 0, None, False
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        end = len(raw) if nl < 0 else nl
        number += 1
        if raw[pos:end].strip():
            ln = _parse_line(raw, number, pos, end, nl >= 0)
            if not lines:  # a log from revision 1 says everything; a later start, not what came before
                order.known_at_start = ln.event is not None and ln.event["revision"] == 1
            if ln.event is not None:
                rev = ln.event["revision"]
                # after a damaged line the next revision is only known to be higher
                if previous is not None and (rev <= previous if gap else rev != previous + 1):
                    ln.problems = [
                        Problem(
                            "revisions go up by one",
                            file=str(HISTORY_FILE),
                            line=number,
                            field="revision",
                            expected=f"more than {previous}" if gap else str(previous + 1),
                            found=str(rev),
                        )
                    ]
                    ln.channel_hint, ln.event = ln.event["channel"], None
                elif out_of_order := order.check(ln.event, number):
                    ln.problems = [
                        Problem(**{**p.to_dict(), "hint": p.hint or _ORDER_HINT}) for p in out_of_order
                    ]
                    ln.channel_hint, ln.event = ln.event["channel"], None
                else:
                    previous, gap = rev, False
                    order.apply(ln.event, number)
            if ln.event is None:
                order.forget(ln.channel_hint)
            gap = gap or ln.event is None
            lines.append(ln)
        pos = end + 1
    _check_rollout_manifests(root, order, lines)
    return HistoryLog(raw, lines, order)


_ORDER_HINT = (
    "the event is out of order with the lines before it (a hand-edited or forged line): the rollout "
    "verbs write only events that follow; see docs/channels.md, the order of events"
)


def _check_rollout_manifests(root: Path, order: Sequence, lines: list[LogLine]) -> None:
    """A rollout in progress of a release with no manifest (never refused by `rollout`, which
    needs one) is reported at its `started` line."""
    at = {ln.number: ln for ln in lines}
    for channel, t in order.channels.items():
        if not (t.known and t.rollout and t.start_line in at):
            continue
        release = t.rollout["release"]
        if os.path.isfile(root / "releases" / f"{release}.yaml"):
            continue
        ln = at[t.start_line]
        ln.problems = [
            Problem(
                f"a rollout of {release} is in progress on {channel}, but releases/{release}.yaml does not exist",
                file=str(HISTORY_FILE),
                line=ln.number,
                field="rollout.release",
                expected="a release with a manifest",
                found=release,
                hint=f"restore releases/{release}.yaml from git; `rollout` starts only known releases",
            )
        ]
        ln.channel_hint, ln.event = channel, None
        order.forget(channel)


def log_error(log: HistoryLog, *, rollback_hint: str | None = None) -> BadInput | None:
    """The error for a log that may not be read as a whole or appended to, or None."""
    tail = log.tail
    bad = tail or log.middle
    if not bad:
        return None
    problems = [p for ln in bad for p in ln.problems]
    first = problems[0].render() if problems else f"{HISTORY_FILE}:{bad[0].number}: damaged"
    if tail:
        return BadInput(f"the audit log ends in a bad line: {first}", problems, hint=REPAIR_HINT)
    hint = RESTORE_HINT + (f"; or {rollback_hint}" if rollback_hint else "")
    return BadInput(f"the audit log has a damaged line: {first}", problems, hint=hint)


def read_history(root: Path) -> list[dict[str, Any]]:
    """Every event, in order; exit 2 naming file:line when any line is torn or wrong."""
    log = scan_history(root)
    err = log_error(log)
    if err:
        raise err
    return log.events


@dataclass
class State:
    root: Path
    channels: dict[str, str | None]
    events: list[dict[str, Any]] = field(default_factory=list)
    view_revision: int = 0
    repaired: bool = False
    skipped: list[LogLine] = field(default_factory=list)  # damaged lines a rollback did without
    rollouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # channel -> active rollout
    sequence: Sequence | None = None  # the order of events after the last line: a new one is checked on it

    @property
    def revision(self) -> int:
        return self.events[-1]["revision"] if self.events else 0

    @property
    def moves(self) -> list[dict[str, Any]]:
        """The events that moved a channel (promote, rollback): not the rollout steps between."""
        return [e for e in self.events if e["action"] in MOVES]


def check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        import difflib

        close = difflib.get_close_matches(channel, CHANNELS, n=1)
        raise BadInput(
            f"unknown channel '{channel}'",
            hint=f"did you mean '{close[0]}'?" if close else "channels: " + ", ".join(CHANNELS),
        )


class View(NamedTuple):
    channels: dict[str, str | None]
    revision: int
    rollouts: dict[str, dict[str, Any]]


def _fast_view(data: Any) -> View | None:
    keys = {"channels", "rollouts", "revision"}
    if type(data) is not dict or not data.keys() <= keys or "channels" not in data:
        return None
    chans, rev, rollouts = data["channels"], data.get("revision", 0), data.get("rollouts", {})
    if type(chans) is not dict or not chans.keys() <= set(CHANNELS):
        return None
    if not all(v is None or _release(v) for v in chans.values()):
        return None
    if type(rev) is not int or not 0 <= rev <= _MAX_REVISION:
        return None
    if type(rollouts) is not dict or not rollouts.keys() <= set(CHANNELS):
        return None
    if not all(r is None or rollout_record_ok(r) and r["state"] in ACTIVE_STATES for r in rollouts.values()):
        return None
    return View(
        {c: chans.get(c) for c in CHANNELS}, rev, {c: r for c, r in rollouts.items() if r is not None}
    )


def _view_error(data: Any, text: str) -> BadInput:
    from pydantic import ValidationError

    from releasectl.contracts._types import problems_of
    from releasectl.contracts.channels import ChannelsView

    name = str(CHANNELS_FILE)
    try:
        ChannelsView.model_validate(data)
        problems = [Problem("not a channels view", file=name, line=1)]
    except ValidationError as e:
        problems = []
        for p in problems_of(e, file=name):
            key = (p.field or "").split(".")[-1]
            m = re.search(rf"^\s*{re.escape(key)}\s*:", text, re.M) if key else None
            problems.append(
                Problem(**{**p.to_dict(), "line": text.count("\n", 0, m.start()) + 1 if m else 1})
            )
    return BadInput(
        f"{problems[0].render()}",
        problems,
        hint="channels.yaml is a view of the audit log: `releasectl history --repair` rewrites it",
    )


def _parse_view(root: Path) -> View:
    import yaml

    from releasectl import safeio

    path = root / CHANNELS_FILE
    if not os.path.lexists(path):
        return View({c: None for c in CHANNELS}, 0, {})
    text = safeio.read_text(path, what="channels view", name=str(CHANNELS_FILE), max_bytes=1 << 20)
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f"{CHANNELS_FILE}:{line}" if line else str(CHANNELS_FILE)
        raise BadInput(
            f"{where}: not valid YAML",
            [Problem("not valid YAML", file=str(CHANNELS_FILE), line=line)],
            hint="channels.yaml is a view of the audit log: `releasectl history --repair` rewrites it",
        ) from None
    view = _fast_view(data if data is not None else {"channels": {}})
    if view is None:
        raise _view_error(data, text)
    return view


def channels_from_history(events: list[dict[str, Any]], base: dict[str, str | None]) -> dict[str, str | None]:
    channels = dict(base)
    for e in events:
        if e["action"] in MOVES:  # a rollout step does not move the channel
            channels[e["channel"]] = e["to"]
    return channels


def active_rollout(record: dict[str, Any]) -> dict[str, Any]:
    """A rollout record as the view keeps it: the step the channel is at, without its analysis."""
    return {k: v for k, v in record.items() if k != "analysis"}


def aborted_rollout(record: dict[str, Any]) -> dict[str, Any]:
    """The record that ends a rollout in progress without completing it: no traffic to the candidate."""
    return {**active_rollout(record), "state": "aborted", "weight": 0}


def rollouts_from_history(
    events: list[dict[str, Any]], base: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """channel -> its rollout in progress. Any move ends one (completed, or a rollback)."""
    rollouts = dict(base)
    for e in events:
        record = e.get("rollout")
        if e["action"] in MOVES or record is None or record["state"] not in ACTIVE_STATES:
            rollouts.pop(e["channel"], None)
        else:
            rollouts[e["channel"]] = active_rollout(record)
    return rollouts


def _derive(events: list[dict[str, Any]], view: View | None) -> View:
    """The channels (and rollouts) the log says. A log from revision 1 says everything; a shorter
    one (a repository that started its log late) applies what it has on top of the view."""
    revision = events[-1]["revision"] if events else 0
    if not events:
        return (
            View(dict(view.channels), view.revision, dict(view.rollouts))
            if view
            else View({c: None for c in CHANNELS}, 0, {})
        )
    if events[0]["revision"] == 1 or view is None:
        return View(
            channels_from_history(events, {c: None for c in CHANNELS}),
            revision,
            rollouts_from_history(events, {}),
        )
    later = [e for e in events if e["revision"] > view.revision]
    return View(
        channels_from_history(later, view.channels), revision, rollouts_from_history(later, view.rollouts)
    )


def read_state(root: Path, *, channel_needed: str | None = None, skip_damage: bool = False) -> State:
    """The current state from the log, with the view checked against it (and rebuilt from the
    log when it lags or is damaged: the log is the truth).

    Strict by default: any bad line is exit 2 with file:line. `channel_needed` (rollback) does
    without damaged middle lines that name another channel, and `skip_damage` (a forced rollback
    to a named release) without any damaged middle line; see docs/channels.md."""
    log = scan_history(root)
    events = log.events
    skipped: list[LogLine] = []
    if log.tail:
        raise log_error(log) or AssertionError
    if log.middle:
        unneeded = (
            skip_damage
            or channel_needed is not None
            and all(ln.channel_hint is not None and ln.channel_hint != channel_needed for ln in log.middle)
        )
        if not unneeded:
            raise (
                log_error(
                    log,
                    rollback_hint=(
                        f"roll back past it, recorded as an override: releasectl rollback vX.Y --channel "
                        f'{channel_needed} --force --reason "…"'
                        if channel_needed
                        else None
                    ),
                )
                or AssertionError
            )
        skipped = log.middle
    try:
        view: View | None = _parse_view(root)
    except BadInput:
        if not events:
            raise
        view = None  # a damaged view is rebuilt from the log
    if skipped and view is not None and view.revision == (events[-1]["revision"] if events else 0):
        derived = view  # the view saw the damaged events while they were whole
    else:
        derived = _derive(events, view)
    repaired = view is None or (
        bool(events)
        and (
            view.channels != derived.channels
            or view.revision != events[-1]["revision"]
            or view.rollouts != derived.rollouts
        )
    )
    return State(
        root,
        dict(derived.channels),
        events,
        view.revision if view else 0,
        repaired,
        skipped,
        dict(derived.rollouts),
        log.sequence,
    )


def render_view(
    channels: dict[str, str | None], revision: int, rollouts: dict[str, dict[str, Any]] | None = None
) -> str:
    lines = [
        "# Which release each channel serves. Written by releasectl (promote, rollback) under a lock;",
        "# the audit trail behind it is releases/history.jsonl. Do not edit by hand.",
        "channels:",
    ]
    for c in CHANNELS:
        lines.append(f"  {c}: {channels.get(c) or 'null'}")
    if rollouts:
        # The candidate's traffic share per channel in a rollout (releasectl rollout); a JSON
        # flow mapping is YAML too, and keeps the times strings.
        lines.append("rollouts:")
        for c in CHANNELS:
            if c in rollouts:
                lines.append(f"  {c}: {json.dumps(rollouts[c], ensure_ascii=False)}")
    lines.append(f"revision: {revision}")
    return "\n".join(lines) + "\n"


def write_view(
    root: Path,
    channels: dict[str, str | None],
    revision: int,
    rollouts: dict[str, dict[str, Any]] | None = None,
) -> None:
    atomic_write_text(root / CHANNELS_FILE, render_view(channels, revision, rollouts))


def append_event(root: Path, event: dict[str, Any]) -> None:
    """Append one event as one line. The caller has read the whole log under the lock; this
    re-checks that the file ends in a newline (never append onto a fragment) and undoes a short
    write, so an append is all or nothing."""
    if not fast_event_ok(event):
        raise AssertionError(f"refusing to write an event the model does not accept: {event!r}")
    path = root / HISTORY_FILE
    line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            raise BadInput(f"{HISTORY_FILE}: torn last line (no final newline)", hint=REPAIR_HINT)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)
            raise EnvironmentFailure(
                f"cannot append to {HISTORY_FILE}: {e.strerror}; nothing was written"
            ) from None
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
            write_view(root, state.channels, state.revision, state.rollouts)
        return state.repaired
