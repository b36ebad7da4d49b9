"""canary.json (`releasectl canary --out`): live-traffic metrics the gate's canary.* rules read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from releasectl.contracts._types import Artifact, Count, Finite, Name, Text
from releasectl.contracts.gate import RuleResult, Verdict


class CanaryMetric(Artifact):
    value: Finite | None = None
    n: Count | None = None
    lower_ci: Finite | None = None
    upper_ci: Finite | None = None
    p_value: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    count: Count | None = None
    inconclusive_reason: Text | None = None


class PrometheusSource(Artifact):
    """Where `canary --prometheus` read: the server, the window, and every PromQL query it ran."""

    url: Text
    window: Text
    release_label: Text
    queries: dict[Text, Text]
    baseline_queries: dict[Text, Text]


class CanaryRecord(Artifact):
    """canary.json; the gate needs only `metrics` (the rest is what `releasectl canary` also writes).
    From logs, `source`/`baseline` are the log files; from Prometheus, its URL, with `release`,
    `baseline_release` and `prometheus` (the queries) saying which series were compared."""

    schema_version: int = 1
    source: Text | None = None
    baseline: Text | None = None
    release: Name | None = None
    baseline_release: Name | None = None
    prometheus: PrometheusSource | None = None
    window_hours: Finite | None = None
    requests: Count | None = None
    baseline_requests: Count | None = None
    metrics: dict[Text, CanaryMetric]
    rules: list[RuleResult] = []
    verdict: Verdict | None = None
    reason: Text = ""

    @classmethod
    def read(cls, path: Path) -> CanaryRecord:
        from pydantic import ValidationError

        from releasectl.contracts._types import describe, locate, problems_of, read_json_file
        from releasectl.errors import BadInput, Problem

        data, raw = read_json_file(
            Path(path), what="canary data", missing_hint="make it with `releasectl canary --out canary.json`"
        )
        if not isinstance(data, dict):
            raise BadInput(
                f"{path}: not canary data",
                [
                    Problem(
                        "wrong type", file=str(path), line=1, expected="a JSON object", found=describe(data)
                    )
                ],
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise BadInput(
                f"{path} is not valid canary data",
                locate(problems_of(e, file=str(path)), str(path), raw),
                hint="regenerate it with `releasectl canary --out`; format: `releasectl schema --artifact canary`",
            ) from None

    def as_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
