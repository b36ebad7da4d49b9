"""`releasectl monitor` as a function: scan the logs, evaluate the release's alerts, detect drift
and reward collapse, and roll back on a firing rollback trigger when asked."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from releasectl import safeio
from releasectl.errors import BadInput
from releasectl.monitoring.families import CostBasis, LogResolver, compute_metrics, cost_source, metrics_table
from releasectl.monitoring.stats import LogStats, scan

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> timedelta:
    """'30m', '1h', '1d' -> timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise BadInput(
            f"--window: cannot read '{text}'", hint="use a positive number with a unit: 30m, 1h, 6h, 1d"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def find_releases_root(start: Path | None = None) -> Path | None:
    """The releases repository root (a folder holding releases/), from RELEASECTL_ROOT or the cwd up."""
    from releasectl.repo import find_repo_root

    root = find_repo_root((start or Path.cwd()) / "releases" / "_")
    return root if root is not None and (root / "releases").is_dir() else None


def resolve_release(root: Path | None, release: str | None, channel: str) -> tuple[str | None, str]:
    """The release to monitor: --release, else the one `channel` serves; and how it was chosen."""
    if release:
        return release, "--release"
    if root is None or not safeio.present(root / "releases" / "channels.yaml", what="channels"):
        return None, "no releases/channels.yaml found; alerts need --release or a releases repository"
    from releasectl.channels import read_state

    current = read_state(root).channels.get(channel)
    if not current:
        return None, f"channel '{channel}' serves nothing yet"
    return current, f"served by {channel}"


def monitored_release(
    root: Path | None, release: str | None, channel: str, auto_rollback: bool
) -> tuple[Path | None, str | None, str, Any]:
    """(releases root, the release monitored, how it was chosen, its loaded manifest or None)."""
    root = root or find_releases_root()
    if auto_rollback and root is None:
        raise BadInput(
            "--auto-rollback needs a releases repository (a folder with releases/channels.yaml)",
            hint="run from the releases repository or set RELEASECTL_ROOT",
        )
    name, how = resolve_release(root, release, channel)
    if name is None:
        return root, None, how, None
    if root is None:
        raise BadInput(
            f"--release {name}: no releases/ folder here",
            hint="run from the releases repository or set RELEASECTL_ROOT",
        )
    from releasectl.manifest.loader import load_manifest, release_path

    return root, name, how, load_manifest(release_path(root, name), root)


def run_monitor(
    logs: Path,
    *,
    release: str | None = None,
    baseline_logs: Path | None = None,
    window: str = "1h",
    auto_rollback: bool = False,
    channel: str = "production",
    root: Path | None = None,
    progress: Any = None,
    render: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Everything `releasectl monitor` reports, as one JSON-ready dict (`exit_code` included)."""
    win = parse_window(window)
    root, name, how, loaded = monitored_release(root, release, channel, auto_rollback)
    infra = loaded.manifest.infrastructure if loaded else None
    basis = CostBasis(infra.gpu_hourly_usd, infra.tokens_per_second_per_gpu) if infra else CostBasis()

    current = scan(logs, win, progress)
    base: LogStats | None = scan(baseline_logs, win, progress) if baseline_logs else None
    obs = compute_metrics(current, basis)
    base_obs = compute_metrics(base, basis) if base else None
    resolver = LogResolver(obs, base_obs)

    from releasectl.monitoring.drift import detect_drift, detect_reward_collapse

    alerts: list[dict[str, Any]] = []
    if loaded is not None:
        from releasectl.monitoring.alerts import evaluate_alerts

        alerts = evaluate_alerts(loaded, resolver)
    drift = detect_drift(current, base) if base else []
    collapse = detect_reward_collapse(current)
    fired = [a for a in alerts if a["fired"]]
    result: dict[str, Any] = {
        "logs": str(logs),
        "baseline_logs": str(baseline_logs) if baseline_logs else None,
        "release": name,
        "release_source": how,
        "channel": channel,
        "requests": current.requests,
        "span_hours": current.span_hours,
        "first_timestamp": current.first_ts,
        "last_timestamp": current.last_ts,
        "malformed": current.malformed.to_dict(),
        "latency_estimate": "exact"
        if current.latency.exact
        else f"log-bucket sketch, relative error <= {current.latency.alpha:.0%}",
        "reader": {"engine": current.reader, "note": current.reader_note},
        "metrics": metrics_table(obs, cost_source(current, basis)),
        "errors_by_kind": dict(current.error_kinds.most_common()),
        "alerts": alerts,
        "fired": [a["name"] for a in fired],
        "drift": drift,
        "reward_collapse": collapse,
        "rollback": None,
    }
    triggers = [a for a in fired if a["rollback"]]
    if auto_rollback and triggers and root is not None:
        result["rollback"] = _roll_back(root, channel, name, triggers, logs, render)
    elif triggers:
        result["rollback"] = {
            "status": "not requested",
            "triggers": [a["name"] for a in triggers],
            "hint": f"rerun with --auto-rollback, or: releasectl rollback --channel {channel} --reason '...'",
        }
    result["exit_code"] = 1 if fired else 0
    return result


def _roll_back(
    root: Path,
    channel: str,
    release: str | None,
    triggers: list[dict[str, Any]],
    logs: Path | str,
    render: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The same code path as `releasectl rollback`, with the firing alerts as reason and trigger;
    `render` re-renders the served config in the same commit (as `rollback --render`)."""
    from releasectl.channels import Refused, rollback_channel

    reason = "monitor alert " + "; ".join(
        f"{a['name']}: {a['rule']} failed ({a['detail']})" for a in triggers
    )
    trigger = {
        "source": "releasectl monitor",
        ("prometheus" if str(logs).startswith("http") else "logs"): str(logs),
        "alerts": [{k: a[k] for k in ("name", "rule", "observed", "threshold")} for a in triggers],
    }
    from releasectl.channels.state import read_state

    rollout = read_state(root, channel_needed=channel).rollouts.get(channel)
    try:
        if rollout is not None and rollout.get("release") == release:
            # The alert is on the candidate of a rollout in progress: its rollback is the abort
            # (all traffic back to the release the channel holds), through the same locked move.
            from releasectl.rollout.steps import abort_rollout

            moved = abort_rollout(root, channel, reason=reason, trigger=trigger, render=render)
            return {"status": "aborted rollout", **moved.to_dict()}
        moved = rollback_channel(root, channel, reason=reason, expect=release, trigger=trigger, render=render)
    except Refused as e:
        return {"status": "refused", "message": e.message, "hint": e.hint}
    return {"status": "rolled back", **moved.to_dict()}


def run_monitor_prometheus(
    url: str,
    *,
    release: str | None = None,
    baseline_release: str | None = None,
    window: str = "1h",
    auto_rollback: bool = False,
    channel: str = "production",
    root: Path | None = None,
    render: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`releasectl monitor --prometheus URL`: the same manifest alerts, SLOs and rollback triggers,
    on the release's series in Prometheus. An alert on a mapped metric with no series is "no data"
    (inconclusive, and the command does not exit 0); an alert on a metric Prometheus does not carry
    (satisfaction, say) is reported as not measured by this source."""
    import math

    from releasectl.gate.rules import Observation
    from releasectl.monitoring.families import LogResolver
    from releasectl.monitoring.prometheus import (
        PrometheusClient,
        parse_window,
        query_map_for,
        release_metrics,
    )

    client = PrometheusClient(url)  # checks the URL; client.url is what is shown (userinfo redacted)
    window = parse_window(window)
    root, name, how, loaded = monitored_release(root, release, channel, auto_rollback)
    if name is None or root is None:
        raise BadInput(f"no release to monitor: {how}", hint="pass --release vX.Y")
    queries = query_map_for(loaded)  # vLLM's names + policy.prometheus
    current = release_metrics(client, queries, name, window)
    base = release_metrics(client, queries, baseline_release, window) if baseline_release else None
    requests = current.values.get("requests")
    n = int(requests) if requests else None
    # A quantile Prometheus answered +Inf lies beyond the largest finite bucket bound: above that
    # bound, below nothing. Each alert is evaluated at both ends; where they agree that is its
    # outcome (a p95 beyond a 7,680 s bucket fails `<= 5000`), where not it is inconclusive.
    beyond = _beyond_buckets(client, queries, {"current": current, "baseline": base}, window)

    def observations(values: dict[str, float | None], side: str, at_bound: bool) -> dict[str, Observation]:
        out = {}
        for metric, v in values.items():
            if v is not None and math.isinf(v) and at_bound:
                v = math.nextafter(beyond[side].get(metric, 0.0), math.inf)  # above the bound
            reason = None if v is not None else f"no data: no series for {metric}"
            out[metric] = Observation(v, n=n, inconclusive_reason=reason)
        return out

    from releasectl.monitoring.alerts import evaluate_alerts

    def alerts_at(at_bound: bool) -> list[dict[str, Any]]:
        resolver = LogResolver(
            observations(current.values, "current", at_bound),
            observations(base.values, "baseline", at_bound) if base else None,
        )
        return evaluate_alerts(loaded, resolver)

    alerts = alerts_at(True)
    if beyond["current"] or beyond["baseline"]:
        alerts = [_both_ends(lo, hi, beyond) for lo, hi in zip(alerts, alerts_at(False), strict=True)]
    for a in alerts:
        if a["outcome"] == "inconclusive" and "unknown log metric" in (a["detail"] or ""):
            a["outcome"], a["detail"] = "not measured", "this metrics source has no query for it (QueryMap)"
    fired = [a for a in alerts if a["fired"]]
    no_data = [a["name"] for a in alerts if a["outcome"] == "inconclusive"]
    result: dict[str, Any] = {
        "source": {"prometheus": client.url, "window": window, "queries": current.queries},
        "release": name,
        "release_source": how,
        "baseline_release": baseline_release,
        "channel": channel,
        "metrics": _json_values(current.values),
        "baseline_metrics": _json_values(base.values) if base else None,
        # quantiles Prometheus answered +Inf: above the largest finite bucket bound (ms; 0 unknown)
        "beyond_largest_bucket": beyond,
        "has_data": current.has_data,
        "alerts": alerts,
        "fired": [a["name"] for a in fired],
        "no_data": no_data,
        "rollback": None,
    }
    triggers = [a for a in fired if a["rollback"]]
    if auto_rollback and triggers:
        result["rollback"] = _roll_back(root, channel, name, triggers, client.url, render)
    elif triggers:
        result["rollback"] = {
            "status": "not requested",
            "triggers": [a["name"] for a in triggers],
            "hint": f"rerun with --auto-rollback, or: releasectl rollback --channel {channel} --reason '...'",
        }
    # No data is never an all-clear.
    result["exit_code"] = 1 if fired or no_data or not current.has_data else 0
    return result


def _json_values(values: dict[str, float | None]) -> dict[str, float | None]:
    """Metric values for JSON: +Inf (a quantile beyond the largest bucket) is null there."""
    import math

    return {k: None if v is not None and math.isinf(v) else v for k, v in values.items()}


def _beyond_buckets(
    client: Any, queries: Any, sides: dict[str, Any], window: str
) -> dict[str, dict[str, float]]:
    """For each side, the quantiles Prometheus answered +Inf and the largest finite bucket bound
    (ms) they lie beyond: the latency histogram's for latency_p*, else 0 (unknown)."""
    import math

    from releasectl.monitoring.prometheus import release_histogram

    out: dict[str, dict[str, float]] = {"current": {}, "baseline": {}}
    for side, metrics in sides.items():
        infinite = [
            m for m, v in (metrics.values.items() if metrics else ()) if v is not None and math.isinf(v)
        ]
        if not infinite:
            continue
        bound = 0.0
        if any(m.startswith("latency_p") for m in infinite):
            histogram, _ = release_histogram(client, queries, metrics.release, window)
            finite = [b for b in (histogram.bounds if histogram else ()) if math.isfinite(b)]
            bound = max(finite) * 1000 if finite else 0.0
        out[side] = {m: bound if m.startswith("latency_p") else 0.0 for m in infinite}
    return out


def _both_ends(lo: dict[str, Any], hi: dict[str, Any], beyond: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One alert evaluated with each +Inf quantile at its bucket bound (`lo`) and at +Inf (`hi`)."""
    if lo["outcome"] == hi["outcome"] and lo["observed"] == hi["observed"]:
        return lo
    names = sorted({m for side in beyond.values() for m in side})
    what = ", ".join(names) + " beyond the largest finite latency bucket (Prometheus answered +Inf)"
    if lo["outcome"] == hi["outcome"]:
        return {
            **lo,
            "observed": None,
            "detail": f"{what}: {lo['detail']} holds at the bucket bound and beyond",
        }
    return {
        **lo,
        "outcome": "inconclusive",
        "fired": False,
        "observed": None,
        "detail": f"{what}: the buckets cannot say whether the rule holds ({lo['detail']} at the bound)",
    }
