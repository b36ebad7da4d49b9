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
from releasectl.retry import DeadlineExceeded, within_deadline

T = TypeVar("T")
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
# A list endpoint gives at most 100 items a page; 1,000 pages is far beyond any real PR.
MAX_PAGES = 1000
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
        """One attempt: the response on success, `Retryable` on a transient failure, else an error.

        `timeout` bounds the whole request, body included: httpx's own timeout bounds each
        read, so a server that drips a byte at a time would otherwise hold the command forever.
        The request runs under `releasectl.retry.within_deadline`: abandoned (and its
        connection pool closed) at the deadline.
        """
        http = self.http

        def work() -> httpx.Response:
            response = http.request(method, url, **kwargs)
            response.read()
            return response

        try:
            response = within_deadline(
                work, self.timeout, abandon=http.close, name="releasectl-github-request"
            )
        except DeadlineExceeded:
            self._http = None  # abandon this connection pool; the next attempt opens a fresh one
            raise Retryable(f"{method} {self._where(url)} did not finish within {self.timeout:g} s") from None
        except httpx.TimeoutException:
            raise Retryable(f"{method} {self._where(url)} timed out after {self.timeout:g} s") from None
        except httpx.ConnectError as error:
            raise Retryable(f"cannot connect to {self.settings.api_url}: {error}") from None
        except httpx.TransportError as error:
            raise Retryable(f"connection to {self.settings.api_url} failed: {error}") from None
        transient = classify(response)
        if transient is not None:
            raise transient
        if response.is_success:
            return response
        raise self._error(method, url, response)

    def _where(self, url: str) -> str:
        """The absolute URL of `url`, for messages."""
        return url if url.startswith(("http://", "https://")) else f"{self.settings.api_url}{url}"

    def json(self, response: httpx.Response, expect: type) -> Any:
        """The response's JSON, which must be a `expect` (dict or list); anything else is exit 3.

        An HTML error page from a proxy, a captive portal or a wrong GITHUB_API_URL must say so,
        not surface as a JSONDecodeError.
        """
        content_type = response.headers.get("content-type", "no content type")
        data: Any = None
        parsed = False
        if "json" in content_type.lower():
            try:
                data = response.json()
                parsed = True
            except ValueError:
                parsed = False
        if parsed and isinstance(data, expect):
            return data
        head = response.content[:80]
        found = (
            f"a JSON {type(data).__name__} where a {expect.__name__} belongs"
            if parsed
            else f"{content_type}, first bytes {head!r}"
        )
        raise EnvironmentFailure(
            f"the GitHub API at {response.request.url} answered something that is not its JSON ({found})",
            hint=f"check GITHUB_API_URL ({self.settings.api_url}): it must be the REST API root "
            "(https://api.github.com, or https://HOST/api/v3 on GitHub Enterprise Server), not a web page or proxy",
        )

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
        for page in self.paginate_pages(url, params, list):
            yield from page

    def paginate_pages(
        self, url: str, params: dict[str, Any] | None = None, expect: type = dict
    ) -> Iterator[Any]:
        """Each page's JSON (a `expect`), following `Link: rel="next"` (100 per page).

        A next link back to a page already read, or more than MAX_PAGES pages, is exit 3: a
        broken proxy or server must not keep the command paginating forever.
        """
        next_url: str | None = url
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        visited: set[str] = set()
        while next_url:
            response = self.request("GET", next_url, params=query)
            page_url = _canonical(response.request.url)
            visited.add(page_url)
            yield self.json(response, expect)
            next_url = response.links.get("next", {}).get("url")
            query = None  # the next link carries its own query
            if not next_url:
                break
            if not next_url.startswith(self.settings.api_url + "/"):
                # Never send the token to another host, whatever a Link header says.
                raise EnvironmentFailure(
                    f"GitHub API pagination pointed outside {self.settings.api_url}: {next_url}"
                )
            if _canonical(httpx.URL(next_url)) in visited:
                raise EnvironmentFailure(
                    f'the GitHub API at {page_url} links (rel="next") back to a page already read: {next_url}',
                    hint="the server or a proxy in front of it rewrites pagination links; "
                    "releasectl stopped instead of paginating forever",
                )
            if len(visited) >= MAX_PAGES:
                raise EnvironmentFailure(
                    f"the GitHub API at {url} still had a next page after {MAX_PAGES} pages (last {page_url})",
                    hint="no pull request has that many comments; check GITHUB_API_URL and any proxy",
                )

    def _error(self, method: str, url: str, response: httpx.Response) -> Exception:
        try:
            body = response.json()
            detail = str(body.get("message", "")) if isinstance(body, dict) else ""
        except ValueError:
            detail = repr(response.content[:120])
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


def _canonical(url: httpx.URL) -> str:
    """`url` with its query parameters sorted, so the same page compares equal however it is spelled
    (`page=1` is the first page, as no `page` is)."""
    query = "&".join(sorted(f"{k}={v}" for k, v in url.params.multi_items() if (k, v) != ("page", "1")))
    return str(url.copy_with(query=query.encode() or None, fragment=None))
