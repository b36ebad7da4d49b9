"""Where the releases repository is, seen from the working directory. Light on purpose (no
pydantic): the rollback path uses it."""

from __future__ import annotations

import os
from pathlib import Path

from releasectl.errors import BadInput


def repo_root() -> Path:
    """$RELEASECTL_ROOT, else the nearest folder up from the working directory that has `releases/`."""
    env = os.environ.get("RELEASECTL_ROOT")
    cwd = Path.cwd().resolve()
    found = (
        Path(env).resolve()
        if env
        else next((d for d in (cwd, *cwd.parents) if (d / "releases").is_dir()), None)
    )
    if found is None or not (found / "releases").is_dir():
        raise BadInput(
            f"no releases/ folder in {found or cwd} or above",
            hint="run this inside a releases repository (the folder holding releases/), or set RELEASECTL_ROOT",
        )
    return found
