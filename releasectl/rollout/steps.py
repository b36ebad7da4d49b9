"""The rollout verbs: start, analyze, advance, pause, resume, abort.

Every verb that writes is a channel move (`releasectl.channels.moves.record_move`): under the
channels lock it reads and checks the whole log, appends one event through the write-ahead
append, rewrites channels.yaml, re-renders what serves the channel (`--render`) and commits, as
promote and rollback do. A step event (`action: rollout`) leaves the channel on the old release,
which keeps serving the rest of the traffic; completing the last step is `promote_channel`, and
an abort leaves the channel on the old release with the candidate's weight at 0.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.channels.moves import (
    MoveResult,
    Refused,
    gate_hint,
    now_utc,
    promote_channel,
    promotion_gate,
    record_move,
    rollout_in_progress,
)
from releasectl.channels.state import State, check_channel, read_state
from releasectl.errors import BadInput
from releasectl.rollout import plan

MoveOptions = dict[str, Any]  # actor_name, expect, commit, push, dry_run, render


def _no_rollout(channel: str) -> BadInput:
    return BadInput(
        f"no rollout in progress on {channel}",
        hint=f"start one: releasectl rollout vX.Y --channel {channel} --steps {plan.DEFAULT_STEPS}",
    )


def active(state: State, channel: str) -> dict[str, Any]:
    """The channel's rollout in progress; exit 2 when there is none."""
    record = state.rollouts.get(channel)
    if record is None:
        raise _no_rollout(channel)
    return record


def _same_rollout(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["release"] == b["release"] and a["started"] == b["started"])


