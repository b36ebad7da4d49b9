"""Write an imported harness run as a run directory (SPEC §5.1), bound to a manifest or not.

A run imported from a harness was not replayed from a manifest, so it cannot claim a manifest's
digest by itself. It is bound only when `--manifest` names a manifest that pins the imported
file (or folder) by digest in one of its artifacts; otherwise its `manifest_digest` says
`unbound:…`, which no manifest digest equals, so `gate MANIFEST` and `promote` refuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem
from releasectl.imports.common import SYNTHESIZED, Choices, ImportedRun, bad, sha256_of

UNBOUND = "unbound:"


@dataclass(frozen=True)
class Binding:
    """How a manifest vouches for an imported run: which of its pins holds the source's digest."""

    release: str
    manifest: str
    manifest_digest: str
    field: str
    digest: str
    gpus: int
    gpu_hourly_usd: float


def source_digest(path: Path) -> str:
    """sha256 of a file; the DVC md5 of a folder (what a manifest pins a folder by)."""
    from releasectl.manifest.digests import dvc_md5, sha256_file

    return f"md5:{dvc_md5(path)}" if path.is_dir() else f"sha256:{sha256_file(path)}"


def bind(manifest: Path, source: Path) -> Binding:
    """Bind to `manifest` when one of its artifacts pins `source` by digest; else exit 2."""
    from releasectl.manifest.digests import md5_file
    from releasectl.manifest.loader import iter_artifacts, load_manifest

    loaded = load_manifest(manifest)
    digest = source_digest(source)
    plain_md5 = None if source.is_dir() else md5_file(source)
    for name, art in iter_artifacts(loaded.manifest):
        pinned = f"sha256:{art.sha256}" if art.sha256 else f"md5:{art.md5}" if art.md5 else None
        if pinned is not None and (pinned == digest or (plain_md5 and pinned == f"md5:{plain_md5}")):
            m = loaded.manifest
            return Binding(
                release=m.release,
                manifest=loaded.display,
                manifest_digest=loaded.digest,
                field=name,
                digest=pinned,
                gpus=max(1, m.runtime.tensor_parallel_size),
                gpu_hourly_usd=m.infrastructure.gpu_hourly_usd,
            )
    raise BadInput(
        f"{loaded.display} does not pin {source} by digest, so the imported run cannot be bound to it",
        [
            Problem(
                "no artifact pins the imported file",
                file=loaded.display,
                field="data",
                expected=f"an artifact with {digest.replace(':', ': ', 1)}",
                found="none",
            )
        ],
        hint="pin the harness output in the manifest (e.g. data.suite: {path: ..., sha256: ...}) "
        "or import without --manifest (the run is then unbound and cannot promote)",
    )


def cost_inputs(gpus: int | None, gpu_hourly_usd: float | None, binding: Binding | None) -> tuple[int, float]:
    """GPUs and price from the flags, else from the bound manifest; never guessed."""
    if gpus is None and binding is not None:
        gpus = binding.gpus
    if gpu_hourly_usd is None and binding is not None:
        gpu_hourly_usd = binding.gpu_hourly_usd
    if gpus is None or gpu_hourly_usd is None:
        raise BadInput(
            "the cost inputs are missing: give --gpus N and --gpu-hourly-usd X, or --manifest",
            hint="cost_per_1k_tokens_usd needs both; releasectl does not guess them",
        )
    if gpus < 1:
        raise BadInput(f"--gpus must be at least 1, found {gpus}")
    if not math.isfinite(gpu_hourly_usd) or gpu_hourly_usd < 0:
        raise BadInput(f"--gpu-hourly-usd must be a finite number >= 0, found {gpu_hourly_usd}")
    return gpus, gpu_hourly_usd


def _suite_digest(case_ids: list[str]) -> str:
    # The cases' content hashes are the suite: two imports compare only when they hold the same
    # cases with the same content, and the gate refuses different suite digests.
    h = hashlib.sha256()
    for cid in sorted(case_ids):
        h.update(cid.encode("utf-8", "surrogatepass") + b"\n")
    return "cases-sha256:" + h.hexdigest()


