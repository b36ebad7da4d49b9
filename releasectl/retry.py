"""The one retry policy in releasectl: how often to try again, and how long to wait in between.

Anything that talks to a remote service (the GitHub API, the Hugging Face Hub, a DVC remote)
raises `Retryable` for a failure another attempt may fix and runs its attempt under
`RetryPolicy.run`. Waits grow exponentially with jitter, but a server's own wait (Retry-After,
a rate-limit reset) wins; a wait beyond `max_delay` is not worth sitting through in CI, so it
ends the retries at once. Which responses are transient is the caller's business (see
`releasectl.github.retry.classify` for GitHub's rules).

`within_deadline` bounds one attempt as a whole: an HTTP client's timeout bounds each read, so a
server that drips a byte at a time would otherwise hold a command forever. The GitHub client and
the Prometheus client both run their requests under it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def sleep_seconds(seconds: float) -> None:
    """The real wait; tests replace this (module attribute) or pass `RetryPolicy(sleep=...)`."""
    time.sleep(seconds)


class Retryable(Exception):
    """A failure that another attempt may fix; `wait` is what the server asked for, if anything.

    For a write, a 5xx or a timeout does not say whether it was applied: see github/comments.py.
    """

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class RetriesExhausted(Exception):
    """Every attempt failed (or the server asked for a wait longer than we accept)."""

    def __init__(self, attempts: int, last: Retryable) -> None:
        super().__init__(f"{last.reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.attempts = attempts
        self.last = last


@dataclass
class RetryPolicy:
    """How often and how long to retry. `sleep` and `rng` are injectable for tests."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    waits: list[float] = field(default_factory=list)  # what was slept, for reporting and tests

    def delay(self, attempt: int, asked: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        if asked is not None:
            # Honour the server, plus a little jitter so parallel jobs do not return in lockstep.
            return asked + self.rng.uniform(0, min(1.0, self.base_delay))
        # "Equal jitter": at least half the exponential step, so waits still grow.
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step / 2 + self.rng.uniform(0, step / 2)

    def run(self, attempt_once: Callable[[], T]) -> T:
        """Call `attempt_once` until it returns, retrying `Retryable` failures with backoff."""
        for attempt in range(1, self.attempts + 1):
            try:
                return attempt_once()
            except Retryable as failure:
                if attempt == self.attempts or (failure.wait is not None and failure.wait > self.max_delay):
                    raise RetriesExhausted(attempt, failure) from None
                wait = self.delay(attempt, failure.wait)
                self.waits.append(wait)
                (self.sleep or sleep_seconds)(wait)
        raise AssertionError("unreachable: the loop returns or raises")


def asked_wait(headers: Mapping[str, str]) -> float | None:
    """The wait an HTTP server asked for in Retry-After (seconds or an HTTP date), if any."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def http_transient(status: int, reason: str, headers: Mapping[str, str]) -> Retryable | None:
    """A `Retryable` for an HTTP answer another attempt may fix (5xx, 429), else None."""
    if status >= 500:
        return Retryable(f"{status} {reason}", asked_wait(headers))
    if status == 429:
        return Retryable("429 Too Many Requests (rate limited)", asked_wait(headers))
    return None


class DeadlineExceeded(Exception):
    """`within_deadline`'s work did not finish within its `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds


def within_deadline(
    work: Callable[[], T],
    seconds: float,
    *,
    abandon: Callable[[], object] | None = None,
    name: str = "releasectl-request",
) -> T:
    """`work()`'s result, or its exception, if it finishes within `seconds`; else `DeadlineExceeded`.

    `work` runs in a daemon thread, abandoned at the deadline; `abandon` (closing the connection
    pool the work reads from, so the thread ends) then runs in another daemon thread, so a close
    that blocks cannot hold the caller either.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if abandon is not None:
            threading.Thread(target=abandon, name=f"{name}-abandon", daemon=True).start()
        raise DeadlineExceeded(seconds)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]
