"""Pulling answers, numbers, code and JSON out of free-form model output."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def tag_contents(output: str, tag: str) -> list[str]:
    name = re.escape(tag.strip("<>/"))
    return [
        m.strip() for m in re.findall(rf"<{name}>(.*?)</{name}>", output, flags=re.DOTALL | re.IGNORECASE)
    ]


def parse_number(text: str) -> float | None:
    """The single number in `text` (commas as thousands separators allowed), else None."""
    found = NUMBER.findall(text)
    if len(found) != 1:
        return None
    try:
        return float(found[0].replace(",", ""))
    except ValueError:
        return None


def last_number(text: str) -> float | None:
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def code_blocks(output: str, languages: tuple[str, ...] = ("python", "py", "")) -> list[str]:
    return [body for lang, body in FENCE.findall(output) if lang.lower() in languages]


def json_candidates(output: str, *, fenced: bool) -> list[Any]:
    """JSON values found in `output`: the whole output, then (optionally) fenced ```json blocks."""
    from releasectl.errors import BadInput
    from releasectl.safeio import loads_json

    found = []
    text = output.strip()
    # Model output is untrusted: deep nesting, huge integers or NaN are "not JSON", never a crash.
    with contextlib.suppress(BadInput):
        found.append(loads_json(text, source="output", unique_keys=False))
    if fenced:
        for lang, body in FENCE.findall(output):
            if lang.lower() in ("json", ""):
                try:
                    found.append(loads_json(body, source="output", unique_keys=False))
                except BadInput:
                    continue
    return found


def json_objects(output: str) -> list[Any]:
    """Every top-level JSON object embedded anywhere in `output`."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while (start := output.find("{", i)) != -1:
        try:
            value, end = decoder.raw_decode(output, start)
        except ValueError:
            i = start + 1
            continue
        out.append(value)
        i = end
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_][\w'’-]*", text, flags=re.UNICODE)
