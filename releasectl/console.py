"""Rendering at the edge: `--format`, JSON documents and the Rich console.

Commands build plain data, then call `emit_json` or print with `console()`. Rich is imported
lazily so `releasectl --help` and JSON output stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

# The format chosen on the command line, so the top-level error handler can render errors in
# the same format as the command's normal output.
_current_format = "text"


def current_format() -> str:
    return _current_format


def _remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    global _current_format
    _current_format = value
    return value


def format_option(*extra: str) -> Callable[[F], F]:
    """`--format text|json[|extra...]`, on every command (SPEC §10)."""
    choices = ["text", "json", *extra]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        callback=_remember_format,
        is_eager=True,
        help="Output format: human text, one JSON document on stdout"
        + (", or " + ", ".join(extra) if extra else "")
        + ".",
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def dumps(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, default=_json_default, ensure_ascii=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The shared Rich console (stdout by default; stderr for progress and errors)."""
    if stderr not in _consoles:
        import os

        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        # Rich assumes 80 columns when output is not a terminal (CI logs, pipes); tables read
        # better at 120 unless COLUMNS says otherwise.
        width = None if stream.isatty() or os.environ.get("COLUMNS") else 120
        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)
    return _consoles[stderr]


def progress(description: str, total: int | None, *, disable: bool = False) -> Any:
    """A Rich progress bar on stderr; disabled for JSON output or when stderr is not a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        disable=disable or current_format() == "json",
        transient=False,
    )
