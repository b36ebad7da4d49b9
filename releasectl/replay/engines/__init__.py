"""Generation engines behind one interface (the I/O edge of a replay): `hf` (transformers),
`vllm` (offline vLLM, CPU build or GPU) and `openai` (a served OpenAI-compatible endpoint).
Each module imports its heavy library only when an engine is probed or built."""

from __future__ import annotations

from releasectl.replay.engines.base import Adapter, Engine, Generation, Prompt, PromptMessages, Runtime

ENGINES = ("hf", "vllm", "openai")

__all__ = ["ENGINES", "Adapter", "Engine", "Generation", "Prompt", "PromptMessages", "Runtime"]
