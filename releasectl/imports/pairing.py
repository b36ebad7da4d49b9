"""Do two runs hold the same cases with the same content? An imported case id is
`key#content-hash`, so a case whose content changed shows up as the same key, different hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasectl.errors import BadInput


def _case_ids(run_dir: Path) -> dict[str, str]:
    from releasectl.imports.common import iter_json_lines

    results = run_dir / "results.jsonl"
    if not results.exists():
        raise BadInput(f"{run_dir} is not a run directory (no results.jsonl)")
    out: dict[str, str] = {}
    for line, row in iter_json_lines(results, "results file"):
        cid = row.get("case_id") if isinstance(row, dict) else None
        if not isinstance(cid, str):
            raise BadInput(f"{results}:{line}: case_id: expected a string")
        key, sep, digest = cid.rpartition("#")
        out[key if sep else cid] = digest if sep else ""
    return out


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    ids_a, ids_b = _case_ids(a), _case_ids(b)
    both = sorted(set(ids_a) & set(ids_b))
    differs = [{"case": k, "a": ids_a[k], "b": ids_b[k]} for k in both if ids_a[k] != ids_b[k]]
    only_a = sorted(set(ids_a) - set(ids_b))
    only_b = sorted(set(ids_b) - set(ids_a))
    return {
        "run_a": str(a),
        "run_b": str(b),
        "paired": len(both) - len(differs),
        "content_differs": differs,
        "only_in_a": only_a,
        "only_in_b": only_b,
        "pairs": not differs and not only_a and not only_b,
    }
