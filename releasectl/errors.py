"""Errors as data: every failure a user can cause carries where it happened and how to fix it.

The CLI renders these once, at the edge, as text, JSON or GitHub annotations (see `cli.py`).
Exit codes follow SPEC §10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    NO = 1  # the command ran and the answer is no (checklist fails, gate blocks, alert fired)
    BAD_INPUT = 2
    ENVIRONMENT = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    field: str | None = None
    expected: str | None = None
    found: str | None = None
    hint: str | None = None

    @property
    def where(self) -> str:
        parts = [p for p in (self.file, self.line, self.col) if p is not None]
        return ":".join(str(p) for p in parts)

    def render(self) -> str:
        head = self.where
        text = f"{self.field}: {self.message}" if self.field else self.message
        extra = []
        if self.expected is not None:
            extra.append(f"expected {self.expected}")
        if self.found is not None:
            extra.append(f"found {self.found}")
        if extra:
            text += f" ({'; '.join(extra)})"
        if self.hint:
            text += f"; {self.hint}"
        return f"{head}: {text}" if head else text

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ReleasectlError(Exception):
    """Base class: a failure with a user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.ENVIRONMENT

    def __init__(
        self, message: str, problems: list[Problem] | tuple[Problem, ...] = (), hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems)
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": type(self).__name__,
            "message": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.problems:
            out["problems"] = [p.to_dict() for p in self.problems]
        if self.hint:
            out["hint"] = self.hint
        return out


class BadInput(ReleasectlError):
    """Unreadable or invalid manifest, rules, logs, unknown release, wrong arguments (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class EnvironmentFailure(ReleasectlError):
    """The environment failed: engine, network, GitHub API after retries (exit 3)."""

    exit_code = ExitCode.ENVIRONMENT


@dataclass
class ProblemList:
    """Accumulates problems so a user sees all of them at once, not one per run."""

    items: list[Problem] = field(default_factory=list)

    def add(self, message: str, **where: Any) -> None:
        self.items.append(Problem(message, **where))

    def raise_if_any(self, summary: str, hint: str | None = None) -> None:
        if self.items:
            raise BadInput(summary, self.items, hint=hint)
