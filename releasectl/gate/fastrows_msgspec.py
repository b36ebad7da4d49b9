"""The fast path of `gate.runs`' Python reader: a block of results.jsonl lines decoded by msgspec
straight into typed structs, in C, instead of one orjson call and one `_extract` per line.

It only *accepts*. A block is taken here when every one of its lines is a results row in the
canonical form the replay writes: exactly `ResultRow`'s fields, no others (`forbid_unknown_fields`,
on the verdicts too), each of its type and within its bounds, and `passed` equal to "every
verifier passed". Anything else in a block (an extra key, a blank line, two values on a line,
any refusal at all) sends that whole block to `runs._extract`, the definition, which accepts
what the model accepts and names the file, line and field of what it refuses. So a block gives
the same columns whichever path reads it (tests/test_contracts.py: the two agree on every
generated and mutated row), and every error message is the one it always was.

msgspec's JSON is at least as strict as orjson's where a field is typed: it refuses NaN and
Infinity, trailing commas, numbers beyond a double, lone surrogates, invalid UTF-8, bool for int
and float for int, and keeps the last of duplicated keys, as orjson does. Each block is decoded
as one JSON array (its newlines made commas), so a blank line or two values on a line fail it.

benchmarks/gate_scale.py measures it against the DuckDB floor.
"""

from __future__ import annotations

import functools
import gc
import re
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
from msgspec import Meta

from releasectl.contracts._types import MAX_COUNT, MAX_MS, MAX_NAME, MAX_OUTPUT, MAX_TEXT
from releasectl.contracts.results import MAX_SAMPLES_PER_CASE, MAX_SEED, MAX_VERIFIERS

_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
_Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
_Millis = Annotated[float, Meta(ge=0, le=MAX_MS)]


class _Verdict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    passed: bool
    kind: Literal["rule", "format", "correctness", "tool", "quality"]
    detail: Annotated[str, Meta(max_length=MAX_TEXT)] = ""


