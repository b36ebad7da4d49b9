"""The `hf` engine: transformers on CPU or CUDA, batched, with peft LoRA adapters.

The embedded default model is a GGUF file, which transformers de-quantizes on load
(`gguf_file=`). Loaded base models are cached per process by (path, digest, dtype, device), so a
demo that replays two releases loads the model once; adapters are attached per release and
removed afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.models import Sampling
from releasectl.replay.engines.base import Adapter, Generation, Prompt, PromptMessages, Runtime, torch_runtime

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "auto": "float32"}


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any


_CACHE: dict[tuple[str, str, str, str], _Loaded] = {}


def resolve_device(requested: str | None) -> str:
    """'cpu', 'cuda' or 'cuda:N'; the manifest's GPU name means 'cuda' when one is present."""
    import torch

    if requested and requested.startswith(("cpu", "cuda")):
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str:
    """The device as the manifest's `runtime.device` names it: 'cpu' or the GPU model."""
    import torch

    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(torch.device(device)))
    return "cpu"


def probe_runtime(device: str | None = None) -> Runtime:
    """transformers' version and the device this engine will run on; loads no model."""
    import transformers

    resolved = resolve_device(device)
    facts = torch_runtime(resolved)
    return Runtime(
        engine="hf",
        engine_version=str(transformers.__version__),
        device=device_name(resolved),
        device_class="cuda" if resolved.startswith("cuda") else "cpu",
        torch=facts["torch"],
        transformers=str(transformers.__version__),
        cuda=facts["cuda"],
        cpu_isa=facts["cpu_isa"],
        gpu_name=facts["gpu_name"],
        driver=facts["driver"],
    )


def load_base(model_path: Path, digest: str, dtype: str, device: str) -> _Loaded:
    key = (str(model_path), digest, dtype, device)
    if key in _CACHE:
        return _CACHE[key]
    import functools

    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # transformers' GGUF de-quantization draws its own tqdm bar on stderr; ours is the replay's.
    gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch_dtype = getattr(torch, _DTYPES[dtype])
    try:
        if model_path.is_file():  # a GGUF file: tokenizer and weights both live in it
            kwargs: dict[str, Any] = {"gguf_file": model_path.name}
            where = str(model_path.parent)
        else:
            kwargs, where = {}, str(model_path)
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise EnvironmentFailure(f"transformers could not load {model_path}: {e}") from None
    tokenizer.padding_side = "left"  # decoder-only batching: pad on the left so outputs line up
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    _CACHE[key] = _Loaded(model, tokenizer)
    return _CACHE[key]


class HfEngine:
    name = "hf"

    def __init__(
        self,
        model_path: Path,
        model_digest: str,
        *,
        dtype: str = "float32",
        device: str | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        import torch

        self._device = resolve_device(device)
        self._runtime = runtime or probe_runtime(self._device)
        self.batch_size: int | None = batch_size
        self.threads = (
            threads or int(os.environ.get("RELEASECTL_THREADS", "0")) or max(1, min(4, os.cpu_count() or 1))
        )
        torch.set_num_threads(self.threads)
        # Deterministic kernels where torch has them; warn (not fail) where it has none.
        torch.use_deterministic_algorithms(True, warn_only=True)
        if self._device.startswith("cuda"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.dtype = dtype
        self._loaded = load_base(model_path, model_digest, dtype, self._device)
        self.model = self._loaded.model
        self.tokenizer = self._loaded.tokenizer

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def settings(self) -> dict[str, object]:
        return {
            "dtype": self.dtype,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "deterministic_algorithms": True,
            "padding_side": "left",
        }

    @contextmanager
    def use_adapters(self, adapters: Sequence[Adapter]) -> Iterator[None]:
        """Attach LoRA adapters (peft) for the duration of a replay, then restore the base model."""
        if not adapters:
            yield
            return
        import warnings

        from peft import PeftModel

        base = self._loaded.model
        name, path = adapters[0].name, adapters[0].path
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # peft's deprecation notices, not the user's concern
            peft_model = PeftModel.from_pretrained(base, str(path), adapter_name=name)
        for extra in adapters[1:]:
            peft_model.load_adapter(str(extra.path), adapter_name=extra.name)
        if len(adapters) > 1:
            peft_model.base_model.set_adapter([a.name for a in adapters])  # type: ignore[operator]
        peft_model.eval()
        self.model = peft_model
        try:
            yield
        finally:
            self._loaded.model = peft_model.unload()
            self.model = self._loaded.model

    def render(self, messages: PromptMessages) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def close(self) -> None:
        """Nothing to release: the loaded model stays cached for the next replay in this process."""

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, *, seed: int, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        import torch

        chat_template = all(p.chat_template for p in prompts)
        texts = [self.render(p.messages) if p.chat_template else p.plain_text() for p in prompts]
        enc = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not chat_template
        ).to(self._device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature == 0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else 0,
            )
        if seeds is not None and sampling.temperature > 0:
            # Repeated sampling: each prompt draws from its own seed (seeded_sampler), so greedy
            # decoding over Gumbel-perturbed scores replaces transformers' shared-RNG sampling.
            from transformers import LogitsProcessorList

            kwargs.update(
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=LogitsProcessorList([seeded_sampler(seeds, sampling)]),
            )
        if sampling.stop:
            kwargs["stop_strings"] = sampling.stop
            kwargs["tokenizer"] = self.tokenizer
        torch.manual_seed(seed)  # sampling depends only on the pinned seed and the batch
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)  # type: ignore[operator]
        # Every request of a batch waits for the whole batch: that is each one's latency.
        latency_ms = round((time.perf_counter() - t0) * 1000, 3)
        width = enc["input_ids"].shape[1]
        results = []
        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for i, row in enumerate(out):
            new = row[width:].tolist()
            while new and new[-1] in eos:
                new.pop()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            prompt_tokens = int(enc["attention_mask"][i].sum())
            results.append(
                Generation(
                    text=text, prompt_tokens=prompt_tokens, completion_tokens=len(new), latency_ms=latency_ms
                )
            )
        return results


def seeded_sampler(seeds: Sequence[int], sampling: Sampling) -> Any:
    """A logits processor that samples row i of the batch from its own `torch.Generator(seeds[i])`.

    transformers' sampling draws every row from one global RNG, so a row's tokens would depend on
    its batch neighbours. Here the pinned warpers (temperature, top-k, top-p, in transformers'
    order) shape the scores, and a Gumbel(0, 1) draw per vocabulary entry from the row's own
    generator is added to the log-probabilities: the argmax greedy decoding then takes is a draw
    from softmax(scores) (the Gumbel-max trick), reproducible from the row's seed alone."""
    import torch
    from transformers import LogitsProcessor
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers: list[Any] = []
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
    generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    tiny = torch.finfo(torch.float64).tiny

    class SeededSampler(LogitsProcessor):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for warp in warpers:
                scores = warp(input_ids, scores)
            log_p = torch.log_softmax(scores.float(), dim=-1)
            uniform = torch.stack(
                [torch.rand(scores.shape[-1], generator=g, dtype=torch.float64) for g in generators]
            )
            gumbel = -torch.log(-torch.log(uniform.clamp_min(tiny)))
            return log_p + gumbel.to(device=log_p.device, dtype=log_p.dtype)

    return SeededSampler()
