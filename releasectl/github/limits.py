"""GitHub's documented size limits that releasectl designs around."""

from __future__ import annotations

GITHUB_COMMENT_LIMIT = 65_536  # characters in an issue or PR comment body
STATUS_DESCRIPTION_LIMIT = 140  # characters in a commit status description


def comment_length(text: str) -> int:
    """Length as GitHub may count it (UTF-16 code units), which is never less than len()."""
    return len(text.encode("utf-16-le")) // 2
