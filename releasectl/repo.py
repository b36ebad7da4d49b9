"""Where the releases repository is, seen from the working directory. Light on purpose (no
pydantic): the rollback path uses it."""

from __future__ import annotations

import os
from pathlib import Path

from releasectl.errors import BadInput


def find_repo_root(near: Path | None = None) -> Path | None:
    """The releases repository: $RELEASECTL_ROOT; else, for a manifest under `releases/`, the
    folder above it; else the nearest folder up from the working directory that has `releases/`.
    The one root finder: every command and module asks this."""
    env = os.environ.get("RELEASECTL_ROOT")
    if env:
        return Path(env).resolve()
    if near is not None:
        parent = Path(near).resolve().parent
        if parent.name == "releases":
            return parent.parent
    cwd = Path.cwd().resolve()
    return next((d for d in (cwd, *cwd.parents) if (d / "releases").is_dir()), None)


def repo_root() -> Path:
    """The releases repository the command runs in, or bad input saying how to get one."""
    found = find_repo_root()
    if found is None or not (found / "releases").is_dir():
        raise BadInput(
            f"no releases/ folder in {found or Path.cwd().resolve()} or above",
            hint="run this inside a releases repository (the folder holding releases/), or set RELEASECTL_ROOT",
        )
    return found
