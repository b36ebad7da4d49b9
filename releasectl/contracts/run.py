"""run.json (SPEC §5.1): what was replayed, on what, and what it costs.

`runtime` and `drift` are written by releasectl's own replay; a run made by another harness (or an
older releasectl) may leave them out, and the gate then compares only `engine` and `device`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from releasectl.contracts._types import MAX_COUNT, Artifact, Bool, Count, Name, NonNegative, Text

Version = Annotated[str, Field(max_length=256)]


class Engine(Artifact):
    name: Name
    version: Version | None = None


class RuntimeFacts(Artifact):
    """The versions and device that decide outputs, as the replaying platform reported them."""

    engine: Name
    engine_version: Version
    device: Text
    device_class: Literal["cpu", "cuda", "remote"]
    torch: Version | None = None
    transformers: Version | None = None
    vllm: Version | None = None
    cuda: Version | None = None
    cpu_isa: Version | None = None
    gpu_name: Text | None = None
    driver: Version | None = None
    python: Version | None = None


class DriftEntry(Artifact):
    """A pin the replay accepted not matching (`--allow-engine-drift` / `--allow-device-drift`)."""

    pinned: Text | None = None


class Drift(Artifact):
    engine: DriftEntry | None = None
    device: DriftEntry | None = None


class SamplingFacts(Artifact):
    """How many samples of each case the run holds, and how their seeds were chosen. Strict: an
    unknown key is refused (a misspelt `seed_derivation` would otherwise turn the seed check off).
    With `seed_derivation: sha256-uint32-v1` every row's seed must be `sample_seed(run seed, case,
    sample)`, the run seed being run.json's `seed` (checked by the gate's readers)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    n: Annotated[int, Field(ge=1, le=1000)]
    temperature: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    seed_derivation: Literal["sha256-uint32-v1", "batch"] | None = None  # contracts.results.SEED_DERIVATIONS


RoundState = Literal["pass", "fail", "undecided"]


class SequentialRound(Artifact):
    """One round of `replay --sequential`: how many cases it had, and each rule's state after it."""

    round: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    cases: Count
    verdict: Literal["promote", "block", "hold"]
    decided: Bool
    states: Annotated[list[RoundState], Field(max_length=10_000)]  # in the policy's rule order
    # --skip-decided-slices: the uniform prefix once cases are skipped, and the slices replayed next
    uniform_cases: Count | None = None
    open_slices: Annotated[list[Name], Field(max_length=100_000)] | None = None


class SequentialRun(Artifact):
    """What a sequential replay did (`replay --sequential`): the policy it stopped on, the order it
    replayed in, every round's decisions, and how many of the suite's cases it used. A run with this
    field is gated with anytime-valid statistics only (releasectl/gate/sequential.py)."""

    policy: Text
    policy_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    rules: Annotated[list[Text], Field(min_length=1, max_length=10_000)]
    order: Literal["sha256(seed:case_id)"]
    order_seed: Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)]
    round_size: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    baseline_run: Text | None = None
    baseline_release: Name | None = None
    baseline_output_digest: Text | None = None  # the baseline's results: the gate refuses another
    baseline_manifest_digest: Text | None = None
    confidence_level: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    no_regressions_margin: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    max_tokens: Count | None = None
    cases_used: Count
    cases_total: Count
    stopped_early: Bool
    rounds: Annotated[list[SequentialRound], Field(max_length=1_000_000)]
    # --skip-decided-slices: once every rule of the whole suite was decided (on the first
    # `uniform_cases` cases of the order), only slices with an undecided rule were replayed
    skip_decided_slices: Bool = False
    uniform_cases: Count | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SequentialRun:
        if self.cases_used > self.cases_total:
            raise ValueError(f"cases_used {self.cases_used} > cases_total {self.cases_total}")
        if self.uniform_cases is not None and (
            not self.skip_decided_slices or self.uniform_cases > self.cases_used
        ):
            raise ValueError(
                f"uniform_cases {self.uniform_cases} needs skip_decided_slices and at most cases_used"
                f" ({self.cases_used})"
            )
        if self.stopped_early != (self.cases_used < self.cases_total):
            raise ValueError("stopped_early must say whether cases_used < cases_total")
        return self


class RunRecord(Artifact):
    """run.json. `gpus` ≥ 1 and a finite, non-negative `gpu_hourly_usd`: the cost rule divides by
    neither, but a zero or negative cost would pass any cost ceiling."""

    release: Name
    manifest_digest: Text
    suite_digest: Text
    engine: Engine
    device: Text
    cases: Count  # distinct case ids
    generations: Count | None = None  # results rows: cases × sampling.n (absent: = cases)
    sampling: SamplingFacts | None = None  # absent: one sample per case
    sequential: SequentialRun | None = None  # absent: the whole (selected) suite was replayed
    generation_seconds: NonNegative
    gpus: Annotated[int, Field(ge=1, le=1_000_000)]
    gpu_hourly_usd: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
    output_digest: Text | None = None
    runtime: RuntimeFacts | None = None
    drift: Drift | None = None
    seed: Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)] | None = None
    allow_device_drift: Bool | None = None
    allow_engine_drift: Bool | None = None

    def runtime_identity(self) -> dict[str, str | None]:
        """What must match between two runs for their outputs to be comparable (issue 10 §3)."""
        out: dict[str, str | None] = {
            "engine.name": self.engine.name,
            "engine.version": self.engine.version,
            "device": self.device,
        }
        if self.runtime is not None:
            for key in (
                "engine",
                "engine_version",
                "device",
                "device_class",
                "torch",
                "transformers",
                "vllm",
                "cuda",
                "cpu_isa",
                "gpu_name",
                "driver",
            ):
                out[f"runtime.{key}"] = getattr(self.runtime, key)
        return out

    def dump(self) -> str:
        """run.json's text."""
        return (
            json.dumps(self.model_dump(mode="json", exclude_unset=True), indent=2, ensure_ascii=False) + "\n"
        )

    def write(self, path: Path) -> None:
        """Write run.json atomically."""
        from releasectl.fsutil import atomic_write_text

        atomic_write_text(path, self.dump())


RUN_EXPECTED = "run.json as in SPEC §5.1 (`releasectl schema --artifact run`)"


def run_record(data: Any, *, file: str, raw: bytes | None = None) -> RunRecord:
    """Validate parsed run.json; BadInput (exit 2) names the file and each field."""
    from pydantic import ValidationError

    from releasectl.contracts._types import locate, problems_of
    from releasectl.errors import BadInput

    if not isinstance(data, dict):
        from releasectl.contracts._types import describe
        from releasectl.errors import Problem

        raise BadInput(
            f"{file} is not a valid run record",
            [Problem("wrong type", file=file, line=1, expected="a JSON object", found=describe(data))],
        )
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        raise BadInput(
            f"{file} is not a valid run record",
            locate(problems_of(e, file=file), file, raw),
            hint="see SPEC §5.1 for the run.json fields the gate needs (`releasectl schema --artifact run`)",
        ) from None
