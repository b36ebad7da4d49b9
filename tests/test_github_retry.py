"""Retry decisions and waits for GitHub API responses (pure functions, no server needed)."""

from __future__ import annotations

import random
import time
from email.utils import formatdate

import httpx
import pytest

from releasectl.github.retry import RetriesExhausted, Retryable, RetryPolicy, classify


def response(status: int, headers: dict[str, str] | None = None, text: str = "{}") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text)


@pytest.mark.parametrize(
    ("status", "headers", "text", "retry", "wait"),
    [
        (200, {}, "{}", False, None),
        (404, {}, "{}", False, None),
        (422, {}, "{}", False, None),
        (403, {}, '{"message": "Resource not accessible by integration"}', False, None),
        (500, {}, "{}", True, None),
        (503, {"Retry-After": "12"}, "{}", True, 12.0),
        (429, {"Retry-After": "3"}, "{}", True, 3.0),
        (403, {"Retry-After": "60"}, "{}", True, 60.0),
        (403, {}, '{"message": "You have exceeded a secondary rate limit."}', True, None),
    ],
)
def test_classify(status: int, headers: dict[str, str], text: str, retry: bool, wait: float | None) -> None:
    failure = classify(response(status, headers, text))
    assert (failure is not None) == retry
    if failure is not None:
        assert failure.wait == wait


def test_rate_limit_reset_and_http_date() -> None:
    reset = classify(
        response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 30)})
    )
    assert reset is not None and reset.wait is not None and 28 <= reset.wait <= 31
    dated = classify(response(503, {"Retry-After": formatdate(time.time() + 20, usegmt=True)}))
    assert dated is not None and dated.wait is not None and 18 <= dated.wait <= 21


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=8, base_delay=1.0, max_delay=10.0, sleep=slept.append, rng=random.Random(0))
    calls = 0

    def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise Retryable("502 Bad Gateway")

    with pytest.raises(RetriesExhausted) as info:
        policy.run(always_fails)
    assert calls == 8 and info.value.attempts == 8 and "502" in str(info.value)
    steps = [min(10.0, 2**i) for i in range(7)]
    assert all(step / 2 <= w <= step for w, step in zip(slept, steps, strict=True))
    assert len(set(slept)) == len(slept)  # jittered, not lockstep


def test_server_wait_wins_and_too_long_a_wait_stops_at_once() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=5, max_delay=60, sleep=slept.append)
    answers = iter([Retryable("429", wait=7), "ok"])

    def once() -> str:
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert policy.run(once) == "ok"
    assert 7 <= slept[0] <= 8
    with pytest.raises(RetriesExhausted) as info:
        policy.run(lambda: (_ for _ in ()).throw(Retryable("403 rate limited", wait=3600)))
    assert info.value.attempts == 1 and len(slept) == 1
