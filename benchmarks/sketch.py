"""Latency quantiles: `releasectl.monitoring.sketch.QuantileSketch` against the `ddsketch` package
(Datadog's DDSketch), in the same run, on the same values.

Measures, for each sketch with a 1 % relative-accuracy target:
- accuracy: relative error of p50/p90/p95/p99/p99.9 against numpy's exact percentile (the
  sketch's guarantee is on the value of the rank-q element, so the reference for both is the
  exact order statistic at rank q*(n-1), "lower" interpolation);
- ingest speed, the way the log reader feeds it: batches of ~15,000 values (one 4 MB chunk);
- merge speed (the parallel reader merges one sketch per worker);
- whether the DuckDB reader can restore it from SQL totals (bucket counts computed in SQL):
  ours has `QuantileSketch.restore`; ddsketch has no public way to set bucket counts.

Run: .venv/bin/python benchmarks/sketch.py [--n 2000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np


def _workload(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Latencies: a lognormal body (median ~665 ms) plus a 1 % slow tail, as in the example logs.
    body = rng.lognormal(6.5, 0.8, n)
    tail = rng.random(n) < 0.01
    body[tail] *= rng.uniform(5, 50, int(tail.sum()))
    return body


QS = (0.5, 0.9, 0.95, 0.99, 0.999)


def _ours(values: np.ndarray, batch: int) -> tuple[float, object]:
    from releasectl.monitoring.sketch import QuantileSketch

    t = time.perf_counter()
    s = QuantileSketch(relative_error=0.01, exact_limit=0)  # sketch from the first value
    for i in range(0, len(values), batch):
        s.add_many(values[i : i + batch].tolist())
    return time.perf_counter() - t, s


def _dd(values: np.ndarray, batch: int) -> tuple[float, object]:
    from ddsketch import DDSketch

    t = time.perf_counter()
    s = DDSketch(relative_accuracy=0.01)
    add = s.add
    for i in range(0, len(values), batch):
        for v in values[i : i + batch].tolist():  # no batch API: one Python call per value
            add(v)
    return time.perf_counter() - t, s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=15_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    values = _workload(args.n)
    exact = np.sort(values)
    truth = {q: float(exact[math.floor(q * (len(exact) - 1))]) for q in QS}

    t_ours, ours = _ours(values, args.batch)
    t_dd, dd = _dd(values, args.batch)
    err_ours = {q: abs(ours.quantile(q) - truth[q]) / truth[q] for q in QS}  # type: ignore[attr-defined]
    err_dd = {q: abs(dd.get_quantile_value(q) - truth[q]) / truth[q] for q in QS}  # type: ignore[attr-defined]

    # Merge: 8 worker sketches into one.
    parts = np.array_split(values, 8)
    ours_parts = [_ours(p, args.batch)[1] for p in parts]
    dd_parts = [_dd(p, args.batch)[1] for p in parts]
    t = time.perf_counter()
    for p in ours_parts[1:]:
        ours_parts[0].merge(p)  # type: ignore[attr-defined]
    t_merge_ours = time.perf_counter() - t
    t = time.perf_counter()
    for p in dd_parts[1:]:
        dd_parts[0].merge(p)  # type: ignore[attr-defined]
    t_merge_dd = time.perf_counter() - t
    same_buckets = all(
        ours.quantile(q) == ours_parts[0].quantile(q)  # type: ignore[attr-defined]
        for q in QS
    )

    # Same estimates? Both map x to bucket ceil(ln x / ln γ) and report γ^(k-1)(1+α).
    agree = {q: abs(ours.quantile(q) - dd.get_quantile_value(q)) / truth[q] for q in QS}  # type: ignore[attr-defined]
    doc = {
        "n": args.n,
        "batch": args.batch,
        "ingest_s": {"releasectl": round(t_ours, 3), "ddsketch": round(t_dd, 3)},
        "ingest_ns_per_value": {
            "releasectl": round(t_ours / args.n * 1e9, 1),
            "ddsketch": round(t_dd / args.n * 1e9, 1),
        },
        "merge_8_s": {"releasectl": round(t_merge_ours, 5), "ddsketch": round(t_merge_dd, 5)},
        "max_relative_error": {
            "releasectl": round(max(err_ours.values()), 5),
            "ddsketch": round(max(err_dd.values()), 5),
        },
        "relative_error": {
            name: {f"p{q * 100:g}": round(e, 5) for q, e in errs.items()}
            for name, errs in (("releasectl", err_ours), ("ddsketch", err_dd))
        },
        "estimates_differ_by_at_most": round(max(agree.values()), 6),
        "merged_equals_single": same_buckets,
        "restorable_from_sql_totals": {"releasectl": True, "ddsketch": False},
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{args.n:,} latencies, batches of {args.batch:,}")
    print(f"{'':12} {'ingest s':>9} {'ns/value':>9} {'merge 8 s':>10} {'max rel err':>12}")
    for name in ("releasectl", "ddsketch"):
        print(
            f"{name:12} {doc['ingest_s'][name]:>9} {doc['ingest_ns_per_value'][name]:>9}"
            f" {doc['merge_8_s'][name]:>10} {doc['max_relative_error'][name]:>12}"
        )
    print(f"speed: ddsketch ingest is {t_dd / t_ours:.1f}x slower")
    print(f"estimates of the two differ by at most {doc['estimates_differ_by_at_most']:.2e} (relative)")
    print(json.dumps(doc["relative_error"]))


if __name__ == "__main__":
    main()
