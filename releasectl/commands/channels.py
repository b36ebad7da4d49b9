"""`releasectl promote`, `rollback`, `history` and `status`: the channel verbs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, esc, format_option
from releasectl.deploy import TARGETS as DEPLOY_TARGETS
from releasectl.errors import ExitCode
from releasectl.repo import repo_root

_gate_option = click.option(
    "--gate",
    "gate_file",
    type=click.Path(path_type=Path),
    default=None,
    help="gate.json to rely on; default runs/RELEASE/gate.json.",
)


MAX_REASON = 65_536  # contracts._types.MAX_TEXT: what a history event keeps of a reason


def _reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--reason is recorded in the audit log: not blank, and within what an event holds."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("expected a reason, found an empty one")
    if len(value) > MAX_REASON:
        raise click.BadParameter(f"at most {MAX_REASON:,} characters, found {len(value):,}")
    return value


def move_options(fn: Any) -> Any:
    """Options every channel move takes: compare-and-set, commit, push, dry run, format."""
    options = [
        click.option(
            "--expect",
            default=None,
            metavar="vA.B",
            help="Fail unless the channel currently holds this release (compare-and-set).",
        ),
        click.option("--no-commit", is_flag=True, help="Do not make a git commit."),
        click.option("--push", is_flag=True, help="Push the commit to the branch's upstream."),
        click.option("--dry-run", is_flag=True, help="Check and show the move without writing anything."),
        click.option(
            "--render",
            "render",
            type=click.Choice(list(DEPLOY_TARGETS)),
            multiple=True,
            help="Re-render what serves the channel (deploy/rendered/CHANNEL) in the same commit. Repeatable.",
        ),
        format_option(),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run_move(move: Any, fmt: str, *args: Any, **kwargs: Any) -> int:
    """Run a channel move in the repository here and report it, or the refusal (exit 1)."""
    from releasectl.channels import Refused

    try:
        result = move(repo_root(), *args, **kwargs)
    except Refused as e:
        return _refused(e, fmt)
    return _report(result, fmt)


def _refused(e: Any, fmt: str) -> int:
    if fmt == "json":
        emit_json({"refused": True, "message": e.message, "hint": e.hint})
    else:
        out = console(stderr=True)
        out.print(f"[red bold]refused:[/] {esc(e.message)}", highlight=False)
        if e.hint:
            out.print(f"[dim]hint: {esc(e.hint)}[/]", highlight=False)
    return int(ExitCode.NO)


def _printable(text: str) -> str:
    from releasectl.channels.moves import printable

    return printable(text)


def _report(result: Any, fmt: str) -> int:
    if fmt == "json":
        emit_json(result.to_dict())
        return 0
    # Plain click output, not Rich: importing Rich costs ~45 ms of a ~200 ms rollback, and these
    # few lines need no table. click.style drops the colour when stdout is not a terminal.
    verb = "would move" if result.dry_run else ("rolled back" if result.action == "rollback" else "promoted")
    bold = {"bold": True}
    forced = click.style(" (forced)", fg="yellow") if result.forced else ""
    click.echo(
        f"{verb} {click.style(result.channel, **bold)}: {result.from_release or '∅'} → "
        f"{click.style(result.to_release, **bold)}{forced}  (revision {result.revision}, {result.actor})"
    )
    click.echo(f"reason: {_printable(result.reason)}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.commit:
        rendered = f", {len(result.rendered)} rendered files" if result.rendered else ""
        click.echo(f"commit {result.commit[:12]}: releases/channels.yaml, releases/history.jsonl{rendered}")
    for step in result.next_steps:
        click.echo(f"next: {step}")
    return 0


@click.command()
@click.argument("release")
@click.option(
    "--to",
    "channel",
    required=True,
    type=click.Choice(["staging", "canary", "production"]),
    help="The channel to point at RELEASE.",
)
@_gate_option
@click.option("--force", is_flag=True, help="Promote without a passing gate (needs --reason; recorded).")
@click.option("--reason", callback=_reason, default=None, help="Why; required with --force.")
@move_options
def promote(
    release: str,
    channel: str,
    gate_file: Path | None,
    force: bool,
    reason: str | None,
    expect: str | None,
    no_commit: bool,
    push: bool,
    dry_run: bool,
    render: tuple[str, ...],
    fmt: str,
) -> int:
    """Point CHANNEL at RELEASE, which needs a passing gate bound to its manifest's digest.

    staging needs a gate of stage `staging`; canary and production need stage `production`.
    """
    from releasectl.channels import promote_channel

    return _run_move(
        promote_channel,
        fmt,
        release,
        channel,
        reason=reason,
        gate_file=gate_file,
        force=force,
        expect=expect,
        commit=not no_commit,
        push=push,
        dry_run=dry_run,
        render=render,
    )


@click.command()
@click.argument("release", required=False)
@click.option(
    "--channel",
    default="production",
    show_default=True,
    type=click.Choice(["staging", "canary", "production"]),
)
@click.option(
    "--reason",
    callback=_reason,
    default="manual rollback",
    show_default=True,
    help="Why; recorded in the history and the commit message.",
)
@click.option(
    "--force", is_flag=True, help="Roll back to a release that never held the channel or no longer validates."
)
@move_options
def rollback(
    release: str | None,
    channel: str,
    reason: str,
    expect: str | None,
    force: bool,
    no_commit: bool,
    push: bool,
    dry_run: bool,
    render: tuple[str, ...],
    fmt: str,
) -> int:
    """Re-point CHANNEL to RELEASE (default: the release before the current one), fast.

    Nothing is rebuilt: the older manifest still pins every artifact. Records who, when and why
    in releases/history.jsonl and commits both files when inside a git repository.
    """
    from releasectl.channels import rollback_channel

    return _run_move(
        rollback_channel,
        fmt,
        channel,
        release,
        reason=reason,
        expect=expect,
        force=force,
        commit=not no_commit,
        push=push,
        dry_run=dry_run,
        render=render,
    )


def _repair(fmt: str, *, commit: bool) -> int:
    from releasectl.channels.moves import repair_history

    result = repair_history(repo_root(), commit=commit)
    if fmt == "json":
        emit_json(result.to_dict())
        return 0
    if not result.repaired:
        click.echo(f"nothing to repair: releases/history.jsonl is whole (revision {result.revision})")
        return 0
    for cut in result.cut_lines:
        click.echo(f"cut: {cut['problem']}")
    if result.kept_aside:
        click.echo(f"kept aside: {result.kept_aside} (the bytes cut from line {result.truncated_at_line} on)")
        click.echo(f"truncated: releases/history.jsonl now ends at revision {result.revision}")
    click.echo(
        "rebuilt: releases/channels.yaml from the log: "
        + ", ".join(f"{c} {r or '–'}" for c, r in result.channels.items())
    )
    if result.commit:
        click.echo(f"commit {result.commit[:12]}: releases/channels.yaml, releases/history.jsonl")
    if result.kept_aside:
        click.echo(
            f"next: inspect {result.kept_aside}; if it was a move that should stand, redo it with releasectl"
        )
    return 0


def _age(iso: str | None) -> str:
    if not iso:
        return "–"
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    s = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


@click.command()
@click.option(
    "--channel",
    default=None,
    type=click.Choice(["staging", "canary", "production"]),
    help="Only this channel.",
)
@click.option("--limit", type=int, default=20, show_default=True, help="Most recent events to show (0: all).")
@click.option(
    "--repair",
    is_flag=True,
    help="Cut a torn or damaged tail off the log (kept aside in releases/history.jsonl.torn-<utc>), "
    "rebuild channels.yaml from the log, and commit.",
)
@click.option("--no-commit", is_flag=True, help="With --repair: do not make a git commit.")
@format_option()
def history(channel: str | None, limit: int, repair: bool, no_commit: bool, fmt: str) -> int:
    """Show the audit trail, Helm-style: revision, time, action, from → to, actor, reason, status."""
    from releasectl.channels import read_state

    if repair:
        return _repair(fmt, commit=not no_commit)
    state = read_state(repo_root())
    events = [e for e in state.events if channel is None or e["channel"] == channel]
    latest = {}
    for e in state.moves:
        latest[e["channel"]] = e["revision"]

    def status_of(e: dict[str, Any]) -> str:
        if e["action"] == "rollout":  # a traffic step: the channel did not move
            return "rollout"
        return "deployed" if latest.get(e["channel"]) == e["revision"] else "superseded"

    rows = [{**e, "status": status_of(e)} for e in events]
    if limit:
        rows = rows[-limit:]
    if fmt == "json":
        emit_json({"events": rows, "channels": state.channels})
        return 0
    from rich.markup import escape
    from rich.table import Table

    def shown(value: str) -> str:  # from the log: no markup, and no escape sequence reaches the terminal
        return escape(_printable(value))

    table = Table(title="release history" + (f" · {channel}" if channel else ""), title_justify="left")
    columns = [
        "rev",
        "time (UTC)",
        *([] if channel else ["channel"]),
        "action",
        "from → to",
        "status",
        "actor",
        "reason",
    ]
    for col in columns:
        table.add_column(
            col,
            justify="right" if col == "rev" else "left",
            no_wrap=col in ("rev", "time (UTC)", "from → to", "status"),
        )
    for r in rows:
        status = {"deployed": "[green]deployed[/]", "superseded": "[dim]superseded[/]"}.get(r["status"], "")
        if r.get("rollout"):
            step = r["rollout"]
            status = status or f"[cyan]{esc(step['state'])} {step['weight']}%[/]"
        action = r["action"] + ("!" if r.get("forced") else "")
        cells = [
            str(r["revision"]),
            r["time"].replace("T", " ")[:16],
            *([] if channel else [r["channel"]]),
            action,
            shown(f"{r['from'] or '∅'} → {r['to']}"),
            status,
            shown(r["actor"].split(" <")[0]),
            shown(r.get("reason") or ""),
        ]
        table.add_row(*cells)
    console().print(table)
    if any(r.get("forced") for r in rows):
        console().print("[dim]! = forced: moved without a passing gate (the override is in --format json)[/]")
    return 0


def _rollout_cell(step: dict[str, Any] | None) -> str:
    if not step:
        return "–"
    where = f"step {step['step'] + 1}/{len(step['plan'])}, {step['state']}"
    return f"{esc(step['release'])} {step['weight']}% ({esc(where)})"


@click.command()
@format_option()
def status(fmt: str) -> int:
    """Show each channel: its release, the gate verdict it relied on, and how long it has held."""

    from releasectl.channels import CHANNELS, read_state
    from releasectl.channels.state import repair_view
    from releasectl.safeio import present

    root = repo_root()
    state = read_state(root)
    if state.repaired:
        repair_view(root)
    rows: list[dict[str, Any]] = []
    for c in CHANNELS:
        release = state.channels.get(c)
        last = next((e for e in reversed(state.moves) if e["channel"] == c), None)
        gate = (last or {}).get("gate") or {}
        verdict = gate.get("verdict")
        if verdict is None and release and present(root / "runs" / release / "gate.json", what="gate"):
            from releasectl.errors import BadInput
            from releasectl.safeio import read_json

            try:
                doc = read_json(root / "runs" / release / "gate.json", what="gate.json")
                verdict = doc.get("verdict") if isinstance(doc, dict) else None
            except BadInput:
                verdict = "unreadable gate.json"
        if last and last.get("forced"):
            verdict = f"{verdict or 'none'} (forced)"
        rows.append(
            {
                "channel": c,
                "release": release,
                "gate": verdict,
                "since": (last or {}).get("time"),
                "age": _age((last or {}).get("time")),
                "revision": (last or {}).get("revision"),
                "action": (last or {}).get("action"),
                "rollout": state.rollouts.get(c),
            }
        )
    if fmt == "json":
        emit_json({"channels": rows, "revision": state.revision, "view_repaired": state.repaired})
        return 0
    from rich.table import Table

    table = Table(title=f"channels · revision {state.revision}", title_justify="left")
    stepping = any(r["rollout"] for r in rows)
    for col in ("channel", "release", "gate", "since", "last move", *(["rollout"] if stepping else [])):
        table.add_column(col)
    for r in rows:
        rollout_cell = [_rollout_cell(r["rollout"])] if stepping else []
        table.add_row(
            esc(r["channel"]),
            esc(r["release"] or "–"),
            esc(r["gate"] or "–"),
            r["age"],
            f"{r['action'] or '–'} (rev {r['revision']})" if r["revision"] else "–",
            *rollout_cell,
        )
    console().print(table)
    if state.repaired:
        console().print(
            "[yellow]repaired:[/] releases/channels.yaml lagged the history (an interrupted write) and was rebuilt from it; commit both files"
        )
    return 0


# --- rollout: traffic steps ---------------------------------------------------------------------


class _RolloutGroup(click.Group):
    """`rollout vX.Y …` starts a rollout; `rollout VERB …` runs a verb on the one in progress."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


