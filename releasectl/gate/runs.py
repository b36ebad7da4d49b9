"""Load a run directory (SPEC §5.1) into columns, so metrics over a million cases stay fast.

Columns are per results row. With repeated sampling a row is one sample of a case: `cases`,
`case_index` (row → case) and `samples_per_case` give the per-case structure the gate's
statistics use (the case is the unit), after checking that every case holds samples
0..n−1 exactly once, all in one slice (exit 2 at the offending file:line otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.contracts._types import MAX_COUNT, MAX_MS, MAX_NAME, MAX_OUTPUT, MAX_TEXT
from releasectl.contracts.results import (
    MAX_SAMPLES_PER_CASE,
    MAX_SEED,
    MAX_VERIFIERS,
    RESULTS_EXPECTED,
    SEED_DERIVATION,
    VERIFIER_KINDS,
    sample_seed,
)
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
    reader: str = "python"  # which reader built the columns: "python" or "duckdb"
    reader_note: str | None = None  # why the DuckDB reader handed the file to the Python one
    samples_per_case: int = 1  # sampling.n: rows per case
    sample: np.ndarray | None = None  # each row's sample index (None: every row is sample 0)
    cases: list[str] | None = None  # distinct case ids, first-seen order (None: case_ids)
    case_index: np.ndarray | None = None  # each row's index into `cases` (None: the row's own)

    @property
    def n(self) -> int:
        """Rows (cases × samples)."""
        return len(self.case_ids)

    @property
    def sampled(self) -> bool:
        """Whether cases hold more than one sample: then the case, not the row, is the unit."""
        return self.samples_per_case > 1

    @property
    def case_list(self) -> list[str]:
        return self.cases if self.cases is not None else self.case_ids

    @property
    def n_cases(self) -> int:
        return len(self.case_list)

    def case_slice_mask(self, name: str | None) -> np.ndarray:
        """`slice_mask` per case (every sample of a case is in the case's slice)."""
        rows = self.slice_mask(name)
        if self.case_index is None:
            return rows
        cache = self.__dict__.setdefault("_case_masks", {})
        if name not in cache:
            out = np.zeros(self.n_cases, dtype=bool)
            out[self.case_index[rows]] = True
            cache[name] = out
        return cache[name]  # type: ignore[no-any-return]

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


Extracted = tuple[
    str, str, bool, bool, bool, tuple[str, ...], tuple[bool, ...], float, int, int, float, int, int
]
NO_SAMPLE = -1  # the `sample` column of a row that has none (it reads as sample 0)
NO_SEED = -1  # the `seed` column of a row that has none


def row_ok(row: Any) -> bool:
    """The fast path's check of one parsed results.jsonl row: exactly `ResultRow`'s contract
    (tests/test_contracts.py proves `row_ok(r) == ResultRow accepts r`), without building a model."""
    return _extract(row) is not None


def _extract(row: Any) -> Extracted | None:
    """Check a row as `ResultRow` would and, in the same pass, take the columns the gate needs:
    (case_id, slice, passed, rule_ok, format_ok, verifier names, their passes, latency, completion
    tokens, prompt tokens, steps or NaN, sample or NO_SAMPLE, seed or NO_SEED); None when the model
    would refuse the row."""
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
    sample = NO_SAMPLE
    if "sample" in row:  # present, it is an integer (null, a bool or a string is refused)
        sample = row["sample"]
        if type(sample) is not int or not 0 <= sample < MAX_SAMPLES_PER_CASE:
            return None
    seed = NO_SEED
    if "seed" in row:
        seed = row["seed"]
        if type(seed) is not int or not 0 <= seed <= MAX_SEED:
            return None
    st = row.get("steps")
    if st is None:
        return (cid, sl, ok, r_ok, f_ok, tuple(verifiers), tuple(passes), ms, ct, pt, _NAN, sample, seed)
    if type(st) is not int or not 0 <= st <= MAX_COUNT:
        return None
    return (cid, sl, ok, r_ok, f_ok, tuple(verifiers), tuple(passes), ms, ct, pt, st, sample, seed)


# The row's integer fields and their bounds, for messages that say the bound and the number as written.
_INT_BOUNDS = {
    "sample": MAX_SAMPLES_PER_CASE - 1,
    "seed": MAX_SEED,
    "prompt_tokens": MAX_COUNT,
    "completion_tokens": MAX_COUNT,
    "steps": MAX_COUNT,
}


def row_problems(row: Any, *, file: str, line: int, raw: bytes | None = None) -> list[Problem]:
    """Why `ResultRow` refuses a row, located at file:line with field paths. An integer field's
    problem names its bound and shows the number as written in `raw` (the JSON reader turns an
    integer beyond 64 bits into a float: 10**30 would otherwise read "1e+30")."""
    from pydantic import ValidationError

    from releasectl.contracts._types import describe, problems_of
    from releasectl.contracts.results import RESULTS_EXPECTED, ResultRow

    if not isinstance(row, dict):
        return [Problem("wrong type", file=file, line=line, expected="a JSON object", found=describe(row))]
    try:
        ResultRow.model_validate(row)
    except ValidationError as e:
        found = problems_of(e, file=file, line=line, expected=None) or [
            Problem("invalid row", file=file, line=line)
        ]
        return [_bounded(p, row, raw) for p in found]
    return [Problem("invalid row", file=file, line=line, expected=RESULTS_EXPECTED)]


def _bounded(problem: Problem, row: dict[str, Any], raw: bytes | None) -> Problem:
    """`problem` on an integer field of `_INT_BOUNDS`, saying the bound and the number as written."""
    import re
    from dataclasses import replace

    hi = _INT_BOUNDS.get(problem.field or "")
    value = row.get(problem.field or "")
    if hi is None or type(value) not in (int, float):
        return problem
    written = None
    if raw is not None:
        m = re.search(
            rb'"' + re.escape((problem.field or "").encode()) + rb'"\s*:\s*(-?[0-9][0-9.eE+-]*)', raw
        )
        written = m.group(1).decode() if m else None
    shown = written if written is not None else str(value)
    if len(shown) > 60:
        shown = f"{shown[:20]}… ({len(shown)} characters)"
    integral = written is not None and written.lstrip("-").isdigit()
    # An integer literal beyond 64 bits reaches the model as a float: it is an integer, too large.
    message = "Input should be an integer in range" if integral and type(value) is float else problem.message
    return replace(problem, message=message, expected=f"an integer in 0..{hi}", found=shown)


def _read_run_json(run_file: Path) -> dict[str, Any]:
    from releasectl.contracts._types import read_json_file
    from releasectl.contracts.run import run_record

    data, raw = read_json_file(run_file, what="run.json")
    run_record(data, file=str(run_file), raw=raw)
    return data  # type: ignore[no-any-return]


def load_run(path: Path) -> RunData:
    """Read run.json + results.jsonl; BadInput (exit 2) names the file, line and field of bad content.

    `$RELEASECTL_GATE_READER` (default "auto"): "duckdb" reads plain results files with DuckDB
    (`gate.fastrows`), which hands back to the Python reader anything it cannot read exactly as
    that reader would; "auto" and "python" use the Python reader (msgspec blocks, `_extract` for
    the rest), because on the 2-core machine measured the DuckDB reader is slower
    (benchmarks/gate_scale.py, 1M cases × 2 runs, 2026-12-02: floor 1.2-1.5 s, gate with the
    Python reader 5.0-5.5 s, with the DuckDB reader 14.1 s)."""
    path = Path(path)
    from releasectl import safeio

    run_file, results_file = path / "run.json", path / "results.jsonl"
    if not (safeio.present(run_file, what="run.json") & safeio.present(results_file, what="results")):
        raise BadInput(
            f"{path} is not a run directory (needs run.json and results.jsonl)",
            hint="make one with `releasectl replay MANIFEST --out DIR`",
        )
    run = _read_run_json(run_file)
    engine = os.environ.get("RELEASECTL_GATE_READER") or "auto"
    if engine not in ("auto", "python", "duckdb"):
        raise BadInput(
            f"RELEASECTL_GATE_READER: expected auto, python or duckdb, found '{engine}'",
            hint="unset it to let releasectl choose",
        )
    note = None
    if engine == "duckdb":
        with safeio.open_binary(results_file, what="results") as probe:
            gzipped = probe.read(2) == safeio.GZIP_MAGIC
        if gzipped:
            note = "gzip results are read by the Python reader"
        else:
            fast, note = _load_duckdb(path, run, results_file)
            if fast is not None:
                return fast
    data = _load_python(path, run, results_file)
    data.reader_note = note
    return data


def _load_python(path: Path, run: dict[str, Any], results_file: Path) -> RunData:
    """The definition: every line through orjson and `_extract`; the first refused row is the error.
    Blocks of canonical rows are decoded by msgspec instead (`fastrows_msgspec`), which accepts
    exactly what `_extract` accepts and hands it anything else."""
    from releasectl import safeio
    from releasectl.gate.fastrows_msgspec import decode_block

    case_ids: list[str] = []
    slice_names: dict[str, int] = {}
    parts: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    line_parts: list[Any] = []
    shapes: dict[tuple[str, ...], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    failing: list[dict[str, Any]] = []
    failing_total = 0
    for first, block in safeio.iter_blocks(results_file, what="results"):
        got = decode_block(block, NO_SAMPLE, NO_SEED, _NAN)
        rows: dict[int, dict[str, Any]] | None = None
        if got is None:
            got, numbers, rows = _read_block(block, first, results_file)
            line_parts.append(numbers)
        else:
            line_parts.append(np.arange(first, first + len(got["case_id"])))
        offset = len(case_ids)
        case_ids.extend(got["case_id"])
        for sl in dict.fromkeys(got["slice"]):
            slice_names.setdefault(sl, len(slice_names))
        parts["slice"].append(
            np.fromiter([slice_names[sl] for sl in got["slice"]], np.int32, len(got["slice"]))
        )
        for name in _COLUMNS[2:]:  # after case_id and slice
            parts[name].append(got[name])
        for names, (idx, table) in got["shapes"].items():
            shape = shapes.setdefault(names, ([], []))
            shape[0].append(idx + offset)
            shape[1].append(table)
        fails = np.flatnonzero(~got["passed"])
        failing_total += len(fails)
        wanted = [int(i) for i in fails[: MAX_EXAMPLES - len(failing)]]
        if wanted:
            if rows is None:
                import orjson

                text = safeio.block_lines(block)
                rows = {i: orjson.loads(text[i]) for i in wanted}
            failing.extend(rows[i] for i in wanted)
    slice_arr = np.concatenate(parts["slice"]) if parts["slice"] else np.zeros(0, np.int32)
    passed, rule_ok, format_ok = (_joined(parts[k], bool) for k in ("passed", "rule_ok", "format_ok"))
    latency, steps = _joined(parts["latency"], np.float64), _joined(parts["steps"], np.float64)
    completion, prompt = _joined(parts["completion"], np.int64), _joined(parts["prompt"], np.int64)
    samples, seeds = _joined(parts["sample"], np.int64), _joined(parts["seed"], np.int64)
    lines = _joined(line_parts, np.int64)
    n = len(case_ids)
    if n == 0:
        raise BadInput(
            f"{results_file} has no results",
            hint="a run with no cases cannot be gated; replay again (an empty run is never an all-clear)",
        )
    structure = sample_structure(case_ids, samples, slice_arr, lines, run, results_file)
    check_seeds(case_ids, samples, seeds, lines, run, results_file)
    failing = _examples(failing, structure["samples_per_case"])
    verifier_pass = _verifier_table(
        n, ((names, np.concatenate(idx), np.concatenate(tables)) for names, (idx, tables) in shapes.items())
    )
    return RunData(
        path=path,
        run=run,
        case_ids=case_ids,
        slices=list(slice_names),
        slice_idx=slice_arr,
        passed=passed,
        rule_ok=rule_ok,
        format_ok=format_ok,
        latency_ms=latency,
        completion_tokens=completion,
        prompt_tokens=prompt,
        steps=steps,
        verifier_pass=verifier_pass,
        failing=failing,
        failing_total=failing_total,
        **structure,
    )


_COLUMNS = (
    "case_id",
    "slice",
    "passed",
    "rule_ok",
    "format_ok",
    "latency",
    "completion",
    "prompt",
    "steps",
    "sample",
    "seed",
)


def _read_block(
    block: bytes, first: int, results_file: Path
) -> tuple[dict[str, Any], list[int], dict[int, dict[str, Any]]]:
    """One block line by line through orjson and `_extract` (the definition): its columns, the
    line number of each row, and its failing rows by index; the first refused line is BadInput."""
    import orjson

    from releasectl import safeio

    got: dict[str, Any] = {name: [] for name in (*_COLUMNS, "names", "passes")}
    numbers: list[int] = []
    failing: dict[int, dict[str, Any]] = {}
    for lineno, raw in enumerate(safeio.block_lines(block), start=first):
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
                row_problems(row, file=str(results_file), line=lineno, raw=raw),
                hint="each line is one case (SPEC §5.1; `releasectl schema --artifact results`)",
            )
        if not cols[2] and len(failing) < MAX_EXAMPLES:
            failing[len(numbers)] = row
        numbers.append(lineno)
        for name, value in zip(_EXTRACTED, cols, strict=True):
            got[name].append(value)
    from releasectl.gate.fastrows_msgspec import group_shapes

    passes = got.pop("passes")
    got["shapes"] = {
        names: (idx, np.asarray([passes[i] for i in idx], dtype=np.int8).reshape(len(idx), len(names)))
        for names, idx in group_shapes(got.pop("names")).items()
    }
    for name in ("passed", "rule_ok", "format_ok"):
        got[name] = np.asarray(got[name], dtype=bool)
    return got, numbers, failing


def _joined(parts: list[Any], dtype: Any) -> np.ndarray:
    """One array from per-block lists or arrays."""
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([np.asarray(p, dtype=dtype) for p in parts])


# The names of `_extract`'s tuple, in its order.
_EXTRACTED = (
    "case_id",
    "slice",
    "passed",
    "rule_ok",
    "format_ok",
    "names",
    "passes",
    "latency",
    "completion",
    "prompt",
    "steps",
    "sample",
    "seed",
)


def _duplicate_ids(case_ids: list[str], lines: Any, results_file: Path) -> BadInput:
    first: dict[str, int] = {}
    problems = []
    for cid, line in zip(case_ids, lines, strict=True):
        if cid in first:
            problems.append(
                Problem(
                    f"duplicate case_id {cid!r} (first on line {first[cid]})",
                    file=str(results_file),
                    line=int(line),
                    field="case_id",
                )
            )
        else:
            first[cid] = int(line)
    return BadInput(f"{results_file} has duplicate case ids", problems[:20])


def _declared_samples(run: dict[str, Any]) -> int | None:
    sampling = run.get("sampling")
    n = sampling.get("n") if isinstance(sampling, dict) else None
    return n if type(n) is int else None


def sample_structure(
    case_ids: list[str],
    samples: list[int] | np.ndarray,
    slice_idx: np.ndarray,
    lines: list[int] | np.ndarray,
    run: dict[str, Any],
    results_file: Path,
) -> dict[str, Any]:
    """The per-case structure of the rows (RunData's `samples_per_case`, `sample`, `cases`,
    `case_index`), after checking it: every case holds samples 0..n−1 exactly once (n from
    run.json's `sampling.n`, else the largest sample + 1), all in one slice. Rows without
    `sample` are sample 0, so an old run is one sample per case. BadInput names file:line."""
    smp = np.asarray(samples, dtype=np.int64)
    absent = smp == NO_SAMPLE
    if absent.size and absent.any() and not absent.all():
        raise _mixed_shape(absent, lines, results_file)
    smp = np.where(absent, 0, smp)
    declared = _declared_samples(run)
    n_rows = len(case_ids)
    if declared in (None, 1) and (smp.size == 0 or int(smp.max()) == 0):
        # One sample per case (or a run from before sampling): the row is the case, as it always was.
        if len(set(case_ids)) != n_rows:
            raise _duplicate_ids(case_ids, lines, results_file)
        return {"samples_per_case": 1, "sample": None, "cases": None, "case_index": None}
    index: dict[str, int] = {}
    case_index = np.fromiter((index.setdefault(c, len(index)) for c in case_ids), np.int64, n_rows)
    cases = list(index)
    file = str(results_file)
    line_of = np.asarray(lines, dtype=np.int64)
    k = declared if declared is not None else int(smp.max()) + 1
    problems: list[Problem] = []
    # One slice per case: the slice of its first row.
    first_row = np.full(len(cases), n_rows, dtype=np.int64)
    np.minimum.at(first_row, case_index, np.arange(n_rows))
    other = np.flatnonzero(slice_idx != slice_idx[first_row[case_index]])
    for i in other[:20].tolist():
        c = int(case_index[i])
        problems.append(
            Problem(
                f"case {case_ids[i]!r} is in another slice than its sample on line {int(line_of[first_row[c]])}",
                file=file,
                line=int(line_of[i]),
                field="slice",
            )
        )
    # Each (case, sample) once.
    keys = case_index * MAX_SAMPLES_PER_CASE + smp
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    for j in repeated[:20].tolist():
        i, earlier = int(order[j + 1]), int(order[j])
        problems.append(
            Problem(
                f"duplicate sample {int(smp[i])} of case {case_ids[i]!r} (first on line {int(line_of[earlier])})",
                file=file,
                line=int(line_of[i]),
                field="sample",
            )
        )
    # Samples 0..k-1 of every case.
    beyond = np.flatnonzero(smp >= k)
    for i in beyond[:20].tolist():
        problems.append(
            Problem(
                f"sample {int(smp[i])} of case {case_ids[i]!r}, but the run has {k} sample(s) per case"
                + (" (run.json sampling.n)" if declared is not None else ""),
                file=file,
                line=int(line_of[i]),
                field="sample",
                expected=f"a sample index in 0..{k - 1}",
            )
        )
    distinct = np.unique(keys[smp < k])
    present = np.bincount(distinct // MAX_SAMPLES_PER_CASE, minlength=len(cases))
    for c in np.flatnonzero(present != k)[:20].tolist():
        have = sorted({int(x) for x in smp[(case_index == c) & (smp < k)]})
        missing = sorted(set(range(k)) - set(have))
        problems.append(
            Problem(
                f"case {cases[c]!r} lacks sample(s) {_listing(missing)} of 0..{k - 1}",
                file=file,
                line=int(line_of[first_row[c]]),
                field="sample",
                expected=f"{k} samples per case"
                + (" (run.json sampling.n)" if declared is not None else " (the largest sample + 1)"),
                found=f"samples {_listing(have)}",
            )
        )
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise BadInput(f"{results_file} does not hold every sample of every case exactly once", problems[:20])
    return {"samples_per_case": k, "sample": smp, "cases": cases, "case_index": case_index}


def _mixed_shape(absent: np.ndarray, lines: list[int] | np.ndarray, results_file: Path) -> BadInput:
    """Rows with and without `sample` in one file: a missing sample would read as sample 0 and
    pass for a case's first sample; every row has one, or none does (one sample per case)."""
    i = int(np.flatnonzero(absent != absent[0])[0])
    first = int(np.asarray(lines)[0])
    has, lacks = "has no `sample`", "has a `sample`"
    return BadInput(
        f"{results_file} mixes rows with and without `sample`",
        [
            Problem(
                f"this row {has if absent[i] else lacks}, but the first row (line {first})"
                f" {lacks if absent[i] else has}",
                file=str(results_file),
                line=int(np.asarray(lines)[i]),
                field="sample",
                expected="`sample` on every row (repeated sampling) or on none (one sample per case)",
                found="no sample" if absent[i] else "a sample",
            )
        ],
    )


def check_seeds(
    case_ids: list[str],
    samples: list[int] | np.ndarray,
    seeds: list[int] | np.ndarray,
    lines: list[int] | np.ndarray,
    run: dict[str, Any],
    results_file: Path,
) -> None:
    """With run.json's `sampling.seed_derivation: sha256-uint32-v1`, every row's `seed` must be
    `sample_seed(run.json seed, case_id, sample)`: one seed reused for every sample makes n
    identical samples (pass^k inflated), and a derivation the rows do not follow is not the one
    recorded. BadInput at results.jsonl:LINE with the expected and found seed. Distinct, correct
    seeds do not prove the engine used them: replay's determinism check does (docs/repeated_sampling.md)."""
    sampling = run.get("sampling")
    derivation = sampling.get("seed_derivation") if isinstance(sampling, dict) else None
    if derivation != SEED_DERIVATION:
        return  # "batch" (one sample per case) or not recorded: nothing per row to check
    run_file = str(results_file.parent / "run.json")
    base = run.get("seed")
    if type(base) is not int:
        raise BadInput(
            f"{run_file} declares seed_derivation {SEED_DERIVATION} but records no run seed",
            [
                Problem(
                    "seed_derivation needs the run's sampling seed",
                    file=run_file,
                    line=_line_of_key(results_file.parent / "run.json", "seed_derivation"),
                    field="seed",
                    expected="an integer `seed` (the manifest's sampling.seed)",
                    found="nothing",
                )
            ],
        )
    smp = np.asarray(samples, dtype=np.int64)
    smp = np.where(smp == NO_SAMPLE, 0, smp).tolist()
    found = np.asarray(seeds, dtype=np.int64).tolist()
    line_of = np.asarray(lines, dtype=np.int64).tolist()
    file = str(results_file)
    problems: list[Problem] = []
    for cid, s, got, line in zip(case_ids, smp, found, line_of, strict=True):
        want = sample_seed(base, cid, s)
        if got != want:
            problems.append(
                Problem(
                    f"sample {s} of case {cid!r} has "
                    + ("no seed" if got == NO_SEED else f"seed {got}")
                    + f", but run.json's seed_derivation {SEED_DERIVATION} with seed {base} gives {want}",
                    file=file,
                    line=int(line),
                    field="seed",
                    expected=str(want),
                    found="nothing" if got == NO_SEED else str(got),
                )
            )
            if len(problems) >= 20:
                break
    if problems:
        raise BadInput(
            f"{results_file}: rows whose seed is not the one run.json's seed_derivation gives",
            problems,
            hint="samples generated with other seeds than recorded cannot be trusted as independent draws;"
            " replay again (releasectl replay derives every sample's seed)",
        )


def _line_of_key(path: Path, key: str) -> int:
    from releasectl import safeio

    text = safeio.read_bytes(path, what="run.json").decode("utf-8", errors="replace")
    at = text.find(f'"{key}"')
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def _listing(values: list[int]) -> str:
    text = ", ".join(str(v) for v in values[:10])
    return text + (f", … ({len(values)} in all)" if len(values) > 10 else "")


def _examples(rows: list[dict[str, Any]], samples_per_case: int) -> list[dict[str, Any]]:
    """Failing rows as the report shows them; with several samples a row says which sample it is."""
    out = [_example(r) for r in rows]
    if samples_per_case == 1:
        for e in out:
            e.pop("sample", None)
    return out


def _example(row: dict[str, Any]) -> dict[str, Any]:
    """A failing case as the report shows it (from a row `_extract` accepted)."""
    return {
        "case_id": row["case_id"],
        **({"sample": row["sample"]} if "sample" in row else {}),
        "slice": row["slice"],
        "output": row["output"],
        "failed_verifiers": [
            {"name": n, "kind": v["kind"], "detail": v.get("detail", "")}
            for n, v in row["verifiers"].items()
            if not v["passed"]
        ],
    }


def _verifier_table(
    n: int, shapes: Iterable[tuple[tuple[str, ...], np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per verifier name, its pass (1), fail (0) or absence (-1) on each case. Rows of one shape
    (the same verifier names in the same order: usually every row) come as one (row indices,
    passes) pair and become one 2-D array in a single numpy call; shapes in first-seen order."""
    verifier_pass: dict[str, np.ndarray] = {}
    for names, idx, passes in shapes:
        table = passes.reshape(len(idx), len(names))
        for j, name in enumerate(names):
            arr = verifier_pass.get(name)
            if arr is None:
                arr = verifier_pass[name] = np.full(n, -1, dtype=np.int8)
            arr[idx] = table[:, j]
    return verifier_pass


def _load_duckdb(path: Path, run: dict[str, Any], results_file: Path) -> tuple[RunData | None, str | None]:
    """The columns from `fastrows` (DuckDB), with its candidate lines and the first failing cases
    read again here by line number; (None, why) when the Python reader must read the file."""
    import orjson

    from releasectl import safeio
    from releasectl.gate.fastrows import US, read_columns

    cols, why = read_columns(results_file)
    if cols is None:
        return None, why
    rows: int = cols["rows"]
    cand: np.ndarray = cols["cand"]
    line_of: np.ndarray = cols["line_of"]
    passed = np.asarray(cols["passed"], dtype=bool)
    cand_idx = np.flatnonzero(cand)
    wanted = {int(line_of[i]): int(i) for i in np.flatnonzero(~passed & ~cand)[:MAX_EXAMPLES]}
    wanted.update((int(line_of[i]), int(i)) for i in cand_idx)
    parsed: dict[int, Any] = {}  # row → its parsed row, or None for a blank line
    last = max(wanted, default=0)
    if last:
        for lineno, raw in safeio.iter_lines(results_file, what="results"):
            i = wanted.get(lineno)
            if i is not None:
                if raw.isspace() or not raw:
                    parsed[i] = None
                else:
                    try:
                        parsed[i] = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        return None, f"line {lineno} is not JSON"
            if lineno >= last:
                break
    if len(parsed) != len(wanted):
        return None, "some lines could not be found again"
    case_ids: list[Any] = cols["case_id"].tolist()
    slices: list[Any] = cols["slice"].tolist()
    shape_keys: list[Any] = cols["shape"].tolist()
    bits: list[Any] = cols["bits"].tolist()
    rule_ok = np.asarray(cols["rule_ok"], dtype=bool)
    format_ok = np.asarray(cols["format_ok"], dtype=bool)
    latency = np.asarray(cols["latency"], dtype=np.float64)
    completion = np.asarray(cols["completion"], dtype=np.int64)
    prompt = np.asarray(cols["prompt"], dtype=np.int64)
    steps = np.asarray(cols["steps"], dtype=np.float64)
    sample = np.asarray(cols["sample"], dtype=np.int64)
    seed = np.asarray(cols["seed"], dtype=np.int64)
    keep = np.ones(rows, dtype=bool)
    extra: dict[tuple[str, ...], tuple[list[int], list[tuple[bool, ...]]]] = {}
    for i in cand_idx.tolist():
        row = parsed[i]
        if row is None:
            keep[i] = False
            continue
        got = _extract(row)
        if got is None:
            return None, f"line {int(line_of[i])} is refused by the contract"
        cid, sl, ok, r_ok, f_ok, names, passes, lat, comp, prm, stp, smp, sd = got
        case_ids[i], slices[i], passed[i], rule_ok[i], format_ok[i] = cid, sl, ok, r_ok, f_ok
        latency[i], completion[i], prompt[i], steps[i], sample[i], seed[i] = lat, comp, prm, stp, smp, sd
        shape = extra.setdefault(names, ([], []))
        shape[0].append(i)
        shape[1].append(passes)
    for i, row in parsed.items():
        if row is not None and not cand[i] and row.get("case_id") != case_ids[i]:
            return None, f"line {int(line_of[i])} reads differently"  # never expected: a safety net
    if not keep.all():
        kept = np.flatnonzero(keep)
        renumber = np.cumsum(keep) - 1
        case_ids = [case_ids[i] for i in kept.tolist()]
        slices = [slices[i] for i in kept.tolist()]
        passed, rule_ok, format_ok = passed[kept], rule_ok[kept], format_ok[kept]
        latency, completion, prompt, steps = latency[kept], completion[kept], prompt[kept], steps[kept]
        sample, seed = sample[kept], seed[kept]
    else:
        kept = renumber = np.arange(rows)
    n = len(case_ids)
    if n == 0:
        return None, "the Python reader words this error"
    # Verifier shapes: the SQL rows' by their joined names, the candidates' as parsed; first-seen order.
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(shape_keys):
        if key is not None:
            by_key.setdefault(key, []).append(i)
    groups: list[tuple[int, tuple[str, ...], np.ndarray, np.ndarray]] = []
    for key, idx_list in by_key.items():
        names = tuple(key.split(US)) if key else ()
        text = "".join(bits[i] for i in idx_list).encode()
        groups.append(
            (
                idx_list[0],
                names,
                renumber[np.asarray(idx_list, dtype=np.int64)],
                np.frombuffer(text, dtype=np.uint8).astype(np.int8) - 48,
            )
        )
    for names, (idx_list, pass_rows) in extra.items():
        groups.append(
            (
                idx_list[0],
                names,
                renumber[np.asarray(idx_list, dtype=np.int64)],
                np.asarray(pass_rows, dtype=np.int8).reshape(-1),
            )
        )
    groups.sort(key=lambda g: g[0])
    verifier_pass = _verifier_table(n, ((names, idx, p) for _, names, idx, p in groups))
    slice_names: dict[str, int] = {}
    slice_idx = np.asarray([slice_names.setdefault(s, len(slice_names)) for s in slices], dtype=np.int32)
    try:
        structure = sample_structure(case_ids, sample, slice_idx, line_of[kept], run, results_file)
        check_seeds(case_ids, sample, seed, line_of[kept], run, results_file)
    except BadInput:
        return None, "the Python reader words this error"
    failing_rows = np.flatnonzero(~passed)
    failing = _examples(
        [parsed[int(kept[i])] for i in failing_rows[:MAX_EXAMPLES]], structure["samples_per_case"]
    )
    return (
        RunData(
            path=path,
            run=run,
            case_ids=case_ids,
            slices=list(slice_names),
            slice_idx=slice_idx,
            passed=passed,
            rule_ok=rule_ok,
            format_ok=format_ok,
            latency_ms=latency,
            completion_tokens=completion,
            prompt_tokens=prompt,
            steps=steps,
            verifier_pass=verifier_pass,
            failing=failing,
            failing_total=len(failing_rows),
            reader="duckdb",
            **structure,
        ),
        None,
    )
