"""Reading JSON-lines files with DuckDB so that they mean what orjson says they mean.

`production.fastscan` (monitor's reader for large logs) reads each line as one VARCHAR through
DuckDB's CSV reader, pulls fields out with `json_extract`, and must agree with the orjson reader
it stands in for. DuckDB's JSON parser is more lenient than orjson:
NaN/Infinity in any case, trailing commas, numbers beyond the double range, nesting deeper than
1,024. The SQL pieces here flag lines that could hold those, and `byte_check` finds files whose
lines DuckDB would split differently. `json_extract` returns each value's JSON text, so its
first character gives the JSON type without another parse: '"' string, t/f boolean, n null,
{ [ containers, anything else a number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MEMORY_LIMIT = "400MB"
# Every line as one VARCHAR `l`: 0x1F (which no valid JSON line holds) as the delimiter, so `x`
# is set only when a line holds one; no quoting; blank lines come through as NULL.
LINES = (
    "read_csv($path, columns = {'l': 'VARCHAR', 'x': 'VARCHAR'}, header = false, delim = chr(31),"
    " quote = '', escape = '', auto_detect = false, new_line = '\\n', strict_mode = false,"
    " null_padding = true)"
)
_SPECIAL = r"[+-]?([nN][aA][nN]|[iI][nN][fF])"
# One regex per leading byte, so RE2 can jump between occurrences of that byte.
LENIENT = (rf":[ \t]*{_SPECIAL}", rf",[ \t]*({_SPECIAL}|[}}\]])", rf"\[[ \t]*{_SPECIAL}")
NUMBER_RE = r"[0-9][eE][+-]?[0-9]{3}|[0-9]{20}"  # a literal that may overflow a double
TOP_SPECIAL = rf"^\s*{_SPECIAL}"  # a document that is only nan/inf


def lenient(text: str, *, numbers: bool = False, top: bool = False) -> str:
    """SQL true when `text` may hold JSON that DuckDB accepts and orjson refuses (false
    positives are harmless: the caller reads those lines with orjson). `numbers` adds the
    overflow check, which costs about a second per GB."""
    patterns = [*LENIENT, *([NUMBER_RE] if numbers else []), *([TOP_SPECIAL] if top else [])]
    regexes = " OR ".join(f"regexp_matches({text}, '{p}')" for p in patterns)
    # More than 1,024 brackets: orjson's depth limit may apply.
    deep = (
        f"CASE WHEN length({text}) > 1024 THEN "
        f"length({text}) - length(replace(replace({text}, '[', ''), '{{', '')) > 1024 ELSE false END"
    )
    return f"({regexes} OR {deep})"


def byte_check(path: Path) -> str | None:
    """Why DuckDB's line splitting could differ from Python's (None when it cannot): a carriage
    return outside CRLF, a unit separator (the CSV delimiter above) or a NUL."""
    previous_cr = False
    from releasectl import safeio

    with safeio.open_binary(path, what="log file") as f:
        while chunk := f.read(16 << 20):
            if b"\x1f" in chunk:
                return "the file contains a unit separator (0x1F)"
            if b"\x00" in chunk:
                return "the file contains a NUL byte"
            if previous_cr and not chunk.startswith(b"\n"):
                return "the file contains a carriage return outside CRLF"
            crs = chunk.count(b"\r")
            if crs:
                paired = chunk.count(b"\r\n") + (1 if chunk.endswith(b"\r") else 0)
                if crs != paired:
                    return "the file contains a carriage return outside CRLF"
            previous_cr = chunk.endswith(b"\r")
    return None


def strict_lines(path: Path) -> bool:
    """Whether every line of `path` is strict JSON, as orjson reads it: msgspec's validating
    scanner (`msgspec.Raw` builds no objects; about 0.9 s per GB here), which refuses what
    DuckDB's `read_json` accepts and orjson does not: NaN/Infinity, trailing commas, comments,
    lone surrogates (and it is stricter on nesting: some 1,000 levels). `read_json` itself refuses
    invalid UTF-8, control characters (NUL, 0x1F, a bare CR inside a string), duplicate keys,
    two values on a line and lines that are not objects. Not checked, as `lenient` without
    `numbers`: a number beyond a double."""
    import msgspec

    from releasectl import safeio

    decoder = msgspec.json.Decoder(msgspec.Raw)

    def strict(block: Any) -> bool:
        try:
            decoder.decode_lines(block)
        except (msgspec.DecodeError, RecursionError):
            return False
        return True

    tail = b""  # the partial last line of the chunk before
    with safeio.open_binary(path, what="log file") as f:
        while chunk := f.read(16 << 20):
            # Whole lines only, without copying the chunk: the line it completes, then the rest.
            first, last = chunk.find(b"\n") + 1, chunk.rfind(b"\n") + 1
            if not first:
                tail += chunk
                continue
            if not (strict(tail + chunk[:first]) and strict(memoryview(chunk)[first:last])):
                return False
            tail = chunk[last:]
    return strict(tail)


def connect(duckdb: Any, threads: int | None = None, *, ordered: bool = False) -> Any:
    """An in-memory DuckDB connection with bounded memory. `ordered` keeps file order in results."""
    con = duckdb.connect(
        config={
            "threads": threads or min(os.cpu_count() or 1, 8),
            "memory_limit": MEMORY_LIMIT,
            "preserve_insertion_order": ordered,
        }
    )
    # DuckDB's own bar writes to the terminal, into --format json output; callers show ours.
    con.execute("SET enable_progress_bar = false")
    return con