def _channel_option(fn: Any) -> Any:
    return click.option(
        "--channel",
        default="production",
        show_default=True,
        type=click.Choice(["staging", "canary", "production"]),
        help="The channel whose traffic is stepped.",
    )(fn)


def _logs_options(fn: Any) -> Any:
    fn = click.option(
        "--baseline-logs",
        type=click.Path(path_type=Path),
        default=None,
        help="Request log (JSON lines) of the release the channel holds.",
    )(fn)
    return click.option(
        "--canary-logs",
        type=click.Path(path_type=Path),
        default=None,
        help="Request log (JSON lines) of the candidate's traffic.",
    )(fn)


def _prometheus_options(fn: Any) -> Any:
    fn = click.option(
        "--window",
        default=None,
        help="With --prometheus: read at most this much of the step (30m, 6h, 1d); default: all of it since the step started.",
    )(fn)
    return click.option(
        "--prometheus",
        "prometheus_url",
        default=None,
        metavar="URL",
        help="Read both releases' counts since the step started from Prometheus (vLLM's metric names) instead of logs.",
    )(fn)


def _move_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "expect": kwargs["expect"],
        "commit": not kwargs["no_commit"],
        "push": kwargs["push"],
        "dry_run": kwargs["dry_run"],
        "render": kwargs["render"],
    }


