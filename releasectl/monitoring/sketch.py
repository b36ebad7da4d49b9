"""Streaming quantiles with bounded memory.

Exact up to `exact_limit` values; beyond that a DDSketch-style log-bucket histogram whose
quantile estimates have a relative error of at most `relative_error` (1 % by default) for
positive values: bucket k holds (γ^(k-1), γ^k] with γ = (1+α)/(1-α) and reports 2γ^k/(γ+1).
Memory is one counter per non-empty bucket: about ln(max/min)/ln(γ), ~700 buckets for 1 ms..1e6 ms.
"""

from __future__ import annotations

import math
from array import array


class QuantileSketch:
    def __init__(self, relative_error: float = 0.01, exact_limit: int = 100_000) -> None:
        self.alpha = relative_error
        self.gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self.gamma)
        self.exact_limit = exact_limit
        self._values: array[float] | None = array("d")
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def restore(
        cls,
        count: int,
        total: float,
        lo: float,
        hi: float,
        *,
        values: list[float] | None = None,
        buckets: dict[int, int] | None = None,
        zeros: int = 0,
    ) -> QuantileSketch:
        """A sketch from totals computed elsewhere (the DuckDB reader): every value when there
        are at most `exact_limit`, else the bucket counts (bucket k as in `_bucket`) and the
        number of values <= 0."""
        sketch = cls()
        if not count:
            return sketch
        sketch.count, sketch.total, sketch.min, sketch.max = count, total, lo, hi
        if values is not None and count <= sketch.exact_limit:
            sketch._values = array("d", values)
        else:
            sketch._values = None
            sketch._buckets = dict(buckets or {})
            sketch._zeros = zeros
        return sketch

    @property
    def exact(self) -> bool:
        return self._values is not None

    def add(self, x: float) -> None:
        self.count += 1
        self.total += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if self._values is not None:
            self._values.append(x)
            if len(self._values) > self.exact_limit:
                values, self._values = self._values, None
                for v in values:
                    self._bucket(v)
            return
        self._bucket(x)

    def add_many(self, xs: list[float]) -> None:
        """Add a batch: the exact buffer grows by extend, the histogram by numpy bincounts."""
        if not xs:
            return
        import numpy as np

        self.count += len(xs)
        self.total += float(sum(xs))
        self.min = min(self.min, min(xs))
        self.max = max(self.max, max(xs))
        if self._values is not None:
            self._values.extend(xs)
            if len(self._values) <= self.exact_limit:
                return
            xs, self._values = list(self._values), None
        arr = np.asarray(xs, dtype=np.float64)
        positive = arr[arr > 0]
        self._zeros += int(arr.size - positive.size)
        keys, counts = np.unique(
            np.ceil(np.log(positive) / self._log_gamma).astype(np.int64), return_counts=True
        )
        for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
            self._buckets[k] = self._buckets.get(k, 0) + c

    def merge(self, other: QuantileSketch) -> None:
        """Fold in another sketch with the same relative error."""
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if (
            self._values is not None
            and other._values is not None
            and len(self._values) + len(other._values) <= self.exact_limit
        ):
            self._values.extend(other._values)
            return
        for sketch in (self, other):
            if sketch._values is not None:
                values, sketch._values = sketch._values, None
                for v in values:
                    sketch._bucket(v)
        self._zeros += other._zeros
        for k, c in other._buckets.items():
            self._buckets[k] = self._buckets.get(k, 0) + c

    def _bucket(self, x: float) -> None:
        if x <= 0:
            self._zeros += 1
            return
        k = math.ceil(math.log(x) / self._log_gamma)
        self._buckets[k] = self._buckets.get(k, 0) + 1

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1): linear interpolation when exact (numpy's default), else the
        bucket estimate within the relative error."""
        if not self.count:
            return None
        if self._values is not None:
            import numpy as np

            return float(np.percentile(np.frombuffer(self._values, dtype=np.float64), q * 100))
        rank = q * (self.count - 1)
        seen = self._zeros
        if rank < seen:
            return 0.0
        for k in sorted(self._buckets):
            seen += self._buckets[k]
            if seen > rank:
                return min(self.max, max(self.min, 2 * self.gamma**k / (self.gamma + 1)))
        return self.max
