"""Facts about the CI run we are in (GitHub Actions), for provenance and the audit trail."""

from __future__ import annotations

import os


def run_url() -> str | None:
    """The URL of the GitHub Actions run, when running in one."""
    server, repo, run_id = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None