def write_run(
    run: ImportedRun,
    out: Path,
    *,
    source: Path,
    choices: Choices,
    release: str | None,
    gpus: int | None,
    gpu_hourly_usd: float | None,
    binding: Binding | None,
) -> dict[str, Any]:
    """Write run.json and results.jsonl under `out` (atomically); return run.json's content."""
    from pydantic import ValidationError

    from releasectl.contracts.results import ResultRow
    from releasectl.contracts.run import RunRecord
    from releasectl.fsutil import atomic_write_bytes
    from releasectl.replay.writer import output_digest

    n_gpus, price = cost_inputs(gpus, gpu_hourly_usd, binding)
    if not run.cases:
        raise BadInput(f"{source}: the harness output holds no scored cases; nothing to import")
    seen: dict[str, str] = {}
    for case in run.cases:
        if case.case_id in seen:
            raise BadInput(
                f"{case.where}: case {case.case_id} appears twice (first at {seen[case.case_id]})",
                [Problem("duplicate case", file=case.where.partition(":")[0], found=case.case_id)],
                hint="import one filter / prompt / provider at a time (see --select)",
            )
        seen[case.case_id] = case.where
    synthesized: set[str] = set()
    rows = []
    for case in sorted(run.cases, key=lambda c: c.case_id):
        values = {
            "prompt_tokens": case.prompt_tokens,
            "completion_tokens": case.completion_tokens,
            "latency_ms": case.latency_ms,
        }
        synthesized |= {k for k, v in values.items() if v is None}
        row = {
            "case_id": case.case_id,
            "slice": case.slice,
            "verifiers": {
                n: {"passed": v.passed, "kind": v.kind, "detail": v.detail} for n, v in case.verifiers.items()
            },
            "passed": case.passed,
            "output": case.output,
            "prompt_tokens": case.prompt_tokens or 0,
            "completion_tokens": case.completion_tokens or 0,
            "latency_ms": float(case.latency_ms or 0.0),
            "steps": None,
        }
        try:
            ResultRow.model_validate(row)
        except ValidationError as e:
            first = e.errors()[0]
            at = ".".join(str(x) for x in first["loc"])
            raise bad(f"cannot be a results row: {at}: {first['msg']}", case.where) from None
        rows.append(row)
    if binding is not None and release is not None and release != binding.release:
        raise BadInput(f"--release {release} disagrees with {binding.manifest} (release {binding.release})")
    files = [{"path": str(p), "sha256": sha256_of(p), "bytes": p.stat().st_size} for p in run.sources]
    digest = source_digest(source)
    record = {
        "schema_version": 1,
        "release": binding.release if binding else release or f"imported-{run.harness}",
        "manifest_digest": binding.manifest_digest if binding else f"{UNBOUND}{run.harness}:{digest}",
        "suite_digest": _suite_digest([c.case_id for c in run.cases]),
        "engine": {"name": run.harness, "version": run.harness_version},
        "device": run.device or "unknown",
        "seed": run.seed,
        "output_digest": output_digest(rows),
        "cases": len(rows),
        "generation_seconds": round(run.generation_seconds or 0.0, 3),
        "gpus": n_gpus,
        "gpu_hourly_usd": price,
        "model": run.model,
        "import": {
            "harness": run.harness,
            "harness_version": run.harness_version,
            "format": run.format,
            "source": {"path": str(source), "digest": digest, "files": files},
            "choices": {
                "slice_from": choices.slice_from,
                "scorers": list(choices.scorers),
                "thresholds": choices.thresholds,
                "select": choices.select,
            },
            "binding": None
            if binding is None
            else {"manifest": binding.manifest, "field": binding.field, "digest": binding.digest},
            "details": run.details,
            # Written as 0 because the run contract requires a value; not measured by the harness.
            "unmapped": sorted(
                set(run.unmapped) | {f"{k} (written as 0)" for k in synthesized if k in SYNTHESIZED}
            )
            + ([] if run.generation_seconds is not None else ["generation_seconds (written as 0)"]),
            "started_at": run.started_at,
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
    }
    if record["seed"] is None:
        del record["seed"]
    RunRecord.model_validate(json.loads(json.dumps(record)))
    if out.exists() and not out.is_dir():
        raise BadInput(
            f"--out {out} exists and is not a folder",
            [Problem("not a folder", field="--out", found=str(out))],
        )
    folder = source if source.is_dir() else source.parent
    if out.resolve() == folder.resolve():
        raise BadInput(
            f"--out {out} is the folder of the harness output being imported",
            [Problem("the import source", field="--out", found=str(out))],
            hint="write the run directory elsewhere, e.g. --out runs/<release>",
        )
    out.mkdir(parents=True, exist_ok=True)
    # a gate.json left from an earlier import judged other results: it must not outlive them
    (out / "gate.json").unlink(missing_ok=True)
    atomic_write_bytes(
        out / "results.jsonl", b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    )
    atomic_write_bytes(out / "run.json", (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode())
    return record
