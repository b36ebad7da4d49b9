"""The order of history events: each line is checked alone by the event model, and here against
the lines before it (pure, no pydantic: the rollback path runs it).

Per channel it follows the release the channel holds and its rollout in progress, and checks:

- every event's `from` is the release the channel holds at that point;
- `started` only when no rollout runs on the channel, at the event's time;
- `advanced` is the next step (step + 1, that plan's weight, `step_started` = the event's time),
  never from a paused rollout;
- `paused` only when running, `resumed` only when paused, both at the same step;
- `aborted` (a rollout event, or the rollback during one) and `completed` (the promote at its last
  step, not paused) only for the rollout in progress; a plain promote or a rollback without its
  rollout record while one runs is out of order;
- the same release, plan and start throughout one rollout.

A line that breaks the order is reported like any damaged line (file:line, field, expected,
found) and the channel's state is unknown after it, so one bad line is one error. A log that does
not start at revision 1 (a repository that started its log late) leaves a channel unknown until
its first promote or rollback; so does a damaged line naming it (or naming no readable channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from releasectl.errors import Problem

ACTIVE = ("started", "advanced", "paused", "resumed")


@dataclass
class ChannelTrack:
    known: bool
    holder: str | None = None
    rollout: dict[str, Any] | None = None  # the rollout in progress, as its last event left it
    start_line: int | None = None  # the line of its `started` event


@dataclass
class Sequence:
    """The channels as the lines read so far leave them."""

    file: str
    channels: dict[str, ChannelTrack] = field(default_factory=dict)
    known_at_start: bool = True

    def track(self, channel: str) -> ChannelTrack:
        if channel not in self.channels:
            self.channels[channel] = ChannelTrack(self.known_at_start)
        return self.channels[channel]

    def forget(self, channel: str | None) -> None:
        """A damaged line: what it did to `channel` (every channel when None) is unknown."""
        if channel is None:
            self.known_at_start = False
            for t in self.channels.values():
                t.known = False
        else:
            self.track(channel).known = False

    def check(self, e: dict[str, Any], line: int | None) -> list[Problem]:
        """What is out of order in event `e` (already valid alone), at `line`."""
        t = self.track(e["channel"])
        if not t.known:
            return []
        out = _order_problems(e, t)
        return [
            Problem(message, file=self.file, line=line, field=where, expected=expected, found=found)
            for where, message, expected, found in out
        ]

    def apply(self, e: dict[str, Any], line: int | None) -> None:
        t = self.track(e["channel"])
        r: dict[str, Any] = e.get("rollout") or {}
        if e["action"] != "rollout":  # a move: the channel is known again, and no rollout runs
            t.known, t.holder, t.rollout, t.start_line = True, e["to"], None, None
            return
        if r["state"] in ACTIVE:
            if r["state"] == "started":
                t.start_line = line
            t.rollout = {k: v for k, v in r.items() if k != "analysis"}
        else:
            t.rollout, t.start_line = None, None


def _describe(r: dict[str, Any]) -> str:
    return f"{r['release']} step {r['step'] + 1}/{len(r['plan'])} at {r['weight']} % ({r['state']})"


def _order_problems(e: dict[str, Any], t: ChannelTrack) -> list[tuple[str, str, str, str]]:
    channel, r, active = e["channel"], e.get("rollout"), t.rollout
    if e["from"] != t.holder:
        return [
            (
                "from",
                f"the event's `from` is not the release {channel} holds at this point",
                str(t.holder),
                str(e["from"]),
            )
        ]
    state = r["state"] if r else None
    if r is not None and e["action"] == "rollout" and state == "started":
        if active is not None:
            return [
                (
                    "rollout.state",
                    f"a rollout of {r['release']} starts on {channel} while {_describe(active)} is in progress"
                    + (f" (started at line {t.start_line})" if t.start_line else ""),
                    f"a step, pause, resume or end of the {active['release']} rollout",
                    f"started {r['release']}",
                )
            ]
        if r["started"] != e["time"]:
            return [
                ("rollout.started", "a rollout starts when its event is recorded", e["time"], r["started"])
            ]
        return []
    if active is None:
        if r is None:
            return []  # a plain move with no rollout around it
        return [
            (
                "rollout.state",
                f"no rollout is in progress on {channel}: a `{state}` event needs a `started` one before it",
                "a `started` event first",
                f"{state} {r['release']}",
            )
        ]
    if r is None:
        verb = "promote" if e["action"] == "promote" else "rollback"
        return [
            (
                "rollout",
                f"a {verb} of {channel} while {_describe(active)} is in progress does not say what became of it",
                "rollout.state completed (the last step's advance)"
                if verb == "promote"
                else "rollout.state aborted",
                "no rollout record",
            )
        ]
    for key in ("release", "plan", "started"):
        if r[key] != active[key]:
            return [
                (
                    f"rollout.{key}",
                    f"not the rollout in progress on {channel} ({_describe(active)})",
                    str(active[key]),
                    str(r[key]),
                )
            ]
    return _step_problems(e, r, active)


def _step_problems(
    e: dict[str, Any], r: dict[str, Any], active: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    state, was = r["state"], active["state"]
    if state == "advanced":
        if was == "paused":
            return [("rollout.state", "a paused rollout does not advance", "resumed first", "advanced")]
        step = active["step"] + 1
        if r["step"] != step:
            expected = (
                f"step index {step} (step {step + 1}/{len(active['plan'])} at {active['plan'][step]} %)"
                if step < len(active["plan"])
                else "none: the last step completes with a promote"
            )
            found = f"step index {r['step']} (step {r['step'] + 1} at {r['weight']} %)"
            return [
                ("rollout.step", f"an advance from {_describe(active)} goes one step on", expected, found)
            ]
        if r["step_started"] != e["time"]:
            return [
                (
                    "rollout.step_started",
                    "a step starts when its advance is recorded",
                    e["time"],
                    r["step_started"],
                )
            ]
        return []
    same_step = r["step"] == active["step"] and r["step_started"] == active["step_started"]
    if state == "paused" and was == "paused":
        return [("rollout.state", "the rollout is already paused", "resumed, advanced or ended", "paused")]
    if state == "resumed" and was != "paused":
        return [("rollout.state", "only a paused rollout resumes", "paused before it", f"{was} before it")]
    if state == "completed":
        if was == "paused":
            return [("rollout.state", "a paused rollout does not complete", "resumed first", "completed")]
        if active["step"] != len(active["plan"]) - 1:
            return [
                (
                    "rollout.step",
                    f"a rollout completes from its last step, not from {_describe(active)}",
                    f"step index {len(active['plan']) - 1}",
                    f"step index {active['step']}",
                )
            ]
    if not same_step:
        return [
            (
                "rollout.step",
                f"a `{state}` event stays at the step in progress ({_describe(active)})",
                f"step index {active['step']} since {active['step_started']}",
                f"step index {r['step']} since {r['step_started']}",
            )
        ]
    return []
