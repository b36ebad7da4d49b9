"""`releasectl schema`, `diff` and `new`: working with manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from releasectl.console import console, emit_json, format_option
from releasectl.errors import BadInput
from releasectl.repo import repo_root

if TYPE_CHECKING:
    from releasectl.manifest.loader import LoadedManifest


def _load_release(ref: str) -> LoadedManifest:
    """Load a release given as `v1.3` or as a path to its manifest."""
    from releasectl.manifest.loader import load_manifest, release_path

    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        return load_manifest(Path(ref))
    return load_manifest(release_path(repo_root(), ref))


ARTIFACTS = {
    "manifest": ("releasectl.manifest.models", "Manifest", "releasectl release manifest"),
    "run": ("releasectl.contracts.run", "RunRecord", "releasectl run.json"),
    "results": ("releasectl.contracts.results", "ResultRow", "releasectl results.jsonl row"),
    "gate": ("releasectl.contracts.gate", "GateRecord", "releasectl gate.json"),
    "canary": ("releasectl.contracts.canary", "CanaryRecord", "releasectl canary.json"),
    "history": ("releasectl.contracts.history", "SCHEMA_MODEL", "releasectl history.jsonl event"),
    "channels": ("releasectl.contracts.channels", "SCHEMA_MODEL", "releasectl channels.yaml"),
}


@click.command()
@click.option(
    "--artifact",
    type=click.Choice(list(ARTIFACTS)),
    default="manifest",
    show_default=True,
    help="Which file's schema: the manifest, or a stage artifact (run.json, a results row, gate.json, ...).",
)
@format_option()
def schema(artifact: str, fmt: str) -> int:
    """Print the JSON Schema of the manifest or of a stage artifact (for editors and other harnesses).

    \b
    Point your editor at it, e.g. for VS Code's YAML extension:
      releasectl schema > .vscode/release.schema.json
      releasectl schema --artifact results > results.schema.json
    """
    import importlib

    from releasectl.errors import EnvironmentFailure

    module_name, attr, title = ARTIFACTS[artifact]
    try:
        model = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise EnvironmentFailure(
            f"this releasectl has no schema for '{artifact}' yet ({module_name}.{attr} is missing)"
        ) from None
    doc = model.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = title
    click.echo(json.dumps(doc, indent=2))
    return 0


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    if re.fullmatch(r"[0-9a-f]{32,64}(\.dir)?", text):
        return text[:12] + "…"
    return text if len(text) <= 60 else text[:57] + "…"


@click.command()
@click.argument("old")
@click.argument("new")
@format_option()
def diff(old: str, new: str, fmt: str) -> int:
    """Show what changed in the pins from release OLD to release NEW (e.g. `diff v1.2 v1.3`)."""
    from releasectl.manifest.pins import diff_manifests

    a, b = _load_release(old), _load_release(new)
    changes = diff_manifests(a, b)
    if fmt == "json":
        emit_json(
            {"from": a.manifest.release, "to": b.manifest.release, "changes": [c.to_dict() for c in changes]}
        )
        return 0
    from rich.markup import escape
    from rich.table import Table

    ra, rb = a.manifest.release, b.manifest.release
    if not changes:
        console().print(f"{ra} and {rb} pin the same artifacts and settings.", markup=False)
        return 0
    table = Table(title=f"{ra} → {rb}: {len(changes)} changes", title_justify="left")
    table.add_column("field")
    table.add_column(ra, style="red")
    table.add_column(rb, style="green")
    for c in changes:
        table.add_row(
            escape(c.field),
            escape(_short(c.old)) if c.old is not None else "—",
            escape(_short(c.new)) if c.new is not None else "—",
        )
    console().print(table)
    return 0


def _set_top_level_line(text: str, loaded: LoadedManifest, key: str, value: str) -> str:
    """Set a one-line top-level `key: value`, replacing the existing line or adding one."""
    lines = text.split("\n")
    pos = loaded.source.key_positions.get((key,))
    if pos is not None:
        lines[pos[0] - 1] = f"{key}: {value}"
    else:
        line, _ = loaded.source.positions[("release",)]
        lines.insert(line, f"{key}: {value}")
    return "\n".join(lines)


@click.command()
@click.argument("release")
@click.option("--from", "source", required=True, help="The release to start from, e.g. v1.3.")
@click.option("--description", default=None, help="Description of the new release.")
@click.option(
    "--repin/--no-repin",
    default=True,
    show_default=True,
    help="Recompute digests of repository files that changed since SOURCE.",
)
@click.option("--force", is_flag=True, help="Overwrite releases/RELEASE.yaml if it exists.")
@format_option()
def new(release: str, source: str, description: str | None, repin: bool, force: bool, fmt: str) -> int:
    """Scaffold releases/RELEASE.yaml from an existing release, with parent set to it.

    Comments and layout are kept. Local digests are re-pinned to the files on disk, so the
    new manifest validates; change the pins that differ, then `releasectl validate` it.
    """
    from releasectl.fsutil import atomic_write_text
    from releasectl.manifest.loader import load_manifest, release_path
    from releasectl.manifest.models import RELEASE_NAME
    from releasectl.manifest.pins import repin_text, replace_scalar

    if not RELEASE_NAME.match(release):
        raise BadInput(f"'{release}' is not a release name", hint="use v<major>.<minor>[.<patch>], e.g. v1.4")
    root = repo_root()
    src_path = release_path(root, source)
    dest = root / "releases" / f"{release}.yaml"
    if dest.exists() and not force:
        raise BadInput(
            f"releases/{release}.yaml already exists",
            hint="pick the next version, or pass --force to overwrite",
        )
    loaded = load_manifest(src_path)
    from releasectl.safeio import read_text

    text = read_text(src_path, what="manifest")
    changes: list[Any] = []
    if repin:
        text, changes = repin_text(loaded, text)
    # Field edits at recorded positions, bottom-up.
    edits = [(("release",), release)]
    if "parent" in loaded.source.data:
        edits.append((("parent",), source))
    for field, value in sorted(edits, key=lambda e: loaded.source.positions[e[0]], reverse=True):
        line, col = loaded.source.positions[field]
        text = replace_scalar(text, line, col, value)
    if description is not None:
        text = _set_top_level_line(text, loaded, "description", json.dumps(description))
    if "parent" not in loaded.source.data:
        line, _ = loaded.source.positions[("release",)]
        lines = text.split("\n")
        lines.insert(line, f"parent: {source}")
        text = "\n".join(lines)
    atomic_write_text(dest, text)
    load_manifest(dest)  # the scaffold must load; raises BadInput (exit 2) otherwise
    if fmt == "json":
        emit_json(
            {
                "release": release,
                "from": source,
                "path": f"releases/{release}.yaml",
                "repinned": [c.to_dict() for c in changes],
            }
        )
        return 0
    out = console()
    out.print(f"created releases/{release}.yaml from {source} (parent: {source})", markup=False)
    for c in changes:
        out.print(f"  re-pinned {c.field}: {_short(c.old)} → {_short(c.new)}", markup=False)
    out.print(
        f"next: edit the pins that change, then `releasectl validate releases/{release}.yaml` and open a release PR",
        markup=False,
    )
    return 0
