"""The `vllm` engine: offline `vllm.LLM` on self-hosted GPU runners, the whole suite in one call.

Determinism (vLLM's reproducibility and batch-invariance docs): a fixed seed,
`VLLM_BATCH_INVARIANT=1` and `VLLM_ENABLE_V1_MULTIPROCESSING=0` set *before* vllm is imported,
prefix caching off (a cold and a warm cache can differ even at temperature 0), an explicit
dtype, and always an explicit `SamplingParams` (without one vLLM reads the model's
generation_config.json and defaults max_tokens to 16). Results reproduce only on the same GPU
model and vLLM version, which the manifest's `runtime` pins. The mapping from the manifest is
pure functions below, unit-tested without a GPU.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.manifest.models import Manifest, Sampling
from releasectl.replay.engines.base import Generation, PromptMessages

DETERMINISM_ENV = {"VLLM_BATCH_INVARIANT": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class LoraSpec:
    name: str
    int_id: int
    path: str


def llm_kwargs(
    manifest: Manifest,
    model_path: Path,
    tokenizer_path: Path,
    adapters: list[LoraSpec],
    adapter_ranks: list[int],
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)`, mapped from the manifest."""
    rt = manifest.runtime
    if rt.data_parallel_size > 1:
        raise BadInput(
            f"runtime.data_parallel_size is {rt.data_parallel_size}: offline vLLM refuses data parallelism without an external launcher",
            hint="keep data_parallel_size: 1 and scale out with `releasectl replay --shard i/N` on N runners, then `releasectl merge`",
        )
    kwargs: dict[str, Any] = {
        # Local snapshot paths (exactly the pinned revision), never the repo id.
        "model": str(model_path),
        "tokenizer": str(tokenizer_path),
        "dtype": rt.dtype,
        "tensor_parallel_size": rt.tensor_parallel_size,
        "max_model_len": rt.max_model_len,
        "seed": manifest.sampling.seed,
        "enable_prefix_caching": False,
        "trust_remote_code": False,
    }
    if manifest.model.uri and manifest.model.uri.startswith("hf://"):
        kwargs["revision"] = manifest.model.revision
    if manifest.tokenizer.uri and manifest.tokenizer.uri.startswith("hf://"):
        kwargs["tokenizer_revision"] = manifest.tokenizer.revision
    if manifest.model.format == "gguf":
        kwargs["quantization"] = "gguf"
    if adapters:
        kwargs["enable_lora"] = True
        kwargs["max_loras"] = len(adapters)
        kwargs["max_lora_rank"] = lora_rank_bucket(max(adapter_ranks) if adapter_ranks else 8)
    return kwargs


def lora_rank_bucket(rank: int) -> int:
    """vLLM accepts max_lora_rank only from a fixed set; round up to the next allowed value."""
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise BadInput(f"LoRA rank {rank} exceeds vLLM's largest supported max_lora_rank {LORA_RANKS[-1]}")


def sampling_kwargs(sampling: Sampling) -> dict[str, Any]:
    """Explicit `SamplingParams` fields: every one pinned, none left to generation_config.json."""
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
        "repetition_penalty": sampling.repetition_penalty,
        "stop": list(sampling.stop) or None,
    }


def lora_specs(adapters: list[tuple[str, Path]]) -> list[LoraSpec]:
    """One LoRARequest per adapter, with unique int ids starting at 1 (vLLM does not check)."""
    return [LoraSpec(name, i, str(path)) for i, (name, path) in enumerate(adapters, start=1)]


def set_determinism_env() -> None:
    """Must run before `import vllm`: vLLM reads these at import time."""
    if "vllm" in sys.modules:
        for key, value in DETERMINISM_ENV.items():
            if os.environ.get(key) != value:
                raise EnvironmentFailure(
                    f"vllm was imported before {key}={value} was set; batch invariance is not in effect"
                )
    os.environ.update(DETERMINISM_ENV)


class VllmEngine:
    name = "vllm"

    def __init__(
        self,
        manifest: Manifest,
        model_path: Path,
        tokenizer_path: Path,
        adapters: list[tuple[str, Path]],
        adapter_ranks: list[int],
    ) -> None:
        set_determinism_env()
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise EnvironmentFailure(
                "vLLM is not installed",
                hint="pip install 'releasectl[vllm]' on a GPU runner, or use --engine hf",
            ) from None
        self._vllm = vllm
        self._lora = [LoRARequest(s.name, s.int_id, s.path) for s in lora_specs(adapters)]
        if len(self._lora) > 1:
            raise BadInput(
                "vLLM applies one LoRA adapter per request; merge the adapters or pin one",
                hint="peft's add_weighted_adapter can merge them",
            )
        self.kwargs = llm_kwargs(manifest, model_path, tokenizer_path, lora_specs(adapters), adapter_ranks)
        self.llm = vllm.LLM(**self.kwargs)

    @property
    def version(self) -> str:
        return str(self._vllm.__version__)

    @property
    def device(self) -> str:
        import torch

        return str(torch.cuda.get_device_name(0))

    def provenance(self) -> dict[str, object]:
        import torch

        return {
            "library": "vllm",
            "vllm": self.version,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "device": self.device,
            "llm_kwargs": self.kwargs,
            "env": {k: os.environ.get(k) for k in DETERMINISM_ENV},
        }

    def generate(
        self,
        prompts: list[PromptMessages],
        sampling: Sampling,
        *,
        batch_seed: int,
        chat_template: bool = True,
    ) -> list[Generation]:
        params = self._vllm.SamplingParams(**sampling_kwargs(sampling))
        lora = self._lora[0] if self._lora else None
        if chat_template:
            outputs = self.llm.chat(prompts, sampling_params=params, lora_request=lora, use_tqdm=False)
        else:
            outputs = self.llm.generate(
                ["\n\n".join(m["content"] for m in p) for p in prompts],
                sampling_params=params,
                lora_request=lora,
                use_tqdm=False,
            )
        return [
            Generation(
                text=o.outputs[0].text,
                prompt_tokens=len(o.prompt_token_ids or []),
                completion_tokens=len(o.outputs[0].token_ids),
            )
            for o in outputs
        ]
