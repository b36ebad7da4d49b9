"""One pass over a log: `scan` picks the reader (streaming orjson, in parallel for large plain
files, or DuckDB via `fastscan`) and returns its `LogStats` (defined in `logstats`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from releasectl import safeio
from releasectl.monitoring.logs import read_batches, require_records
from releasectl.monitoring.logstats import (
    COUNT_FIELDS,
    MAX_TOPICS,
    NO_ERROR,
    NO_ERROR_SET,
    PROXY_FIELDS,
    SAMPLE_SIZE,
    SUM_FIELDS,
    LogStats,
    Window,
    no_error,
)

__all__ = [
    "COUNT_FIELDS",
    "MAX_TOPICS",
    "NO_ERROR",
    "NO_ERROR_SET",
    "PROXY_FIELDS",
    "SAMPLE_SIZE",
    "SUM_FIELDS",
    "LogStats",
    "Window",
    "no_error",
    "scan",
]

PARALLEL_MIN_BYTES = 64 << 20  # below this, one process is faster than starting workers
FAST_MIN_BYTES = 64 << 20  # from here DuckDB reads plain logs (below it, its start-up is not worth it)


def _scan_part(args: tuple[Path, timedelta, tuple[int, int] | None]) -> LogStats:
    path, window, span = args
    stats = LogStats(str(path), window=window)
    for batch in read_batches(path, stats.malformed, span=span):
        stats.add_batch(batch)
    return stats


def _line_spans(path: Path, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges of a plain file, each starting at a line start."""
    size = path.stat().st_size
    cuts = [0]
    with safeio.open_binary(path, what="log file") as f:
        for k in range(1, parts):
            f.seek(size * k // parts)
            f.readline()  # move to the next line start
            cuts.append(max(cuts[-1], f.tell()))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def scan(
    path: Path,
    window: timedelta = timedelta(hours=1),
    progress: Any = None,
    workers: int | None = None,
    engine: str | None = None,
) -> LogStats:
    """Read `path` once and return its statistics.

    `engine` (default: $RELEASECTL_LOG_READER, else "auto"): "auto" hands plain files of 64 MB
    and more to DuckDB (`fastscan`, several times faster), which falls back here for anything it
    cannot read exactly as this path would; "python" never uses DuckDB; "duckdb" tries it at any
    size. The Python path splits large plain files at line starts, scans them with one process
    per core and merges the parts (gzip streams are read sequentially)."""
    import os

    engine = engine or os.environ.get("RELEASECTL_LOG_READER") or "auto"
    if engine not in ("auto", "python", "duckdb"):
        from releasectl.errors import BadInput

        raise BadInput(
            f"RELEASECTL_LOG_READER: expected auto, python or duckdb, found '{engine}'",
            hint="unset it to let releasectl choose",
        )
    with safeio.open_binary(path, what="log file") as probe:
        gzipped = probe.read(2) == safeio.GZIP_MAGIC
        size = os.fstat(probe.fileno()).st_size
    workers = workers or min(os.cpu_count() or 1, 8)
    note = None
    if not gzipped and (engine == "duckdb" or (engine == "auto" and size >= FAST_MIN_BYTES)):
        from releasectl.monitoring.fastscan import scan_duckdb

        fast, note = scan_duckdb(path, window, workers)
        if fast is not None:
            if progress is not None:
                progress(fast.requests)
            require_records(path, fast.requests, fast.malformed)
            return fast
    if gzipped or workers < 2 or size < PARALLEL_MIN_BYTES:
        stats = LogStats(str(path), window=window)
        for batch in read_batches(path, stats.malformed):
            stats.add_batch(batch)
            if progress is not None:
                progress(stats.requests)
        stats.reader_note = note
        require_records(path, stats.requests, stats.malformed)
        return stats
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spans = _line_spans(path, workers)
    with ProcessPoolExecutor(len(spans), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_scan_part, [(path, window, span) for span in spans]))
    stats = parts[0]
    for part in parts[1:]:
        stats.merge(part)
    stats.reader_note = note
    if progress is not None:
        progress(stats.requests)
    require_records(path, stats.requests, stats.malformed)
    return stats
