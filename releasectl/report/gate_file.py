"""Reading gate.json: parsed and checked against the gate's own model, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from releasectl.errors import BadInput, Problem
from releasectl.gate.result import GateResult
from releasectl.manifest.yaml_positions import dotted

HINT = "regenerate it with `releasectl gate`; the format is in docs/ARCHITECTURE.md"


def load_gate(path: Path) -> dict[str, Any]:
    """gate.json as plain data, validated by `releasectl.gate.result.GateResult`."""
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
    if not isinstance(data, dict):
        raise BadInput(
            f"{path}: not a gate result",
            [Problem("wrong type", file=str(path), expected="a JSON object", found=_describe(data))],
            hint=HINT,
        )
    try:
        return GateResult.model_validate(data).model_dump()
    except ValidationError as e:
        problems = [
            Problem(
                str(err["msg"]),
                file=str(path),
                field=dotted(tuple(err["loc"])),
                found=_describe(err.get("input")) if err["type"] != "missing" else "nothing",
            )
            for err in e.errors(include_url=False)
        ]
        raise BadInput(f"{path} is not a valid gate result", problems, hint=HINT) from None


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
