"""`releasectl report`: gate.json as the Markdown PR report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from releasectl.console import console, emit_json, format_option


@click.command()
@click.argument("gate_json", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the Markdown here (atomically) instead of stdout.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=8_000, max=65_536),
    default=65_000,
    show_default=True,
    help="Size budget; GitHub rejects comments over 65,536 characters.",
)
@format_option()
def report(gate_json: Path, out_path: Path | None, max_chars: int, fmt: str) -> int:
    """Render GATE_JSON (written by `releasectl gate`) as GitHub-flavoured Markdown.

    The report has the verdict, the rules table, the per-slice table with confidence intervals
    and a chart, failing examples folded away, and provenance. Model output is escaped (no HTML,
    no @mentions, no way out of its code block), and the whole report fits one PR comment:
    failing examples, then slice rows, are trimmed first, and the report says what it left out.
    Post it with `releasectl github comment --body FILE`. Exit 0 whatever the verdict.
    """
    from releasectl.fsutil import atomic_write_text
    from releasectl.report.gate_file import load_gate
    from releasectl.report.render import render_report

    gate = load_gate(gate_json)
    rendered = render_report(gate, budget=max_chars)
    if out_path is not None:
        atomic_write_text(out_path, rendered.markdown)
    if fmt == "json":
        emit_json(
            {
                "gate": str(gate_json),
                "out": str(out_path) if out_path else None,
                "verdict": gate["verdict"],
                "release": gate.get("release"),
                **rendered.summary(),
                **({} if out_path else {"markdown": rendered.markdown}),
            }
        )
    elif out_path is None:
        sys.stdout.write(rendered.markdown)
    else:
        omitted = []
        if rendered.slices_shown < rendered.slices_total:
            omitted.append(f"{rendered.slices_total - rendered.slices_shown} slice rows")
        if rendered.examples_shown < rendered.examples_total:
            omitted.append(f"{rendered.examples_total - rendered.examples_shown} failing examples")
        note = f"; omitted to fit: {', '.join(omitted)}" if omitted else ""
        console().print(
            f"report: {out_path} ({rendered.length:,} characters, verdict {gate['verdict']}){note}",
            markup=False,
        )
    return 0
