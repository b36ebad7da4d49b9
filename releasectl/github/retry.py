"""Which GitHub API failures are worth another try; the policy itself is `releasectl.retry`.

Retried: 5xx, 429, secondary rate limits (403 with `retry-after`, `x-ratelimit-remaining: 0`,
or a body that says so), timeouts and connection errors. Waits grow exponentially with
jitter, but a server's `Retry-After` / `x-ratelimit-reset` wins; a wait beyond `max_delay` is
not worth sitting through in CI, so that ends the retries at once.
"""

from __future__ import annotations

import time

import httpx

from releasectl.retry import (
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    asked_wait,
    http_transient,
    sleep_seconds,
)

__all__ = ["RetriesExhausted", "RetryPolicy", "Retryable", "classify", "sleep_seconds"]


def classify(response: httpx.Response) -> Retryable | None:
    """A `Retryable` if `response` is a transient failure, else None (success or a real error)."""
    status = response.status_code
    asked = _asked_wait(response)
    transient = http_transient(status, response.reason_phrase, response.headers)
    if transient is not None:
        return Retryable(transient.reason, asked)
    if status == 403 and _is_rate_limit(response, asked):
        return Retryable("403 rate limited (secondary rate limit)", asked)
    return None


def _is_rate_limit(response: httpx.Response, asked: float | None) -> bool:
    if asked is not None or response.headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in response.text.lower()


def _asked_wait(response: httpx.Response) -> float | None:
    """The wait the server asked for: Retry-After (seconds or HTTP date), else GitHub's rate-limit reset."""
    if response.headers.get("retry-after"):
        return asked_wait(response.headers)
    if response.headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(response.headers["x-ratelimit-reset"]) - time.time())
        except (KeyError, ValueError):
            return None
    return None
