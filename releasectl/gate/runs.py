"""Load a run directory (SPEC §5.1) into columns, so metrics over a million cases stay fast."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.errors import BadInput, Problem

MAX_EXAMPLES = 500  # failing examples kept in memory for the report; the rest are counted
REQUIRED_RUN = (
    "release",
    "manifest_digest",
    "suite_digest",
    "engine",
    "cases",
    "generation_seconds",
    "gpus",
    "gpu_hourly_usd",
)


@dataclass
class RunData:
    path: Path
    run: dict[str, Any]
    case_ids: list[str]
    slices: list[str]
    slice_idx: np.ndarray
    passed: np.ndarray
    rule_ok: np.ndarray
    format_ok: np.ndarray
    latency_ms: np.ndarray
    completion_tokens: np.ndarray
    prompt_tokens: np.ndarray
    steps: np.ndarray
    verifier_pass: dict[str, np.ndarray]
    failing: list[dict[str, Any]] = field(default_factory=list)
    failing_total: int = 0

    @property
    def n(self) -> int:
        return len(self.case_ids)

    def slice_mask(self, name: str | None) -> np.ndarray:
        cache = self.__dict__.setdefault("_masks", {})
        if name not in cache:
            if name is None:
                cache[name] = np.ones(self.n, dtype=bool)
            elif name not in self.slices:
                cache[name] = np.zeros(self.n, dtype=bool)
            else:
                cache[name] = self.slice_idx == self.slices.index(name)
        return cache[name]  # type: ignore[no-any-return]


def load_runs(candidate: Path, baseline: Path | None) -> tuple[RunData, RunData | None]:
    """Load both runs; the baseline in a second process, since parsing is CPU-bound and a big
    suite takes seconds per run."""
    if baseline is None:
        return load_run(candidate), None
    size = sum(
        (p / "results.jsonl").stat().st_size for p in (candidate, baseline) if (p / "results.jsonl").exists()
    )
    if size < 64 << 20:  # small runs: a second process costs more than it saves
        return load_run(candidate), load_run(baseline)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(load_run, baseline)
        cand = load_run(candidate)
        return cand, future.result()


def _row_problem(row: Any) -> str | None:
    """What is wrong with one parsed results.jsonl row, in words (the loader calls this only
    after a row failed, to say why)."""
    if not isinstance(row, dict):
        return f"expected a JSON object, found {type(row).__name__}"
    for key in ("case_id", "slice", "passed", "verifiers"):
        if key not in row:
            return f"missing '{key}'"
    for key in ("case_id", "slice"):
        if not isinstance(row[key], str):
            return f"{key}: expected a string, found {row[key]!r:.40}"
    if not isinstance(row["verifiers"], dict):
        return f"verifiers: expected an object, found {row['verifiers']!r:.40}"
    for name, v in row["verifiers"].items():
        if not isinstance(v, dict) or "passed" not in v:
            return f"verifiers.{name}: expected an object with 'passed', found {v!r:.40}"
    for key in ("latency_ms", "completion_tokens", "prompt_tokens", "steps"):
        v = row.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"{key}: expected a number, found {v!r:.40}"
    return None


def load_run(path: Path) -> RunData:
    """Read run.json + results.jsonl; BadInput (exit 2) names the file and line of bad content."""
    import orjson

    path = Path(path)
    run_file, results_file = path / "run.json", path / "results.jsonl"
    if not run_file.is_file() or not results_file.is_file():
        raise BadInput(
            f"{path} is not a run directory (needs run.json and results.jsonl)",
            hint="make one with `releasectl replay MANIFEST --out DIR`",
        )
    try:
        run = json.loads(run_file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BadInput(f"{run_file} is not valid JSON: {e}") from None
    missing = [k for k in REQUIRED_RUN if k not in run]
    if missing:
        raise BadInput(
            f"{run_file} lacks {', '.join(missing)}",
            hint="see SPEC §5.1 for the run.json fields the gate needs",
        )
    case_ids: list[str] = []
    slice_names: dict[str, int] = {}
    slice_idx: list[int] = []
    passed: list[bool] = []
    rule_ok: list[bool] = []
    format_ok: list[bool] = []
    latency: list[float] = []
    completion: list[int] = []
    prompt: list[int] = []
    steps: list[float] = []
    vp: dict[str, tuple[list[int], list[bool]]] = {}
    failing: list[dict[str, Any]] = []
    failing_total = 0
    with results_file.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.isspace():
                continue
            i = len(case_ids)
            try:
                row = orjson.loads(raw)
                cid = row["case_id"]
                sl = row["slice"]
                verifiers = row["verifiers"]
                ok = bool(row["passed"])
                r_ok = f_ok = True
                for name, v in verifiers.items():
                    vpass = v["passed"] is True
                    slot = vp.get(name)
                    if slot is None:
                        slot = vp[name] = ([], [])
                    slot[0].append(i)
                    slot[1].append(vpass)
                    if not vpass:
                        kind = v.get("kind")
                        if kind == "rule":
                            r_ok = False
                        elif kind == "format":
                            f_ok = False
                lat = float(row.get("latency_ms") or 0.0)
                comp = int(row.get("completion_tokens") or 0)
                prm = int(row.get("prompt_tokens") or 0)
                s = row.get("steps")
                stp = float(s) if s is not None else np.nan
                if not isinstance(cid, str) or not isinstance(sl, str):
                    raise TypeError("case_id and slice must be strings")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                if isinstance(e, orjson.JSONDecodeError):
                    reason = f"invalid JSON: {e}"
                else:
                    reason = _row_problem(row) or f"{type(e).__name__}: {e}"
                raise BadInput(
                    f"{results_file} has an invalid result",
                    [
                        Problem(
                            reason,
                            file=str(results_file),
                            line=lineno,
                            expected="an object with case_id, slice, passed, verifiers (SPEC §5.1)",
                        )
                    ],
                ) from None
            case_ids.append(cid)
            slice_idx.append(slice_names.setdefault(sl, len(slice_names)))
            passed.append(ok)
            rule_ok.append(r_ok)
            format_ok.append(f_ok)
            latency.append(lat)
            completion.append(comp)
            prompt.append(prm)
            steps.append(stp)
            if not ok:
                failing_total += 1
                if len(failing) < MAX_EXAMPLES:
                    failing.append(
                        {
                            "case_id": cid,
                            "slice": sl,
                            "output": row.get("output", ""),
                            "failed_verifiers": [
                                {"name": n, "kind": v.get("kind"), "detail": v.get("detail", "")}
                                for n, v in verifiers.items()
                                if not v["passed"]
                            ],
                        }
                    )
    n = len(case_ids)
    if len(set(case_ids)) != n:
        seen: set[str] = set()
        dupes = [c for c in case_ids if c in seen or seen.add(c)]  # type: ignore[func-returns-value]
        raise BadInput(f"{results_file} has duplicate case ids: {', '.join(dupes[:5])}")
    verifier_pass = {}
    for name, (idx_list, val_list) in vp.items():
        arr = np.full(n, -1, dtype=np.int8)
        arr[np.asarray(idx_list, dtype=np.int64)] = np.asarray(val_list, dtype=np.int8)
        verifier_pass[name] = arr
    return RunData(
        path=path,
        run=run,
        case_ids=case_ids,
        slices=list(slice_names),
        slice_idx=np.asarray(slice_idx, dtype=np.int32),
        passed=np.asarray(passed, dtype=bool),
        rule_ok=np.asarray(rule_ok, dtype=bool),
        format_ok=np.asarray(format_ok, dtype=bool),
        latency_ms=np.asarray(latency, dtype=np.float64),
        completion_tokens=np.asarray(completion, dtype=np.int64),
        prompt_tokens=np.asarray(prompt, dtype=np.int64),
        steps=np.asarray(steps, dtype=np.float64),
        verifier_pass=verifier_pass,
        failing=failing,
        failing_total=failing_total,
    )
