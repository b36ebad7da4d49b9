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

**Repeated sampling** (`sampling.n` > 1): every case is generated n times. The unit of work is an
`Item` (a case's sample), identified by (case id, sample index) and generated with its own seed,
`sample_seed(sampling.seed, case_id, sample)`: the first four bytes of
sha256("releasectl.sample.v1:<seed>:<case id>:<sample>") as a big-endian uint32. It depends on
neither the batch nor the shard nor the other cases, so adding a case to the suite, `--limit` or
`--shard` never changes another sample's seed. Items go case by case, a case's samples together
(fixed batches cut through that order; batch-invariant shards take whole cases round-robin).
With n = 1 nothing changes: the seeds are the batch seeds above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# How sample seeds are derived: one definition, in the results contract the gate checks rows against.
from releasectl.contracts.results import SEED_DERIVATION as SEED_DERIVATION
from releasectl.contracts.results import sample_seed as sample_seed
from releasectl.errors import BadInput
from releasectl.suite import Case
from releasectl.suite import select_cases as select_cases  # replay --limit; defined with the suite

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


class Item(NamedTuple):
    """One generation: sample `sample` of `case`, generated with `seed`."""

    case: Case
    sample: int
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.case.id, self.sample)


@dataclass(frozen=True)
class Batch:
    """One generate() call: its items and the seed of the call."""

    index: int
    seed: int
    items: tuple[Item, ...]
    atomic: bool  # redo it whole when partly written (its outputs depend on its composition)

    @property
    def cases(self) -> tuple[Case, ...]:
        """The case of each item (a case appears once per sample)."""
        return tuple(i.case for i in self.items)


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]  # this shard's cases
    batches: tuple[Batch, ...]
    batch_size: int | None
    samples: int = 1  # sampling.n: items per case

    @property
    def total(self) -> int:
        """Generations in this shard (with n samples a case counts n times)."""
        return sum(len(b.items) for b in self.batches)


def _items(cases: list[Case], samples: int, seed: int) -> list[Item]:
    """Every sample of every case, case by case; the seed is filled in by the batch when n = 1."""
    if samples == 1:
        return [Item(c, 0, seed) for c in cases]
    return [Item(c, s, sample_seed(seed, c.id, s)) for c in cases for s in range(samples)]


def plan_replay(
    cases: list[Case], *, batch_size: int | None, seed: int, shard: Shard | None = None, samples: int = 1
) -> Plan:
    """Cut the selected cases' samples into this shard's batches."""
    if samples < 1:
        raise BadInput(f"sampling.n is {samples}: expected a positive integer")
    if batch_size is not None:
        items = _items(cases, samples, seed)
        every = []
        for k, i in enumerate(range(0, len(items), batch_size)):
            chunk = items[i : i + batch_size]
            if samples == 1:  # the batch's seed is every item's seed, as before sampling existed
                chunk = [it._replace(seed=seed + k) for it in chunk]
            every.append(Batch(k, seed + k, tuple(chunk), atomic=True))
        mine = [b for b in every if shard is None or b.index % shard.count == shard.index]
        own = list(dict.fromkeys(i.case.id for b in mine for i in b.items))
        by_id = {c.id: c for c in cases}
        return Plan(tuple(by_id[c] for c in own), tuple(mine), batch_size, samples)
    own_cases = [c for i, c in enumerate(cases) if shard is None or i % shard.count == shard.index]
    own_items = _items(own_cases, samples, seed)
    size = chunk_size()
    chunks = tuple(
        Batch(k, seed, tuple(own_items[i : i + size]), atomic=False)
        for k, i in enumerate(range(0, len(own_items), size))
    )
    return Plan(tuple(own_cases), chunks, None, samples)


def pending(batch: Batch, done: set[tuple[str, int]]) -> tuple[Item, ...]:
    """The items of `batch` still to generate: all of an atomic batch that is not complete."""
    todo = tuple(i for i in batch.items if i.key not in done)
    if todo and batch.atomic:
        return batch.items
    return todo
