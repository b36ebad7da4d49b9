"""DuckDB path for `gate` on large plain results.jsonl files: the same columns as `runs.load_run`'s
Python path, read in one SQL pass.

The Python path (orjson + `runs._extract`, which is exactly `ResultRow`'s contract) is the
definition, and stays the only source of verdicts on bad rows and of every error message. This
path only *accepts*: each line is one VARCHAR (`duckjson.LINES`), parsed once by `json_transform`
into the fields the gate reads as raw JSON text, and a line is a *candidate* unless DuckDB can tell,
from that text alone, that orjson reads it the same way and the contract accepts it:

- the line starts with `{` and ends with `}`, DuckDB parses it, and it has none of the constructs
  DuckDB accepts and orjson refuses (`duckjson.lenient`: NaN/Infinity, trailing commas, numbers
  beyond a double or 64-bit integer, more than 1,024 brackets);
- it has no `\\u` escape (so that no key can spell a read field in disguise, and no lone surrogate
  hides in a string);
- every read key occurs exactly once as `"key"` in the text (DuckDB keeps a duplicated key's
  first value, orjson the last): `"passed"` once plus once per verifier, `"kind"` once per
  verifier, `"detail"` once per verifier that has one, `steps`/`ttft_ms`/`sample`/`seed` at most
  once;
- JSON types from the first character, and the contract's bounds: strings of 1..256 characters
  (raw byte length, an upper bound of the character count, else a candidate), `output` and
  `detail` within their caps, strict booleans, token counts, steps and seeds as plain digit
  strings up to 10^15, a sample index as one below 1,000, latency and ttft finite numbers in
  [0, 1e12], at most 256 verifiers with known kinds, and `passed` equal to "every verifier passed".

Candidates, and the first `MAX_EXAMPLES` failing cases (whose output and verifier details the
report shows), are read again by line number through the Python path. A candidate it refuses, a
duplicate case id (or (case id, sample)), an incomplete set of samples, or an empty file sends the
whole file to the Python path, so errors read exactly as they always have. The whole file also goes there when DuckDB cannot read it (invalid UTF-8, a
line over 2 MB), when `duckjson.byte_check` finds a byte DuckDB would split on, or when there are
more than `CANDIDATE_CAP` candidates.

Status: opt-in (`RELEASECTL_GATE_READER=duckdb`), because it does not beat the Python reader
here (since 2026-12-02 that reader decodes canonical blocks with msgspec: gate 5.0-5.5 s against
this reader's 14.1 s, 1M × 2). Figures from before that change: benchmarks/gate_scale.py, 1M cases × 2 runs, 2 shared cores, one run (2026-12-01): DuckDB
floor 1.68 s / 1.34 s (before / after), Python reader 13.77 s and 10.50 s, this reader 20.26 s.
Per 200k-row file the query alone takes about 1.3 s against 1.1-2.0 s for the whole Python
reader: each line is parsed about six times (`json_extract` of the read fields, `json_keys` of
the line for duplicate keys, then of the verifiers object and of each verifier, `$.*` of the
verifiers), where `read_json` parses it once. (A MAP transform, which refuses duplicate keys in
one parse, costs more than all of those; STRUCT transforms keep a duplicate's first value.)
The next step would be `read_json` with JSON-typed columns for the fields, POSITIONAL JOINed to
the raw lines for the regex and duplicate-key checks.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from releasectl.contracts._types import MAX_COUNT, MAX_MS, MAX_NAME, MAX_OUTPUT, MAX_TEXT
from releasectl.contracts.results import MAX_SAMPLES_PER_CASE, MAX_SEED, MAX_VERIFIERS, VERIFIER_KINDS

CANDIDATE_CAP = 20_000  # candidate lines re-read in Python; more and the Python path reads it all
MAX_EMPTY_LINES = 100_000  # DuckDB drops empty lines; more of them than this and Python reads it all
US = chr(31)  # joins verifier names: never in a decoded name of a non-candidate line (it needs \u001f)

_TOP = (
    "case_id",
    "slice",
    "passed",
    "output",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "steps",
    "ttft_ms",
    "verifiers",
    "sample",
    "seed",
)


def _sql() -> str:
    from releasectl.duckjson import LINES, lenient

    def string(raw: str, cap: int, *, nonempty: bool) -> str:
        # `raw` is DuckDB's serialization of the value: its byte length bounds the characters.
        low = 3 if nonempty else 2
        return f"(left({raw}, 1) = '\"' AND strlen({raw}) BETWEEN {low} AND {cap + 2})"

    def decoded(raw: str) -> str:
        return f"CASE WHEN contains({raw}, '\\') THEN {raw}->>'$' ELSE {raw}[2:-2] END"

    def count(raw: str) -> str:
        # An integer literal serializes as digits only (a fraction or exponent makes a double).
        return (
            f"(strlen({raw}) BETWEEN 1 AND 16 AND ltrim({raw}, '0123456789') = ''"
            f" AND TRY_CAST({raw} AS BIGINT) <= {MAX_COUNT})"
        )

    def millis(raw: str) -> str:
        return (
            f"(TRY_CAST({raw} AS DOUBLE) BETWEEN 0 AND {MAX_MS}"
            f" AND left({raw}, 1) NOT IN ('\"', 't', 'f', 'n', '[', '{{'))"
        )

    kinds = ", ".join(f"'\"{k}\"'" for k in VERIFIER_KINDS)
    detail = string("w[3]", MAX_TEXT, nonempty=False)
    # w: a verifier's [passed, kind, detail] JSON texts (NULL where absent, 'null' for null)
    verifier_ok = f"(w[1] IN ('true', 'false') AND w[2] IN ({kinds}) AND (w[3] IS NULL OR {detail}))"
    good = " AND ".join(
        [
            "starts_with(l, '{')",
            "right(l, 1) = '}'",
            "NOT contains(l, '\\u')",
            f"NOT {lenient('l', numbers=True)}",
            "len(keys) = len(list_distinct(keys))",
            string("case_id", MAX_NAME, nonempty=True),
            string("slice", MAX_NAME, nonempty=True),
            string("output", MAX_OUTPUT, nonempty=False),
            "passed IN ('true', 'false')",
            count("prompt_tokens"),
            count("completion_tokens"),
            millis("latency_ms"),
            f"(steps IS NULL OR steps = 'null' OR {count('steps')})",
            f"(ttft IS NULL OR ttft = 'null' OR {millis('ttft')})",
            # sample and seed: absent, or plain integers (an explicit null is refused)
            f"(sample IS NULL OR ({count('sample')} AND TRY_CAST(sample AS BIGINT) < {MAX_SAMPLES_PER_CASE}))",
            f"(seed IS NULL OR ({count('seed')} AND TRY_CAST(seed AS BIGINT) <= {MAX_SEED}))",
            "left(verifiers, 1) = '{'",
            f"len(names) <= {MAX_VERIFIERS}",
            "len(names) = len(list_distinct(names))",
            f"list_bool_and(list_transform(names, lambda k: strlen(k) BETWEEN 1 AND {MAX_NAME})) IS NOT false",
            "list_bool_and(list_transform(vkeys, lambda k: len(k) = len(list_distinct(k)))) IS NOT false",
            "list_bool_and(list_transform(vvals, lambda v: left(v, 1) = '{')) IS NOT false",
            f"list_bool_and(list_transform(ws, lambda w: {verifier_ok})) IS NOT false",
            "(passed = 'true') = coalesce(list_bool_and(list_transform(ws, lambda w: w[1] = 'true')), true)",
        ]
    )

    def failed(kind: str) -> str:
        return (
            f"NOT coalesce(list_bool_or(list_transform(ws,"
            f" lambda w: w[1] = 'false' AND w[2] = '\"{kind}\"')), false)"
        )

    paths = "[" + ", ".join(f"'$.{k}'" for k in _TOP) + "]"
    top = ", ".join(f"'{k}': v[{i + 1}]" for i, k in enumerate(_TOP)).replace("'ttft_ms'", "'ttft'")
    # Each step's values are computed once: unnest() of a struct makes them columns, which the
    # optimizer cannot inline into the next step (it would parse the line again per reference).
    # json_extract keeps a duplicated key's first value, orjson the last: json_keys finds them.
    return f"""
