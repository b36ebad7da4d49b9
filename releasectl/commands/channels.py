"""`releasectl promote`, `rollback`, `history` and `status`: the channel verbs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, esc, format_option
from releasectl.errors import ExitCode
from releasectl.repo import repo_root


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
            type=click.Choice(["vllm", "kubernetes"]),
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
    click.echo(f"reason: {result.reason}")
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
@click.option(
    "--gate",
    "gate_file",
    type=click.Path(path_type=Path),
    default=None,
    help="gate.json to rely on; default runs/RELEASE/gate.json.",
)
@click.option("--force", is_flag=True, help="Promote without a passing gate (needs --reason; recorded).")
@click.option("--reason", default=None, help="Why; required with --force.")
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
    for e in state.events:
        latest[e["channel"]] = e["revision"]
    rows = [
        {**e, "status": "deployed" if latest.get(e["channel"]) == e["revision"] else "superseded"}
        for e in events
    ]
    if limit:
        rows = rows[-limit:]
    if fmt == "json":
        emit_json({"events": rows, "channels": state.channels})
        return 0
    from rich.markup import escape
    from rich.table import Table

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
        status = "[green]deployed[/]" if r["status"] == "deployed" else "[dim]superseded[/]"
        action = r["action"] + ("!" if r.get("forced") else "")
        cells = [
            str(r["revision"]),
            r["time"].replace("T", " ")[:16],
            *([] if channel else [r["channel"]]),
            action,
            escape(f"{r['from'] or '∅'} → {r['to']}"),
            status,
            escape(r["actor"].split(" <")[0]),
            escape(r.get("reason") or ""),
        ]
        table.add_row(*cells)
    console().print(table)
    if any(r.get("forced") for r in rows):
        console().print("[dim]! = forced: moved without a passing gate (the override is in --format json)[/]")
    return 0


@click.command()
@format_option()
def status(fmt: str) -> int:
    """Show each channel: its release, the gate verdict it relied on, and how long it has held."""

    from releasectl.channels import CHANNELS, read_state
    from releasectl.channels.state import repair_view

    root = repo_root()
    state = read_state(root)
    if state.repaired:
        repair_view(root)
    rows = []
    for c in CHANNELS:
        release = state.channels.get(c)
        last = next((e for e in reversed(state.events) if e["channel"] == c), None)
        gate = (last or {}).get("gate") or {}
        verdict = gate.get("verdict")
        if verdict is None and release and (root / "runs" / release / "gate.json").is_file():
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
            }
        )
    if fmt == "json":
        emit_json({"channels": rows, "revision": state.revision, "view_repaired": state.repaired})
        return 0
    from rich.table import Table

    table = Table(title=f"channels · revision {state.revision}", title_justify="left")
    for col in ("channel", "release", "gate", "since", "last move"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            esc(r["channel"]),
            esc(r["release"] or "–"),
            esc(r["gate"] or "–"),
            r["age"],
            f"{r['action'] or '–'} (rev {r['revision']})" if r["revision"] else "–",
        )
    console().print(table)
    if state.repaired:
        console().print(
            "[yellow]repaired:[/] releases/channels.yaml lagged the history (an interrupted write) and was rebuilt from it; commit both files"
        )
    return 0
