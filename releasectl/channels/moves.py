"""Moving channels: `promote` (needs a passing gate bound to the manifest) and `rollback`.

Both go through `record_move`, which holds the lock for read → check → append → rewrite → commit,
so concurrent invocations serialise and a compare-and-set (`expect`) sees the state it checks.
`releasectl monitor --auto-rollback` calls `rollback_channel`, the same code path as the CLI.
The traffic steps of a rollout (`releasectl.rollout.steps`) are events through `record_move` too,
ones that leave the channel where it is; the promote that completes a rollout is `promote_channel`.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.channels.state import (
    CHANNELS,
    CHANNELS_FILE,
    HISTORY_FILE,
    RESTORE_HINT,
    State,
    aborted_rollout,
    append_event,
    channels_from_history,
    check_channel,
    locked,
    read_state,
    release_name_ok,
    rollouts_from_history,
    scan_history,
    write_view,
)
from releasectl.ci import run_url
from releasectl.errors import BadInput, EnvironmentFailure

# Which gate stage a channel requires: staging takes dev→staging rules; canary and production
# take the staging→production rules (which include the canary rules).
STAGE_FOR_CHANNEL = {"staging": "staging", "canary": "production", "production": "production"}


class Refused(Exception):
    """The move is not allowed (exit 1): what is missing and how to get it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class MoveResult:
    action: str
    channel: str
    from_release: str | None
    to_release: str
    revision: int
    reason: str
    actor: str
    forced: bool
    commit: str | None
    gate: dict[str, Any] | None
    next_steps: list[str] = field(default_factory=list)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # deploy/rendered/<channel>/… in the same commit
    rollout: dict[str, Any] | None = None  # the rollout record this event carries

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["from"] = d.pop("from_release")
        d["to"] = d.pop("to_release")
        return d