def _same_step(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _same_rollout(a, b) and a["step"] == b["step"] and a["step_started"] == b["step_started"]


def _moved_since(channel: str, analysed: dict[str, Any]) -> Refused:
    return Refused(
        f"the rollout on {channel} moved since {plan.describe(analysed)} was analysed",
        hint=f"check `releasectl rollout status --channel {channel}` and analyse the current step",
    )


def _subject(channel: str, reason: str) -> Any:
    def message(event: dict[str, Any]) -> str:
        return f"rollout({channel}): {plan.describe(event['rollout'])}, {event['from']} serves the rest — {reason}"

    return message


def _step(
    root: Path,
    channel: str,
    *,
    change: Any,
    reason: str,
    forced: bool = False,
    extra: dict[str, Any] | None = None,
    options: MoveOptions,
) -> MoveResult:
    """One rollout event: `change(record, when)` gives the next record (or refuses), under the lock."""
    check_channel(channel)
    when = now_utc()
    fields = dict(extra or {})

    def target(state: State, current: str | None) -> tuple[str, dict[str, Any] | None]:
        record = active(state, channel)
        fields["rollout"] = change(record, when)
        return str(record["release"]), None

    return record_move(
        root,
        action="rollout",
        channel=channel,
        target=target,
        reason=reason,
        forced=forced,
        extra=fields,
        moves=False,
        when=when,
        message=_subject(channel, reason),
        **_move_kwargs(options),
    )


def _move_kwargs(options: MoveOptions) -> dict[str, Any]:
    return {
        "actor_name": options.get("actor_name"),
        "expect": options.get("expect"),
        "commit": options.get("commit", True),
        "push": options.get("push", False),
        "dry_run": options.get("dry_run", False),
        "render": tuple(options.get("render", ())),
    }


def start_rollout(
    root: Path,
    release: str,
    channel: str,
    steps: list[int],
    *,
    reason: str | None = None,
    gate_file: Path | None = None,
    force: bool = False,
    **options: Any,
) -> MoveResult:
    """Start stepping `channel`'s traffic to `release`: the candidate must pass what `promote`
    checks (a passing gate for the channel's stage bound to its manifest) unless forced."""
    check_channel(channel)
    if force and not reason:
        raise BadInput("--force needs --reason: the override is recorded in the audit trail")
    gate, problem = promotion_gate(root, release, channel, gate_file)
    if problem and not force:
        raise Refused(f"cannot roll {release} out to {channel}: {problem}", hint=gate_hint(release, channel))
    when = now_utc()
    why = (
        reason
        or f"rollout in steps of {','.join(map(str, steps))} % (gate {gate['verdict'] if gate else 'none'})"
    )
    extra: dict[str, Any] = {"rollout": plan.started(release, steps, when)}
    if problem:
        extra["override"] = problem

    def target(state: State, current: str | None) -> tuple[str, dict[str, Any] | None]:
        if refusal := rollout_in_progress(state, channel):
            raise refusal
        return release, gate

    return record_move(
        root,
        action="rollout",
        channel=channel,
        target=target,
        reason=why,
        forced=bool(problem),
        extra=extra,
        moves=False,
        when=when,
        message=_subject(channel, why),
        **_move_kwargs(options),
    )


def pause_rollout(root: Path, channel: str, *, reason: str | None = None, **options: Any) -> MoveResult:
    """Hold the rollout at its step: traffic stays split, and `advance` refuses until `resume`."""

    def change(record: dict[str, Any], when: str) -> dict[str, Any]:
        if record["state"] == "paused":
            raise Refused(f"the rollout on {channel} is already paused ({plan.describe(record)})")
        return plan.paused(record)

    return _step(root, channel, change=change, reason=reason or "paused", options=options)


def resume_rollout(root: Path, channel: str, *, reason: str | None = None, **options: Any) -> MoveResult:
    def change(record: dict[str, Any], when: str) -> dict[str, Any]:
        if record["state"] != "paused":
            raise Refused(f"the rollout on {channel} is not paused ({plan.describe(record)})")
        return plan.resumed(record)

    return _step(root, channel, change=change, reason=reason or "resumed", options=options)


def abort_rollout(
    root: Path,
    channel: str,
    *,
    reason: str | None = None,
    report: StepReport | None = None,
    trigger: dict[str, Any] | None = None,
    **options: Any,
) -> MoveResult:
    """End the rollout: the candidate's weight goes to 0 and the channel keeps the old release.
    `report` (a failed analysis) is recorded with `trigger`, what fired the abort."""

    def change(record: dict[str, Any], when: str) -> dict[str, Any]:
        if report is not None and not _same_rollout(record, report.record):
            raise _moved_since(channel, report.record)
        return plan.aborted(record, report.analysis.summary() if report else None)

    why = reason or (f"analysis failed: {report.analysis.reason}" if report else "manual abort")
    fired = trigger or (report.trigger() if report else {"source": "manual"})
    return _step(root, channel, change=change, reason=why, extra={"trigger": fired}, options=options)


def advance_rollout(
    root: Path,
    channel: str,
    *,
    report: StepReport | None,
    force: bool = False,
    reason: str | None = None,
    **options: Any,
) -> MoveResult:
    """The next step when the current one's analysis passes (`--force --reason` overrides, recorded);
    past the last step the candidate is promoted to the channel (promote's checks and path)."""
    check_channel(channel)
    if force and not reason:
        raise BadInput("--force needs --reason: the override is recorded in the audit trail")
    state = read_state(root)
    record = active(state, channel)
    if record["state"] == "paused":
        raise _paused(channel, record)
    override = None
    if report is None and not force:
        raise BadInput(
            "advance needs the current step's analysis: --canary-logs FILE --baseline-logs FILE, or --prometheus URL",
            hint='or advance without one, recorded: --force --reason "…"',
        )
    if report is None:
        override = f"advanced {plan.describe(record)} without an analysis"
    elif report.analysis.outcome != "pass":
        if not force:
            raise Refused(
                f"{plan.describe(record)} does not advance: the analysis says {report.analysis.outcome} "
                f"({report.analysis.reason})",
                hint=_not_passed_hint(report.analysis.outcome, channel),
            )
        override = f"advanced {plan.describe(record)} past an analysis that says {report.analysis.outcome} ({report.analysis.reason})"
    if report is not None and not _same_step(record, report.record):
        raise _moved_since(channel, report.record)
    margins = report.analysis.margins if report else margins_for(root, record["release"])[0]
    if young := too_young(record, margins.min_step_minutes, time.time()):
        if not force:
            raise Refused(
                f"{plan.describe(record)} does not advance yet: {young}",
                hint="keep the step running; analyse and advance after that time",
            )
        if override is None or young not in override:
            override = "; ".join(x for x in (override, f"advanced before the step's minimum: {young}") if x)
    summary = report.analysis.summary() if report else None

    def checked(current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None or not _same_step(current, record):
            raise _moved_since(channel, record)
        if current["state"] == "paused":
            raise _paused(channel, current)
        return current

    if plan.is_last_step(record):
        return _complete(root, channel, record, state, checked, summary, override, reason, force, options)
    why = reason or f"step {record['step'] + 1} passed its analysis"

    def change(current: dict[str, Any], when: str) -> dict[str, Any]:
        return plan.advanced(checked(current), when, summary)

    extra = {"override": override} if override else None
    return _step(
        root, channel, change=change, reason=why, forced=bool(override), extra=extra, options=options
    )


def _complete(
    root: Path,
    channel: str,
    record: dict[str, Any],
    state: State,
    checked: Any,
    summary: dict[str, Any] | None,
    override: str | None,
    reason: str | None,
    force: bool,
    options: MoveOptions,
) -> MoveResult:
    """The promote that ends a rollout. A rollout started past a refused gate (forced, recorded
    then) completes past it again; otherwise promote's checks must pass now, or `--force`."""
    start = _start_event(state, channel, record)
    gate = (start or {}).get("gate") or {}
    gate_file = Path(gate["file"]) if gate.get("file") else None
    why = reason or f"rollout complete: {','.join(map(str, record['plan']))} % passed"

    def completes(current_state: State) -> dict[str, Any]:
        return plan.completed(checked(current_state.rollouts.get(channel)), summary)

    return promote_channel(
        root,
        record["release"],
        channel,
        reason=why,
        gate_file=gate_file,
        force=force or bool(start and start.get("forced")),
        completes=completes,
        override=override,
        **_move_kwargs(options),
    )


def _start_event(state: State, channel: str, record: dict[str, Any]) -> dict[str, Any] | None:
    for e in reversed(state.events):
        r = e.get("rollout")
        if e["channel"] == channel and r and r["state"] == "started" and _same_rollout(r, record):
            return e
    return None


def _paused(channel: str, record: dict[str, Any]) -> Refused:
    return Refused(
        f"the rollout on {channel} is paused ({plan.describe(record)}): it does not advance",
        hint=f"releasectl rollout resume --channel {channel}, then advance",
    )


def _not_passed_hint(outcome: str, channel: str) -> str:
    if outcome == "hold":
        return (
            "keep the step running and analyse again later (the analysis stays valid however often you look)"
        )
    return f"abort it: releasectl rollout abort --channel {channel}; or --force --reason to advance anyway"


# --- analysis --------------------------------------------------------------------------------


@dataclass
class StepReport:
    """The analysis of a rollout's current step on canary and baseline request logs (or counts)."""

    channel: str
    baseline_release: str | None
    record: dict[str, Any]
    canary: Any  # observations.LogWindow, or rollout.prometheus.StepCounts
    baseline: Any
    analysis: Any  # analysis.StepAnalysis
    margins_source: str
    source: dict[str, Any] | None = None
    """Where the counts came from when not request logs ({"prometheus": URL, …}); an abort's
    trigger records it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "candidate": self.record["release"],
            "baseline_release": self.baseline_release,
            "rollout": self.record,
            "canary": self.canary.to_dict(),
            "baseline": self.baseline.to_dict(),
            "margins_source": self.margins_source,
            "source": self.source or {"logs": {"canary": self.canary.path, "baseline": self.baseline.path}},
            **self.analysis.to_dict(),
        }

    def trigger(self) -> dict[str, Any]:
        """What an abort on this analysis records as its trigger."""
        return {
            "source": "rollout analyze --auto-abort",
            "outcome": self.analysis.outcome,
            "step": self.record["step"] + 1,
            "weight": self.record["weight"],
            **(self.source or {"canary_logs": self.canary.path, "baseline_logs": self.baseline.path}),
            "since": self.canary.since,
            "failed": [
                {"metric": m.metric, "rule": m.rule, "detail": m.detail} for m in self.analysis.failed
            ],
        }


def margins_for(root: Path, release: str) -> tuple[Any, str]:
    """Seed 004's margins, or the candidate manifest's `policy.rollout` where it sets them."""
    from releasectl.manifest.loader import load_manifest, release_path
    from releasectl.rollout.analysis import Margins

    spec = load_manifest(release_path(root, release)).manifest.policy.rollout
    if spec is None:
        return Margins(), "seed 004 defaults"
    margins = Margins(
        completion=spec.completion_margin,
        p95_ratio=spec.p95_ratio,
        error=spec.error_margin,
        satisfaction=spec.satisfaction_margin,
        alpha=spec.alpha,
        min_step_minutes=spec.min_step_minutes,
    )
    return margins, f"releases/{release}.yaml policy.rollout"


def step_windows(record: dict[str, Any]) -> tuple[str, str]:
    """Since when the canary's and the baseline's traffic count for the current step: both since
    the step started, except at 100 %, where the old release serves nothing and its baseline is
    its traffic since the rollout started."""
    baseline_since = record["step_started"] if record["weight"] < 100 else record["started"]
    return record["step_started"], baseline_since


def analyze_rollout(root: Path, channel: str, canary_logs: Path, baseline_logs: Path) -> StepReport:
    """Seed 004's gate on the current step's traffic: the candidate's requests in the canary log
    and the channel's release's requests in the baseline log, each in its window (since the step
    started, at a 100 % step the baseline since the rollout started) up to now. Same file for both
    sides, records from the future or without a release, or a side with none of its release's
    records are exit 2 (`observations`)."""
    from releasectl.rollout.analysis import analyze_step
    from releasectl.rollout.observations import read_window, same_file

    check_channel(channel)
    if same_file(canary_logs, baseline_logs):
        raise BadInput(
            f"--canary-logs and --baseline-logs are the same file ({canary_logs})",
            hint="give each side its own request log: the candidate's traffic and the release the channel holds",
        )
    state = read_state(root)
    record = active(state, channel)
    baseline_release = state.channels.get(channel)
    if baseline_release is None:
        raise BadInput(f"{channel} holds no release: the canary has no baseline to compare against")
    margins, source = margins_for(root, record["release"])
    canary_since, baseline_since = step_windows(record)
    at = time.time()
    canary = read_window(canary_logs, canary_since, release=record["release"], until=at, side="canary")
    baseline = read_window(baseline_logs, baseline_since, release=baseline_release, until=at, side="baseline")
    analysis = analyze_step(canary.observations, baseline.observations, margins)
    for window, side in ((canary, "canary"), (baseline, "baseline")):
        if window.untimed:
            analysis.notes.append(f"{side}: {window.untimed:,} records without a timestamp are not counted")
        if window.other_releases:
            n = sum(window.other_releases.values())
            names = ", ".join(sorted(window.other_releases))
            analysis.notes.append(f"{side}: {n:,} records of other releases ({names}) are not counted")
        if not window.observations.requests:
            analysis.notes.append(
                f"{side}: no request of {window.release} since {window.since} in {window.path}"
            )
    return StepReport(channel, baseline_release, record, canary, baseline, analysis, source)


def hold_if_young(report: StepReport, now: float) -> StepReport:
    """A passing analysis of a step younger than the policy's `min_step_minutes` is a hold that
    says until when (whatever the source: logs or Prometheus); `advance` refuses it too."""
    young = too_young(report.record, report.analysis.margins.min_step_minutes, now)
    if young and report.analysis.outcome == "pass":
        why = f"{young}; the data pass: advance once it has"
        report.analysis = dataclasses.replace(report.analysis, outcome="hold", reason=why)
    return report


def _instant(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def too_young(record: dict[str, Any], min_step_minutes: int, now: float) -> str | None:
    """Why the current step may not be left yet (policy.rollout.min_step_minutes), or None."""
    if not min_step_minutes:
        return None
    started = _instant(record["step_started"])
    ran = now - started
    if ran >= min_step_minutes * 60:
        return None
    until = datetime.fromtimestamp(started + min_step_minutes * 60, UTC).isoformat(timespec="seconds")
    return (
        f"step {record['step'] + 1} has run {max(0, int(ran // 60))} of the {min_step_minutes} minutes "
        f"policy.rollout.min_step_minutes asks for (until {until.replace('+00:00', 'Z')})"
    )


def rollout_status(root: Path, channel: str) -> dict[str, Any]:
    """The channel's rollout in progress (or None) and the events of its latest rollout."""
    check_channel(channel)
    state = read_state(root)
    events: list[dict[str, Any]] = []
    for e in reversed(state.events):
        if e["channel"] != channel or e.get("rollout") is None:
            continue
        events.append(e)
        if e["rollout"]["state"] == "started":
            break
    return {
        "channel": channel,
        "release": state.channels.get(channel),
        "rollout": state.rollouts.get(channel),
        "events": events[::-1],
        "revision": state.revision,
    }
