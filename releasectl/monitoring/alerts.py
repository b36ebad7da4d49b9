"""The manifest's alerts and SLOs evaluated with the rules language: an alert fires when its
rule fails; an inconclusive rule (no data) is reported, not fired."""

from __future__ import annotations

from typing import Any

from releasectl.gate.rules import MetricResolver, evaluate_rule, parse_rule
from releasectl.manifest.loader import LoadedManifest


def evaluate_alerts(loaded: LoadedManifest, resolver: MetricResolver) -> list[dict[str, Any]]:
    """One entry per alert/SLO with its outcome, observed value and whether it is a rollback trigger."""
    from releasectl.manifest.loader import display_path

    source = display_path(loaded.path, loaded.root)
    policy = loaded.manifest.policy
    out: list[dict[str, Any]] = []
    for section, items in (("alerts", policy.alerts), ("slos", policy.slos)):
        for i, alert in enumerate(items):
            rule = parse_rule(alert.rule, source=f"{source}: policy.{section}[{i}].rule")
            o = evaluate_rule(rule, resolver)
            out.append(
                {
                    "name": alert.name,
                    "kind": section[:-1],
                    "family": alert.family,
                    "rule": alert.rule,
                    "outcome": o.outcome,
                    "fired": o.outcome == "fail",
                    "rollback": alert.rollback,
                    "observed": o.observed,
                    "threshold": o.threshold,
                    "detail": o.detail,
                }
            )
    return out
