"""Compare and rewrite pins: what `releasectl diff` shows and how `releasectl new` re-pins.

Edits are made to the YAML text at the positions the loader recorded, so comments and layout
survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from releasectl.manifest.digests import dvc_md5, sha256_file, sha256_tree
from releasectl.manifest.loader import LoadedManifest, _artifacts
from releasectl.manifest.yaml_positions import dotted


@dataclass(frozen=True)
class Change:
    field: str
    kind: str  # changed | added | removed
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "from": self.old, "to": self.new}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list) and data and all(isinstance(x, dict) and "name" in x for x in data):
        # Lists of named things (adapters, alerts) diff by name, not by position.
        for x in data:
            rest = {k: v for k, v in x.items() if k != "name"}
            out.update(
                _flatten(rest, f"{prefix}[{x['name']}]") if rest else {f"{prefix}[{x['name']}]": "present"}
            )
    else:
        out[prefix] = data
    return out


def diff_manifests(a: LoadedManifest, b: LoadedManifest) -> list[Change]:
    """Field-level changes from `a` to `b`, ignoring the release name and parent themselves."""
    fa = _flatten(a.manifest.model_dump(mode="json", exclude_none=True))
    fb = _flatten(b.manifest.model_dump(mode="json", exclude_none=True))
    changes = []
    for key in sorted(set(fa) | set(fb), key=lambda k: (k.split(".")[0], k)):
        if key in ("release", "parent", "description"):
            continue
        if key not in fa:
            changes.append(Change(key, "added", None, fb[key]))
        elif key not in fb:
            changes.append(Change(key, "removed", fa[key], None))
        elif fa[key] != fb[key]:
            changes.append(Change(key, "changed", fa[key], fb[key]))
    return changes


_SCALAR = re.compile(r"""(["']?)([^"'\s#,}\]]+)\1""")


def replace_scalar(text: str, line: int, col: int, new_value: str) -> str:
    """Replace the scalar starting at 1-based (line, col), keeping its quoting."""
    lines = text.split("\n")
    row = lines[line - 1]
    m = _SCALAR.match(row, col - 1)
    if not m:
        raise ValueError(f"no scalar at line {line} column {col}")
    q = m.group(1)
    lines[line - 1] = row[: m.start()] + f"{q}{new_value}{q}" + row[m.end() :]
    return "\n".join(lines)


def repin_text(loaded: LoadedManifest, text: str) -> tuple[str, list[Change]]:
    """Recompute the digests of every repository path the manifest pins; return new text + changes."""
    changes = []
    edits = []
    for path, art in _artifacts(loaded.manifest):
        if art.path is None:
            continue
        target = loaded.resolve(art.path)
        if not target.exists():
            continue
        if art.sha256 is not None:
            actual = sha256_tree(target) if target.is_dir() else sha256_file(target)
            if actual != art.sha256:
                edits.append(((*path, "sha256"), actual))
                changes.append(Change(dotted((*path, "sha256")), "changed", art.sha256, actual))
        if art.md5 is not None:
            actual = dvc_md5(target)
            if actual != art.md5:
                edits.append(((*path, "md5"), actual))
                changes.append(Change(dotted((*path, "md5")), "changed", art.md5, actual))
    # Apply bottom-up so earlier positions stay valid.
    for field_path, value in sorted(edits, key=lambda e: loaded.source.positions[e[0]], reverse=True):
        line, col = loaded.source.positions[field_path]
        text = replace_scalar(text, line, col, value)
    return text, changes
