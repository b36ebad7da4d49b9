"""Render gate.json as the PR report, within GitHub's comment size limit.

The budget goes to what matters most. When the report is too long, failing examples go first
(outputs shortened, then examples dropped), then slice rows (keeping the worst regressions),
then passing rules, then the pin list; the verdict and provenance always stay, and the report
says what it left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, zip_longest
from typing import Any

import jinja2
from markupsafe import Markup

from releasectl import __version__
from releasectl.github.limits import GITHUB_COMMENT_LIMIT, comment_length
from releasectl.report import filters
from releasectl.report.escape import mermaid_label, mermaid_text
from releasectl.report.marker import marker

# Margin under GitHub's limit (GITHUB_COMMENT_LIMIT) for the marker line and counting differences.
DEFAULT_BUDGET = GITHUB_COMMENT_LIMIT - 536
OUTPUT_LIMIT = 1_500
SHORT_OUTPUT_LIMIT = 300
# No budget holds more examples than this, so rendering the rest would be wasted work.
MAX_EXAMPLES_RENDERED = 400
CHART_SLICES = 30
MAX_PINS = 80
KEY_METRICS = 3

# What goes first when the report is too long: least important part first.
TRIM_ORDER = ("examples", "slices", "rules", "pins")
RULE_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}
VERDICT_MARK = {"promote": "✅", "block": "❌", "hold": "⏸"}
VERDICT_WORDS = {
    "promote": "PROMOTE: every rule passes",
    "block": "BLOCK: at least one rule fails",
    "hold": "HOLD: no rule fails, but some are inconclusive",
}
# Metrics worth a glance in the slice table, in this order, when a slice has them.
PREFERRED_METRICS = (
    "rule_violation_rate",
    "format_pass_rate",
    "math_correct_rate",
    "api_version_match_rate",
    "tool_call_correctness",
    "steps_to_solve_median",
    "latency_p95_ms",
    "tokens_per_request",
    "cost_per_1k_tokens_usd",
)


@dataclass(frozen=True)
class Report:
    """The rendered Markdown and what had to be left out to fit."""

    markdown: str
    slices_shown: int
    slices_total: int
    examples_shown: int
    examples_total: int
    outputs_shortened: bool

    @property
    def length(self) -> int:
        return comment_length(self.markdown)

    def summary(self) -> dict[str, Any]:
        return {
            "characters": self.length,
            "slices_shown": self.slices_shown,
            "slices_total": self.slices_total,
            "examples_shown": self.examples_shown,
            "examples_total": self.examples_total,
            "outputs_shortened": self.outputs_shortened,
        }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("releasectl.report", "templates"),
        autoescape=False,  # Markdown, not HTML: `filters.finalize` escapes instead
        finalize=filters.finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(filters.FILTERS)
    return env


def render_report(gate: dict[str, Any], budget: int = DEFAULT_BUDGET) -> Report:
    """Render `gate` (parsed gate.json) as Markdown no longer than `budget` characters."""
    env = _environment()
    page = env.get_template("report.md.j2")
    example = env.get_template("example.md.j2")
    rows = env.get_template("rows.md.j2").module
    base = _context(gate)
    slices = [_slice_row(s) for s in gate.get("slices") or []]
    rules, pins = base.pop("rules"), base.pop("pins")
    # Rows are rendered once here; fitting the budget re-renders only the page around them.
    for r in rules:
        r["md"] = _one_line(rows.rule_row(r))  # type: ignore[attr-defined]
    sampled = bool(base["sampling"] and base["sampling"]["k"])
    for s in slices:
        s["md"] = _one_line(rows.slice_row(s, filters.md(s["name"], 60), sampled))  # type: ignore[attr-defined]
    if base["aggregate"]:
        base["aggregate"]["md"] = _one_line(
            rows.slice_row(base["aggregate"], Markup("**aggregate**"), sampled)  # type: ignore[attr-defined]
        )
    examples = _round_robin(gate.get("failing_examples") or [])
    considered = examples[:MAX_EXAMPLES_RENDERED]

    def doc(parts: dict[str, list[Any]]) -> str:
        return page.render(
            **base,
            rules=parts["rules"],
            rules_total=len(rules),
            slices=parts["slices"],
            slices_total=len(slices),
            chart=_chart(parts["slices"], gate),
            examples=parts["examples"],
            examples_total=len(examples),
            pins=parts["pins"],
        )

    def fits(parts: dict[str, list[Any]]) -> bool:
        return comment_length(doc(parts)) <= budget

    full = [example.render(ex=_example(e, OUTPUT_LIMIT)) for e in considered]
    parts: dict[str, list[Any]] = {"examples": full, "slices": slices, "rules": rules, "pins": pins}
    shortened = False
    if not (fits(parts) and len(full) == len(examples)):
        # Spend the budget on what matters most: drop from the least important part first, and
        # within a part keep its most important items (worst slices, failing rules), in order.
        ranked = {
            "examples": list(range(len(full))),
            "slices": sorted(range(len(slices)), key=lambda i: _priority(slices[i])),
            "rules": sorted(range(len(rules)), key=lambda i: RULE_ORDER.get(str(rules[i].get("outcome")), 3)),
            "pins": list(range(len(pins))),
        }
        source: dict[str, list[Any]] = {"examples": full, "slices": slices, "rules": rules, "pins": pins}

        def kept(key: str, items: list[Any], k: int) -> list[Any]:
            return [items[i] for i in sorted(ranked[key][:k])]

        def most(key: str, items: list[Any]) -> int:
            return _largest(lambda k: fits({**parts, key: kept(key, items, k)}), len(items))

        for key in TRIM_ORDER:
            items = source[key]
            n = most(key, items)
            if key == "examples" and n < len(examples):
                short = [example.render(ex=_example(e, SHORT_OUTPUT_LIMIT)) for e in considered]
                if (m := most(key, short)) > n:
                    items, n, shortened = short, m, True
            parts[key] = kept(key, items, n)
            if fits(parts):
                break
    return Report(
        doc(parts), len(parts["slices"]), len(slices), len(parts["examples"]), len(examples), shortened
    )


def _one_line(text: str) -> str:
    return str(text).strip("\n")


def _largest(ok: Callable[[int], bool], upper: int) -> int:
    """The largest k in [0, upper] with ok(k), for ok monotone (true up to some k); 0 if none."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _priority(row: dict[str, Any]) -> tuple[float, str]:
    delta = row["delta"]
    return (delta if isinstance(delta, int | float) else 0.0, str(row["name"]))


