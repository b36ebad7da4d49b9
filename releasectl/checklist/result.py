"""What a checklist run produces: items, their checks, and the problems that explain failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from releasectl.errors import Problem

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass
class CheckResult:
    id: str
    status: Status
    message: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "message": self.message}
        if self.problems:
            out["problems"] = [p.to_dict() for p in self.problems]
        return out


@dataclass
class ItemResult:
    number: int
    id: str
    title: str
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "id": self.id,
            "title": self.title,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class ChecklistReport:
    release: str
    manifest: str
    manifest_digest: str
    items: list[ItemResult]

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "manifest": self.manifest,
            "manifest_digest": self.manifest_digest,
            "passed": self.passed,
            "items": [i.to_dict() for i in self.items],
        }
