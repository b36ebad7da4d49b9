"""DuckDB path for `scan` on large plain logs: the same `LogStats`, aggregated in one SQL pass.

The Python path (`stats.read_batches` + `LogStats.add_batch`) is the definition; this path must
agree with it record for record. DuckDB's JSON reader is more lenient than orjson (it accepts
NaN/Infinity in any case, trailing commas, numbers beyond the double range and nesting deeper
than 1,024), so every line that could be read differently is set aside as a *candidate*:

- lines that are not valid JSON to DuckDB, or do not start with `{`;
- lines with a bare nan/inf literal or a trailing comma (regex, false positives are harmless);
- lines with more than 1,024 brackets;
- records whose checked fields have an unexpected JSON type or a non-finite number, whose
  `error` or `topic` is not a string, whose timestamp is not strict ISO 8601, or whose JSON
  output has any of the lenient constructs above.

Candidates are found again in the file by content and run through the Python path, which names
each malformed line with its number; their good records are merged in. The whole file goes to
the Python path when DuckDB cannot read it (invalid UTF-8, lines over 2 MB), when it holds a
carriage return that is not part of CRLF, a unit separator or a NUL (DuckDB would split or cut
such lines), or when there are more than `CANDIDATE_CAP` candidates.

Two known, documented differences remain, both in fields monitor does not read or in JSON no
serializer writes: a number beyond ±1.8e308 in an unread field (orjson rejects the line, DuckDB
reads it), and a duplicated key among the read fields (DuckDB takes the first value, orjson the
last). Above `stats.MAX_TOPICS` distinct topics this path keeps the most frequent ones; the
streaming path keeps the first seen.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasectl import safeio
from releasectl.duckjson import LINES, byte_check, connect, lenient, strict_lines
from releasectl.monitoring.logs import _YEAR_9999 as YEAR_9999
from releasectl.monitoring.logs import BOOL_FIELDS, NUMERIC_FIELDS, NUMERIC_RANGES, parse_line
from releasectl.monitoring.logs import STRING_FIELDS as CHECKED_STRINGS
from releasectl.monitoring.logstats import (
    COUNT_FIELDS,
    MAX_TOPICS,
    PROXY_FIELDS,
    SAMPLE_SIZE,
    SUM_FIELDS,
    LogStats,
    Window,
)
from releasectl.monitoring.sketch import QuantileSketch

CANDIDATE_CAP = 20_000  # candidate lines re-read in Python; more than this and the Python path reads it all

STRING_FIELDS = ("error", "expected_format", "output", "topic", "timestamp", "prompt")
FIELDS = NUMERIC_FIELDS + BOOL_FIELDS + STRING_FIELDS
HASHED = (*FIELDS, "request_id")  # read as j_<field>
NO_ERROR_STRINGS = ("", "none", "None", "null")  # the string members of stats.NO_ERROR
# Timestamps DuckDB and datetime.fromisoformat read the same way; other strings are candidates.
TS_RE = r"\d{4}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?"


def _source(paths: str) -> str:
    """Every line as `l` (CSV, one VARCHAR), its fields' JSON texts from `json_extract` as
    `j_<field>` (and all of them as `v`, NULL when DuckDB cannot parse the line), and `h`."""
    named = ", ".join(f"v[{i}] AS j_{name}" for i, name in enumerate(HASHED, start=1))
    return f"""
  SELECT *, {_hash()} AS h FROM (
    SELECT l, x, v, {named} FROM (
      SELECT l, x, TRY(json_extract(l, {paths}))::VARCHAR[] AS v
      FROM {LINES}
      WHERE l IS NOT NULL OR x IS NOT NULL))"""


def _json_source() -> str:
    """The same `j_<field>` columns from `read_json`, each field a JSON-typed column whose text
    is what `json_extract` gives (a null reads as SQL NULL, which every check treats as absent)."""
    columns = ", ".join(f"'{name}': 'JSON'" for name in HASHED)
    named = ", ".join(f'"{name}"::VARCHAR AS j_{name}' for name in HASHED)
    return f"""
  SELECT *, {_hash()} AS h FROM (
    SELECT NULL::VARCHAR AS l, NULL::VARCHAR AS x, {named}
    FROM read_json($path, format = 'newline_delimited', columns = {{{columns}}}))"""


def _hash() -> str:
    """The sample's hash, the same in both sources: of request_id, the timestamp and what the
    sample keeps (prompt, tokens, latency). Records that agree on all of them are, to the drift
    checks, the same record."""
    return f"hash({', '.join(f'j_{name}' for name in SAMPLE_KEY)})"


SAMPLE_KEY = ("request_id", "timestamp", "prompt", "tokens_generated", "response_time_ms")


def _sql(window_seconds: float, log_gamma: float, *, fast: bool = False) -> str:
    """One statement: the candidate/typed CTE, then candidates, per-window sums and totals.

    `fast`: the fields come from `read_json` with JSON-typed columns (one parse per line, about a
    third of `json_extract` on the raw lines) and there is no raw line: the caller has checked
    the lines' JSON itself (`duckjson.strict_lines`), and any odd record sends it to the exact
    query, which keeps the raw lines to re-read them with their numbers."""
    # request_id is hashed with the fields (it tells apart records that agree on every field read)
    paths = "[" + ", ".join(f"'$.{name}'" for name in HASHED) + "]"

    def v(name: str) -> str:
        return f"j_{name}"

    def lead(name: str) -> str:
        return f"left({v(name)}, 1)"

    # json_extract returns each value's JSON text, so its first character gives the type
    # without another parse: '"' string, t/f boolean, n null, { [ containers, else a number.
    def string(name: str) -> str:
        # Unescape only when there is an escape; most log strings have none.
        return (
            f"CASE WHEN {lead(name)} = '\"' THEN "
            f"CASE WHEN contains({v(name)}, '\\') THEN {v(name)}->>'$' ELSE {v(name)}[2:-2] END END"
        )

    # A number field casts to a finite double, or is null or absent (a quoted "5", true or
    # 1e400 do not).
    checks = [f"coalesce(isfinite({n}), {v(n)} IS NULL OR {v(n)} = 'null')" for n in NUMERIC_FIELDS]
    # ... and lies in its field's range (logs.NUMERIC_RANGES), as the streaming reader checks.
    checks += [
        f"({n} IS NULL OR ({n} >= {lo!r}" + ("" if hi == math.inf else f" AND {n} <= {hi!r}") + "))"
        for n, (lo, hi) in NUMERIC_RANGES.items()
    ]
    checks += [
        f"({v(n)} IS NULL OR {v(n)} = 'true' OR {v(n)} = 'false' OR {v(n)} = 'null')" for n in BOOL_FIELDS
    ]
    checks += [
        f"({v('error')} IS NULL OR {v('error')} = 'null' OR {v('error')} = 'false' OR {lead('error')} = '\"')",
        *(
            f"({v(n)} IS NULL OR {v(n)} = 'null' OR {lead(n)} = '\"')"
            for n in (*CHECKED_STRINGS, "timestamp")
        ),
    ]
    numbers = ", ".join(f"TRY_CAST({v(n)} AS DOUBLE) AS {n}" for n in NUMERIC_FIELDS)
    # The window of a timestamp that matches TS_RE. DuckDB's TIMESTAMPTZ needs the ICU extension,
    # so the offset is applied by hand; an impossible date (Feb 30) casts to NULL, as
    # fromisoformat refuses it. Fractions of a second only matter for windows that have them.
    fraction = (
        "+ coalesce(TRY_CAST(nullif(regexp_extract(ts, '\\.[0-9]+'), '') AS DOUBLE), 0)"
        if not float(window_seconds).is_integer()
        else ""
    )
    epoch = f"""(epoch(try_cast(replace(left(ts, 19), 'T', ' ') AS TIMESTAMP)) {fraction}
        - CASE WHEN substr(ts, -6, 1) IN ('+', '-') AND substr(ts, -3, 1) = ':'
            THEN (CASE WHEN substr(ts, -6, 1) = '-' THEN -1 ELSE 1 END)
                 * (substr(ts, -5, 2)::INTEGER * 3600 + substr(ts, -2, 2)::INTEGER * 60)
            ELSE 0 END)"""
    cte = f"""
