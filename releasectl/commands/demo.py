"""`releasectl demo`: the release-PR flow, end to end, on the embedded model on CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, esc, format_option
from releasectl.errors import BadInput, EnvironmentFailure, ExitCode


@click.command()
@click.option(
    "--candidate", default="v1.3", show_default=True, help="The release under review (the PR's manifest)."
)
@click.option(
    "--baseline",
    default=None,
    help="The release to compare against. Default: the release in production (releases/channels.yaml).",
)
@click.option(
    "--limit",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Cases per slice to replay; small, so the demo takes minutes on CPU.",
)
@click.option(
    "--engine",
    type=click.Choice(["hf", "vllm"]),
    default=None,
    help="Replay engine for both releases; default: each manifest's runtime.engine (hf).",
)
@click.option(
    "--out",
    "out_dir",
    default="runs/demo",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the run directories and gate.json go.",
)
@click.option(
    "--report",
    "report_path",
    default="report.md",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where to write the Markdown report.",
)
@format_option()
def demo(
    candidate: str,
    baseline: str | None,
    limit: int,
    engine: str | None,
    out_dir: Path,
    report_path: Path,
    fmt: str,
) -> int:
    """Run the release-PR flow locally: validate → replay baseline and candidate → gate → report.

    This is what the release-gate workflow does on a pull request, each step its own
    `releasectl` process as in the workflow, with the hf engine on CPU
    and the embedded SmolLM2-135M-Instruct instead of vLLM on a GPU runner. With the small
    default --limit, slices have fewer cases than the policy's minimum, so slice rules are
    inconclusive rather than pretending to know; rules the data already decide (a 135M model on
    CPU misses the seed's quality and latency bars) fail, and the verdict is honest about it.
    Exit 0 when every step ran, whatever the verdict; 2 or 3 when a step could not run.
    """
    from releasectl.repo import repo_root

    root = repo_root()
    if baseline is None:
        baseline = _production_release(root)
    cand_manifest = f"releases/{candidate}.yaml"
    base_manifest = f"releases/{baseline}.yaml"
    cand_run, base_run = out_dir / candidate, out_dir / baseline
    gate_json = out_dir / "gate.json"
    quiet = fmt == "json"
    engine_args = ["--engine", engine] if engine else []
    steps: list[tuple[str, list[str]]] = [
        (f"validate {baseline} and {candidate}", ["validate", base_manifest, cand_manifest]),
        (
            f"replay {baseline} (production)",
            ["replay", base_manifest, "--limit", str(limit), "--out", str(base_run), *engine_args],
        ),
        (
            f"replay {candidate} (candidate)",
            ["replay", cand_manifest, "--limit", str(limit), "--out", str(cand_run), *engine_args],
        ),
        (
            f"gate {candidate} against {baseline}",
            [
                "gate",
                cand_manifest,
                "--run",
                str(cand_run),
                "--baseline-run",
                str(base_run),
                "--stage",
                "staging",
                "--out",
                str(gate_json),
            ],
        ),
        ("report", ["report", str(gate_json), "--out", str(report_path)]),
    ]
    timings: list[dict[str, Any]] = []
    codes: dict[str, int] = {}
    out = console(stderr=quiet)
    for n, (title, args) in enumerate(steps, start=1):
        out.rule(f"[bold]{n}/{len(steps)} {title}[/]  [dim]releasectl {' '.join(args)}[/]")
        started = time.perf_counter()
        code = _run_step(args, quiet=quiet)
        timings.append({"step": title, "seconds": round(time.perf_counter() - started, 1), "exit_code": code})
        codes[args[0]] = code
        # validate and gate answer "no" with exit 1; that is a result, not a failure of the demo.
        if code == int(ExitCode.BAD_INPUT):
            raise BadInput(f"demo step '{title}' was refused (bad input); see the error above")
        if code not in (int(ExitCode.OK), int(ExitCode.NO)):
            raise EnvironmentFailure(f"demo step '{title}' failed with exit code {code}; see the error above")
    verdict = _verdict(gate_json)
    if quiet:
        emit_json(
            {
                "candidate": candidate,
                "baseline": baseline,
                "verdict": verdict.get("verdict"),
                "verdict_reason": verdict.get("reason"),
                "report": str(report_path),
                "gate": str(gate_json),
                "steps": timings,
            }
        )
        return 0
    out.rule()
    colour = {"promote": "green", "block": "red", "hold": "yellow"}.get(verdict.get("verdict", ""), "white")
    out.print(
        f"[bold {colour}]verdict: {esc(verdict.get('verdict', '?').upper())}[/] — {esc(verdict.get('reason', ''))}"
    )
    out.print(
        f"report: {report_path}   gate: {gate_json}   total {sum(t['seconds'] for t in timings):.0f} s",
        markup=False,
    )
    return 0


def _run_step(args: list[str], *, quiet: bool) -> int:
    """One step as its own `releasectl` process, as the release-gate workflow runs it."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "releasectl", *args]
    if quiet:  # only the demo's own JSON document goes to stdout
        return subprocess.run([*command, "--format", "json"], stdout=subprocess.DEVNULL).returncode
    return subprocess.run(command).returncode


def _production_release(root: Path) -> str:
    from releasectl.channels.state import read_state

    return read_state(root).channels.get("production") or "v1.2"


def _verdict(gate_json: Path) -> dict[str, str]:
    import json

    try:
        doc = json.loads(gate_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"verdict": "unknown", "reason": f"{gate_json} was not written"}
    return {"verdict": str(doc.get("verdict")), "reason": str(doc.get("verdict_reason", ""))}
