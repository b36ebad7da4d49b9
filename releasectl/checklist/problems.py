"""Checklist and validation problems, located on the manifest's lines, for annotations of any kind
(`validate --format github`, check-run annotations)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem


def checklist_problems(report: Any) -> list[Problem]:
    """Each failing checklist item's problems, located on the manifest (a ChecklistReport)."""
    problems: list[Problem] = []
    for item in report.items:
        for c in item.checks:
            if not c.failed:
                continue
            for p in c.problems or [Problem(c.message, file=report.manifest)]:
                problems.append(
                    replace(
                        p,
                        message=f"checklist item {item.number} ({item.title}): {p.message}",
                        file=p.file or report.manifest,
                    )
                )
    return problems


def manifest_problems(paths: list[Path]) -> list[Problem]:
    """Validation errors and failing checklist items of each manifest, located on its lines."""
    from releasectl.checklist import run_checklist
    from releasectl.manifest.loader import load_manifest

    problems: list[Problem] = []
    for path in paths:
        try:
            problems += checklist_problems(run_checklist(load_manifest(path), resolve=False))
        except BadInput as e:
            problems += e.problems or [Problem(e.message, file=str(path))]
    return problems
