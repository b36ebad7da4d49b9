"""The sticky PR comment: one per PR and release, found by the hidden marker on its first line.

Creating a comment is the one write that is not safe to repeat: a POST that timed out or got a
5xx may have been applied. So every attempt starts by listing the comments (all pages) and only
creates when no comment with the marker exists; a retry after an uncertain create finds the
comment the first attempt made and updates it instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from releasectl.github.client import GitHubClient


@dataclass
class StickyResult:
    """What happened: created, updated or unchanged, and any duplicates left by earlier bugs."""

    action: str
    comment_id: int
    url: str | None
    marker: str
    duplicates: list[int] = field(default_factory=list)
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ANY_AUTHOR = "*"


def _by(comment: dict[str, Any], author: str | None) -> bool:
    """Whether `author` wrote the comment: None means any bot account (the Actions token is one)."""
    user = comment.get("user")
    user = user if isinstance(user, dict) else {}
    if author is None:
        return user.get("type") == "Bot"
    return author == ANY_AUTHOR or user.get("login") == author


def find_sticky(
    client: GitHubClient, pr: int, marker: str, author: str | None = None
) -> list[dict[str, Any]]:
    """Comments on `pr` by `author` whose body starts with `marker`, oldest first.

    Anyone can comment on a public repository's PRs; counting only the bot's own comments stops a
    copied marker from hijacking the sticky comment (or failing the job on a 403 when editing it).
    """
    found = [
        c
        for c in client.paginate(client.repo_path(f"issues/{pr}/comments"))
        if isinstance(c, dict) and _by(c, author) and str(c.get("body") or "").lstrip().startswith(marker)
    ]
    return sorted(found, key=lambda c: (str(c.get("created_at") or ""), int(c.get("id") or 0)))


def upsert_sticky_comment(
    client: GitHubClient, pr: int, body: str, marker: str, author: str | None = None
) -> StickyResult:
    """Create the sticky comment for `marker` on `pr`, or update the newest one `author` wrote."""
    attempts = 0

    def attempt() -> StickyResult:
        nonlocal attempts
        attempts += 1
        existing = find_sticky(client, pr, marker, author)
        if existing:
            newest, older = existing[-1], existing[:-1]
            duplicates = [int(c["id"]) for c in older]
            if newest.get("body") == body:
                return StickyResult(
                    "unchanged", int(newest["id"]), newest.get("html_url"), marker, duplicates, attempts
                )
            # PATCH sets the whole body, so repeating it is harmless: the client retries it itself.
            response = client.request(
                "PATCH", client.repo_path(f"issues/comments/{newest['id']}"), json={"body": body}
            )
            data = client.json(response, dict)
            return StickyResult(
                "updated", int(data["id"]), data.get("html_url"), marker, duplicates, attempts
            )
        # Not retried inside: a failed create may have been applied, so the retry lists again first.
        response = client.send_once("POST", client.repo_path(f"issues/{pr}/comments"), json={"body": body})
        data = client.json(response, dict)
        return StickyResult("created", int(data["id"]), data.get("html_url"), marker, [], attempts)

    return client.retrying(f"sticky comment on PR #{pr}", attempt)
