"""GitHub Actions workflow-command annotations (`::error file=F,line=L::message`) for problems.

Escaping follows the runner's rules: data escapes `%`, CR and LF; properties also escape `:` and `,`.
"""

# No `from __future__ import annotations`: it would clash with the function `annotations` below.
from collections.abc import Iterable
from dataclasses import replace

from releasectl.errors import Problem

LEVELS = ("error", "warning", "notice")
# GitHub shows about ten annotations of each type per step; the rest are silently dropped.
DEFAULT_LIMIT = 10


def escape_data(text: str) -> str:
    """Escape the message part of a workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value (file, title, ...) of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _title(problem: Problem) -> str:
    return f"releasectl: {problem.field}" if problem.field else "releasectl"


def _message(problem: Problem) -> str:
    # The location is in the properties already; Problem.render adds field, expected/found and hint.
    return replace(problem, file=None, line=None, col=None).render()


def annotation(level: str, problem: Problem) -> str:
    """One workflow command line for `problem` at `level` (error, warning or notice)."""
    if level not in LEVELS:
        raise ValueError(f"annotation level must be one of {', '.join(LEVELS)}, not {level!r}")
    props: list[tuple[str, object]] = []
    if problem.file:
        props.append(("file", problem.file))
        # line/col only make sense within a file
        if problem.line is not None:
            props.append(("line", problem.line))
            if problem.col is not None:
                props.append(("col", problem.col))
    props.append(("title", _title(problem)))
    rendered = ",".join(f"{k}={escape_property(str(v))}" for k, v in props)
    return f"::{level} {rendered}::{escape_data(_message(problem))}"


def annotations(level: str, problems: Iterable[Problem], limit: int = DEFAULT_LIMIT) -> list[str]:
    """Annotations for the first `limit` problems, plus one that summarises the rest if any."""
    items = list(problems)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(items) <= limit:
        return [annotation(level, p) for p in items]
    shown = items[: limit - 1]
    rest = items[limit - 1 :]
    files = sorted({p.file for p in rest if p.file})
    where = f" in {', '.join(files[:5])}{' and others' if len(files) > 5 else ''}" if files else ""
    summary = Problem(
        f"{len(rest)} more problem(s){where} not shown as annotations",
        hint="run `releasectl validate` locally or read the job log for the full list",
    )
    return [annotation(level, p) for p in shown] + [annotation(level, summary)]
