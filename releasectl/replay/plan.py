"""The replay plan, as pure functions: which cases, in which batches, with which seeds, on which shard.

Two batching modes, chosen by the engine:

- **fixed batches** (`batch_size` N, the hf engine): cases go in batches of N over the selected
  cases in id order, and batch k samples with seed `sampling.seed + k`. Padding and the seed
  depend on the batch, so a batch is the unit of work: shards take whole batches round-robin and a
  resumed run redoes a partly written batch whole.
- **batch-invariant** (`batch_size` None: vLLM, a served endpoint): a case's output depends only on
  its own prompt and the pinned seed, so every request uses `sampling.seed`, shards take cases
  round-robin, and the work is cut into chunks only for progress and resume.

Either way the output digest of a resumed, or sharded-and-merged, run equals one uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass

from releasectl.errors import BadInput
from releasectl.suite import Case, Suite

# Batch-invariant engines: cases per generate() call. It sets progress and resume granularity and
# never changes outputs, so it is not a pin; RELEASECTL_REPLAY_CHUNK overrides it.
CHUNK = 64


def chunk_size() -> int:
    import os

    text = os.environ.get("RELEASECTL_REPLAY_CHUNK", "")
    if not text:
        return CHUNK
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"RELEASECTL_REPLAY_CHUNK={text!r}: expected a positive integer")
    return int(text)


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise BadInput(
                f"--shard '{text}' is not i/N", hint="e.g. --shard 0/4 for the first of four shards"
            ) from None
        if n < 1 or not 0 <= i < n:
            raise BadInput(f"--shard {text}: need 0 <= i < N")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Batch:
    """One generate() call: its cases and the sampling seed they use."""

    index: int
    seed: int
    cases: tuple[Case, ...]
    atomic: bool  # redo it whole when partly written (its outputs depend on its composition)


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]  # this shard's cases
    batches: tuple[Batch, ...]
    batch_size: int | None

    @property
    def total(self) -> int:
        return len(self.cases)


def select_cases(suite: Suite, limit: int | None) -> list[Case]:
    """All cases, or the first `limit` cases of every slice (by id), so every slice is represented."""
    if limit is None:
        return list(suite.cases)
    taken: dict[str, int] = {}
    out = []
    for case in suite.cases:
        if taken.get(case.slice, 0) < limit:
            taken[case.slice] = taken.get(case.slice, 0) + 1
            out.append(case)
    return out


def plan_replay(cases: list[Case], *, batch_size: int | None, seed: int, shard: Shard | None = None) -> Plan:
    """Cut the selected cases into this shard's batches."""
    if batch_size is not None:
        every = [
            Batch(k, seed + k, tuple(cases[i : i + batch_size]), atomic=True)
            for k, i in enumerate(range(0, len(cases), batch_size))
        ]
        mine = [b for b in every if shard is None or b.index % shard.count == shard.index]
        return Plan(tuple(c for b in mine for c in b.cases), tuple(mine), batch_size)
    own = [c for i, c in enumerate(cases) if shard is None or i % shard.count == shard.index]
    size = chunk_size()
    chunks = tuple(
        Batch(k, seed, tuple(own[i : i + size]), atomic=False) for k, i in enumerate(range(0, len(own), size))
    )
    return Plan(tuple(own), chunks, None)


def pending(batch: Batch, done: set[str]) -> tuple[Case, ...]:
    """The cases of `batch` still to generate: all of an atomic batch that is not complete."""
    todo = tuple(c for c in batch.cases if c.id not in done)
    if todo and batch.atomic:
        return batch.cases
    return todo