def actor() -> str:
    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"]
    try:
        # One git call for both keys: this runs on the rollback path, where every process counts.
        out = subprocess.run(
            ["git", "config", "--get-regexp", r"^user\.(name|email)$"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    conf = dict(line.partition(" ")[::2] for line in out.splitlines())
    name, email = conf.get("user.name", "").strip(), conf.get("user.email", "").strip()
    if name:
        return f"{name} <{email}>" if email else name
    return getpass.getuser()


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _in_git(root: Path) -> bool:
    return (root / ".git").exists()


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EnvironmentFailure(
            f"git {' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


# Characters that must not reach a git subject or a terminal raw: C0 and C1 controls (newline,
# CR, ESC, ...), DEL, the Unicode line and paragraph separators, and the invisible format
# characters that reorder or hide text (bidi overrides and isolates, zero-width marks, BOM).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(text: str) -> str:
    """`text` on one line, every control or invisible format character escaped (`\\n`, `\\x1b`,
    `\\u202e`): what a commit subject or a console line shows of a user's reason. The history
    keeps the reason as given (JSON escapes it)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _commit(root: Path, message: str, extra_paths: list[str] | None = None) -> str:
    """Commit the channel files (and `extra_paths`): the one commit of every move. The message is
    one line: a reason's control characters are escaped, never a second line or a terminal code."""
    message = printable(message)
    paths = [str(CHANNELS_FILE), str(HISTORY_FILE), *(extra_paths or [])]
    # Commit only these two paths (`commit -- paths` takes them from the work tree), so a user's
    # other staged changes stay staged and uncommitted. Files git does not track yet (a first
    # move in a new repository) must be added first; trying the commit first saves a git call.
    commit = ["commit", "-q", "--no-verify", "-m", message, "--", *paths]
    try:
        _git(root, *commit)
    except EnvironmentFailure:
        _git(root, "add", "--", *paths)
        _git(root, *commit)
    return _git(root, "rev-parse", "HEAD")


def _push(root: Path) -> None:
    try:
        _git(root, "push", "-q")
    except EnvironmentFailure as e:
        raise EnvironmentFailure(
            f"{e.message}; the local commit stays", hint="fix the remote or credentials, then `git push`"
        ) from None


def _test_pause(point: str) -> None:
    # Test hook (documented in tests/test_channels.py): pause at a point so a test can SIGKILL us.
    if os.environ.get("RELEASECTL_TEST_PAUSE_AT") == point:
        time.sleep(float(os.environ.get("RELEASECTL_TEST_PAUSE_S", "30")))


def record_move(
    root: Path,
    *,
    action: str,
    channel: str,
    target: Any,
    reason: str,
    actor_name: str | None,
    expect: str | None,
    forced: bool,
    commit: bool,
    push: bool,
    dry_run: bool,
    extra: dict[str, Any] | None = None,
    tolerate_other_channels: bool = False,
    skip_damage: bool = False,
    render: tuple[str, ...] = (),
    moves: bool = True,
    when: str | None = None,
    message: Callable[[dict[str, Any]], str] | None = None,
) -> MoveResult:
    """Under the channels lock: read and check the log, ask `target(state, current)` for the
    release (and the gate relied on), append the event, rewrite the view, render, commit.

    `moves=False` records an event that leaves the channel where it is (a rollout step: `to` is
    the candidate); `when` fixes the event's time (a rollout record repeats it); `message(event)`
    words the commit message."""
    check_channel(channel)
    who = actor_name or actor()
    with locked(root):
        state = read_state(
            root, channel_needed=channel if tolerate_other_channels else None, skip_damage=skip_damage
        )
        current = state.channels.get(channel)
        if expect is not None and current != expect:
            raise Refused(
                f"{channel} holds {current or 'nothing'}, not {expect} (--expect)",
                hint="someone moved it since you looked; check `releasectl status` and retry",
            )
        to_release, gate = target(state, current)
        if to_release == current:
            raise Refused(f"{channel} already holds {to_release}")
        if not moves and current is None:
            raise Refused(
                f"{channel} holds no release yet",
                hint=f"promote the first release: releasectl promote vX.Y --to {channel}",
            )
        revision = state.revision + 1
        event: dict[str, Any] = {
            "revision": revision,
            "time": when or now_utc(),
            "actor": who,
            "action": action,
            "channel": channel,
            "from": current,
            "to": to_release,
            "reason": reason,
            "forced": forced,
            "gate": gate,
            **(extra or {}),
        }
        result = MoveResult(
            action, channel, current, to_release, revision, reason, who, forced, None, gate, dry_run=dry_run
        )
        result.rollout = event.get("rollout")
        result.warnings = [
            f"{p.render()} (skipped: {'it names channel ' + ln.channel_hint if ln.channel_hint and ln.channel_hint != channel else 'forced past it'}; {RESTORE_HINT})"
            for ln in state.skipped
            for p in ln.problems[:1]
        ]
        if state.skipped and forced:
            lines = ", ".join(str(ln.number) for ln in state.skipped)
            event["override"] = "; ".join(
                x
                for x in (event.get("override"), f"rolled back past damaged {HISTORY_FILE} line(s) {lines}")
                if x
            )
        if state.sequence is not None and (wrong := state.sequence.check(event, None)):
            # the verbs check what they write; an event out of order would block every later read
            raise AssertionError(f"refusing to write an event out of order: {wrong[0].render()}")
        # The served config is rendered before anything is written: a release that cannot be
        # rendered refuses the move instead of leaving the channel and its config apart.
        served = to_release if moves else current
        rendered = _render(root, channel, served, render) if render and served else {}
        if dry_run:
            return result
        if state.repaired:
            write_view(root, state.channels, state.revision, state.rollouts)
        append_event(root, event)
        _test_pause("after-history")
        channels = {**state.channels, channel: to_release} if moves else state.channels
        write_view(root, channels, revision, rollouts_from_history([event], state.rollouts))
        extra_paths = []
        if rendered:
            from releasectl.deploy import DEFAULT_OUT, write_rendered

            write_rendered(root / DEFAULT_OUT, channel, rendered)
            extra_paths = [f"{DEFAULT_OUT}/{channel}"]
            result.rendered = sorted(f"{DEFAULT_OUT}/{channel}/{rel}" for rel in rendered)
        if commit and _in_git(root):
            arrow = f"{current or '∅'} → {to_release}"
            subject = message(event) if message else f"{action}({channel}): {arrow} — {reason}"
            result.commit = _commit(root, subject, extra_paths)
    if push and result.commit:
        _push(root)
    return result


def _render(root: Path, channel: str, release: str, targets: tuple[str, ...]) -> dict[str, str]:
    """What serves `release` on `channel`, rendered from its pins (deploy render)."""
    from releasectl.deploy import render_release
    from releasectl.manifest.loader import load_manifest, release_path

    return render_release(load_manifest(release_path(root, release)), channel, targets)


def _gate_for(root: Path, release: str, gate_file: Path | None) -> tuple[dict[str, Any] | None, str, Path]:
    """gate.json re-validated against its model, rules and verdict re-derived
    (`verified.verified_gate`: an inconsistent record is exit 2, never a promotion)."""
    path = gate_file or root / "runs" / release / "gate.json"
    if not os.path.lexists(path):
        return None, "", path
    from releasectl.channels import verified

    doc, digest = verified.verified_gate(path)
    return doc, digest, path


def promotion_gate(
    root: Path, release: str, channel: str, gate_file: Path | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """What promoting `release` to `channel` relies on: (the gate as history records it, or None;
    why it does not allow the move, or None). A passing gate for the channel's stage, bound to the
    manifest's current digest (an unknown or invalid manifest is exit 2). `rollout` starts on the
    same checks."""
    from releasectl.manifest.loader import load_manifest, release_path

    check_channel(channel)
    loaded = load_manifest(release_path(root, release))
    stage = STAGE_FOR_CHANNEL[channel]
    doc, digest, path = _gate_for(root, release, gate_file)
    if doc is None:
        return None, f"no gate result at {path}"
    gate = {
        "verdict": doc.get("verdict"),
        "stage": doc.get("stage"),
        "sha256": digest,
        "file": str(path),
        "run_url": doc.get("run_url") or run_url(),
    }
    problem = None
    if doc.get("release") != release:
        problem = f"{path} is the gate of {doc.get('release')}, not {release}"
    elif doc.get("stage") != stage:
        problem = f"{path} gated stage '{doc.get('stage')}', but {channel} needs stage '{stage}'"
    elif doc.get("manifest_digest") != loaded.digest:
        problem = f"{path} was made for manifest {doc.get('manifest_digest')}, but releases/{release}.yaml is now {loaded.digest}"
    elif doc.get("verdict") != "promote":
        problem = f"the gate says {doc.get('verdict')}: {doc.get('verdict_reason', '')}"
    else:
        problem = _partial_gate(doc, loaded, path)
    return gate, problem


def _partial_gate(doc: dict[str, Any], loaded: Any, path: Path) -> str | None:
    """Why a gate does not cover the release's suite, or None. Every gate must be of the suite
    the manifest pins (`data.suite.md5`); a fixed-n gate must also say how many cases it read
    (`aggregate.candidate.n`, the sum of its slices'), record no `--limit` or shard, and cover
    the whole suite when it is here to count: a partial replay, or a sequential gate.json
    stripped of its `sequential` record (its early-stopped prefix would read as fixed-n
    statistics), is no basis for promotion. It fails closed: a count it cannot read refuses."""
    pinned = loaded.manifest.data.suite.md5
    if pinned and doc.get("suite_digest") != pinned:
        return f"{path} gated suite {doc.get('suite_digest')}, and releases/{loaded.manifest.release}.yaml pins {pinned}"
    run = (doc.get("provenance") or {}).get("candidate_run") or {}
    partial = next((f"{k} {run[k]}" for k in ("limit", "shard") if run.get(k) is not None), None)
    if partial is not None:
        return f"{path} gated a partial replay ({partial}): replay the whole suite to promote"
    if doc.get("sequential") is not None:
        return None  # a sequential gate says how far it went (GateRecord checks its counts)
    n = ((doc.get("aggregate") or {}).get("candidate") or {}).get("n")
    if type(n) is not int:
        return (
            f"{path} records no case count (aggregate.candidate.n), so its coverage of the suite is unknown"
        )
    slices = [(row.get("candidate") or {}).get("n") for row in doc.get("slices") or []]
    total = sum(x for x in slices if type(x) is int)
    if slices and total != n:
        return f"{path}: aggregate.candidate.n {n} is not the sum of its slices' ({total})"
    suite_path = loaded.manifest.data.suite.path
    if not suite_path:
        return None
    from releasectl.suite import load_suite

    try:
        suite = load_suite(loaded.resolve(suite_path))
    except BadInput:
        return None  # not here (e.g. not pulled): the pin above still binds the gate to it
    if suite.digest != doc.get("suite_digest") or n >= len(suite.cases):
        return None
    return (
        f"{path} evaluates {n} of the suite's {len(suite.cases)} cases with fixed-n statistics: a"
        " partial replay (--limit, a shard, or a sequential run without its record) is not a basis"
        " for promotion"
    )


def gate_hint(release: str, channel: str) -> str:
    stage = STAGE_FOR_CHANNEL[channel]
    return f'replay and gate it: releasectl replay releases/{release}.yaml && releasectl gate releases/{release}.yaml --run runs/{release} --stage {stage}; or --force --reason "…"'


def rollout_in_progress(state: State, channel: str) -> Refused | None:
    """The refusal for a plain move of a channel whose traffic is being stepped, or None."""
    record = state.rollouts.get(channel)
    if record is None:
        return None
    where = f"step {record['step'] + 1}/{len(record['plan'])}, {record['weight']} %"
    return Refused(
        f"{channel} has a rollout of {record['release']} in progress ({where}, {record['state']})",
        hint=f"finish it (releasectl rollout advance --channel {channel}) or end it (releasectl rollout abort --channel {channel})",
    )


def promote_channel(
    root: Path,
    release: str,
    channel: str,
    *,
    reason: str | None = None,
    gate_file: Path | None = None,
    force: bool = False,
    actor_name: str | None = None,
    expect: str | None = None,
    commit: bool = True,
    push: bool = False,
    dry_run: bool = False,
    render: tuple[str, ...] = (),
    completes: Callable[[State], dict[str, Any]] | None = None,
    override: str | None = None,
) -> MoveResult:
    """Point `channel` at `release`, which needs a passing gate for the channel's stage bound to
    the manifest's current digest, unless forced (with a reason, recorded).

    A channel with a rollout in progress is refused; `completes(state)` (the last step of that
    rollout, `releasectl.rollout.steps`) is called under the lock instead and returns the rollout
    record the promote carries. `override` is a refusal the caller overrode (recorded; forced)."""
    if force and not reason:
        raise BadInput("--force needs --reason: the override is recorded in the audit trail")
    gate, problem = promotion_gate(root, release, channel, gate_file)
    if problem and not force:
        raise Refused(f"cannot promote {release} to {channel}: {problem}", hint=gate_hint(release, channel))
    overrides = "; ".join(x for x in (problem, override) if x)
    extra: dict[str, Any] = {"override": overrides} if overrides else {}

    def target(state: State, current: str | None) -> tuple[str, dict[str, Any] | None]:
        if completes is not None:
            extra["rollout"] = completes(state)
        elif refusal := rollout_in_progress(state, channel):
            raise refusal
        return release, gate

    stage = STAGE_FOR_CHANNEL[channel]
    result = record_move(
        root,
        action="promote",
        channel=channel,
        target=target,
        reason=reason or f"gate {gate['verdict'] if gate else 'none'} for stage {stage}",
        actor_name=actor_name,
        expect=expect,
        forced=bool(overrides),
        commit=commit,
        push=push,
        dry_run=dry_run,
        extra=extra,
        render=render,
    )
    result.next_steps = [_deploy_step(result, channel, release, "(every artifact is pinned there)")]
    return result


def _deploy_step(result: MoveResult, channel: str, release: str, note: str) -> str:
    if result.rendered:
        return f"deploy: the GitOps controller watching deploy/rendered/{channel} applies this commit ({len(result.rendered)} rendered files)"
    return f"deploy: point the {channel} serving layer at releases/{release}.yaml {note}"


def previous_release(state: State, channel: str) -> str | None:
    """Helm-like: the release that held the channel before the current one."""
    for e in reversed(state.moves):
        if e["channel"] == channel:
            return e["from"]
    return None


def gate_relied_on(state: State, channel: str, release: str) -> dict[str, Any] | None:
    """The gate recorded when `release` last entered `channel` (a rollback relies on it again)."""
    for e in reversed(state.moves):
        if e["channel"] == channel and e["to"] == release and e.get("gate"):
            return e["gate"]
    return None


def held_channel(state: State, channel: str, release: str) -> bool:
    return any(e["channel"] == channel and release in (e["to"], e["from"]) for e in state.moves)


def rollback_channel(
    root: Path,
    channel: str = "production",
    to: str | None = None,
    *,
    reason: str,
    actor: str | None = None,
    expect: str | None = None,
    force: bool = False,
    commit: bool = True,
    push: bool = False,
    dry_run: bool = False,
    trigger: dict[str, Any] | None = None,
    render: tuple[str, ...] = (),
) -> MoveResult:
    """Re-point `channel` to `to` (default: the release before the current one), append history,
    and commit. Refuses a release that never held the channel or whose manifest no longer
    validates, unless `force`. During a rollout on the channel, a rollback needs `to` or `force`
    (the channel still holds the old release: `rollout abort` is the way back to it); it then
    ends the rollout (its canary weight goes to 0; the event records `rollout.state: aborted`)."""
    # An unknown release is bad input (exit 2), before any history check; a known one is checked
    # without the manifest loader (pydantic), which the incident path does not import.
    if to is not None and not (release_name_ok(to) and (root / "releases" / f"{to}.yaml").is_file()):
        from releasectl.manifest.loader import release_path

        try:
            release_path(root, to)
            raise BadInput(f"'{to}' is not a release name (vX.Y or vX.Y.Z)")
        except BadInput as e:
            known = sorted(p.stem for p in (root / "releases").glob("v*.yaml"))
            raise BadInput(e.message, hint="known releases: " + (", ".join(known) or "none")) from None
    # Filled in by `target` under the lock; record_move spreads it into the event after calling target.
    extra: dict[str, Any] = {"trigger": trigger} if trigger else {}

    def target(state: State, current: str | None) -> tuple[str, dict[str, Any] | None]:
        if to is None and not force and channel in state.rollouts:
            raise _rollback_during_rollout(state, channel, current)
        release = to or previous_release(state, channel)
        if release is None:
            raise Refused(
                f"{channel} has no earlier release to roll back to", hint="name one: releasectl rollback vX.Y"
            )
        overrides = []
        if not held_channel(state, channel, release):
            if not force:
                held = sorted({e["to"] for e in state.moves if e["channel"] == channel and e["to"]})
                raise Refused(
                    f"{release} never held {channel}",
                    hint=f"releases that did: {', '.join(held) or 'none'}; --force to override",
                )
            overrides.append(f"{release} never held {channel}")
        problems = validation_problems(root, release)
        if problems and not force:
            raise Refused(
                f"releases/{release}.yaml no longer validates: " + "; ".join(problems[:3]),
                hint="fix the manifest, or --force to roll back anyway",
            )
        overrides += problems[:3]
        if overrides:
            extra["override"] = "; ".join(overrides)
        if channel in state.rollouts:
            extra["rollout"] = aborted_rollout(state.rollouts[channel])
        return release, gate_relied_on(state, channel, release)

    result = record_move(
        root,
        action="rollback",
        channel=channel,
        target=target,
        reason=reason,
        actor_name=actor,
        expect=expect,
        forced=force,
        commit=commit,
        push=push,
        dry_run=dry_run,
        extra=extra,
        tolerate_other_channels=True,
        skip_damage=force and to is not None,
        render=render,
    )
    result.next_steps = [
        _deploy_step(
            result, channel, result.to_release, "— nothing is rebuilt, every artifact is pinned there"
        ),
        f"keep {result.from_release} running as hot standby until traffic has moved and {result.to_release} is verified (seed 004: under 5 minutes)",
        "then write up the incident and schedule the postmortem",
    ]
    if result.commit and not push:
        result.next_steps.insert(0, "push the rollback commit: git push (or rerun with --push)")
    return result


def _rollback_during_rollout(state: State, channel: str, current: str | None) -> Refused:
    """A plain rollback while a rollout runs would move the channel off the release that still
    holds it, to an older one: the incident reflex is the rollout's abort."""
    record = state.rollouts[channel]
    older = previous_release(state, channel)
    where = f"step {record['step'] + 1}/{len(record['plan'])}, {record['weight']} %"
    return Refused(
        f"{channel} has a rollout of {record['release']} in progress ({where}) and still holds {current}: "
        f"a rollback would move it to {older or 'an older release'}, not back to {current}",
        hint=f'to send all traffic back to {current}: releasectl rollout abort --channel {channel} --reason "…"; '
        f"to roll back past {current} anyway, name the release (releasectl rollback vX.Y --channel {channel}) "
        "or --force; either ends the rollout",
    )


def validation_problems(root: Path, release: str) -> list[str]:
    """What is wrong with releases/<release>.yaml now (schema, pins, artifact digests); [] if fine.
    An unknown release is bad input (exit 2), even with --force."""
    from releasectl.channels import verified

    path = root / "releases" / f"{release}.yaml"
    if path.is_file() and verified.is_verified(path):
        return []  # validated before and nothing it depends on changed: skip pydantic (~150 ms)
    from releasectl.manifest.artifacts import check_digest, local_path
    from releasectl.manifest.loader import iter_artifacts, load_manifest, release_path

    path = release_path(root, release)
    try:
        loaded = load_manifest(path)
    except BadInput as e:
        return [p.render() for p in e.problems] or [e.message]
    out, targets = [], []
    for field_name, art in iter_artifacts(loaded.manifest):
        r = check_digest(field_name, art, loaded.root)
        if r is not None and not r.ok:
            out.append(f"{field_name}: {r.message}")
        elif r is not None:
            targets.append(local_path(art, loaded.root))
    if not out:
        verified.remember(path, [t for t in targets if t is not None])
    return out


@dataclass
class RepairResult:
    repaired: bool
    truncated_at_line: int | None
    kept_aside: str | None
    cut_lines: list[dict[str, Any]]
    view_rebuilt: bool
    revision: int
    channels: dict[str, str | None]
    commit: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repair_history(root: Path, *, commit: bool = True) -> RepairResult:
    """`releasectl history --repair`: the one way to cut a torn or damaged tail off the log.

    The bad tail is kept aside (releases/history.jsonl.torn-<utc>), the log is truncated to its
    last good line (atomically: every earlier byte is unchanged), channels.yaml is rebuilt from
    the log, and both are committed. A damaged line with good lines after it is history: it is
    not cut, and this says how to restore it."""
    from releasectl.channels.state import RESTORE_HINT
    from releasectl.fsutil import atomic_write_bytes

    with locked(root):
        log = scan_history(root)
        if log.middle:
            bad = log.middle
            problems = [p for ln in bad for p in ln.problems]
            raise BadInput(
                f"cannot repair: {problems[0].render() if problems else bad[0].number} is a damaged line "
                "with good events after it; --repair only cuts a torn or damaged tail",
                problems,
                hint=RESTORE_HINT,
            )
        tail = log.tail
        kept = None
        if tail:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = root / f"{HISTORY_FILE}.torn-{stamp}"
            n = 1
            while aside.exists():
                aside, n = root / f"{HISTORY_FILE}.torn-{stamp}-{n}", n + 1
            atomic_write_bytes(aside, log.raw[log.good_end :])
            atomic_write_bytes(root / HISTORY_FILE, log.raw[: log.good_end])
            kept = str(aside.relative_to(root))
        events = log.events
        try:
            state = read_state(root)
            channels, rollouts, view_rebuilt = state.channels, state.rollouts, state.repaired
        except BadInput:
            if events:
                raise
            # no events and a damaged view: nothing to rebuild it from but an empty map
            channels, view_rebuilt = channels_from_history([], {c: None for c in CHANNELS}), True
            rollouts = {}
        revision = events[-1]["revision"] if events else 0
        if view_rebuilt or tail:
            write_view(root, channels, revision, rollouts)
        result = RepairResult(
            bool(tail) or view_rebuilt,
            tail[0].number if tail else None,
            kept,
            [
                {"line": ln.number, "problem": ln.problems[0].render() if ln.problems else "damaged"}
                for ln in tail
            ],
            view_rebuilt or bool(tail),
            revision,
            channels,
            None,
        )
        changed = _in_git(root) and _git(
            root, "status", "--porcelain", "--", str(CHANNELS_FILE), str(HISTORY_FILE)
        )
        if result.repaired and commit and changed:
            what = (
                f"cut {len(tail)} bad line(s) from line {tail[0].number}, kept in {kept}"
                if tail
                else "rebuilt the view"
            )
            result.commit = _commit(root, f"history --repair: {what}")
    return result
