"""The engine interface: what the replay runner needs from a generation backend, and nothing more.

Like an httpx transport, an engine is one small surface the runner drives:

- **batching**: `batch_size` says how many prompts one `generate` call takes (`None`: the whole
  shard at once, for engines whose outputs do not depend on batch composition);
- **adapters**: `use_adapters` attaches the pinned LoRA adapters for the duration of a replay;
- **chat templates**: each `Prompt` says whether the model's own chat template applies;
- **provenance**: `runtime` is what decides outputs (engine, versions, device), probed before the
  model loads, so a pin mismatch is refused cheaply; `settings` are the determinism knobs;
- **per-request timing**: every `Generation` carries its own latency (and time to first token
  where the engine streams).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from releasectl.manifest.models import Sampling

PromptMessages = list[dict[str, str]]  # [{"role": "system"|"user", "content": "..."}]
DeviceClass = Literal["cpu", "cuda", "remote"]


@dataclass(frozen=True)
class Prompt:
    """One case's rendered input: chat messages, and whether the model's chat template applies."""

    messages: PromptMessages
    chat_template: bool = True

    def plain_text(self) -> str:
        """The prompt without a chat template: the messages' contents, one paragraph each."""
        return "\n\n".join(m["content"] for m in self.messages)


@dataclass(frozen=True)
class Generation:
    """One completion. `completion_tokens` counts generated tokens *without* the end-of-sequence
    token, on every engine (vLLM counts it, transformers does not: equal texts must give equal
    digests). `latency_ms` is this request's own time; `ttft_ms` the time to its first token."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Adapter:
    """A pinned LoRA adapter, resolved to a local directory (or, for a served endpoint, a name)."""

    name: str
    path: Path
    rank: int = 8


@dataclass(frozen=True)
class Runtime:
    """What decides outputs, as the running platform reports it; recorded as run.json `runtime`."""

    engine: str
    engine_version: str
    device: str  # 'cpu', the GPU model, or what a served endpoint says it is
    device_class: DeviceClass
    torch: str | None = None
    transformers: str | None = None
    vllm: str | None = None
    cuda: str | None = None
    cpu_isa: str | None = None
    gpu_name: str | None = None
    driver: str | None = None
    python: str = field(default_factory=platform.python_version)
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Engine(Protocol):
    name: str
    batch_size: int | None

    @property
    def runtime(self) -> Runtime: ...

    def settings(self) -> dict[str, object]:
        """Determinism settings and engine arguments to record in run.json."""
        ...

    def use_adapters(self, adapters: Sequence[Adapter]) -> AbstractContextManager[None]:
        """Attach `adapters` while the context is open; restore the base model afterwards."""
        ...

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, *, seed: int, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        """One completion per prompt, in input order, deterministically for `seed`.

        `seeds` (repeated sampling, one per prompt) gives each prompt its own seed, so a case's
        samples differ and each is reproducible on its own; the runner passes it only when
        `sampling.n` > 1, so an engine written before repeated sampling keeps working for n = 1."""
        ...

    def close(self) -> None:
        """Release what the engine holds open (connections); a loaded model may stay cached."""
        ...


def torch_runtime(device: str) -> dict[str, str | None]:
    """Versions and device facts torch reports: torch, CUDA, GPU name and driver, CPU ISA."""
    import torch

    facts: dict[str, str | None] = {"torch": str(torch.__version__), "cuda": None, "gpu_name": None}
    facts["cpu_isa"] = str(torch.backends.cpu.get_cpu_capability())
    facts["driver"] = None
    if device.startswith("cuda"):
        facts["cuda"] = torch.version.cuda
        facts["gpu_name"] = str(torch.cuda.get_device_name(torch.device(device)))
        facts["driver"] = nvidia_driver()
    return facts


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from the kernel module, without shelling out."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="ascii", errors="replace")
    except OSError:
        return os.environ.get("NVIDIA_DRIVER_VERSION")
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return None
