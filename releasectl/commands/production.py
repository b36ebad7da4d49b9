"""`releasectl monitor`, `releasectl canary` and `releasectl feedback`: the production loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, esc, format_option, say, text
from releasectl.deploy import TARGETS as DEPLOY_TARGETS

LogPath = click.Path(path_type=Path, dir_okay=False)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "%":
        return f"{v:.2%}"
    if unit == "$":
        return f"${v:.6f}" if v < 0.01 else f"${v:,.4f}"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}{unit}"
    return f"{v:,.0f}{unit}"


def _unit(name: str) -> str:
    if "latency" in name:
        return " ms"
    if name.endswith("_rate"):
        return "%"
    if name.startswith("cost"):
        return "$"
    return ""


def _panels(result: dict[str, Any]) -> None:
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.table import Table

    panels = []
    for family in ("performance", "cost", "reliability", "quality"):
        t = Table(show_header=False, box=None, pad_edge=False)
        t.add_column(style="bold")
        t.add_column(justify="right")
        for name, m in result["metrics"][family].items():
            if not isinstance(m, dict):
                continue
            value = _fmt(m["value"], _unit(name))
            if name in ("malformed_json_rate", "format_compliance") and m.get("n"):
                value += f" (of {m['n']:,})"
            t.add_row(name, value)
        if family == "cost":
            t.add_row("source", text(result["metrics"]["cost"]["source"]))
        panels.append(Panel(t, title=family, title_align="left", expand=False))
    out = console()
    span = f" over {result['span_hours']:.1f} h" if result.get("span_hours") else ""
    say(
        "[bold]{}[/] requests{} from {} · release {} ({}) · latency {} · read by {}",
        f"{result['requests']:,}",
        span,
        result["logs"],
        result["release"] or "–",
        result["release_source"],
        result["latency_estimate"],
        result["reader"]["engine"],
    )
    out.print(Columns(panels))
    mal = result["malformed"]
    if mal["count"]:
        listed = ", ".join(f"{m['line']} ({m['reason']})" for m in mal["lines"][:5])
        more = f" … first {len(mal['lines'])} in --format json" if mal["count"] > 5 else ""
        say("[yellow]⚠ {} malformed line(s) skipped:[/] {}{}", mal["count"], listed, more)


def _alerts_section(result: dict[str, Any]) -> None:
    out = console()
    if result["alerts"]:
        out.print("[bold]alerts[/]")
        for a in result["alerts"]:
            mark = {
                "pass": "[green]✓[/]",
                "fail": "[red]✗ FIRED[/]",
                "inconclusive": "[yellow]?[/]",
                "not measured": "[dim]–[/]",
            }[a["outcome"]]
            trig = " [red](rollback trigger)[/]" if a["rollback"] and a["fired"] else ""
            out.print(
                f"  {mark} {esc(a['name'])} \\[{esc(a['family'])}] {esc(a['rule'])} — {esc(a['detail'])}{trig}"
            )
    else:
        out.print("[dim]alerts: none evaluated (no release manifest; pass --release vX.Y)[/]")
    if "reward_collapse" in result:  # log trends; Prometheus gives none
        _log_trends(result)
    rb = result["rollback"]
    if rb:
        if rb["status"] == "rolled back":
            say(
                "[red]rolled back[/] {}: {} → {} (revision {})",
                rb["channel"],
                rb["from"],
                rb["to"],
                rb["revision"],
            )
        elif rb["status"] == "aborted rollout":
            say(
                "[red]aborted the rollout[/] on {}: all traffic back to {} (revision {})",
                rb["channel"],
                rb["from"],
                rb["revision"],
            )
        elif rb["status"] == "refused":
            say("[red]rollback refused:[/] {}{}", rb["message"], f"; {rb['hint']}" if rb.get("hint") else "")
        else:
            say("[yellow]rollback triggers fired:[/] {}; {}", ", ".join(rb["triggers"]), rb["hint"])
    if result["fired"]:
        say("[red]{} alert(s) fired:[/] {}", len(result["fired"]), ", ".join(result["fired"]))


def _log_trends(result: dict[str, Any]) -> None:
    """Drift against --baseline-logs and reward collapse across windows (the log path only)."""
    out = console()
    if result["drift"]:
        say("[bold]drift[/] (vs {})", result["baseline_logs"])
        for d in result["drift"]:
            mark = "[red]✗ drift[/]" if d["fired"] else "[green]✓[/]"
            stat = "–" if d["statistic"] is None else f"{d['statistic']:.4g}"
            extra = f", p={d['p_value']:.2g}" if "p_value" in d else ""
            extra += f", {d['level']}" if "level" in d else ""
            extra += f", new topics: {', '.join(d['new_topics'])}" if d.get("new_topics") else ""
            out.print(f"  {mark} {esc(d['name'])} = {stat}{esc(extra)} (threshold {esc(d['threshold'])})")
    rc = result["reward_collapse"]
    if rc.get("skipped"):
        say("[dim]reward collapse: skipped ({})[/]", rc["threshold"])
    else:
        mark = "[red]✗ reward collapse[/]" if rc["fired"] else "[green]✓ no reward collapse[/]"
        parts = [f"satisfaction τ={rc['satisfaction']['tau']:+.2f} (p={rc['satisfaction']['p_value']:.2g})"]
        parts += [f"{k} τ={v['tau']:+.2f} (p={v['p_value']:.2g})" for k, v in rc["proxies"].items()]
        out.print(f"{mark} over {rc['windows']} windows of {esc(rc['window'])}: " + esc(", ".join(parts)))


def _prometheus_summary(result: dict[str, Any]) -> None:
    say(
        "{} ({}) from {} over {}",
        result["release"],
        result["release_source"],
        result["source"]["prometheus"],
        result["source"]["window"],
    )
    beyond = result.get("beyond_largest_bucket", {}).get("current", {})
    for metric, value in result["metrics"].items():
        if metric in beyond:
            bound = f"> {beyond[metric]:g} ms, " if beyond[metric] else ""
            say("  {}: {}beyond the largest finite latency bucket (Prometheus answered +Inf)", metric, bound)
        else:
            say("  {}: {}", metric, "no data" if value is None else f"{value:.4g}")
    if result["no_data"]:
        say("[yellow]no data[/] for {}: inconclusive, not an all-clear", ", ".join(result["no_data"]))


@click.command()
@click.option(
    "--logs", default=None, type=LogPath, help="Inference logs: JSON lines, plain or gzip (docs/logs.md)."
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    metavar="URL",
    help="Read the release's serving metrics from Prometheus (vLLM's metric names) instead of logs.",
)
@click.option(
    "--baseline-release",
    default=None,
    help="With --prometheus: the release whose series `baseline.*` rules compare against.",
)
@click.option(
    "--release", default=None, help="Release whose manifest alerts apply (default: the one --channel serves)."
)
@click.option(
    "--baseline-logs",
    type=LogPath,
    default=None,
    help="Logs to compare against for drift (e.g. last week's).",
)
@click.option(
    "--window", default="1h", show_default=True, help="Time window for reward-collapse trends: 30m, 1h, 1d."
)
@click.option(
    "--auto-rollback",
    is_flag=True,
    help="Roll the channel back (as `releasectl rollback`) when an alert with rollback: true fires.",
)
@click.option(
    "--channel",
    type=click.Choice(["staging", "canary", "production"]),
    default="production",
    show_default=True,
    help="Channel the logs come from.",
)
@click.option(
    "--render",
    type=click.Choice(list(DEPLOY_TARGETS)),
    multiple=True,
    help="With --auto-rollback: re-render what serves the channel (deploy/rendered/CHANNEL) in the "
    "rollback's commit, as `rollback --render`. Repeatable.",
)
@format_option()
def monitor(
    logs: Path | None,
    prometheus_url: str | None,
    baseline_release: str | None,
    release: str | None,
    baseline_logs: Path | None,
    window: str,
    auto_rollback: bool,
    channel: str,
    render: tuple[str, ...],
    fmt: str,
) -> int:
    """Compute performance, cost and reliability metrics from inference logs and fire alerts.

    Evaluates the release manifest's alerts and SLOs, checks drift against --baseline-logs and
    reward collapse across --window windows. Exit 0 when no alert fires, 1 when one does.
    """
    from releasectl.console import progress
    from releasectl.monitoring.monitor import run_monitor, run_monitor_prometheus

    if (logs is None) == (prometheus_url is None):
        from releasectl.errors import BadInput

        raise BadInput("give exactly one of --logs FILE and --prometheus URL")
    if render and not auto_rollback:
        from releasectl.errors import BadInput

        raise BadInput("--render re-renders with an automatic rollback: add --auto-rollback")
    if prometheus_url is not None:
        result = run_monitor_prometheus(
            prometheus_url,
            release=release,
            baseline_release=baseline_release,
            window=window,
            auto_rollback=auto_rollback,
            channel=channel,
            render=render,
        )
        if fmt == "json":
            emit_json(result)
        else:
            _prometheus_summary(result)
            _alerts_section(result)
        return int(result["exit_code"])
    assert logs is not None
    with progress("reading logs", None, disable=fmt == "json") as bar:
        task = bar.add_task("reading logs (records)", total=None)
        result = run_monitor(
            logs,
            release=release,
            baseline_logs=baseline_logs,
            window=window,
            auto_rollback=auto_rollback,
            channel=channel,
            render=render,
            progress=lambda done: bar.update(task, completed=done),
        )
    if fmt == "json":
        emit_json(result)
    else:
        _panels(result)
        _alerts_section(result)
    return int(result["exit_code"])


@click.command()
@click.option(
    "--logs", required=True, type=LogPath, help="Inference logs: JSON lines, plain or gzip (docs/logs.md)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for sft_pairs.jsonl, preference_pairs.jsonl, failures.jsonl, summary.json/.md.",
)
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="params.yaml whose feedback: section sets the hygiene steps (default: ./params.yaml when present).",
)
@format_option()
def feedback(logs: Path, out: Path, params_path: Path | None, fmt: str) -> int:
    """Run the flywheel: mine failures and successes, filter, dedup, audit bias, scrub PII,
    cluster failure modes, write SFT and preference pairs, and route each mode to an intervention.
    """
    from releasectl.flywheel.flywheel import load_params, run_feedback

    summary = run_feedback(logs, out, load_params(params_path))
    if fmt == "json":
        emit_json(summary)
        return 0
    from rich.table import Table

    o = console()
    say(
        "{} records · {} failures, {} strong successes mined · {} malformed lines",
        f"{summary['records']:,}",
        summary["mined"]["failures"],
        summary["mined"]["strong_successes"],
        summary["malformed"]["count"],
    )
    for h in summary["hygiene"]:
        extra = {k: v for k, v in h.items() if k not in ("step", "removed")}
        say("  {}: removed {}{}", h["step"], h["removed"], f" ({extra})" if extra else "")
    say("  PII scrubbed: {}", ", ".join(f"{k} {v}" for k, v in summary["pii"].items()) or "none")
    t = Table(title="failure modes → interventions", title_justify="left")
    for col in ("cluster", "size", "top terms", "intervention", "why"):
        t.add_column(col)
    for c in summary["clusters"]:
        t.add_row(
            text(c["id"]),
            text(c["size"]),
            text(", ".join(c["top_terms"][:4])),
            text(f"{c['intervention']} ({c['time_to_fix']})"),
            text(c["reason"]),
        )
    o.print(t)
    say(
        "wrote {}/: sft_pairs.jsonl ({}), preference_pairs.jsonl ({}), failures.jsonl, summary.json, summary.md",
        out,
        summary["outputs"]["sft_pairs"],
        summary["outputs"]["preference_pairs"],
    )
    return 0


@click.command()
@click.argument("manifest", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--canary-logs",
    default=None,
    type=LogPath,
    help="Logs of the canary (the candidate release), JSON lines, plain or gzip.",
)
@click.option("--baseline-logs", default=None, type=LogPath, help="Logs of production over the same period.")
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    metavar="URL",
    help="Read both releases' serving metrics from Prometheus (vLLM's metric names) instead of logs.",
)
@click.option(
    "--release",
    default=None,
    help="With --prometheus: the candidate whose series are the canary (default: MANIFEST's release, else the canary channel's).",
)
@click.option(
    "--baseline-release",
    default=None,
    help="With --prometheus: the release whose series are the baseline (default: production's, else the candidate's parent).",
)
@click.option(
    "--window",
    default=None,
    help="With --prometheus: the range judged, e.g. 30m, 24h (default: --min-hours).",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Rules file (default: the manifest's policy.promotion.production file); only canary.* lines apply.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write canary.json here, for `releasectl gate --canary`.",
)
@click.option(
    "--min-requests",
    type=int,
    default=5000,
    show_default=True,
    help="Canary requests needed (N > this) for a conclusive verdict.",
)
@click.option(
    "--min-hours", type=float, default=24.0, show_default=True, help="Canary window needed, in hours."
)
@click.option(
    "--margin",
    type=float,
    default=0.10,
    show_default=True,
    help="Latency test: fail only when the canary is significantly slower by more than this fraction.",
)
@format_option()
def canary(
    manifest: Path | None,
    canary_logs: Path | None,
    baseline_logs: Path | None,
    prometheus_url: str | None,
    release: str | None,
    baseline_release: str | None,
    window: str | None,
    rules_path: Path | None,
    out: Path | None,
    min_requests: int,
    min_hours: float,
    margin: float,
    fmt: str,
) -> int:
    """Evaluate the staging→production canary rules on canary vs baseline traffic.

    From logs (--canary-logs, --baseline-logs) or from Prometheus (--prometheus URL: the two
    releases' vLLM series, selected by the release label). MANIFEST defaults to the release the
    canary channel serves. Verdict promote (exit 0), block or hold (exit 1); hold when N or the
    window is too small to decide, or a series is missing. Usable as an Argo Rollouts Job analysis.
    """
    from releasectl.errors import BadInput

    for name, value in (("--min-requests", min_requests), ("--min-hours", min_hours), ("--margin", margin)):
        if value < 0:
            raise BadInput(f"{name} must be >= 0, found {value}")
    if prometheus_url is None:
        if canary_logs is None or baseline_logs is None:
            raise BadInput("give --canary-logs and --baseline-logs, or --prometheus URL")
        given = [
            f
            for f, v in (
                ("--release", release),
                ("--baseline-release", baseline_release),
                ("--window", window),
            )
            if v
        ]
        if given:
            raise BadInput(f"{', '.join(given)} go with --prometheus; logs name their release by file")
        doc = _canary_from_logs(
            manifest, canary_logs, baseline_logs, rules_path, min_requests, min_hours, margin
        )
    else:
        if canary_logs is not None or baseline_logs is not None:
            raise BadInput("give logs or --prometheus URL, not both")
        doc = _canary_from_prometheus(
            prometheus_url,
            manifest,
            release,
            baseline_release,
            window,
            rules_path,
            min_requests,
            min_hours,
            margin,
        )
    if out is not None:
        from releasectl.console import dumps
        from releasectl.fsutil import atomic_write_text

        atomic_write_text(out, dumps(doc) + "\n")
    code = 0 if doc["verdict"] == "promote" else 1
    if fmt == "json":
        emit_json(doc)
        return code
    _canary_table(doc, margin)
    say("verdict: [bold]{}[/] — {}{}", doc["verdict"], doc["reason"], f" · wrote {out}" if out else "")
    return code


def _rules_and_basis(loaded: Any, rules_path: Path | None) -> tuple[list[Any], Path, Any]:
    """The canary.* rules (from --rules or the manifest's production policy) and the cost basis."""
    from releasectl.errors import BadInput
    from releasectl.monitoring.canary import canary_rules
    from releasectl.monitoring.families import CostBasis

    basis = CostBasis()
    if loaded is not None:
        infra = loaded.manifest.infrastructure
        basis = CostBasis(infra.gpu_hourly_usd, infra.tokens_per_second_per_gpu)
        if rules_path is None:
            stage = loaded.manifest.policy.promotion.get("production")
            if stage is None:
                raise BadInput(
                    f"{loaded.display}: policy.promotion has no 'production' rules file",
                    hint="add production: checklists/policies/staging_to_production.rules, or pass --rules",
                )
            rules_path = loaded.root / stage
    if rules_path is None:
        raise BadInput(
            "no rules: pass MANIFEST or --rules FILE",
            hint="e.g. releasectl canary releases/v1.3.yaml --canary-logs ... --baseline-logs ...",
        )
    rules = canary_rules(rules_path)
    if not rules:
        raise BadInput(
            f"{rules_path}: no canary.* rules",
            hint="canary rules look like: canary.latency_p95_ms.point <= 950",
        )
    return rules, rules_path, basis


def _canary_from_logs(
    manifest: Path | None,
    canary_logs: Path,
    baseline_logs: Path,
    rules_path: Path | None,
    min_requests: int,
    min_hours: float,
    margin: float,
) -> dict[str, Any]:
    from releasectl.manifest.loader import load_manifest
    from releasectl.monitoring.canary import run_canary
    from releasectl.monitoring.monitor import find_releases_root, resolve_release

    if manifest is None and rules_path is None:
        root = find_releases_root()
        name, _ = resolve_release(root, None, "canary")
        if name and root is not None:
            from releasectl.manifest.loader import release_path

            manifest = release_path(root, name)
    loaded = load_manifest(manifest) if manifest is not None else None
    rules, rules_path, basis = _rules_and_basis(loaded, rules_path)
    doc = run_canary(
        canary_logs,
        baseline_logs,
        rules,
        basis,
        min_requests=min_requests,
        min_hours=min_hours,
        margin=margin,
    )
    doc["rules_file"] = str(rules_path)
    return doc


def _canary_from_prometheus(
    url: str,
    manifest: Path | None,
    release: str | None,
    baseline_release: str | None,
    window: str | None,
    rules_path: Path | None,
    min_requests: int,
    min_hours: float,
    margin: float,
) -> dict[str, Any]:
    """The candidate as monitor chooses a release (on the canary channel), the baseline as the
    release production serves, else the candidate's parent."""
    from releasectl.errors import BadInput
    from releasectl.manifest.loader import load_manifest
    from releasectl.monitoring.canary import PrometheusCanary, run_canary_prometheus
    from releasectl.monitoring.monitor import find_releases_root, monitored_release, resolve_release
    from releasectl.monitoring.prometheus import PrometheusClient, parse_window, query_map_for

    client = PrometheusClient(url)
    window = parse_window(window or _hours_window(min_hours))
    root, loaded, how = find_releases_root(), None, "--release"
    if manifest is not None:
        loaded = load_manifest(manifest)
        if release and release != loaded.manifest.release:
            raise BadInput(f"MANIFEST is {loaded.manifest.release} but --release is {release}; give one")
        release, how = loaded.manifest.release, "MANIFEST"
    elif root is not None or release is None:
        root, release, how, loaded = monitored_release(root, release, "canary", False)
        if release is None:
            raise BadInput(f"no canary release: {how}", hint="pass MANIFEST or --release vX.Y")
    assert release is not None
    if baseline_release and root is not None:
        from releasectl.manifest.loader import release_path

        release_path(root, baseline_release)  # an unknown release is exit 2 with the nearest names
    baseline, baseline_how = resolve_release(root, baseline_release, "production")
    if baseline == release and not baseline_release:
        parent = loaded.manifest.parent if loaded is not None else None
        baseline, baseline_how = parent, f"the parent of {release} (production serves {release} itself)"
    if baseline is None:
        raise BadInput(f"no baseline release: {baseline_how}", hint="pass --baseline-release vX.Y")
    if baseline == release:
        raise BadInput(
            f"--baseline-release {baseline} is the candidate itself; compare against another release"
        )
    rules, rules_path, basis = _rules_and_basis(loaded, rules_path)
    source = PrometheusCanary(client, query_map_for(loaded), release, baseline, window)
    doc = run_canary_prometheus(
        source, rules, basis, min_requests=min_requests, min_hours=min_hours, margin=margin
    )
    doc["release_source"], doc["baseline_release_source"] = how, baseline_how
    doc["rules_file"] = str(rules_path)
    return doc


def _hours_window(hours: float) -> str:
    """--min-hours as a Prometheus range: 24 -> '24h', 0.5 -> '30m'; at least a minute."""
    if hours >= 1 and float(hours).is_integer():
        return f"{int(hours)}h"
    return f"{max(1, round(hours * 60))}m"


def _canary_table(doc: dict[str, Any], margin: float) -> None:
    from rich.table import Table

    hours = doc["window_hours"] or 0
    span = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    base_n = "–" if doc["baseline_requests"] is None else f"{doc['baseline_requests']:,}"
    if "prometheus" in doc:
        title = f"canary {doc['release']}: {doc['requests'] or 0:,} requests over {span} vs baseline {doc['baseline_release']}: {base_n} (Prometheus {doc['source']}, {doc['prometheus']['window']})"
    else:
        title = f"canary {doc['requests']:,} requests over {span} vs baseline {base_n}"
    t = Table(title=text(title), title_justify="left")
    for col in ("rule", "observed", "outcome", "detail"):
        t.add_column(col)
    colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for r in doc["rules"]:
        obs = "–" if r.get("observed") is None else f"{r['observed']:.4g}"
        t.add_row(
            text(r["rule"].split("#")[0].strip()),
            obs,
            text(r["outcome"], style=colour[r["outcome"]]),
            text(r["detail"]),
        )
    o = console()
    o.print(t)
    mw = doc["metrics"].get("latency_mann_whitney")
    if mw and mw.get("p_value") is not None:
        o.print(
            f"latency rank test (Mann-Whitney, one-sided, margin {margin:.0%}): median shift {mw['value']:+.1%}, p = {mw['p_value']:.3g}"
        )
    ht = doc["metrics"].get("latency_histogram_test")
    if ht:
        shift = "–" if ht["value"] is None else f"{ht['value']:+.1%}"
        found = ht.get("inconclusive_reason") or f"p = {ht['p_value']:.3g}"
        say(
            "latency histogram test (p95 vs baseline p95 × (1 + {})): p95 shift {}, {}",
            f"{margin:.0%}",
            shift,
            found,
        )
