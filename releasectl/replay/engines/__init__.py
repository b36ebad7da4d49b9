"""Generation engines behind one interface (the I/O edge of a replay)."""

from __future__ import annotations

from releasectl.replay.engines.base import Engine, Generation, PromptMessages

__all__ = ["Engine", "Generation", "PromptMessages", "create_engine"]


def create_engine(name: str, **kwargs: object) -> Engine:
    """Build the engine `name` ('hf' or 'vllm'); heavy libraries load only here."""
    if name == "hf":
        from releasectl.replay.engines.hf import HfEngine

        return HfEngine(**kwargs)  # type: ignore[arg-type]
    if name == "vllm":
        from releasectl.replay.engines.vllm import VllmEngine

        return VllmEngine(**kwargs)  # type: ignore[arg-type]
    from releasectl.errors import BadInput

    raise BadInput(
        f"unknown engine '{name}'",
        hint="use --engine hf (transformers, CPU or CUDA) or --engine vllm (GPU runners)",
    )