WITH src AS (
  SELECT l, x, unnest({{'v': TRY(json_extract(l, {paths})), 'keys': TRY(json_keys(l))}}) FROM {LINES}
), parts AS (
  SELECT l, x, keys, unnest({{{top}}}) FROM src
), verifiers AS (
  SELECT *, unnest({{'names': TRY(json_keys(verifiers)), 'vvals': TRY(json_extract(verifiers, '$.*'))}})
  FROM parts
), each AS (
  SELECT *, unnest({{
    'vkeys': list_transform(vvals, lambda v: TRY(json_keys(v))),
    'ws': list_transform(vvals, lambda v: TRY(json_extract(v, ['$.passed', '$.kind', '$.detail'])))}})
  FROM verifiers
), checked AS (
  SELECT *, unnest({{'good': coalesce(x IS NULL AND l IS NOT NULL AND {good}, false)}}) FROM each
)
SELECT
  NOT good AS cand,
  CASE WHEN good THEN {decoded("case_id")} END AS case_id,
  CASE WHEN good THEN {decoded("slice")} END AS slice,
  good AND passed = 'true' AS passed,
  good AND {failed("rule")} AS rule_ok,
  good AND {failed("format")} AS format_ok,
  CASE WHEN good THEN TRY_CAST(latency_ms AS DOUBLE) END AS latency,
  CASE WHEN good THEN TRY_CAST(completion_tokens AS BIGINT) END AS completion,
  CASE WHEN good THEN TRY_CAST(prompt_tokens AS BIGINT) END AS prompt,
  CASE WHEN good THEN coalesce(TRY_CAST(steps AS DOUBLE), 'nan'::DOUBLE) END AS steps,
  CASE WHEN good THEN coalesce(TRY_CAST(sample AS BIGINT), -1) END AS sample,
  CASE WHEN good THEN coalesce(TRY_CAST(seed AS BIGINT), -1) END AS seed,
  CASE WHEN good THEN array_to_string(names, chr(31)) END AS shape,
  CASE WHEN good THEN coalesce(list_aggregate(list_transform(ws,
    lambda w: CASE WHEN w[1] = 'true' THEN '1' ELSE '0' END), 'string_agg', ''), '') END AS bits