def _round_robin(examples: list[Any]) -> list[dict[str, Any]]:
    """One failing example per slice in turn, so a short report still shows every failing slice."""
    by_slice: dict[str, list[dict[str, Any]]] = {}
    for e in examples:
        if isinstance(e, dict):
            by_slice.setdefault(str(e.get("slice", "")), []).append(e)
    return [e for e in chain.from_iterable(zip_longest(*by_slice.values())) if e is not None]


def _scalar(value: Any) -> float | None:
    """A metric's point value, whether stored as a number or as {point, lower_ci, ...}."""
    if isinstance(value, dict):
        value = value.get("point", value.get("value"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _side(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def _key_metrics(cand: dict[str, Any], base: dict[str, Any]) -> list[tuple[str, float | None, float]]:
    cm, bm = _side(cand.get("metrics")), _side(base.get("metrics"))
    names = [m for m in PREFERRED_METRICS if m in cm] + sorted(k for k in cm if k not in PREFERRED_METRICS)
    values = [(name, _scalar(bm.get(name)), _scalar(cm[name])) for name in names]
    present = [(n, b, c) for n, b, c in values if c is not None]
    # What moved is what a reviewer needs; unchanged metrics only fill the remaining places.
    present.sort(key=lambda v: v[1] == v[2])
    return present[:KEY_METRICS]


def _pass_point(side: dict[str, Any], key: str) -> float | None:
    return _scalar(_side(side.get(key)).get("point"))


def _slice_row(s: dict[str, Any]) -> dict[str, Any]:
    cand, base = _side(s.get("candidate")), _side(s.get("baseline"))
    return {
        "pass_at": _pass_point(cand, "pass_at_k"),
        "base_pass_at": _pass_point(base, "pass_at_k"),
        "pass_hat": _pass_point(cand, "pass_hat_k"),
        "base_pass_hat": _pass_point(base, "pass_hat_k"),
        "name": s.get("slice", "?"),
        "n": cand.get("n", s.get("n_paired")),
        "base": base.get("success_at_1"),
        "cand": cand.get("success_at_1"),
        "low": cand.get("lower_ci"),
        "high": cand.get("upper_ci"),
        "delta": s.get("delta"),
        "p": s.get("p_value"),
        "p_adj": s.get("p_value_adjusted"),
        "metrics": _key_metrics(cand, base),
    }


def _chart(rows: list[dict[str, Any]], gate: dict[str, Any]) -> dict[str, Any] | None:
    plotted = [r for r in rows if _scalar(r["cand"]) is not None][:CHART_SLICES]
    if not plotted:
        return None
    baseline = [_scalar(r["base"]) for r in plotted]
    return {
        "labels": ", ".join(mermaid_label(r["name"]) for r in plotted),
        "bars": ", ".join(f"{_scalar(r['cand']):.3f}" for r in plotted),
        # Only draw the baseline when every slice has one: a missing point drawn as 0 would lie.
        "line": ", ".join(f"{b:.3f}" for b in baseline) if all(b is not None for b in baseline) else None,
        "shown": len(plotted),
        "title": f'"success@1 by slice: bars {mermaid_text(gate.get("release"))}'
        + (f", line {mermaid_text(gate.get('baseline_release'))}" if gate.get("baseline_release") else "")
        + '"',
    }


def _example(e: dict[str, Any], limit: int) -> dict[str, Any]:
    failed = [v for v in e.get("failed_verifiers") or [] if isinstance(v, dict)]
    return {
        "case_id": e.get("case_id", "?"),
        "sample": e["sample"]
        if isinstance(e.get("sample"), int) and not isinstance(e["sample"], bool)
        else None,
        "slice": e.get("slice", "?"),
        "failed": failed,
        "names": ", ".join(str(v.get("name", "?")) for v in failed) or "no verifier detail",
        "output": e.get("output") if isinstance(e.get("output"), str) else "",
        "limit": limit,
    }


def _threshold_text(rule: dict[str, Any]) -> str:
    """The threshold as a number, with its source text when that says more (`baseline - 0.02`)."""
    number = str(filters.num(rule.get("threshold")))
    expr = str(rule.get("threshold_expr") or "").strip()
    try:
        if not expr or float(expr) == rule.get("threshold"):
            return number
    except ValueError:
        pass
    return expr if expr.startswith(number) else f"{number} ({expr})"


def _percent(level: Any) -> str:
    x = _scalar(level)
    return f"{x * 100:g}" if x is not None and 0 < x < 1 else "95"


def _engine(run: dict[str, Any]) -> str | None:
    engine = run.get("engine")
    if isinstance(engine, dict):
        return " ".join(str(engine[k]) for k in ("name", "version") if engine.get(k)) or None
    return str(engine) if engine else None


def _run_facts(run: Any) -> dict[str, Any]:
    run = _side(run)
    return {
        "release": run.get("release"),
        "engine": _engine(run),
        "device": run.get("device"),
        "seed": run.get("seed"),
        "cases": run.get("cases"),
        "output_digest": run.get("output_digest"),
        "manifest_digest": run.get("manifest_digest"),
        "suite_digest": run.get("suite_digest"),
        "reused_from": run.get("reused_from"),
    }


def _sampling(gate: dict[str, Any]) -> dict[str, Any] | None:
    """Samples per case of each run when either has several (repeated sampling), else None."""
    aggregate = _side(gate.get("aggregate"))
    rows = [aggregate, *(s for s in gate.get("slices") or [] if isinstance(s, dict))]
    found: dict[str, int] = {}
    for row in rows:
        for side in ("candidate", "baseline"):
            k = _side(row.get(side)).get("samples_per_case")
            if isinstance(k, int) and not isinstance(k, bool) and k > 1:
                found.setdefault(side, k)
    if not found:
        return None
    cand = found.get("candidate", 1)
    return {
        "candidate": cand,
        "baseline": found.get("baseline", 1) if gate.get("baseline_release") else None,
        # pass@k / pass^k columns at the candidate's n, when it sampled
        "k": cand if cand > 1 else None,
    }


def _context(gate: dict[str, Any]) -> dict[str, Any]:
    verdict = gate["verdict"]
    rules = [
        {**r, "threshold_text": _threshold_text(r)} for r in gate.get("rules") or [] if isinstance(r, dict)
    ]
    counts = {o: sum(1 for r in rules if r.get("outcome") == o) for o in ("pass", "fail", "inconclusive")}
    provenance = _side(gate.get("provenance"))
    pins = [p for p in provenance.get("pins") or [] if isinstance(p, dict)]
    unmatched = _side(gate.get("unmatched_cases"))
    aggregate = _side(gate.get("aggregate"))
    return {
        "marker": marker(gate.get("release", "")),
        "g": gate,
        "mark": VERDICT_MARK[verdict],
        "verdict_words": VERDICT_WORDS[verdict],
        "rules": rules,
        "counts": counts,
        "aggregate": _slice_row({"slice": "aggregate", **aggregate}) if aggregate else None,
        "policy": _side(gate.get("policy")),
        "candidate_run": _run_facts(provenance.get("candidate_run")),
        "baseline_run": _run_facts(provenance.get("baseline_run")),
        "pins": pins[:MAX_PINS],
        "pins_total": len(pins),
        "confidence_pct": _percent(_side(gate.get("policy")).get("confidence_level")),
        "runtime_mismatch": [m for m in provenance.get("runtime_mismatch") or [] if isinstance(m, dict)],
        "only_in_candidate": len(unmatched.get("only_in_candidate") or []),
        "only_in_baseline": len(unmatched.get("only_in_baseline") or []),
        "version": __version__,
        "sampling": _sampling(gate),
        "sequential": _sequential(gate),
    }


def _sequential(gate: dict[str, Any]) -> dict[str, Any] | None:
    """How far a `replay --sequential` run went (gate.json `sequential`), else None."""
    seq = _side(gate.get("sequential"))
    used, total = _scalar(seq.get("cases_used")), _scalar(seq.get("cases_total"))
    if used is None or total is None or not total:
        return None
    return {
        "stopped_early": bool(seq.get("stopped_early")),
        "used": int(used),
        "total": int(total),
        "saved": int(total - used),
        "saved_pct": round(100 * (total - used) / total),
    }
