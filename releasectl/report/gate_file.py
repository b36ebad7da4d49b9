"""Reading gate.json for the report and GitHub commands, through its one model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releasectl.contracts.gate import GateRecord


def load_gate(path: Path) -> dict[str, Any]:
    """gate.json as plain data, validated (and its verdict re-derived) by `GateRecord`."""
    record, _ = GateRecord.read(Path(path))
    return record.model_dump(mode="json")
