"""The engine interface: chat prompts in, completions with token counts out, in input order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from releasectl.manifest.models import Sampling

PromptMessages = list[dict[str, str]]  # [{"role": "system"|"user", "content": "..."}]


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    name: str

    @property
    def version(self) -> str: ...

    @property
    def device(self) -> str: ...

    def provenance(self) -> dict[str, object]:
        """Library, device and determinism settings to record in run.json."""
        ...

    def generate(
        self, prompts: list[PromptMessages], sampling: Sampling, *, batch_seed: int
    ) -> list[Generation]:
        """Generate one completion per prompt, in input order, deterministically for `batch_seed`."""
        ...
