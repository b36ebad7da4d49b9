"""Merge shard run directories (`replay --shard i/N`) into one run identical to an unsharded one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasectl.errors import BadInput
from releasectl.replay.writer import (
    RESULTS,
    RUN_JSON,
    RunSummary,
    count_cases,
    output_digest,
    read_results,
    row_key,
    slice_summary,
    write_rows,
    write_run,
)

_SAME = (
    "release",
    "manifest_digest",
    "suite_digest",
    "engine",
    "runtime",
    "limit",
    "batch_size",
    "seed",
    "sampling",
    "device",
)


def merge_runs(shard_dirs: list[Path], out_dir: Path) -> RunSummary:
    runs: list[dict[str, Any]] = []
    from releasectl.contracts.run import run_record
    from releasectl.safeio import read_json

    for d in shard_dirs:
        if not (d / RUN_JSON).exists():
            raise BadInput(
                f"{d}: no complete run ({RUN_JSON} missing or unreadable)",
                hint="finish or --resume that shard first",
            )
        data = read_json(d / RUN_JSON, what="run.json")
        run_record(data, file=str(d / RUN_JSON))
        runs.append(data)
    first = runs[0]
    for d, run in zip(shard_dirs[1:], runs[1:], strict=True):
        for key in _SAME:
            if run.get(key) != first.get(key):
                raise BadInput(
                    f"{d} is a different run: {key} {run.get(key)!r} vs {first.get(key)!r} in {shard_dirs[0]}"
                )
    if any(r.get("shard") is None for r in runs):
        raise BadInput("every directory must be a shard (made with --shard i/N)")
    shards = [str(r["shard"]) for r in runs]
    counts = {int(s.split("/")[1]) for s in shards}
    if len(counts) != 1:
        raise BadInput(f"shards of different splits: {', '.join(shards)}")
    n = counts.pop()
    indices = sorted(int(s.split("/")[0]) for s in shards)
    if indices != list(range(n)):
        missing = sorted(set(range(n)) - set(indices))
        dupes = sorted({i for i in indices if indices.count(i) > 1})
        raise BadInput(
            f"shards do not cover 0..{n - 1} exactly once"
            + (f"; missing {missing}" if missing else "")
            + (f"; repeated {dupes}" if dupes else "")
        )
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, int], Path] = {}
    for d in shard_dirs:
        for row in read_results(d / RESULTS):
            ident = row_key(row)
            if ident in seen:
                what = f"case {ident[0]}" + (f" sample {ident[1]}" if ident[1] else "")
                raise BadInput(f"{what} is in both {seen[ident]} and {d}")
            seen[ident] = d
            rows.append(row)
    rows.sort(key=row_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_rows(out_dir / RESULTS, rows)
    merged = {
        **first,
        "shard": None,
        "merged_from": [str(d) for d in shard_dirs],
        "cases": count_cases(rows),
        "generations": len(rows),
        "output_digest": output_digest(rows),
        "generation_seconds": round(sum(float(r.get("generation_seconds", 0)) for r in runs), 3),
        # Shards made elsewhere may not say when they ran; the merged run then does not either.
        "started_at": min(
            (r["started_at"] for r in runs if isinstance(r.get("started_at"), str)), default=None
        ),
        "finished_at": max(
            (r["finished_at"] for r in runs if isinstance(r.get("finished_at"), str)), default=None
        ),
    }
    return RunSummary(out_dir, write_run(out_dir / RUN_JSON, merged), slice_summary(rows))
