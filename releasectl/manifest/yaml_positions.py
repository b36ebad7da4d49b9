"""Safe YAML loading that remembers where every value came from.

PyYAML's safe composer gives us a node tree with start marks. We build plain Python data from
it ourselves so that we can refuse duplicate keys, non-string keys and alias bombs, and keep a
map from each field path to its `(line, col)` (1-based) for error messages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from releasectl import safeio
from releasectl.errors import BadInput, Problem

# Bounds that stop "billion laughs" style alias expansion long before it costs anything.
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = safeio.MAX_DEPTH  # nested mappings/sequences; deeper is refused before recursion
MAX_INT_DIGITS = safeio.MAX_INT_DIGITS
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")  # no 0x, 0o, 0b, leading 0 (octal), _ or : (base 60)


class _DepthLoader(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level; stop at MAX_DEPTH with the position
    instead of a RecursionError."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


FieldPath = tuple[str | int, ...]


@dataclass
class Positioned:
    """Parsed data plus the position of every value and mapping key in it."""

    data: Any
    file: str
    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: FieldPath) -> tuple[int, int]:
        """Position of `path`, or of its nearest located ancestor (e.g. for a missing field)."""
        p = tuple(path)
        if p in self.positions:
            return self.positions[p]
        # A missing field: point at the key of its nearest existing ancestor.
        while p:
            p = p[:-1]
            if p in self.key_positions:
                return self.key_positions[p]
            if p in self.positions:
                return self.positions[p]
        return (1, 1)

    def locate_key(self, path: FieldPath) -> tuple[int, int]:
        return self.key_positions.get(tuple(path)) or self.locate(path)


def dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.result = Positioned(data=None, file=file)
        self.nodes = 0
        self.aliases = 0
        self.seen: dict[int, int] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, path: FieldPath, message: str, **kw: Any) -> BadInput:
        line, col = _mark(node)
        return BadInput(
            f"{self.file} is not a valid manifest",
            [
                Problem(
                    message, file=self.file, line=line, col=col, field=dotted(path) if path else None, **kw
                )
            ],
        )

    def _not_decimal(self, node: yaml.Node, path: FieldPath, what: str) -> BadInput:
        """YAML 1.1 reads 0x10, 0o17, 017 (octal), 0b11, 1_000 and 1:30 (base 60) as numbers; a
        reader on YAML 1.2, or a person, reads several of them differently. Only decimal passes."""
        written = str(node.value)[:40]
        try:
            reads = f" (YAML 1.1 reads it as {self.constructor.construct_object(node)})"
        except (yaml.YAMLError, ValueError):
            reads = ""
        return self.fail(
            node,
            path,
            f"{written} is not a decimal {what}{reads}",
            expected=f"a decimal {what} such as 30" + (" or 0.5" if what == "number" else ""),
            found=written,
            hint=f"write it as a decimal {what}, or quote it if it is text",
        )

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                node, path, f"document expands to more than {MAX_NODES} nodes", hint="remove YAML aliases"
            )
        if id(node) in self.seen:
            # The same node object reached twice is an alias (`*name`) expansion.
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise self.fail(
                    node,
                    path,
                    f"more than {MAX_ALIASES} alias expansions (possible alias bomb)",
                    expected=f"at most {MAX_ALIASES} aliases",
                    found=f"over {MAX_ALIASES}",
                    hint="write the values out instead of using anchors",
                )
        self.seen[id(node)] = self.seen.get(id(node), 0) + 1
        self.result.positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                    found = (
                        self.constructor.construct_object(key_node, deep=True)
                        if isinstance(key_node, yaml.ScalarNode)
                        else key_node.id
                    )
                    raise self.fail(
                        key_node,
                        path,
                        "mapping keys must be strings",
                        expected="a string key",
                        found=repr(found),
                        hint="quote the key",
                    )
                key = key_node.value
                if key in out:
                    first = self.result.key_positions.get((*path, key))
                    raise self.fail(
                        key_node,
                        (*path, key),
                        "duplicate key",
                        expected="each key once",
                        found=f"'{key}' again" + (f" (first at line {first[0]})" if first else ""),
                        hint="delete one of them; YAML would silently keep the last",
                    )
                self.result.key_positions[(*path, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag == _INT_TAG:
            digits = sum(ch.isdigit() for ch in str(node.value))
            if digits > MAX_INT_DIGITS:
                raise self.fail(
                    node,
                    path,
                    "integer too long",
                    expected=f"at most {MAX_INT_DIGITS} digits",
                    found=f"{digits:,} digits",
                )
            if not _DECIMAL_INT.fullmatch(str(node.value)):
                raise self._not_decimal(node, path, "integer")
        if node.tag == _FLOAT_TAG and ("_" in str(node.value) or ":" in str(node.value)):
            raise self._not_decimal(node, path, "number")
        value = self.constructor.construct_object(node)
        if node.tag == _FLOAT_TAG and not math.isfinite(value):
            raise self.fail(
                node, path, "not a finite number", expected="a finite number", found=str(node.value)[:40]
            )
        return value


def read_text_strict(path: Path, display: str) -> str:
    """Read a UTF-8 text file through `safeio` (regular files only, size capped, strict UTF-8,
    no NUL), every failure exit 2 naming `display`."""
    try:
        raw = safeio.read_bytes(path, max_bytes=MAX_BYTES, what="file", gunzip=False, name=display)
    except BadInput as e:
        if "not found" in e.message:
            raise BadInput(
                f"{display}: no such file",
                e.problems,
                hint="check the path; releases live in releases/vX.Y.yaml",
            ) from None
        raise
    try:
        return safeio.decode_text(raw, source=display)
    except BadInput as e:
        raise BadInput(f"{display} is not a valid manifest: {e.message}", e.problems) from None


def load_yaml_with_positions(
    path: Path, display: str | None = None, *, require_mapping: bool = True
) -> Positioned:
    """Load one YAML document safely, with positions. Every failure is a `BadInput` (exit 2)."""
    display = display or str(path)
    text = read_text_strict(path, display)
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise BadInput(
            f"{display} is not a valid manifest",
            [
                Problem(
                    "file is empty", file=display, line=1, col=1, expected="a YAML mapping", found="nothing"
                )
            ],
        )
    try:
        node = yaml.compose(text, Loader=_DepthLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise BadInput(
            f"{display} is not valid YAML", [Problem(msg, file=display, line=line, col=col)]
        ) from None
    except yaml.YAMLError as e:
        raise BadInput(f"{display} is not valid YAML: {e}") from None
    if node is None:
        raise BadInput(
            f"{display} is not a valid manifest", [Problem("file is empty", file=display, line=1, col=1)]
        )
    builder = _Builder(display)
    try:
        data = builder.build(node, ())
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise BadInput(
            f"{display} is not a valid manifest",
            [
                Problem(
                    e.problem or "cannot construct value",
                    file=display,
                    line=mark.line + 1 if mark else None,
                    col=mark.column + 1 if mark else None,
                )
            ],
        ) from None
    if require_mapping and not isinstance(data, dict):
        line, col = _mark(node)
        raise BadInput(
            f"{display} is not a valid manifest",
            [
                Problem(
                    "top level must be a mapping",
                    file=display,
                    line=line,
                    col=col,
                    expected="a mapping of fields",
                    found=type(data).__name__,
                )
            ],
        )
    builder.result.data = data
    return builder.result
