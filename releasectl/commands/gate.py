"""`releasectl gate`: evaluate promotion rules on a run against a baseline, write gate.json."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, format_option
from releasectl.errors import BadInput
from releasectl.gate import options

_OUTCOME = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "inconclusive": "[yellow]inconclusive[/]"}
_VERDICT = {
    "promote": "[bold green]PROMOTE[/]",
    "block": "[bold red]BLOCK[/]",
    "hold": "[bold yellow]HOLD[/]",
}


def channel_release(root: Path, channel: str) -> str | None:
    """The release `channel` points at (releases/channels.yaml, reconciled with the history)."""
    from releasectl.channels.state import read_state

    return read_state(root).channels.get(channel)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@click.command()
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--run", "run_dir", required=True, type=click.Path(path_type=Path), help="The candidate's run directory."
)
@click.option(
    "--baseline-run",
    type=click.Path(path_type=Path),
    default=None,
    help="Baseline run directory; default runs/<release in the stage's channel>/.",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Rules file (one rule per line, # comments); default: the manifest's policy for --stage.",
)
@click.option(
    "--stage",
    default="staging",
    show_default=True,
    help="Promotion stage: staging (dev→staging rules) or production (staging→production).",
)
@click.option(
    "--canary",
    "canary_file",
    type=click.Path(path_type=Path),
    default=None,
    help="canary.json from `releasectl canary --out`, for canary.* rules.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write gate.json; default beside the candidate run.",
)
@click.option(
    "--allow-mismatched-runtime",
    is_flag=True,
    help="Gate a candidate and a baseline replayed on different engines, versions or devices (recorded).",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a JUnit XML file: one test case per rule (fail = failure, inconclusive = skipped).",
)
@click.option(
    "--no-regressions-margin",
    type=float,
    callback=options.margin,
    default=None,
    help="Read no_regressions_on as non-inferiority: pass when every protected slice is shown no worse than this (paired interval), fail on a shown regression, else hold.",
)
@format_option()
def gate(
    manifest: Path | None,
    run_dir: Path,
    baseline_run: Path | None,
    rules_file: Path | None,
    stage: str,
    canary_file: Path | None,
    out_file: Path | None,
    allow_mismatched_runtime: bool,
    junit_file: Path | None,
    no_regressions_margin: float | None,
    fmt: str,
) -> int:
    """Evaluate the promotion rules on a candidate run and decide: promote, block or hold.

    Every rule gets its observed value, comparator, threshold and outcome (pass, fail, or
    inconclusive when there is too little data). Deltas are paired on matched case ids (exact
    McNemar) with Holm/BH correction across slices. With MANIFEST, a run replayed from a
    different manifest is refused. A run from `replay --sequential` is gated with the
    anytime-valid statistics it stopped on. Exit 0 promote, 1 block or hold.
    """
    from releasectl.fsutil import atomic_write_text
    from releasectl.gate.evaluate import run_gate
    from releasectl.gate.metrics import Policy
    from releasectl.gate.rules import parse_rules_file
    from releasectl.manifest.loader import load_manifest
    from releasectl.repo import find_repo_root
    from releasectl.safeio import read_bytes

    loaded = load_manifest(manifest) if manifest else None
    root = loaded.root if loaded else (find_repo_root() or Path.cwd().resolve())
    if rules_file is None:
        if loaded is None:
            raise BadInput("no rules: give a MANIFEST (its policy for --stage) or --rules FILE")
        promotion = loaded.manifest.policy.promotion
        if stage not in promotion:
            raise BadInput(
                f"{loaded.display} has no promotion rules for stage '{stage}'",
                hint="stages: " + ", ".join(promotion),
            )
        rules_path, rules_display = loaded.resolve(promotion[stage]), promotion[stage]
    else:
        rules_path, rules_display = rules_file, str(rules_file)
    rules = parse_rules_file(rules_path, display=rules_display)
    if not rules:
        raise BadInput(
            f"{rules_display} has no rules: an empty policy would promote anything",
            hint="write one rule per line (docs/rules.md); `#` starts a comment",
        )
    if baseline_run is None:
        base_release = (
            channel_release(root, stage)
            or channel_release(root, "production")
            or (loaded.manifest.parent if loaded else None)
        )
        if base_release and loaded and base_release == loaded.manifest.release:
            base_release = loaded.manifest.parent
        if base_release and (root / "runs" / base_release).is_dir():
            baseline_run = root / "runs" / base_release
    canary = None
    if canary_file is not None:
        from releasectl.contracts.canary import CanaryRecord

        canary = CanaryRecord.read(canary_file).as_data()
        canary["source"] = str(canary_file)
    policy = Policy()
    if loaded:
        p = loaded.manifest.policy
        policy = Policy(p.min_cases_per_slice, p.confidence_level, p.correction)
    result = run_gate(
        rules=rules,
        rules_source=rules_display,
        rules_sha256=hashlib.sha256(
            read_bytes(rules_path, what="rules file", name=rules_display)
        ).hexdigest(),
        stage=stage,
        run_dir=run_dir,
        baseline_dir=baseline_run,
        canary=canary,
        policy=policy,
        loaded=loaded,
        allow_mismatched_runtime=allow_mismatched_runtime,
        no_regressions_margin=no_regressions_margin,
    )
    out_file = out_file or run_dir / "gate.json"
    result.write(out_file)
    doc = result.model_dump(mode="json")
    if junit_file is not None:
        from releasectl.gate.junit import junit_xml

        atomic_write_text(junit_file, junit_xml(result))
    if fmt == "json":
        emit_json(doc)
        return result.exit_code
    _print(doc, out_file)
    return result.exit_code


def _print(doc: dict[str, Any], out_file: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    base = f" against {doc['baseline_release']}" if doc.get("baseline_release") else " (no baseline run)"
    out.print(
        f"{_VERDICT[doc['verdict']]}  {escape(doc['release'] + base)}, stage {escape(str(doc.get('stage')))}: {escape(doc['verdict_reason'])}"
    )
    rules = Table(title="rules", title_justify="left")
    for col in ("rule", "observed", "", "threshold", "outcome"):
        rules.add_column(col, justify="right" if col in ("observed", "threshold") else "left")
    for r in doc["rules"]:
        rules.add_row(
            escape(r["rule"]),
            _fmt(r["observed"]),
            r["comparator"],
            escape(r["threshold_expr"]) if r["threshold"] is None else _fmt(r["threshold"]),
            _OUTCOME[r["outcome"]],
        )
    out.print(rules)
    seq = doc.get("sequential")
    if seq:
        used, total = seq["cases_used"], seq["cases_total"]
        out.print(
            "[bold]sequential replay[/]: "
            + escape(
                f"stopped early after {used} of {total} cases ({seq['cases_saved']} saved)"
                if seq["stopped_early"]
                else f"replayed all {total} cases"
            )
            + "; anytime-valid statistics (confidence sequences, always-valid p-values)"
            + (
                ""
                if seq["same_policy"]
                else escape(f"; the replay stopped on another policy ({seq['policy']})")
            )
        )
    mismatch = (doc.get("provenance") or {}).get("runtime_mismatch")
    if mismatch:
        out.print(
            "[bold red]runtime mismatch[/] (--allow-mismatched-runtime): "
            + escape(
                "; ".join(
                    f"{m['field']}: candidate {m['candidate']}, baseline {m['baseline']}" for m in mismatch
                )
            )
        )
    slices = Table(title="slices (success@1)", title_justify="left")
    interval = "95% CS" if seq else "95% CI"
    for col in ("slice", "n", "baseline", "candidate", interval, "Δ", "p (adj.)"):
        slices.add_column(col, justify="left" if col == "slice" else "right")
    for s in [*doc["slices"], doc["aggregate"]]:
        c, b = s["candidate"], s.get("baseline") or {}
        ci = f"[{c['lower_ci']:.2f}, {c['upper_ci']:.2f}]" if c.get("lower_ci") is not None else "–"
        slices.add_row(
            escape(s["slice"]),
            str(c["n"]),
            _fmt(b.get("success_at_1")),
            _fmt(c["success_at_1"]),
            ci,
            _fmt(s.get("delta")),
            _fmt(s.get("p_value_adjusted")),
        )
    out.print(slices)
    unmatched = doc["unmatched_cases"]
    if seq and seq["stopped_early"] and not unmatched["only_in_candidate"]:
        out.print(
            f"{seq['cases_saved']} cases of the suite were not replayed (sequential)"
            + ("; deltas pair the rest" if doc.get("baseline_release") else "")
        )
    elif unmatched["only_in_candidate"] or unmatched["only_in_baseline"]:
        out.print(
            f"unpaired cases: {len(unmatched['only_in_candidate'])} only in the candidate, {len(unmatched['only_in_baseline'])} only in the baseline (left out of paired tests)"
        )
    out.print(f"gate.json → {out_file}", markup=False)
