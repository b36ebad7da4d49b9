"""A small GitHub REST client over httpx: standard headers, Link pagination, retries, clear errors.

Settings come from the environment Actions provides (`GITHUB_API_URL`, `GITHUB_TOKEN`,
`GITHUB_REPOSITORY`), so GitHub Enterprise Server works by pointing `GITHUB_API_URL` at it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from releasectl import __version__
from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.github.retry import RetriesExhausted, Retryable, RetryPolicy, classify

T = TypeVar("T")
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
REPO_RE = re.compile(r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class GitHubSettings:
    """Where to talk to and as whom."""

    api_url: str
    token: str
    repo: str

    @classmethod
    def from_env(cls, repo: str | None = None) -> GitHubSettings:
        """Read GITHUB_API_URL, GITHUB_TOKEN and GITHUB_REPOSITORY; `repo` overrides the last."""
        token = os.environ.get("GITHUB_TOKEN", "").strip()
        if not token:
            raise BadInput(
                "GITHUB_TOKEN is not set",
                hint="in a workflow pass `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` to the step "
                "(the job needs `pull-requests: write` for comments, `statuses: write` for statuses); "
                "locally export a token with those scopes",
            )
        repo = repo or os.environ.get("GITHUB_REPOSITORY", "").strip()
        if not repo:
            raise BadInput("no repository given", hint="pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
        if not REPO_RE.fullmatch(repo):
            raise BadInput(f"repository {repo!r} is not OWNER/NAME", hint="e.g. --repo acme/model-releases")
        api_url = (os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        if not api_url.startswith(("https://", "http://")):
            raise BadInput(
                f"GITHUB_API_URL {api_url!r} is not an http(s) URL", hint=f"unset it to use {DEFAULT_API_URL}"
            )
        return cls(api_url=api_url, token=token, repo=repo)


@dataclass
class GitHubClient:
    """Requests against one API base. `request` retries (for requests safe to repeat);
    `send_once` raises `Retryable` and leaves reconciling a non-repeatable write to the caller."""

    settings: GitHubSettings
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    transport: httpx.BaseTransport | None = None
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.settings.api_url,
                timeout=self.timeout,
                transport=self.transport,
                headers={
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "Authorization": f"Bearer {self.settings.token}",
                    "User-Agent": f"releasectl/{__version__}",
                },
                follow_redirects=False,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def repo_path(self, suffix: str) -> str:
        return f"/repos/{self.settings.repo}/{suffix.lstrip('/')}"

    def send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One attempt: the response on success, `Retryable` on a transient failure, else an error."""
        try:
            response = self.http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise Retryable(f"cannot connect to {self.settings.api_url}: {e}") from None
        except httpx.TimeoutException:
            raise Retryable(f"timed out after {self.timeout:g} s") from None
        except httpx.TransportError as e:
            raise Retryable(f"connection failed: {e}") from None
        transient = classify(response)
        if transient is not None:
            raise transient
        if response.is_success:
            return response
        raise self._error(method, url, response)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """`send_once` with retries, for requests that are safe to repeat (GET, PATCH, statuses)."""
        return self.retrying(f"{method} {url}", lambda: self.send_once(method, url, **kwargs))

    def retrying(self, what: str, attempt_once: Callable[[], T]) -> T:
        """Run `attempt_once` under the retry policy; exhausted retries become exit 3."""
        try:
            return self.retry.run(attempt_once)
        except RetriesExhausted as e:
            raise EnvironmentFailure(
                f"GitHub API {what} failed: {e}",
                hint=f"GitHub ({self.settings.api_url}) is unavailable or rate limiting; re-run the job later. "
                "Nothing was duplicated: a re-run finds and updates the same comment.",
            ) from None

    def paginate(self, url: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following `Link: rel="next"` (100 per page)."""
        next_url: str | None = url
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        while next_url:
            response = self.request("GET", next_url, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise EnvironmentFailure(
                    f"GitHub API GET {next_url}: expected a list, got {type(items).__name__}"
                )
            yield from items
            next_url = response.links.get("next", {}).get("url")
            query = None  # the next link carries its own query
            if next_url and not next_url.startswith(self.settings.api_url + "/"):
                # Never send the token to another host, whatever a Link header says.
                raise EnvironmentFailure(
                    f"GitHub API pagination pointed outside {self.settings.api_url}: {next_url}"
                )

    def _error(self, method: str, url: str, response: httpx.Response) -> Exception:
        try:
            detail = response.json().get("message", "")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        what = f"GitHub API {method} {url}: {response.status_code} {detail}".rstrip()
        status = response.status_code
        if status == 401:
            return EnvironmentFailure(what, hint="GITHUB_TOKEN is invalid or expired")
        if status == 403:
            return EnvironmentFailure(
                what,
                hint="the token lacks permission: give the job `pull-requests: write` (comments) or "
                "`statuses: write` (statuses); pull requests from forks get a read-only token",
            )
        if status in (404, 410):
            return BadInput(
                what,
                hint=f"check --repo ({self.settings.repo}), the PR number or SHA, and the token's access",
            )
        if status == 422:
            return BadInput(what, hint="GitHub rejected the request's content")
        return EnvironmentFailure(what)
