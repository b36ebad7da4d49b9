"""A deterministic stand-in engine for fast tests of the replay runner (plan, resume, shards, merge).

It implements the real Engine protocol, but generates text from a hash instead of a model: this
tests releasectl's own logic, not a model. Its output depends on exactly what a real engine's
would: the prompt and the seed (and, in fixed-batch mode, the batch: the seed is per batch), so a
runner that put a case in the wrong batch or with the wrong seed changes the digest. With
per-request `seeds` (repeated sampling) each prompt's output depends on its own seed, and
so samples of one case differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from releasectl.replay.engines.base import Adapter, Generation, Prompt, Runtime


class FakeEngine:
    name = "hf"

    def __init__(
        self, *, batch_size: int | None = 2, version: str = "5.19.0", kill_after_calls: int | None = None
    ) -> None:
        self.batch_size = batch_size
        self._runtime = Runtime(engine="hf", engine_version=version, device="cpu", device_class="cpu")
        self.calls: list[list[str]] = []
        self.adapters: tuple[str, ...] = ()
        self.adapters_seen: set[tuple[str, ...]] = set()
        self.kill_after_calls = kill_after_calls
        self.seeds_seen: list[list[int]] = []

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def settings(self) -> dict[str, object]:
        return {"fake": True, "batch_size": self.batch_size}

    @contextmanager
    def use_adapters(self, adapters: Sequence[Adapter]) -> Iterator[None]:
        self.adapters = tuple(a.name for a in adapters)
        try:
            yield
        finally:
            self.adapters = ()

    def close(self) -> None:
        self.closed = True

    def generate(
        self, prompts: Sequence[Prompt], sampling: object, *, seed: int, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        if self.kill_after_calls is not None and len(self.calls) >= self.kill_after_calls:
            os.kill(os.getpid(), signal.SIGKILL)  # a real SIGKILL mid-run, between two batches' writes
        self.calls.append([p.messages[-1]["content"][:40] for p in prompts])
        self.seeds_seen.append(list(seeds) if seeds is not None else [seed] * len(prompts))
        self.adapters_seen.add(self.adapters)
        out = []
        for i, p in enumerate(prompts):
            own = seed if seeds is None else seeds[i]
            key = json.dumps([p.messages, own, self.adapters], sort_keys=True).encode()
            digest = hashlib.sha256(key).hexdigest()
            out.append(
                Generation(
                    text=f"<answer>{int(digest[:4], 16) % 97}</answer> {digest[:12]}",
                    prompt_tokens=len(p.messages[-1]["content"].split()),
                    completion_tokens=3,
                    latency_ms=1.0,
                )
            )
        return out


def replay_on_fake(monkeypatch, make=lambda: FakeEngine(batch_size=2)) -> None:  # type: ignore[no-untyped-def]
    """Every replay (CLI or `run_replay`) in the calling test runs on `make()`'s engine: the
    runner's runtime probe and engine factory are patched, nothing else."""
    import releasectl.replay.runner as runner

    monkeypatch.setattr(runner, "probe_runtime", lambda *a, **k: FakeEngine().runtime)
    monkeypatch.setattr(runner, "make_engine", lambda *a, **k: make())
