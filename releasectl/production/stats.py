"""One pass over a log: the performance, cost and reliability families, plus the bounded samples
and per-window sums that drift and reward-collapse detection need."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from releasectl.production.logs import Malformed, read_records
from releasectl.production.sketch import QuantileSketch

NO_ERROR = (None, "", "none", "None", "null", False)
SAMPLE_SIZE = 20_000  # reservoir for KS/PSI drift and the canary rank test (exact below this many records)
MAX_TOPICS = 1000  # distinct topics counted; the rest go to "(other)" so memory stays bounded
PROXY_FIELDS = ("reward_score", "ctr")


@dataclass
class Window:
    """Sums for one time window (reward-collapse trends)."""

    requests: int = 0
    satisfaction_sum: float = 0.0
    satisfaction_n: int = 0
    proxy_sum: dict[str, float] = field(default_factory=dict)
    proxy_n: dict[str, int] = field(default_factory=dict)


@dataclass
class LogStats:
    path: str
    window: timedelta = timedelta(hours=1)
    requests: int = 0
    malformed: Malformed = field(default_factory=Malformed)
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    tokens_generated: int = 0
    prompt_tokens: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    expected_json: int = 0
    malformed_json: int = 0
    satisfaction_sum: float = 0.0
    satisfaction_n: int = 0
    abandoned: int = 0
    safety_incidents: int = 0
    cost_sum: float = 0.0
    cost_n: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    topics: Counter[str] = field(default_factory=Counter)
    windows: dict[datetime, Window] = field(default_factory=dict)
    sample_lengths: list[int] = field(default_factory=list)
    sample_prompts: list[str] = field(default_factory=list)
    sample_latency: list[float] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def add(self, rec: dict[str, Any]) -> None:
        self.requests += 1
        get = rec.get
        rt = get("response_time_ms")
        if rt is not None:
            self.latency.add(rt)
        tokens = get("tokens_generated") or 0
        self.tokens_generated += tokens
        self.prompt_tokens += get("prompt_tokens") or 0
        err = get("error")
        timeout = get("timeout") is True or err == "timeout"
        if err not in NO_ERROR or timeout:
            self.errors += 1
            self.error_kinds[str(err) if err not in NO_ERROR else "timeout"] += 1
        if timeout:
            self.timeouts += 1
        if get("expected_format") == "json" and err in NO_ERROR:
            self.expected_json += 1
            try:
                orjson.loads(get("output") or "")
            except orjson.JSONDecodeError:
                self.malformed_json += 1
        sat = get("user_satisfaction")
        if sat is not None:
            self.satisfaction_sum += sat
            self.satisfaction_n += 1
        if get("abandoned") is True:
            self.abandoned += 1
        if get("safety_incident") is True:
            self.safety_incidents += 1
        cost = get("cost_usd")
        if cost is not None:
            self.cost_sum += cost
            self.cost_n += 1
        topic = get("topic")
        if topic is not None:
            key = str(topic)
            if key in self.topics or len(self.topics) < MAX_TOPICS:
                self.topics[key] += 1
            else:
                self.topics["(other)"] += 1
        ts = get("timestamp")
        if isinstance(ts, str):
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
            self._add_window(ts, sat, rec)
        self._sample(tokens, get("prompt"), rt)

    def _add_window(self, ts: str, sat: Any, rec: dict[str, Any]) -> None:
        try:
            t = datetime.fromisoformat(ts)
        except ValueError:
            return
        span = self.window.total_seconds()
        start = datetime.fromtimestamp(t.timestamp() // span * span, tz=t.tzinfo)
        w = self.windows.get(start)
        if w is None:
            w = self.windows[start] = Window()
        w.requests += 1
        if sat is not None:
            w.satisfaction_sum += sat
            w.satisfaction_n += 1
        for name in PROXY_FIELDS:
            v = rec.get(name)
            if v is not None:
                w.proxy_sum[name] = w.proxy_sum.get(name, 0.0) + v
                w.proxy_n[name] = w.proxy_n.get(name, 0) + 1

    def _sample(self, tokens: int, prompt: Any, latency: float | None) -> None:
        # Reservoir sampling (Algorithm R) with a fixed seed: bounded and reproducible.
        text = prompt if isinstance(prompt, str) else ""
        lat = float("nan") if latency is None else latency
        if len(self.sample_lengths) < SAMPLE_SIZE:
            self.sample_lengths.append(tokens)
            self.sample_prompts.append(text)
            self.sample_latency.append(lat)
            return
        j = self._rng.randrange(self.requests)
        if j < SAMPLE_SIZE:
            self.sample_lengths[j] = tokens
            self.sample_prompts[j] = text
            self.sample_latency[j] = lat

    @property
    def span_hours(self) -> float | None:
        if not (self.first_ts and self.last_ts):
            return None
        try:
            a, b = datetime.fromisoformat(self.first_ts), datetime.fromisoformat(self.last_ts)
        except ValueError:
            return None
        return (b - a).total_seconds() / 3600


def scan(path: Path, window: timedelta = timedelta(hours=1), progress: Any = None) -> LogStats:
    """Read `path` once and return its statistics."""
    stats = LogStats(str(path), window=window)
    add = stats.add
    for i, rec in enumerate(read_records(path, stats.malformed)):
        add(rec)
        if progress is not None and i % 10000 == 0:
            progress(i)
    return stats