FROM checked
"""


def _empty_lines(path: Path) -> list[int] | None:
    """Line numbers (1-based) of the empty lines ("\\n" or "\\r\\n" alone), which DuckDB's
    reader drops; None when there are more than `MAX_EMPTY_LINES`."""
    from releasectl import safeio

    found: list[int] = []
    base = 1  # the number of the chunk's first line
    with safeio.open_binary(path, what="results") as f:
        while chunk := f.read(16 << 20):
            if not chunk.endswith(b"\n"):
                chunk += f.readline()  # chunks hold whole lines
            buf = b"\n" + chunk  # what precedes a chunk is always the end of a line
            for pattern in (b"\n\n", b"\n\r\n"):
                at, seen, newlines = buf.find(pattern), 1, 0
                while at != -1:
                    newlines += buf.count(b"\n", seen, at + 1)
                    seen = at + 1
                    found.append(base + newlines)
                    if len(found) > MAX_EMPTY_LINES:
                        return None
                    at = buf.find(pattern, at + 1)
            base += chunk.count(b"\n")
    return sorted(found)


def read_columns(results_file: Path, threads: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(columns of `results_file` as `runs.load_run` builds them, None), or (None, why) when the
    Python path must read it."""
    try:
        import duckdb
    except ImportError:
        return None, "DuckDB is not installed"
    from releasectl.duckjson import byte_check, connect

    with ThreadPoolExecutor(2) as pool:
        # DuckDB releases the GIL while it runs, so the byte checks overlap with the query.
        check = pool.submit(byte_check, results_file)
        empties = pool.submit(_empty_lines, results_file)
        con = connect(duckdb, threads or min(os.cpu_count() or 1, 8), ordered=True)
        try:
            got = con.execute(_sql(), {"path": str(results_file)}).fetchnumpy()
        except duckdb.Error as e:
            return None, f"DuckDB could not read it ({str(e).splitlines()[0][:120]})"
        finally:
            con.close()
        why = check.result()
        empty = empties.result()
    if why:
        return None, why
    if empty is None:
        return None, f"more than {MAX_EMPTY_LINES:,} empty lines"
    cand = np.asarray(got["cand"], dtype=bool)
    n_cand = int(cand.sum())
    if n_cand > CANDIDATE_CAP:
        return None, f"{n_cand:,} lines need the exact reader"
    rows = len(cand)
    # Line number of each DuckDB row: the non-empty lines, in order.
    line_of = np.arange(1, rows + len(empty) + 1, dtype=np.int64)
    if empty:
        line_of = np.delete(line_of, np.asarray(empty, dtype=np.int64) - 1)[:rows]
    return {
        "rows": rows,
        "cand": cand,
        "line_of": line_of,
        **{k: v for k, v in got.items() if k != "cand"},
    }, None
