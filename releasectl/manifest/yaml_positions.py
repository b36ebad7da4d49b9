"""Safe YAML loading that remembers where every value came from.

PyYAML's safe composer gives us a node tree with start marks. We build plain Python data from
it ourselves so that we can refuse duplicate keys, non-string keys and alias bombs, and keep a
map from each field path to its `(line, col)` (1-based) for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from releasectl.errors import BadInput, Problem

# Bounds that stop "billion laughs" style alias expansion long before it costs anything.
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_BYTES = 4 * 1024 * 1024

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
        return self.constructor.construct_object(node)


def read_text_strict(path: Path, display: str) -> str:
    """Read a UTF-8 text file, rejecting empty, binary and non-UTF-8 content with exit 2."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"{display}: no such file", hint="check the path; releases live in releases/vX.Y.yaml"
        ) from None
    except IsADirectoryError:
        raise BadInput(f"{display}: is a directory, expected a YAML file") from None
    except OSError as e:
        raise BadInput(f"{display}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise BadInput(f"{display}: file is {len(raw)} bytes; manifests are limited to {MAX_BYTES}")
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        line = raw.count(b"\n", 0, offset) + 1
        raise BadInput(
            f"{display} is not a valid manifest",
            [
                Problem(
                    "binary content (NUL byte)",
                    file=display,
                    line=line,
                    expected="UTF-8 YAML text",
                    found="a NUL byte",
                )
            ],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise BadInput(
            f"{display} is not a valid manifest",
            [
                Problem(
                    "not UTF-8",
                    file=display,
                    line=line,
                    col=col,
                    expected="UTF-8 text",
                    found=f"byte 0x{raw[e.start]:02x}",
                )
            ],
        ) from None
    return text.removeprefix("\ufeff")


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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
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