class _Row(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    case_id: _Name
    slice: _Name
    verifiers: Annotated[dict[_Name, _Verdict], Meta(max_length=MAX_VERIFIERS)]
    passed: bool
    output: Annotated[str, Meta(max_length=MAX_OUTPUT)]
    prompt_tokens: _Count
    completion_tokens: _Count
    latency_ms: _Millis
    steps: _Count | None = None
    ttft_ms: _Millis | None = None
    sample: Annotated[int, Meta(ge=0, lt=MAX_SAMPLES_PER_CASE)] | msgspec.UnsetType = msgspec.UNSET
    seed: Annotated[int, Meta(ge=0, le=MAX_SEED)] | msgspec.UnsetType = msgspec.UNSET


_DECODER = msgspec.json.Decoder(list[_Row])
_ROW_FIELDS = [
    (f.name, f.type) if f.required else (f.name, f.type, f.default) for f in msgspec.structs.fields(_Row)
]


@functools.lru_cache(maxsize=32)
def _decoder_for(names: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """A decoder of rows whose verifiers are exactly `names` (in any order): a struct with one
    field per verifier instead of a dict, so that a column is one C-level attribute fetch."""
    fields = [f"v{j}" for j in range(len(names))]
    verifiers = msgspec.defstruct(
        "Verifiers",
        [(f, _Verdict) for f in fields],
        rename=dict(zip(fields, names, strict=True)),
        forbid_unknown_fields=True,
        gc=False,
    )
    row = msgspec.defstruct(
        "Row",
        [
            (name, verifiers, *rest[1:]) if name == "verifiers" else (name, *rest)
            for name, *rest in _ROW_FIELDS
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


def group_shapes(names: list[tuple[str, ...]]) -> dict[tuple[str, ...], np.ndarray]:
    """The rows of each tuple of verifier names, in first-seen order (one group, usually)."""
    if names and names.count(names[0]) == len(names):
        return {names[0]: np.arange(len(names))}
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, shape in enumerate(names):
        groups.setdefault(shape, []).append(i)
    return {shape: np.asarray(index, dtype=np.int64) for shape, index in groups.items()}


def _first_names(body: bytes) -> tuple[str, ...] | None:
    """The verifier names of the block's first row, when they can name struct fields."""
    end = body.find(b"\n")
    try:
        head = orjson.loads(body if end < 0 else body[:end])
    except orjson.JSONDecodeError:
        return None
    verifiers = head.get("verifiers") if type(head) is dict else None
    if type(verifiers) is not dict:
        return None
    names = tuple(verifiers)
    if len(names) > MAX_VERIFIERS or not all(0 < len(n) <= MAX_NAME and _FIELD_NAME.match(n) for n in names):
        return None  # the dict decoder reads those
    return names


_FIELD_NAME = re.compile(r'[^\\"\x00-\x1f]+\Z')  # what msgspec can rename a field to


def decode_block(block: bytes, no_sample: int, no_seed: int, nan: float) -> dict[str, Any] | None:
    """The gate's columns for the rows of `block` (whole lines, from `safeio.iter_blocks`), or
    None when any line is not a canonical row (the caller reads the block with `_extract`).

    Columns are lists, except `rule_ok`, `format_ok` (bool arrays) and `shapes`: per tuple of
    verifier names, (the rows that have exactly those, in order; their passes, rows × names)."""
    body = block[:-1] if block.endswith(b"\n") else block
    if not body:
        return None
    document = b"[" + body.replace(b"\n", b",") + b"]"
    names = _first_names(body)
    if names is not None:
        rows = _decode(_decoder_for(names), document)
        if rows is not None:
            return _columns(rows, _struct_tables(rows, names), no_sample, no_seed, nan)
    rows = _decode(_DECODER, document)  # rows with different verifiers: one dict each
    if rows is None:
        return None
    tables = _dict_tables(rows)
    return None if tables is None else _columns(rows, tables, no_sample, no_seed, nan)


def _decode(decoder: msgspec.json.Decoder[Any], document: bytes) -> list[Any] | None:
    enabled = gc.isenabled()
    gc.disable()  # a million new objects would trigger full collections that find nothing
    try:
        return decoder.decode(document)  # type: ignore[no-any-return]
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    finally:
        if enabled:
            gc.enable()


Tables = tuple[np.ndarray, np.ndarray, np.ndarray, dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]]


def _struct_tables(rows: list[Any], names: tuple[str, ...]) -> Tables | None:
    """(every verifier passed, no rule failed, no format failed, shapes) for rows whose
    verifiers are the struct fields v0…: one column of verdicts per verifier."""
    n = len(rows)
    every, rule_ok, format_ok = np.ones(n, bool), np.ones(n, bool), np.ones(n, bool)
    table = np.empty((n, len(names)), dtype=np.int8)
    verdicts = list(map(_VERIFIERS, rows))
    for j in range(len(names)):
        cells = list(map(attrgetter(f"v{j}"), verdicts))
        ok = np.fromiter(map(_PASSED, cells), dtype=bool, count=n)
        table[:, j] = ok
        _fold(ok, list(map(_KIND, cells)), every, rule_ok, format_ok)
    return every, rule_ok, format_ok, {names: (np.arange(n), table)}


def _fold(
    ok: np.ndarray, kinds: list[str], every: np.ndarray, rule_ok: np.ndarray, format_ok: np.ndarray
) -> None:
    """Fold one verifier's passes into the row flags, `kinds` its kind on each row."""
    every &= ok
    distinct = set(kinds)
    if distinct == {"rule"}:
        rule_ok &= ok
    elif distinct == {"format"}:
        format_ok &= ok
    elif len(distinct) > 1:
        rule_ok &= ok | np.fromiter([k != "rule" for k in kinds], dtype=bool, count=len(kinds))
        format_ok &= ok | np.fromiter([k != "format" for k in kinds], dtype=bool, count=len(kinds))


def _dict_tables(rows: list[Any]) -> Tables | None:
    """The same from rows whose verifiers are dicts, grouped by their names (in order)."""
    n = len(rows)
    verdicts = list(map(_VERIFIERS, rows))
    every, rule_ok, format_ok = np.ones(n, bool), np.ones(n, bool), np.ones(n, bool)
    tables: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
    for shape, idx in group_shapes(list(map(tuple, verdicts))).items():
        group = verdicts if len(idx) == n else [verdicts[i] for i in idx]
        m = len(group)
        table = np.empty((m, len(shape)), dtype=np.int8)
        flags = np.ones(m, bool), np.ones(m, bool), np.ones(m, bool)
        for j, name in enumerate(shape):
            cells = [d[name] for d in group]
            ok = np.fromiter(map(_PASSED, cells), dtype=bool, count=m)
            table[:, j] = ok
            _fold(ok, list(map(_KIND, cells)), *flags)
        every[idx], rule_ok[idx], format_ok[idx] = flags
        tables[shape] = (idx, table)
    return every, rule_ok, format_ok, tables


def _columns(
    rows: list[Any], tables: Tables | None, no_sample: int, no_seed: int, nan: float
) -> dict[str, Any] | None:
    if tables is None:
        return None
    every, rule_ok, format_ok, shapes = tables
    passed = np.fromiter(map(_PASSED, rows), dtype=bool, count=len(rows))
    if not np.array_equal(passed, every):
        return None  # `_extract` says which verifier and why
    unset = msgspec.UNSET
    return {
        "case_id": list(map(attrgetter("case_id"), rows)),
        "slice": list(map(attrgetter("slice"), rows)),
        "passed": passed,
        "rule_ok": rule_ok,
        "format_ok": format_ok,
        "shapes": shapes,
        "latency": list(map(attrgetter("latency_ms"), rows)),
        "completion": list(map(attrgetter("completion_tokens"), rows)),
        "prompt": list(map(attrgetter("prompt_tokens"), rows)),
        "steps": [nan if x is None else x for x in map(attrgetter("steps"), rows)],
        "sample": [no_sample if x is unset else x for x in map(attrgetter("sample"), rows)],
        "seed": [no_seed if x is unset else x for x in map(attrgetter("seed"), rows)],
    }


_VERIFIERS, _PASSED, _KIND = attrgetter("verifiers"), attrgetter("passed"), attrgetter("kind")
