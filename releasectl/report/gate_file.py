"""Reading gate.json for the report: the fields the report needs, checked, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem

VERDICTS = ("promote", "block", "hold")


def load_gate(path: Path) -> dict[str, Any]:
    """Parse gate.json and check the fields the report relies on (docs/ARCHITECTURE.md)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no such file", hint="run `releasectl gate ... --out gate.json` first"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read gate file: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(
            f"{path} is not valid JSON",
            [Problem(e.msg, file=str(path), line=e.lineno, col=e.colno)],
            hint="pass the gate.json that `releasectl gate` wrote",
        ) from None
    problems: list[Problem] = []

    def expect(field: str, value: Any, kinds: type | tuple[type, ...], expected: str) -> None:
        if not isinstance(value, kinds):
            problems.append(
                Problem("wrong type", file=str(path), field=field, expected=expected, found=_describe(value))
            )

    if not isinstance(data, dict):
        raise BadInput(
            f"{path}: not a gate result",
            [
                Problem(
                    "wrong type",
                    file=str(path),
                    field="(top level)",
                    expected="a JSON object",
                    found=_describe(data),
                )
            ],
        )
    if data.get("verdict") not in VERDICTS:
        problems.append(
            Problem(
                "unknown verdict",
                file=str(path),
                field="verdict",
                expected=" | ".join(VERDICTS),
                found=_describe(data.get("verdict")),
            )
        )
    expect("release", data.get("release"), str, "a release name such as 'v1.3'")
    for key in ("rules", "slices", "failing_examples"):
        expect(key, data.get(key, []), list, "a list")
    for key in ("aggregate", "provenance", "policy", "unmatched_cases"):
        expect(key, data.get(key) or {}, dict, "an object")
    for key in ("rules", "slices", "failing_examples"):
        items = data.get(key)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    expect(f"{key}[{i}]", item, dict, "an object")
                    break
    if problems:
        raise BadInput(
            f"{path} is not a valid gate result",
            problems,
            hint="regenerate it with `releasectl gate`; the format is in docs/ARCHITECTURE.md",
        )
    return data


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
