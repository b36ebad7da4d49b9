"""Load a run directory (SPEC §5.1) into columns, so metrics over a million cases stay fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.contracts._types import MAX_COUNT, MAX_MS, MAX_NAME, MAX_OUTPUT, MAX_TEXT
from releasectl.contracts.results import MAX_VERIFIERS, RESULTS_EXPECTED, VERIFIER_KINDS
from releasectl.errors import BadInput, Problem

MAX_EXAMPLES = 500  # failing examples kept in memory for the report; the rest are counted
_KINDS = frozenset(VERIFIER_KINDS)
_NAN = float("nan")


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


_ROW_KEY_SET = frozenset(
    (
        "case_id",
        "slice",
        "passed",
        "verifiers",
        "output",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
    )
)


Extracted = tuple[str, str, bool, bool, bool, tuple[str, ...], tuple[bool, ...], float, int, int, float]


def row_ok(row: Any) -> bool:
    """The fast path's check of one parsed results.jsonl row: exactly `ResultRow`'s contract
    (tests/test_contracts.py proves `row_ok(r) == ResultRow accepts r`), without building a model."""
    return _extract(row) is not None


def _extract(row: Any) -> Extracted | None:
    """Check a row as `ResultRow` would and, in the same pass, take the columns the gate needs:
    (case_id, slice, passed, rule_ok, format_ok, verifier names, their passes, latency, completion
    tokens, prompt tokens, steps or NaN); None when the model would refuse the row."""
    if type(row) is not dict or not row.keys() >= _ROW_KEY_SET:
        return None
    cid, sl, ok, verifiers, out = row["case_id"], row["slice"], row["passed"], row["verifiers"], row["output"]
    if (
        type(cid) is not str
        or type(sl) is not str
        or type(ok) is not bool
        or type(verifiers) is not dict
        or type(out) is not str
        or not 0 < len(cid) <= MAX_NAME
        or not 0 < len(sl) <= MAX_NAME
        or len(verifiers) > MAX_VERIFIERS
        or len(out) > MAX_OUTPUT
    ):
        return None
    every = r_ok = f_ok = True
    passes = []
    for name, v in verifiers.items():
        if type(name) is not str or type(v) is not dict or not 0 < len(name) <= MAX_NAME:
            return None
        vp, kind, detail = v.get("passed"), v.get("kind"), v.get("detail", "")
        if type(vp) is not bool or type(kind) is not str or kind not in _KINDS:
            return None
        if type(detail) is not str or len(detail) > MAX_TEXT:
            return None
        passes.append(vp)
        if not vp:
            every = False
            if kind == "rule":
                r_ok = False
            elif kind == "format":
                f_ok = False
    if ok is not every:
        return None
    pt, ct, ms = row["prompt_tokens"], row["completion_tokens"], row["latency_ms"]
    if type(pt) is not int or type(ct) is not int or not (0 <= pt <= MAX_COUNT and 0 <= ct <= MAX_COUNT):
        return None
    if (type(ms) is not float and type(ms) is not int) or not 0 <= ms <= MAX_MS:
        return None  # NaN fails the comparison too
    ttft = row.get("ttft_ms")
    if ttft is not None and ((type(ttft) is not float and type(ttft) is not int) or not 0 <= ttft <= MAX_MS):
        return None
    st = row.get("steps")
    if st is None:
        return (cid, sl, ok, r_ok, f_ok, tuple(verifiers), tuple(passes), ms, ct, pt, _NAN)
    if type(st) is not int or not 0 <= st <= MAX_COUNT:
        return None
    return (cid, sl, ok, r_ok, f_ok, tuple(verifiers), tuple(passes), ms, ct, pt, st)


def row_problems(row: Any, *, file: str, line: int) -> list[Problem]:
    """Why `ResultRow` refuses a row, located at file:line with field paths."""
    from pydantic import ValidationError

    from releasectl.contracts._types import describe, problems_of
    from releasectl.contracts.results import RESULTS_EXPECTED, ResultRow

    if not isinstance(row, dict):
        return [Problem("wrong type", file=file, line=line, expected="a JSON object", found=describe(row))]
    try:
        ResultRow.model_validate(row)
    except ValidationError as e:
        return problems_of(e, file=file, line=line, expected=None) or [
            Problem("invalid row", file=file, line=line)
        ]
    return [Problem("invalid row", file=file, line=line, expected=RESULTS_EXPECTED)]


def _read_run_json(run_file: Path) -> dict[str, Any]:
    from releasectl.contracts._types import read_json_file
    from releasectl.contracts.run import run_record

    data, raw = read_json_file(run_file, what="run.json")
    run_record(data, file=str(run_file), raw=raw)
    return data  # type: ignore[no-any-return]


def load_run(path: Path) -> RunData:
    """Read run.json + results.jsonl; BadInput (exit 2) names the file, line and field of bad content."""
    import orjson

    path = Path(path)
    run_file, results_file = path / "run.json", path / "results.jsonl"
    if not run_file.is_file() or not results_file.is_file():
        raise BadInput(
            f"{path} is not a run directory (needs run.json and results.jsonl)",
            hint="make one with `releasectl replay MANIFEST --out DIR`",
        )
    run = _read_run_json(run_file)
    case_ids: list[str] = []
    lines: list[int] = []
    slice_names: dict[str, int] = {}
    slice_idx: list[int] = []
    passed: list[bool] = []
    rule_ok: list[bool] = []
    format_ok: list[bool] = []
    latency: list[float] = []
    completion: list[int] = []
    prompt: list[int] = []
    steps: list[float] = []
    shapes: dict[tuple[str, ...], tuple[list[int], list[tuple[bool, ...]]]] = {}
    failing: list[dict[str, Any]] = []
    failing_total = 0
    from releasectl import safeio

    for lineno, raw in safeio.iter_lines(results_file, what="results"):
        if raw.isspace() or not raw:
            continue
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise BadInput(
                f"{results_file} has an invalid result",
                [
                    Problem(
                        f"invalid JSON: {e}", file=str(results_file), line=lineno, expected=RESULTS_EXPECTED
                    )
                ],
            ) from None
        cols = _extract(row)
        if cols is None:
            raise BadInput(
                f"{results_file} has an invalid result",
                row_problems(row, file=str(results_file), line=lineno),
                hint="each line is one case (SPEC §5.1; `releasectl schema --artifact results`)",
            )
        cid, sl, ok, r_ok, f_ok, names, passes, lat, comp, prm, stp = cols
        shape = shapes.get(names)
        if shape is None:
            shape = shapes[names] = ([], [])
        shape[0].append(len(case_ids))
        shape[1].append(passes)
        case_ids.append(cid)
        lines.append(lineno)
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
                        "output": row["output"],
                        "failed_verifiers": [
                            {"name": n, "kind": v["kind"], "detail": v.get("detail", "")}
                            for n, v in row["verifiers"].items()
                            if not v["passed"]
                        ],
                    }
                )
    n = len(case_ids)
    if n == 0:
        raise BadInput(
            f"{results_file} has no results",
            hint="a run with no cases cannot be gated; replay again (an empty run is never an all-clear)",
        )
    if len(set(case_ids)) != n:
        first: dict[str, int] = {}
        problems = []
        for cid, line in zip(case_ids, lines, strict=True):
            if cid in first:
                problems.append(
                    Problem(
                        f"duplicate case_id {cid!r} (first on line {first[cid]})",
                        file=str(results_file),
                        line=line,
                        field="case_id",
                    )
                )
            else:
                first[cid] = line
        raise BadInput(f"{results_file} has duplicate case ids", problems[:20])
    # Rows of one shape (the same verifier names in the same order: usually every row) become one
    # 2-D array in a single numpy call; a verifier a row lacks stays -1 there.
    verifier_pass: dict[str, np.ndarray] = {}
    for names, (idx_list, pass_rows) in shapes.items():
        idx = np.asarray(idx_list, dtype=np.int64)
        table = np.asarray(pass_rows, dtype=np.int8).reshape(len(idx_list), len(names))
        for j, name in enumerate(names):
            arr = verifier_pass.get(name)
            if arr is None:
                arr = verifier_pass[name] = np.full(n, -1, dtype=np.int8)
            arr[idx] = table[:, j]
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
