"""The hidden marker on a report's first line, by which the bot finds its sticky PR comment."""

from __future__ import annotations

import re

# One sticky comment per PR and release; `pr-report` is for bodies that name no release.
MARKER_RE = re.compile(r"<!-- releasectl:(?:gate release=[A-Za-z0-9._\-]+|pr-report) -->")
GENERIC_MARKER = "<!-- releasectl:pr-report -->"


def marker(release: str) -> str:
    """The marker for `release`; characters outside [A-Za-z0-9._-] become `_`, so it cannot end early."""
    safe = re.sub(r"[^A-Za-z0-9._\-]", "_", str(release))[:64] or "unknown"
    return f"<!-- releasectl:gate release={safe} -->"


def leading_marker(body: str) -> str | None:
    """The marker a body starts with, if any."""
    m = MARKER_RE.match(body.lstrip())
    return m.group(0) if m else None
