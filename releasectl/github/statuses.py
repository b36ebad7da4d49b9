"""Commit statuses: the gate verdict as a check on the PR's head commit.

promote → success, block → failure, hold → failure. A hold (some rule inconclusive: too little
data) must not be mergeable, and `pending` would read as a job still running and never finish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from releasectl.errors import BadInput
from releasectl.github.client import GitHubClient
from releasectl.github.limits import STATUS_DESCRIPTION_LIMIT

STATES = ("success", "failure", "pending", "error")
VERDICT_STATE = {"promote": "success", "block": "failure", "hold": "failure"}
SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class StatusUpdate:
    """A commit status to set."""

    sha: str
    state: str
    description: str
    context: str
    target_url: str | None

    def payload(self) -> dict[str, Any]:
        body = {"state": self.state, "description": self.description, "context": self.context}
        if self.target_url:
            body["target_url"] = self.target_url
        return body


def shorten(text: str, limit: int = STATUS_DESCRIPTION_LIMIT) -> str:
    """One line of at most `limit` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_gate(gate: dict[str, Any]) -> tuple[str, str]:
    """(state, description) for a gate result, e.g. ('failure', 'BLOCK v1.3 vs v1.2: 1 of 12 rules fail; ...')."""
    verdict = gate["verdict"]
    rules = [r for r in gate.get("rules") or [] if isinstance(r, dict)]
    failed = sum(1 for r in rules if r.get("outcome") == "fail")
    unknown = sum(1 for r in rules if r.get("outcome") == "inconclusive")
    against = f" vs {gate['baseline_release']}" if gate.get("baseline_release") else ""
    total = f"{len(rules)} rule{'s' if len(rules) != 1 else ''}"
    counts = {
        "promote": f"all {total} pass" if len(rules) != 1 else "the 1 rule passes",
        "block": f"{failed} of {total} fail",
        "hold": f"{unknown} of {total} inconclusive",
    }[verdict]
    reason = str(gate.get("verdict_reason") or "").strip()
    text = f"{verdict.upper()} {gate.get('release', '?')}{against}: {counts}" + (
        f"; {reason}" if reason else ""
    )
    return VERDICT_STATE[verdict], shorten(text)


def check_status(update: StatusUpdate) -> None:
    """Refuse what GitHub would reject, before any request."""
    if not SHA_RE.fullmatch(update.sha):
        raise BadInput(
            f"--sha {update.sha!r} is not a full commit SHA",
            hint="pass the 40-hex head SHA, e.g. ${{ github.event.pull_request.head.sha }}",
        )
    if update.state not in STATES:
        raise BadInput(f"state {update.state!r} is not one of {', '.join(STATES)}")
    if update.target_url and not re.match(r"https?://", update.target_url):
        raise BadInput(f"--target-url {update.target_url!r} is not an http(s) URL")


def set_status(client: GitHubClient, update: StatusUpdate) -> dict[str, Any]:
    """POST the status. Repeating it is harmless (the newest status per context wins), so it retries."""
    check_status(update)
    response = client.request("POST", client.repo_path(f"statuses/{update.sha}"), json=update.payload())
    data: dict[str, Any] = client.json(response, dict)
    return data
