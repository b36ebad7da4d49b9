"""Strict building blocks shared by the artifact models, and validation errors as `Problem`s."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from releasectl.errors import Problem

MAX_NAME = 256  # case ids, slice and verifier names, releases
MAX_TEXT = 65_536  # details, reasons, digests, free text
MAX_OUTPUT = 4 << 20  # one model output
MAX_COUNT = 10**15  # token counts, case counts: far above anything real, far below 1e308

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MAX_MS = 1e12  # ~31 years in milliseconds
Millis = Annotated[float, Field(ge=0, le=MAX_MS, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Bool = StrictBool

__all__ = [
    "MAX_COUNT",
    "MAX_NAME",
    "MAX_OUTPUT",
    "MAX_TEXT",
    "Artifact",
    "Bool",
    "Count",
    "Finite",
    "Millis",
    "Name",
    "NonNegative",
    "Text",
    "describe",
    "locate",
    "problems_of",
    "read_json_file",
]


class Artifact(BaseModel):
    """Strict: no bool-as-int, no string-as-bool, no number-as-string; finite numbers only.
    Unknown keys are kept (SPEC §5.1: more fields are welcome)."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=False)


def describe(value: Any) -> str:
    """A short, JSON-like rendering of a found value for an error message."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


def problems_of(
    error: ValidationError,
    *,
    file: str,
    line: int | None = None,
    expected: str | None = None,
    limit: int = 20,
) -> list[Problem]:
    """Each pydantic error as a Problem located at file:line with its field path."""
    out = []
    for err in error.errors(include_url=False)[:limit]:
        found = "nothing" if err["type"] == "missing" else describe(err.get("input")) if err["loc"] else None
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(
            Problem(
                msg, file=file, line=line, field=_field(tuple(err["loc"])), found=found, expected=expected
            )
        )
    return out


def read_json_file(path: Path, *, what: str, missing_hint: str | None = None) -> tuple[Any, bytes]:
    """(parsed JSON, raw bytes) of a stage file through `releasectl.safeio` (regular files only,
    size, nesting and integer digits capped, finite numbers); BadInput (exit 2) names file:line:col."""
    from releasectl import safeio
    from releasectl.errors import BadInput

    try:
        raw = safeio.read_bytes(path, what=what)
    except BadInput as e:
        if missing_hint and not e.hint and not os.path.lexists(path):
            e.hint = missing_hint
        raise
    return safeio.loads_json(raw, source=str(path)), raw


def locate(problems: list[Problem], file: str, raw: bytes | None) -> list[Problem]:
    """Give each problem the line of its field in the JSON text (best effort: the key's line)."""
    if raw is None:
        return problems
    text = raw.decode("utf-8", errors="replace")
    out = []
    for p in problems:
        pos = _find(text, p.field or "")
        line = text.count("\n", 0, pos) + 1 if pos >= 0 else 1
        out.append(replace(p, line=line))
    return out


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _find(text: str, path: str) -> int:
    parts = [(m.group(1), m.group(2)) for m in _PART.finditer(path)]
    pos, skip = 0, 0
    for key, index in parts:
        if index is not None:
            skip = int(index)
            continue
        needle = json.dumps(key)
        at = pos
        for _ in range(skip + 1):
            found = text.find(needle, at)
            if found < 0:
                return pos
            at = found + 1
        pos, skip = at - 1, 0
    return pos