def _report_rollout(result: Any, fmt: str, extra: dict[str, Any] | None = None) -> int:
    if fmt == "json":
        emit_json({**(extra or {}), **result.to_dict()})
        return 0
    from releasectl.rollout.plan import describe

    record = result.rollout or {}
    if result.action != "rollout":  # the promote that completes it, or a rollback
        click.echo(f"rollout {record.get('state')}: {describe(record)}")
        return _report(result, fmt)
    verb = "would record" if result.dry_run else "rollout"
    forced = click.style(" (forced)", fg="yellow") if result.forced else ""
    click.echo(
        f"{verb} {click.style(result.channel, bold=True)}: {describe(record)}{forced}; "
        f"{result.from_release} serves the rest  (revision {result.revision}, {result.actor})"
    )
    click.echo(f"reason: {_printable(result.reason)}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.commit:
        rendered = f", {len(result.rendered)} rendered files" if result.rendered else ""
        click.echo(f"commit {result.commit[:12]}: releases/channels.yaml, releases/history.jsonl{rendered}")
    if record.get("state") == "aborted":
        click.echo(
            f"next: route all {result.channel} traffic to {result.from_release} (the candidate's weight is 0)"
        )
    elif record.get("state") != "paused":
        click.echo(
            f"next: send {record.get('weight')} % of {result.channel} traffic to {record.get('release')}, then "
            f"releasectl rollout analyze --channel {result.channel} --canary-logs … --baseline-logs … "
            "(or --prometheus URL)"
        )
    return 0


def _rollout_move(move: Any, fmt: str, *args: Any, extra: dict[str, Any] | None = None, **kwargs: Any) -> int:
    from releasectl.channels import Refused

    try:
        result = move(repo_root(), *args, **kwargs)
    except Refused as e:
        if fmt == "json":
            emit_json({**(extra or {}), "refused": True, "message": e.message, "hint": e.hint})
            return int(ExitCode.NO)
        return _refused(e, fmt)
    return _report_rollout(result, fmt, extra)


@click.group(cls=_RolloutGroup, subcommand_metavar="RELEASE [--steps …] | COMMAND [ARGS]...")
def rollout() -> None:
    """Step a channel's traffic to a release (seed 004: 5 → 20 → 50 → 100 %), each step gated.

    \b
      releasectl rollout v1.3 --channel production --steps 5,20,50,100
      releasectl rollout analyze --canary-logs canary.jsonl --baseline-logs baseline.jsonl
      releasectl rollout advance --canary-logs canary.jsonl --baseline-logs baseline.jsonl
      releasectl rollout analyze --prometheus http://prometheus:9090 --auto-abort
      releasectl rollout status | pause | resume | abort

    A step advances when seed 004's relative gate passes on its traffic (task completion ≥ old
    − 2 points, p95 ≤ old × 1.2, errors ≤ old + 0.5 points, satisfaction ≥ old − 5 %), decided
    with anytime-valid confidence sequences; it holds while the data cannot decide. Past the
    last step the release is promoted to the channel; an abort leaves the channel on the old
    release. From Prometheus (counts since the step started), the metrics vLLM does not export
    (task completion, satisfaction) are not measured and left out of the decision.
    analyze exits 0 pass, 1 fail or hold, 2 bad input, 3 environment failure (Prometheus down).
    """


@rollout.command("start")
@click.argument("release")
@_channel_option
@click.option(
    "--steps",
    default="5,20,50,100",
    show_default=True,
    help="Canary weights in %, increasing, ending at 100.",
)
@_gate_option
@click.option("--force", is_flag=True, help="Start without a passing gate (needs --reason; recorded).")
@click.option(
    "--reason", callback=_reason, default=None, help="Why; recorded in the history and the commit message."
)
@move_options
def rollout_start(
    release: str, channel: str, steps: str, gate_file: Path | None, force: bool, reason: str | None, **kw: Any
) -> int:
    """Start a rollout of RELEASE (the same checks as promote: a passing gate for the stage)."""
    from releasectl.rollout.plan import parse_steps
    from releasectl.rollout.steps import start_rollout

    plan = parse_steps(steps)
    return _rollout_move(
        start_rollout,
        kw["fmt"],
        release,
        channel,
        plan,
        reason=reason,
        gate_file=gate_file,
        force=force,
        **_move_options(kw),
    )


@rollout.command("status")
@_channel_option
@format_option()
def rollout_status_cmd(channel: str, fmt: str) -> int:
    """Show the rollout in progress (step, weight, state) and the events of the latest one."""
    from releasectl.rollout.plan import describe
    from releasectl.rollout.steps import rollout_status

    doc = rollout_status(repo_root(), channel)
    if fmt == "json":
        emit_json(doc)
        return 0
    record = doc["rollout"]
    head = f"{channel} holds {doc['release'] or 'nothing'}"
    click.echo(f"{head}; rollout: {describe(record)}" if record else f"{head}; no rollout in progress")
    if record:
        click.echo(f"step started {record['step_started']} (rollout started {record['started']})")
    for e in doc["events"]:
        r = e["rollout"]
        forced = " (forced)" if e.get("forced") else ""
        analysis = f", analysis {r['analysis']['outcome']}" if r.get("analysis") else ""
        click.echo(
            f"  rev {e['revision']}  {e['time']}  {e['action']}: {describe(r)}{analysis}{forced} — {_printable(e['reason'])}"
        )
    return 0


def _analysis(
    channel: str,
    canary_logs: Path | None,
    baseline_logs: Path | None,
    prometheus_url: str | None = None,
    window: str | None = None,
) -> Any:
    """The step's analysis from exactly one source: the two request logs, or Prometheus; a pass
    of a step younger than the policy's minimum holds (`steps.hold_if_young`)."""
    import time

    from releasectl.errors import BadInput
    from releasectl.rollout.steps import hold_if_young

    if prometheus_url is not None:
        if canary_logs is not None or baseline_logs is not None:
            raise BadInput(
                "give --canary-logs FILE --baseline-logs FILE or --prometheus URL, not both",
                hint="one source per analysis: the request logs, or the releases' series in Prometheus",
            )
        from releasectl.rollout.prometheus import analyze_rollout_prometheus

        report = analyze_rollout_prometheus(repo_root(), channel, prometheus_url, window)
        return hold_if_young(report, time.time())
    if window is not None:
        raise BadInput("--window goes with --prometheus; logs are read from the step's start")
    if canary_logs is None or baseline_logs is None:
        raise BadInput(
            "the step's analysis needs both --canary-logs FILE and --baseline-logs FILE, or --prometheus URL"
        )
    from releasectl.rollout.steps import analyze_rollout

    return hold_if_young(analyze_rollout(repo_root(), channel, canary_logs, baseline_logs), time.time())


def _window_line(report: Any) -> str:
    a = report.analysis
    c, b = report.canary, report.baseline
    if report.source and "prometheus" in report.source:
        return (
            f"window: canary {esc(c.release)} since {esc(c.since)} ({a.canary_requests:,} requests), "
            f"baseline {esc(b.release)} since {esc(b.since)} ({a.baseline_requests:,}); "
            f"Prometheus {esc(report.source['prometheus'])} at {esc(report.source['at'])}"
        )
    return (
        f"window: canary {esc(c.release)} since {esc(c.since)} ({a.canary_requests:,} requests), "
        f"baseline {esc(b.release)} since {esc(b.since)} ({a.baseline_requests:,}), until {esc(c.until)}"
    )


def _print_analysis(report: Any) -> None:
    from rich.table import Table

    from releasectl.rollout.plan import describe

    a = report.analysis
    colour = {"pass": "green", "fail": "red", "hold": "yellow"}[a.outcome]
    table = Table(
        title=f"{esc(report.channel)} · {esc(describe(report.record))} vs {esc(report.baseline_release)}",
        title_justify="left",
    )
    for col in ("metric", "rule", "canary", "baseline", "decision"):
        table.add_column(col)

    def cell(i: Any) -> str:
        if i is None or i.n == 0:
            return "–"
        lo = "-inf" if i.lower == float("-inf") else f"{i.lower:.4g}"
        hi = "inf" if i.upper == float("inf") else f"{i.upper:.4g}"
        return f"{i.estimate:.4g} [{lo}, {hi}] n={i.n:,}"

    for m in a.metrics:
        style = {"pass": "green", "fail": "red", "undecided": "yellow"}.get(m.decision, "dim")
        # a metric the source does not export is "not_tracked" in the history, named for what it is here
        label = "not measured" if m.detail.startswith("not measured") else m.decision
        table.add_row(esc(m.metric), esc(m.rule), cell(m.canary), cell(m.baseline), f"[{style}]{label}[/]")
    out = console()
    out.print(table)
    out.print(
        f"{_window_line(report)}; "
        f"α {a.margins.alpha:g} over the metrics compared ({a.alpha_per_metric:.4g} each); margins: {esc(report.margins_source)}",
        highlight=False,
    )
    for note in a.notes:
        out.print(f"[dim]note: {esc(note)}[/]", highlight=False)
    for side in (report.canary, report.baseline):
        bad = getattr(side, "malformed", None)  # request logs: lines left out, as monitor counts them
        if bad is not None and bad.count:
            first = bad.listed[0]
            out.print(
                f"[yellow]{bad.count:,} malformed line(s) left out of {esc(side.path)}[/], first:"
                f" line {first['line']}: {esc(first['reason'])}",
                highlight=False,
            )
    out.print(f"[{colour} bold]{a.outcome}[/]: {esc(a.reason)}", highlight=False)


@rollout.command("analyze")
@_channel_option
@_logs_options
@_prometheus_options
@click.option(
    "--auto-abort", is_flag=True, help="Abort the rollout when the analysis fails (recorded as the trigger)."
)
@click.option(
    "--reason",
    callback=_reason,
    default=None,
    help="With --auto-abort: the abort's reason (default: the failing metrics).",
)
@move_options
def rollout_analyze(
    channel: str,
    canary_logs: Path | None,
    baseline_logs: Path | None,
    prometheus_url: str | None,
    window: str | None,
    auto_abort: bool,
    reason: str | None,
    **kw: Any,
) -> int:
    """Evaluate the current step: pass (exit 0), fail or hold (exit 1)."""
    fmt = kw["fmt"]
    report = _analysis(channel, canary_logs, baseline_logs, prometheus_url, window)
    outcome = report.analysis.outcome
    aborted = None
    if auto_abort and outcome == "fail":
        from releasectl.rollout.steps import abort_rollout

        aborted = abort_rollout(repo_root(), channel, reason=reason, report=report, **_move_options(kw))
    if fmt == "json":
        emit_json({**report.to_dict(), "aborted": aborted.to_dict() if aborted else None})
    else:
        _print_analysis(report)
        if aborted is not None:
            _report_rollout(aborted, fmt)
        elif outcome == "fail":
            click.echo(f"next: releasectl rollout abort --channel {channel} (or rerun with --auto-abort)")
        elif outcome == "hold":
            click.echo("next: keep the step running and analyse again later; looking often is safe")
        else:
            source = (
                # the URL as the report shows it: userinfo (a password) is never printed
                f"--prometheus {report.source['prometheus']}"
                if prometheus_url and report.source
                else "--canary-logs … --baseline-logs …"
            )
            click.echo(f"next: releasectl rollout advance --channel {channel} {source}")
    return 0 if outcome == "pass" else int(ExitCode.NO)


@rollout.command("advance")
@_channel_option
@_logs_options
@_prometheus_options
@click.option("--force", is_flag=True, help="Advance without a passing analysis (needs --reason; recorded).")
@click.option("--reason", callback=_reason, default=None, help="Why; required with --force.")
@move_options
def rollout_advance(
    channel: str,
    canary_logs: Path | None,
    baseline_logs: Path | None,
    prometheus_url: str | None,
    window: str | None,
    force: bool,
    reason: str | None,
    **kw: Any,
) -> int:
    """Move to the next step when the current one's analysis passes; past the last step, promote."""
    from releasectl.rollout.steps import advance_rollout

    fmt = kw["fmt"]
    report = None
    given = (canary_logs, baseline_logs, prometheus_url, window)
    if any(x is not None for x in given) or not force:
        report = _analysis(channel, canary_logs, baseline_logs, prometheus_url, window)
        if fmt != "json":
            _print_analysis(report)
    extra = {"analysis": report.to_dict() if report else None}
    return _rollout_move(
        advance_rollout,
        fmt,
        channel,
        report=report,
        force=force,
        reason=reason,
        extra=extra,
        **_move_options(kw),
    )


def _simple_verb(name: str, doc: str) -> Any:
    @rollout.command(name, help=doc)
    @_channel_option
    @click.option(
        "--reason",
        callback=_reason,
        default=None,
        help="Why; recorded in the history and the commit message.",
    )
    @move_options
    def verb(channel: str, reason: str | None, **kw: Any) -> int:
        from releasectl.rollout import steps

        move = {"pause": steps.pause_rollout, "resume": steps.resume_rollout, "abort": steps.abort_rollout}[
            name
        ]
        return _rollout_move(move, kw["fmt"], channel, reason=reason, **_move_options(kw))

    return verb


rollout_pause = _simple_verb("pause", "Hold the rollout at its step: it does not advance until resumed.")
rollout_resume = _simple_verb("resume", "Let a paused rollout advance again.")
rollout_abort = _simple_verb(
    "abort", "End the rollout: the candidate's weight goes to 0 and the channel keeps the old release."
)
