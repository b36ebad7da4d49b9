"""`releasectl validate`: the manifest's pins and the five-item production checklist."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from releasectl.checklist.result import ChecklistReport
from releasectl.console import console, emit_json, esc, format_option
from releasectl.errors import BadInput, ExitCode, Problem

_MARK = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "warn": "[yellow]![/]", "skip": "[dim]–[/]"}


@click.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--resolve",
    is_flag=True,
    help="Also check that every hf:// revision exists on the Hub (honours HF_ENDPOINT, HF_HUB_OFFLINE).",
)
@format_option("github")
def validate(manifests: tuple[Path, ...], resolve: bool, fmt: str) -> int:
    """Validate MANIFESTS and run the production checklist on each.

    \b
    Exit codes: 0 every item passes; 1 a checklist item fails;
    2 a manifest is invalid (each error names file:line:col and the field).
    --format github prints workflow-command annotations so errors land on the PR's lines.
    """
    from releasectl.checklist import run_checklist
    from releasectl.manifest.loader import load_manifest

    reports: list[ChecklistReport] = []
    invalid: list[BadInput] = []
    for path in manifests:
        try:
            loaded = load_manifest(path)
            reports.append(run_checklist(loaded, resolve=resolve))
        except BadInput as e:
            invalid.append(e)
    if fmt == "json":
        doc: dict[str, Any] = {
            "passed": not invalid and all(r.passed for r in reports),
            "reports": [r.to_dict() for r in reports],
            "invalid": [e.to_dict() for e in invalid],
        }
        emit_json(doc if len(manifests) > 1 else (doc["reports"][0] if reports else invalid[0].to_dict()))
    elif fmt == "github":
        _print_github(reports, invalid)
    else:
        for err in invalid:
            _print_invalid(err)
        for report in reports:
            _print_report(report)
    if invalid:
        return int(ExitCode.BAD_INPUT)
    return int(ExitCode.OK if all(r.passed for r in reports) else ExitCode.NO)


def _print_invalid(err: BadInput) -> None:
    out = console(stderr=True)
    out.print(f"[red bold]error:[/] {esc(err.message)}", markup=True, highlight=False)
    for p in err.problems:
        out.print("  " + p.render(), markup=False, highlight=False)
    if err.hint:
        out.print(f"[dim]hint: {esc(err.hint)}[/]")


def _print_report(report: ChecklistReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    verdict = "[green]ready for production[/]" if report.passed else "[red]not ready[/]"
    passed = sum(i.passed for i in report.items)
    table = Table(
        title=f"{esc(report.release)}  ·  {esc(report.manifest)}  ·  {report.manifest_digest[:19]}…",
        title_justify="left",
        show_lines=True,
        expand=False,
    )
    table.add_column("#", justify="right", style="bold")
    table.add_column("item")
    table.add_column("", justify="center")
    table.add_column("checks")
    for item in report.items:
        status = "[green]PASS[/]" if item.passed else "[red]FAIL[/]"
        lines = []
        for c in item.checks:
            lines.append(f"{_MARK[c.status]} {escape(c.message)}")
            for p in c.problems[:5]:
                lines.append(f"   [dim]{escape(p.render())}[/]")
            if len(c.problems) > 5:
                lines.append(f"   [dim]… {len(c.problems) - 5} more[/]")
        table.add_row(str(item.number), esc(item.title), status, "\n".join(lines))
    out.print(table)
    out.print(f"checklist: {passed}/{len(report.items)} items pass — {verdict}\n")


def _print_github(reports: list[ChecklistReport], invalid: list[BadInput]) -> None:
    from releasectl.checklist.problems import checklist_problems
    from releasectl.github.annotations import annotations

    problems: list[Problem] = [p for e in invalid for p in (e.problems or [Problem(e.message)])]
    for report in reports:
        problems += checklist_problems(report)
    for line in annotations("error", problems):
        sys.stdout.write(line + "\n")
    for report in reports:
        summary = ", ".join(f"{i.number} {'pass' if i.passed else 'FAIL'}" for i in report.items)
        sys.stdout.write(f"{report.manifest}: checklist {summary}\n")
    for err in invalid:
        sys.stdout.write(f"{err.message}\n")