WITH src AS ({_source(paths) if not fast else _json_source()}
), num AS (
  SELECT *, {numbers} FROM src
), typed AS (
  SELECT l, h, j_output, {", ".join(NUMERIC_FIELDS)},
    {"" if fast else f"x IS NOT NULL OR v IS NULL OR NOT starts_with(l, '{{') OR {lenient('l')} OR "}
      NOT ({" AND ".join(checks)}) AS pre_odd,
    {v("timeout")} = 'true' AS timeout_true,
    {v("abandoned")} = 'true' AS abandoned,
    {v("safety_incident")} = 'true' AS safety_incident,
    {string("error")} AS err,
    {string("expected_format")} = 'json' AS want_json,
    {string("topic")} AS topic,
    {string("timestamp")} AS ts,
    coalesce({string("prompt")}, '') AS prompt
  FROM num
), rec AS (
  SELECT *,
    -- Python: error in (None, '', 'none', 'None', 'null', False); a timeout is also an error.
    (err IS NULL OR {" OR ".join(f"err = '{e}'" for e in NO_ERROR_STRINGS)}) AS no_error,
    coalesce(timeout_true, false) OR coalesce(err = 'timeout', false) AS timed_out
  FROM typed
), wanted AS (
  SELECT *,
    want_json AND no_error AS json_expected,
    CASE WHEN want_json AND no_error THEN {lead("output")} END AS out_lead,
    CASE WHEN want_json AND no_error THEN {string("output")} END AS out,
    CASE WHEN ts IS NOT NULL AND regexp_full_match(ts, '{TS_RE}') THEN {epoch} END AS ep
  FROM rec
), checked AS (
  SELECT *,
    pre_odd
      -- not strict ISO 8601, not a real date (Feb 30), or outside [1970-01-01, 9999-01-01) UTC:
      -- a malformed line, as `logs.timestamp_problem` says
      OR (ts IS NOT NULL AND (ep IS NULL OR ep < 0 OR ep >= {YEAR_9999}))
      OR (json_expected AND out_lead IS NOT NULL AND out_lead <> '"')
      OR (json_expected AND out IS NOT NULL AND {lenient("out", numbers=True, top=True)}) AS odd
  FROM wanted
), windowed AS (
  SELECT *, CASE WHEN NOT odd THEN floor(ep / {window_seconds})::BIGINT END AS win
  FROM checked
)"""
    # One pass. The main GROUP BY has a group per (odd, window): Python adds the groups up, and
    # the odd group carries the candidate lines. The histograms are their own GROUP BYs in one
    # UNION over the materialized CTE, so DuckDB streams each chunk to every branch once
    # (histogram() in the main GROUP BY would re-read the input per column). `$sample_below`
    # keeps the rows whose hash is under a threshold, about twice the sample; `$keep_latencies`
    # keeps every latency, for exact percentiles. (A top-N by hash in the query costs a second
    # per million rows here; the caller sets both from an estimate and, rarely, asks again.)
    aggregates = [
        ("requests", "count(*)"),
        ("odd_lines", f"min_by(l, h, {CANDIDATE_CAP + 1}) FILTER (odd)"),
        ("lat_n", "count(response_time_ms)"),
        ("lat_sum", "sum(response_time_ms)"),
        ("lat_min", "min(response_time_ms)"),
        ("lat_max", "max(response_time_ms)"),
        ("lat_zeros", "count(*) FILTER (response_time_ms <= 0)"),
        (
            "lat_buckets",
            f"histogram(CASE WHEN response_time_ms > 0 THEN ceil(ln(response_time_ms) / {log_gamma})::BIGINT END)",
        ),
        ("tokens_generated", "sum(coalesce(tokens_generated, 0))"),
        ("prompt_tokens", "sum(coalesce(prompt_tokens, 0))"),
        ("errors", "count(*) FILTER (kind IS NOT NULL)"),
        ("error_kinds", "histogram(kind)"),
        ("timeouts", "count(*) FILTER (timed_out)"),
        ("expected_json", "count(*) FILTER (json_expected)"),
        ("malformed_json", "count(*) FILTER (bad_json)"),
        ("satisfaction_sum", "sum(user_satisfaction)"),
        ("satisfaction_n", "count(user_satisfaction)"),
        *((f"{p}_{k}", f"{fn}({p})") for p in PROXY_FIELDS for k, fn in (("sum", "sum"), ("n", "count"))),
        ("abandoned", "count(*) FILTER (abandoned)"),
        ("safety_incidents", "count(*) FILTER (safety_incident)"),
        ("cost_sum", "sum(cost_usd)"),
        ("cost_n", "count(cost_usd)"),
        ("topics", "histogram(topic)"),
        ("first_ts", "min(ts)"),
        ("last_ts", "max(ts)"),
        ("lat_values", "list(response_time_ms) FILTER ($keep_latencies AND response_time_ms IS NOT NULL)"),
        (
            "sample",
            "list({'h': h, 'tokens': coalesce(tokens_generated, 0), 'prompt': prompt, 'latency': response_time_ms})"
            " FILTER (h <= $sample_below)",
        ),
    ]
    columns = ",\n  ".join(
        f"{expr} AS {alias}" for alias, expr in aggregates if not expr.startswith("histogram")
    )
    counted = [
        (alias, expr[len("histogram(") : -1]) for alias, expr in aggregates if expr.startswith("histogram")
    ]
    branches = "".join(
        f"\nUNION ALL BY NAME\nSELECT odd, '{alias}' AS counted, {expr} AS counted_key, count(*) AS requests"
        f" FROM rows WHERE NOT odd AND {expr} IS NOT NULL GROUP BY ALL"
        for alias, expr in counted
    )
    select = f""", rows AS MATERIALIZED (
  SELECT odd, win, h, ts, topic, timed_out, json_expected, abandoned, safety_incident,
    {", ".join(NUMERIC_FIELDS)},
    json_expected AND (out IS NULL OR NOT json_valid(out)) AS bad_json,
    CASE WHEN odd THEN l END AS l,  -- only what the aggregates read is materialized
    CASE WHEN h <= $sample_below THEN prompt END AS prompt,
    CASE WHEN timed_out OR NOT no_error THEN CASE WHEN no_error THEN 'timeout' ELSE err END END AS kind
  FROM windowed
)
SELECT odd, win, NULL AS counted,
  {columns}
