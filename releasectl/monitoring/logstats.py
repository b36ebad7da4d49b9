"""The statistics of one pass over a log (`LogStats`): the performance, cost and reliability
families, plus the bounded samples and per-window sums that drift and reward-collapse detection
need. Both readers fill it: the streaming one (`stats.scan`) and DuckDB (`fastscan`), which is
why it lives apart from either (no import cycle between them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from releasectl.monitoring.logs import Malformed
from releasectl.monitoring.sketch import QuantileSketch

NO_ERROR = (None, "", "none", "None", "null", False)
NO_ERROR_SET = frozenset(NO_ERROR)


def no_error(e: Any) -> bool:
    """True when a record's `error` value says there was none (see NO_ERROR; 0 equals False).
    An object or list is an error description."""
    try:
        return e in NO_ERROR_SET
    except TypeError:  # unhashable: a dict or list
        return False


SAMPLE_SIZE = 20_000  # reservoir for KS/PSI drift and the canary rank test (exact below this many records)
MAX_TOPICS = 1000  # distinct topics counted; the rest go to "(other)" so memory stays bounded
PROXY_FIELDS = ("reward_score", "ctr")
# LogStats totals that parts of a log add up: counts, and sums of numbers.
COUNT_FIELDS = (
    "errors",
    "timeouts",
    "expected_json",
    "malformed_json",
    "satisfaction_n",
    "abandoned",
    "safety_incidents",
    "cost_n",
)
SUM_FIELDS = ("tokens_generated", "prompt_tokens", "satisfaction_sum", "cost_sum")


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
    reader: str = "python"  # which reader produced these statistics: "python" or "duckdb"
    reader_note: str | None = None  # why a large file was read by the Python path
    _rng: Any = field(default_factory=lambda: __import__("numpy").random.default_rng(0))

    def add(self, rec: dict[str, Any]) -> None:
        self.add_batch([rec])

    def add_batch(self, recs: list[dict[str, Any]]) -> None:
        """Fold a batch of well-formed records in: columns are pulled out with list
        comprehensions and reduced with numpy, so per-record Python work stays small."""
        import numpy as np

        n = len(recs)
        if not n:
            return
        first_index = self.requests
        self.requests += n
        rt = [r.get("response_time_ms") for r in recs]
        self.latency.add_many([v for v in rt if v is not None])
        tokens = [r.get("tokens_generated") or 0 for r in recs]
        self.tokens_generated += sum(tokens)
        self.prompt_tokens += sum(r.get("prompt_tokens") or 0 for r in recs)
        errs = [r.get("error") for r in recs]
        timeouts = [r.get("timeout") is True or e == "timeout" for r, e in zip(recs, errs, strict=True)]
        failed = [e for e, t in zip(errs, timeouts, strict=True) if t or not no_error(e)]
        self.errors += len(failed)
        self.error_kinds.update("timeout" if no_error(e) else str(e) for e in failed)
        self.timeouts += sum(timeouts)
        for r, e in zip(recs, errs, strict=True):
            if r.get("expected_format") == "json" and no_error(e):
                self.expected_json += 1
                try:
                    orjson.loads(r.get("output") or "")
                except orjson.JSONDecodeError:
                    self.malformed_json += 1
        sats = [r.get("user_satisfaction") for r in recs]
        rated = [v for v in sats if v is not None]
        self.satisfaction_sum += sum(rated)
        self.satisfaction_n += len(rated)
        self.abandoned += sum(1 for r in recs if r.get("abandoned") is True)
        self.safety_incidents += sum(1 for r in recs if r.get("safety_incident") is True)
        costs = [c for c in (r.get("cost_usd") for r in recs) if c is not None]
        self.cost_sum += sum(costs)
        self.cost_n += len(costs)
        for topic, count in Counter(str(t) for t in (r.get("topic") for r in recs) if t is not None).items():
            if topic in self.topics or len(self.topics) < MAX_TOPICS:
                self.topics[topic] += count
            else:
                self.topics["(other)"] += count
        stamps = [t if isinstance(t, str) else None for t in (r.get("timestamp") for r in recs)]
        present = [t for t in stamps if t is not None]
        if present:
            lo, hi = min(present), max(present)
            if self.first_ts is None or lo < self.first_ts:
                self.first_ts = lo
            if self.last_ts is None or hi > self.last_ts:
                self.last_ts = hi
            self._add_windows(np, recs, stamps, sats)
        self._sample(np, first_index, tokens, [r.get("prompt") for r in recs], rt)

    def _add_windows(
        self, np: Any, recs: list[dict[str, Any]], stamps: list[str | None], sats: list[Any]
    ) -> None:
        span = self.window.total_seconds()
        # Identical timestamp strings are parsed once (logs have many per second); then one
        # bincount per column sums each window.
        starts: dict[str | None, int] = {None: -1}
        for ts in set(stamps):
            if ts is None:
                continue
            try:
                t = datetime.fromisoformat(ts)
            except ValueError:
                starts[ts] = -1
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=UTC)
            starts[ts] = int(t.timestamp() // span)
        keys = np.fromiter((starts[ts] for ts in stamps), dtype=np.int64, count=len(stamps))
        valid = keys >= 0
        if not valid.any():
            return
        uniq, inverse = np.unique(keys[valid], return_inverse=True)

        def sums(values: list[Any]) -> tuple[Any, Any]:
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)[valid]
            has = ~np.isnan(arr)
            return np.bincount(inverse, weights=np.where(has, arr, 0.0), minlength=len(uniq)), np.bincount(
                inverse, weights=has, minlength=len(uniq)
            )

        requests = np.bincount(inverse, minlength=len(uniq))
        sat_sum, sat_n = sums(sats)
        proxies = {name: sums([r.get(name) for r in recs]) for name in PROXY_FIELDS}
        for i, key in enumerate(uniq.tolist()):
            start = datetime.fromtimestamp(key * span, tz=UTC)
            w = self.windows.get(start)
            if w is None:
                w = self.windows[start] = Window()
            w.requests += int(requests[i])
            w.satisfaction_sum += float(sat_sum[i])
            w.satisfaction_n += int(sat_n[i])
            for name, (total, count) in proxies.items():
                if count[i]:
                    w.proxy_sum[name] = w.proxy_sum.get(name, 0.0) + float(total[i])
                    w.proxy_n[name] = w.proxy_n.get(name, 0) + int(count[i])

    def _sample(
        self, np: Any, first_index: int, tokens: list[int], prompts: list[Any], rt: list[Any]
    ) -> None:
        # Reservoir sampling (Algorithm R) with a fixed seed: bounded and reproducible. Slots
        # are drawn for the whole batch at once; only hits touch Python.
        n = len(tokens)
        fill = max(0, min(n, SAMPLE_SIZE - first_index))
        for k in range(fill):
            p = prompts[k]
            self.sample_lengths.append(tokens[k])
            self.sample_prompts.append(p if isinstance(p, str) else "")
            self.sample_latency.append(float("nan") if rt[k] is None else rt[k])
        if fill == n:
            return
        indices = np.arange(first_index + fill, first_index + n)
        slots = self._rng.integers(0, indices + 1)
        for k in np.nonzero(slots < SAMPLE_SIZE)[0].tolist():
            j = int(slots[k])
            k += fill
            p = prompts[k]
            self.sample_lengths[j] = tokens[k]
            self.sample_prompts[j] = p if isinstance(p, str) else ""
            self.sample_latency[j] = float("nan") if rt[k] is None else rt[k]

    def merge(self, other: LogStats) -> None:
        """Fold in the statistics of the part of the log that follows this one."""
        for name in COUNT_FIELDS + SUM_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.malformed.merge(other.malformed)
        self.latency.merge(other.latency)
        self.error_kinds.update(other.error_kinds)
        self.topics.update(other.topics)
        self.first_ts = min((x for x in (self.first_ts, other.first_ts) if x is not None), default=None)
        self.last_ts = max((x for x in (self.last_ts, other.last_ts) if x is not None), default=None)
        for start, w in other.windows.items():
            mine = self.windows.setdefault(start, Window())
            mine.requests += w.requests
            mine.satisfaction_sum += w.satisfaction_sum
            mine.satisfaction_n += w.satisfaction_n
            for name, v in w.proxy_sum.items():
                mine.proxy_sum[name] = mine.proxy_sum.get(name, 0.0) + v
                mine.proxy_n[name] = mine.proxy_n.get(name, 0) + w.proxy_n[name]
        # Reservoirs: each slot comes from either side in proportion to the records behind it,
        # which keeps the merged sample uniform over both parts.
        n_self, n_other = self.requests, other.requests
        self.requests += n_other
        if len(self.sample_lengths) + len(other.sample_lengths) <= SAMPLE_SIZE:
            self.sample_lengths += other.sample_lengths
            self.sample_prompts += other.sample_prompts
            self.sample_latency += other.sample_latency
            return
        take_other = self._rng.random(SAMPLE_SIZE) < n_other / max(1, n_self + n_other)
        mine_idx = self._rng.permutation(len(self.sample_lengths))
        other_idx = self._rng.permutation(len(other.sample_lengths))
        lengths, prompts, latency = [], [], []
        i = j = 0
        for use_other in take_other.tolist():
            if (use_other and j < len(other_idx)) or i >= len(mine_idx):
                src, k, j = other, int(other_idx[j]), j + 1
            else:
                src, k, i = self, int(mine_idx[i]), i + 1
            lengths.append(src.sample_lengths[k])
            prompts.append(src.sample_prompts[k])
            latency.append(src.sample_latency[k])
        self.sample_lengths, self.sample_prompts, self.sample_latency = lengths, prompts, latency

    @property
    def span_hours(self) -> float | None:
        if not (self.first_ts and self.last_ts):
            return None
        try:
            a, b = datetime.fromisoformat(self.first_ts), datetime.fromisoformat(self.last_ts)
        except ValueError:
            return None
        return (b - a).total_seconds() / 3600
