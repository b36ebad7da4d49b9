"""The five-item production checklist: run the checks that `checklists/production.yaml` declares."""

from __future__ import annotations

from releasectl.checklist.checks import CHECKS, CheckContext, run_check
from releasectl.checklist.result import ChecklistReport, CheckResult, ItemResult
from releasectl.checklist.spec import load_checklist
from releasectl.manifest.loader import LoadedManifest


def run_checklist(loaded: LoadedManifest, *, resolve: bool = False) -> ChecklistReport:
    spec = load_checklist(loaded.root, set(CHECKS))
    ctx = CheckContext(loaded, resolve=resolve)
    items = []
    for number, item in enumerate(spec.items, start=1):
        results = [run_check(c.id, ctx, c.params) for c in item.checks]
        items.append(ItemResult(number, item.id, item.title, results))
    return ChecklistReport(loaded.manifest.release, loaded.display, loaded.digest, items)


__all__ = ["CheckResult", "ChecklistReport", "ItemResult", "run_checklist"]
