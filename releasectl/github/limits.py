"""GitHub's documented size limits that releasectl designs around."""

from __future__ import annotations

GITHUB_COMMENT_LIMIT = 65_536  # characters in an issue or PR comment body
STATUS_DESCRIPTION_LIMIT = 140  # characters in a commit status description
CHECK_TEXT_LIMIT = 65_535  # characters in a check run's output.summary and output.text
CHECK_TITLE_LIMIT = 255  # characters in a check run's output.title (kept short on purpose)
CHECK_ANNOTATION_TITLE_LIMIT = 255  # characters in an annotation's title
CHECK_ANNOTATION_MESSAGE_LIMIT = 65_535  # characters (64 KB) in an annotation's message
ANNOTATIONS_PER_REQUEST = 50  # annotations one create or update of a check run may carry


def comment_length(text: str) -> int:
    """Length as GitHub may count it (UTF-16 code units), which is never less than len()."""
    return len(text.encode("utf-16-le")) // 2
