"""Rendering at the edge: `--format`, JSON documents and the Rich console.

Commands build plain data, then call `emit_json` or print with `console()`. Rich is imported
lazily so `releasectl --help` and JSON output stay fast.

Text that came from a user or a file (a file name, a field value, a log's topic, a message that
quotes either) is data, never markup: the console never expands emoji shortcodes (`file:100:17`
stays as it is), and every such string goes through `esc` (markup escaped) or `text` (a Rich
`Text`, for table cells), or is printed with `say`, whose template is ours and whose fields are
escaped. `plain` prints a whole string as data.
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
        # emoji=False: ":100:" in "file:100:17" is a location, not a shortcode.
        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True, width=width, emoji=False)
    return _consoles[stderr]


def esc(value: Any) -> str:
    """`value` as text safe to embed in console markup: brackets escaped, so `[red]x[/red]`
    prints literally."""
    from rich.markup import escape

    return escape(str(value))


def text(value: Any, style: str = "") -> Any:
    """A Rich `Text` of `value` (no markup interpreted), for table cells and columns."""
    from rich.text import Text

    return Text(str(value), style=style)


def say(template: str, *values: Any, stderr: bool = False, **named: Any) -> None:
    """Print `template` (our markup, e.g. "[bold]{}[/]: {}") with each `{}` field filled by an
    escaped value, so data never restyles the output."""
    console(stderr).print(template.format(*map(esc, values), **{k: esc(v) for k, v in named.items()}))


def plain(line: Any, *, stderr: bool = False) -> None:
    """Print `line` as data: no markup, no emoji, no highlighting."""
    console(stderr).print(str(line), markup=False, highlight=False)


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
