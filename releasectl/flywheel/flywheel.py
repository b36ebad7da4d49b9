"""`releasectl feedback` as a function: logs -> mined, cleaned, clustered training data and a
routing of each failure mode to an intervention. Same input and params -> identical files."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from releasectl import safeio
from releasectl.errors import BadInput, Problem
from releasectl.flywheel.clusters import ClusterSettings, cluster, failure_text
from releasectl.flywheel.hygiene import (
    BiasSettings,
    DedupSettings,
    FilterSettings,
    bias_audit,
    dedup,
    quality_problem,
)
from releasectl.flywheel.interventions import route
from releasectl.flywheel.mining import MiningSettings, failure_reasons, is_strong_success
from releasectl.flywheel.pairs import preference_pairs
from releasectl.flywheel.pii import scrub
from releasectl.fsutil import atomic_write_text
from releasectl.monitoring.logs import FEEDBACK_FIELDS, Malformed, read_records, require_records

Step = Literal["filter", "dedup", "bias_audit", "pii_scrub"]


class FeedbackParams(BaseModel):
    """The `feedback:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")
    # pydantic copies these defaults per instance.
    hygiene: list[Step] = ["filter", "dedup", "bias_audit", "pii_scrub"]
    mining: MiningSettings = MiningSettings()
    filter: FilterSettings = FilterSettings()
    dedup: DedupSettings = DedupSettings()
    bias_audit: BiasSettings = BiasSettings()
    clusters: ClusterSettings = ClusterSettings()


def load_params(path: Path | None) -> FeedbackParams:
    """The `feedback:` section of `path` (default params.yaml here when present), validated."""
    if path is None:
        path = Path("params.yaml")
        if not safeio.present(path, what="params"):
            return FeedbackParams()
    from releasectl.manifest.yaml_positions import load_yaml_with_positions

    # The one YAML reader: regular file, size cap, strict UTF-8, depth and number bounds, file:line.
    data = load_yaml_with_positions(path, str(path), require_mapping=False).data or {}
    section = data.get("feedback") if isinstance(data, dict) else None
    try:
        return FeedbackParams.model_validate(section or {})
    except ValidationError as e:
        problems = [
            Problem(
                err["msg"],
                file=str(path),
                field="feedback." + ".".join(str(p) for p in err["loc"]),
                found=repr(err.get("input"))[:60],
            )
            for err in e.errors()
        ]
        raise BadInput(
            f"{path}: invalid feedback parameters",
            problems,
            hint="see docs/logs.md for the feedback: settings",
        ) from None


def _filter(
    recs: list[dict[str, Any]], s: FilterSettings, drops: Counter[str], *, check_output: bool
) -> list[dict[str, Any]]:
    kept = []
    for rec in recs:
        problem = quality_problem(rec.get("prompt") or "", s)
        if problem is None and check_output and not rec.get("_hard_error"):
            problem = quality_problem(rec.get("output") or "", s, language=False)
            problem = f"output {problem}" if problem else None
        if problem:
            drops[problem] += 1
        else:
            kept.append(rec)
    return kept


def run_feedback(logs: Path, out: Path, params: FeedbackParams) -> dict[str, Any]:
    malformed = Malformed()
    records = list(read_records(logs, malformed, FEEDBACK_FIELDS))
    require_records(logs, len(records), malformed)
    failures: list[dict[str, Any]] = []
    successes: list[dict[str, Any]] = []
    for rec in records:
        reasons = failure_reasons(rec, params.mining)
        if reasons:
            failures.append(
                {**rec, "_reasons": reasons, "_hard_error": any(r.startswith("error:") for r in reasons)}
            )
        elif is_strong_success(rec, params.mining):
            successes.append(rec)
    mined = {"failures": len(failures), "strong_successes": len(successes)}
    steps: list[dict[str, Any]] = []
    pii_counts: Counter[str] = Counter()
    bias: list[dict[str, Any]] = []
    for step in params.hygiene:
        before = len(failures) + len(successes)
        if step == "filter":
            drops: Counter[str] = Counter()
            failures = _filter(failures, params.filter, drops, check_output=True)
            successes = _filter(successes, params.filter, drops, check_output=True)
            steps.append(
                {
                    "step": step,
                    "removed": before - len(failures) - len(successes),
                    "by_reason": dict(sorted(drops.items())),
                }
            )
        elif step == "dedup":
            both, counts = dedup(
                successes + failures,
                lambda r: f"{r.get('prompt') or ''} || {r.get('output') or ''}",
                params.dedup,
            )
            ids = {id(r) for r in both}
            successes = [r for r in successes if id(r) in ids]
            failures = [r for r in failures if id(r) in ids]
            steps.append(
                {
                    "step": step,
                    "removed": before - len(both),
                    "jaccard_threshold": params.dedup.jaccard_threshold,
                    **counts,
                }
            )
        elif step == "bias_audit":
            bias = bias_audit(successes + failures, records, params.bias_audit)
            steps.append(
                {"step": step, "removed": 0, "flagged": [b["attribute"] for b in bias if b.get("flagged")]}
            )
        else:
            before_counts = sum(pii_counts.values())
            for rec in successes + failures:
                for field in ("prompt", "output"):
                    if isinstance(rec.get(field), str):
                        rec[field] = scrub(rec[field], pii_counts)
            steps.append({"step": step, "removed": 0, "scrubbed": sum(pii_counts.values()) - before_counts})

    median_tokens = statistics.median([r.get("tokens_generated") or 0 for r in records]) if records else 0
    labels, top_terms, choice = cluster([failure_text(r, r["_reasons"]) for r in failures], params.clusters)
    clusters = []
    for c, terms in enumerate(top_terms):
        members = [r for r, label in zip(failures, labels, strict=True) if label == c]
        if not members:
            continue
        tally = Counter(x for r in members for x in r["_reasons"])
        clusters.append(
            {
                "id": c,
                "size": len(members),
                "top_terms": terms,
                "reasons": dict(tally.most_common()),
                "examples": [
                    {
                        "request_id": m.get("request_id"),
                        "prompt": m.get("prompt"),
                        "output": (m.get("output") or "")[:200],
                    }
                    for m in members[:3]
                ],
                **route(members, [m["_reasons"] for m in members], median_tokens),
            }
        )

    sft = [
        {"input": r["prompt"], "target": r["output"], "request_id": r.get("request_id")} for r in successes
    ]
    prefs = preference_pairs(successes + failures)
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "sft_pairs.jsonl", sft)
    _write_jsonl(out / "preference_pairs.jsonl", prefs)
    _write_jsonl(
        out / "failures.jsonl",
        [
            {
                "request_id": r.get("request_id"),
                "cluster": label,
                "reasons": r["_reasons"],
                "prompt": r.get("prompt"),
                "output": r.get("output"),
            }
            for r, label in zip(failures, labels, strict=True)
        ],
    )
    summary = {
        "schema_version": 1,
        "logs": str(logs),
        "records": len(records),
        "malformed": malformed.to_dict(),
        "mined": mined,
        "hygiene": steps,
        "pii": dict(sorted(pii_counts.items())),
        "bias_audit": bias,
        "kept": {"failures": len(failures), "successes": len(successes)},
        "clustering": choice,
        "clusters": clusters,
        "outputs": {"sft_pairs": len(sft), "preference_pairs": len(prefs)},
    }
    atomic_write_text(
        out / "summary.json",
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n",
    )
    atomic_write_text(out / "summary.md", _markdown(summary))
    return summary


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(
        path, "".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() + "\n" for r in rows)
    )


SUMMARY_MD = """\
# Feedback flywheel: {{ s.logs }}

{{ s.records }} records ({{ s.malformed.count }} malformed lines skipped): {{ s.mined.failures }} high-signal failures and {{ s.mined.strong_successes }} strong successes mined; after hygiene {{ s.kept.failures }} failures and {{ s.kept.successes }} successes remain.

## Hygiene

| step | removed | details |
| --- | ---: | --- |
{% for h in s.hygiene -%}
| {{ h.step }} | {{ h.removed }} | {% for k, v in h.items() if k not in ("step", "removed") %}{{ k }}: {{ v }}{% if not loop.last %}; {% endif %}{% endfor %} |
{% endfor %}
PII scrubbed: {% for k, v in s.pii.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}.
{% for b in s.bias_audit if b.flagged %}
- bias audit: **{{ b.attribute }}** is skewed ({{ b.skewed | join(", ") }}; χ² = {{ b.chi2 }}, p = {{ "%.2g" | format(b.p_value) }}).
{%- endfor %}

## Failure modes and interventions

{% for c in s.clusters -%}
### Cluster {{ c.id }} ({{ c.size }} failures): {{ c.top_terms | join(", ") }}

- **{{ c.intervention | replace("_", " ") }}** ({{ c.time_to_fix }}): {{ c.reason }}
- reasons: {% for k, v in c.reasons.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}

{% endfor -%}
## Outputs

- `sft_pairs.jsonl`: {{ s.outputs.sft_pairs }} pairs
- `preference_pairs.jsonl`: {{ s.outputs.preference_pairs }} pairs
"""


def _markdown(summary: dict[str, Any]) -> str:
    from jinja2 import Environment

    # Markdown, not HTML: autoescape would mangle quotes; the text is data from our own logs.
    env = Environment(autoescape=False, keep_trailing_newline=True)
    return env.from_string(SUMMARY_MD).render(s=summary)