FROM rows
GROUP BY odd, win{branches}
"""
    return cte + select


def _topics(hist: dict[str, int] | None) -> Counter[str]:
    counts = Counter(hist or {})
    if len(counts) <= MAX_TOPICS:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = Counter(dict(ranked[: MAX_TOPICS - 1]))
    kept["(other)"] += sum(c for _, c in ranked[MAX_TOPICS - 1 :])
    return kept


def _number(x: Any) -> int | float:
    """DuckDB sums are doubles; keep integral totals as ints, as the Python path does."""
    if x is None:
        return 0
    return int(x) if float(x).is_integer() else float(x)


def _candidates(path: Path, lines: list[str], window: timedelta) -> LogStats | None:
    """Re-read the candidate lines through the Python path, with their line numbers; None when
    they cannot all be found again (the caller then reads the whole file in Python)."""
    wanted = Counter(line.encode() for line in lines)
    left = sum(wanted.values())
    part = LogStats(str(path), window=window)
    good: list[dict[str, Any]] = []
    number = 0
    with safeio.open_binary(path, what="log file") as f:
        for number, raw in enumerate(f, start=1):  # noqa: B007 - number is read after the loop
            key = raw[:-1] if raw.endswith(b"\n") else raw
            if key.endswith(b"\r"):
                key = key[:-1]
            if not wanted.get(key):
                continue
            wanted[key] -= 1
            left -= 1
            if not raw.isspace() and (rec := parse_line(raw, number, part.malformed)) is not None:
                good.append(rec)
    if left:
        return None
    part.add_batch(good)
    part.malformed.lines_read = number
    return part


def _windows(groups: list[dict[str, Any]], *, odd: bool) -> list[dict[str, Any]]:
    """The main GROUP BY's rows (not the histogram branches) of candidate or of good records."""
    return [g for g in groups if g["counted"] is None and bool(g["odd"]) == odd]


