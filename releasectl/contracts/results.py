"""A results.jsonl row (SPEC §5.1): one case's output and verifier verdicts.

With repeated sampling (`sampling.n` > 1) a row is one *sample* of a case: its identity is
(`case_id`, `sample`), and `seed` is the seed that generated it. A row without `sample` is sample 0,
so results written before sampling existed read as one sample per case. Across rows, a run must
hold samples 0..n−1 of every case exactly once (checked by the readers, `gate.runs`).

`ResultRow` is the one definition; `releasectl.gate.runs` reads a million rows through a columnar
fast path that enforces exactly this contract (tests/test_contracts.py proves the equivalence)
and asks this model for the message of the first row it refuses.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from releasectl.contracts._types import MAX_COUNT, MAX_OUTPUT, MAX_TEXT, Artifact, Bool, Count, Millis, Name

VerifierKind = Literal["rule", "format", "correctness", "tool", "quality"]
VERIFIER_KINDS: tuple[str, ...] = ("rule", "format", "correctness", "tool", "quality")
MAX_VERIFIERS = 256
MAX_SAMPLES_PER_CASE = 1000  # rows of one case; a replay makes at most `sampling.n` <= 100
MAX_SEED = MAX_COUNT
SampleIndex = Annotated[int, Field(ge=0, lt=MAX_SAMPLES_PER_CASE)]
SEED_DERIVATION = "sha256-uint32-v1"  # run.json sampling.seed_derivation: rows' seeds are `sample_seed`
# How a run's rows got their seeds (run.json `sampling.seed_derivation`): "batch" is one seed per
# generate call (n = 1: the run seed, plus the batch index for fixed batches), not checked per row.
SEED_DERIVATIONS = (SEED_DERIVATION, "batch")


def sample_seed(seed: int, case_id: str, sample: int) -> int:
    """The seed of sample `sample` of case `case_id` in a run with seed `seed` (derivation
    sha256-uint32-v1): the first four bytes of sha256("releasectl.sample.v1:<seed>:<case id>:<sample>")
    as a big-endian uint32. Replay generates with it; the gate checks every row against it."""
    text = f"releasectl.sample.v1:{seed}:{case_id}:{sample}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class VerifierVerdict(Artifact):
    """One verifier's verdict on one case."""

    passed: Bool
    kind: VerifierKind
    detail: Annotated[str, Field(max_length=MAX_TEXT)] = ""


class ResultRow(Artifact):
    """One line of results.jsonl. `passed` must equal "every verifier passed"."""

    case_id: Name
    sample: SampleIndex | None = None  # absent: sample 0; present, it must be an integer (not null)
    seed: Seed | None = None  # absent: not recorded; present, an integer
    slice: Name
    verifiers: Annotated[dict[Name, VerifierVerdict], Field(max_length=MAX_VERIFIERS)]
    passed: Bool  # after `verifiers`: it must equal "every verifier passed"
    output: Annotated[str, Field(max_length=MAX_OUTPUT)]
    prompt_tokens: Count
    completion_tokens: Count
    latency_ms: Millis
    steps: Count | None = None
    ttft_ms: Millis | None = None

    @field_validator("sample", "seed")
    @classmethod
    def _present_means_an_integer(cls, value: int | None, info: ValidationInfo) -> int:
        if value is None:  # a default is not validated: this is an explicit null
            raise ValueError(f"{info.field_name} is null; leave it out or give an integer")
        return value

    @field_validator("passed")
    @classmethod
    def _passed_is_every_verifier(cls, passed: bool, info: ValidationInfo) -> bool:
        verifiers = info.data.get("verifiers")
        if verifiers is None:
            return passed  # invalid verifiers are reported on their own
        every = all(v.passed for v in verifiers.values())
        if passed != every:
            failed = [n for n, v in verifiers.items() if not v.passed]
            raise ValueError(
                f"passed is {str(passed).lower()} but "
                + ("every verifier passed" if every else f"verifier {failed[0]!r} failed")
                + " (passed must equal: every verifier passed)"
            )
        return passed

    def dump_line(self) -> bytes:
        """The row as one results.jsonl line (newline included)."""
        import orjson

        absent = {k for k in ("sample", "seed") if getattr(self, k) is None}
        return orjson.dumps(self.model_dump(mode="json", exclude=absent or None)) + b"\n"


RESULTS_EXPECTED = "a results row as in SPEC §5.1 (`releasectl schema --artifact results`)"
