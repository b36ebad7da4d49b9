"""`checklists/production.yaml`: which machine checks make up each of the five items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from releasectl import safeio
from releasectl.errors import BadInput, Problem
from releasectl.manifest.yaml_positions import dotted, load_yaml_with_positions

CHECKLIST_FILE = Path("checklists") / "production.yaml"


class CheckSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class ItemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    title: str
    question: str = ""
    checks: list[CheckSpec]


class ChecklistSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int
    items: list[ItemSpec]


def load_checklist(root: Path, known_checks: set[str]) -> ChecklistSpec:
    """Load and validate the checklist, refusing unknown check ids with their positions."""
    path = root / CHECKLIST_FILE
    display = CHECKLIST_FILE.as_posix()
    if not safeio.present(path, what="checklist", name=display):
        raise BadInput(
            f"{display} not found under {root}",
            hint="a releases repository keeps its production checklist there",
        )
    src = load_yaml_with_positions(path, display)
    try:
        spec = ChecklistSpec.model_validate(src.data)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            line, col = src.locate(tuple(err["loc"]))
            problems.append(
                Problem(str(err["msg"]), file=display, line=line, col=col, field=dotted(tuple(err["loc"])))
            )
        raise BadInput(f"{display} is not a valid checklist", problems) from None
    problems = []
    for i, item in enumerate(spec.items):
        for j, check in enumerate(item.checks):
            if check.id not in known_checks:
                import difflib

                line, col = src.locate(("items", i, "checks", j, "id"))
                close = difflib.get_close_matches(check.id, sorted(known_checks), n=1)
                problems.append(
                    Problem(
                        f"unknown check '{check.id}'",
                        file=display,
                        line=line,
                        col=col,
                        field=dotted(("items", i, "checks", j, "id")),
                        hint=f"did you mean '{close[0]}'?"
                        if close
                        else "known checks: " + ", ".join(sorted(known_checks)),
                    )
                )
    if problems:
        raise BadInput(f"{display} is not a valid checklist", problems)
    return spec