def _estimate_rows(path: Path) -> int:
    """Lines in `path`, from the mean length of those in its first megabyte."""
    with safeio.open_binary(path, what="log file") as f:
        head = f.read(1 << 20)
        size = os.fstat(f.fileno()).st_size
    return max(1, size * max(1, head.count(b"\n")) // max(1, len(head)))


def _params(path: Path, rows: int, exact_limit: int) -> dict[str, Any]:
    """Query parameters for a log of about `rows` records: keep about twice the sample by hash,
    and every latency when the percentiles can be exact."""
    return {
        "path": str(path),
        "sample_below": min(2**64 - 1, 2**64 * 2 * SAMPLE_SIZE // max(1, rows)),
        "keep_latencies": rows <= 2 * exact_limit,
    }


def _run(duckdb: Any, sql: str, params: dict[str, Any], threads: int | None) -> list[dict[str, Any]]:
    con = connect(duckdb, threads)
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def scan_duckdb(
    path: Path, window: timedelta, threads: int | None = None
) -> tuple[LogStats | None, str | None]:
    """(`LogStats` of `path` aggregated by DuckDB, None), or (None, why) when the Python path
    must read it."""
    try:
        import duckdb
    except ImportError:
        return None, "DuckDB is not installed"
    sketch = QuantileSketch()  # for its bucket width and exact limit
    params = _params(path, _estimate_rows(path), sketch.exact_limit)

    def query(sql: str) -> list[dict[str, Any]]:
        nonlocal params
        groups = _run(duckdb, sql, params, threads)
        n = sum(int(g["requests"]) for g in _windows(groups, odd=False))
        kept = sum(len(g["sample"] or []) for g in _windows(groups, odd=False))
        if kept < min(n, SAMPLE_SIZE) or (n <= sketch.exact_limit and not params["keep_latencies"]):
            # The estimate from the first megabyte was far off: read again with the true count.
            params = _params(path, n, sketch.exact_limit)
            groups = _run(duckdb, sql, params, threads)
        return groups

    groups: list[dict[str, Any]] | None = None
    with ThreadPoolExecutor(1) as pool:
        # DuckDB releases the GIL while it runs, so the line check overlaps with the query.
        strict = pool.submit(strict_lines, path)
        try:  # the fast query: read_json, no raw lines; good only for a file with no odd line
            groups = query(_sql(window.total_seconds(), sketch._log_gamma, fast=True))
        except duckdb.Error:
            groups = None  # duplicate keys, a line that is not an object, bad UTF-8, …
        if (
            groups is None
            or not strict.result()
            or any(int(g["requests"]) for g in _windows(groups, odd=True))
        ):
            check = pool.submit(byte_check, path)
            try:  # the exact query: keeps the raw lines of odd records, to read them again in Python
                groups = query(_sql(window.total_seconds(), sketch._log_gamma))
            except duckdb.Error as e:
                return None, f"DuckDB could not read it ({str(e).splitlines()[0][:120]})"
            if why := check.result():
                return None, why
    counted: dict[str, Counter[Any]] = {}
    for g in groups:
        if g["counted"] is not None:
            counted.setdefault(g["counted"], Counter())[g["counted_key"]] += int(g["requests"])
    odd = _windows(groups, odd=True)
    n_odd = sum(int(g["requests"]) for g in odd)
    if n_odd > CANDIDATE_CAP:
        return None, f"{n_odd:,} lines need the exact reader"
    groups = _windows(groups, odd=False)

    def total(name: str) -> Any:
        return sum(g[name] or 0 for g in groups)

    def counts(name: str) -> Counter[Any]:
        return counted.get(name, Counter())

    stats = LogStats(str(path), window=window)
    stats.requests = int(total("requests"))
    lat = [g for g in groups if g["lat_n"]]
    stats.latency = QuantileSketch.restore(
        int(total("lat_n")),
        float(total("lat_sum")),
        min((float(g["lat_min"]) for g in lat), default=math.inf),
        max((float(g["lat_max"]) for g in lat), default=-math.inf),
        values=[x for g in groups for x in g["lat_values"] or []] if params["keep_latencies"] else None,
        buckets={int(k): c for k, c in counts("lat_buckets").items()},
        zeros=int(total("lat_zeros")),
    )
    for name in SUM_FIELDS:
        setattr(stats, name, _number(total(name)))
    for name in COUNT_FIELDS:
        setattr(stats, name, int(total(name)))
    stats.error_kinds = counts("error_kinds")
    stats.topics = _topics(counts("topics"))
    stats.first_ts = min((g["first_ts"] for g in groups if g["first_ts"] is not None), default=None)
    stats.last_ts = max((g["last_ts"] for g in groups if g["last_ts"] is not None), default=None)
    span = window.total_seconds()
    for g in sorted((g for g in groups if g["win"] is not None and g["win"] >= 0), key=lambda g: g["win"]):
        w = Window(int(g["requests"]), _number(g["satisfaction_sum"]), int(g["satisfaction_n"]))
        for name in PROXY_FIELDS:
            if g[f"{name}_n"]:
                w.proxy_sum[name] = float(g[f"{name}_sum"])
                w.proxy_n[name] = int(g[f"{name}_n"])
        stats.windows[datetime.fromtimestamp(g["win"] * span, tz=UTC)] = w
    # The sample: the SAMPLE_SIZE kept rows of smallest hash, so the same on every run.
    drawn = sorted((s for g in groups for s in g["sample"] or []), key=lambda s: s["h"])[:SAMPLE_SIZE]
    for s in drawn:
        stats.sample_lengths.append(_number(s["tokens"]))  # type: ignore[arg-type]
        stats.sample_prompts.append(s["prompt"])
        stats.sample_latency.append(float("nan") if s["latency"] is None else s["latency"])
    if n_odd:
        part = _candidates(path, [line for g in odd for line in g["odd_lines"] or []], window)
        if part is None:
            return None, "candidate lines could not be matched in the file"
        stats.merge(part)  # line numbers stay as they are: this side has read no lines
    stats.reader = "duckdb"
    return stats, None
