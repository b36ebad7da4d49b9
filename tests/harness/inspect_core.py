"""An inspect_ai task over two slices of suites/core, and two rule-based "models" for mockllm.

inspect's `mockllm/model` provider answers with whatever callable it is given; the two solvers
below read the numbers in the prompt and answer the way a careless (`hasty`) or careful
(`careful`) model would, so two runs of the same task disagree on some cases. Everything else,
the dataset, the scorers, the epochs and the log, is inspect's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage
from inspect_ai.scorer import includes, pattern
from inspect_ai.solver import generate

SLICES = ("math_basic", "division_hard")
ROOT = Path(__file__).resolve().parents[2]


def _samples(limit: int) -> list[Sample]:
    out = []
    for slice_name in SLICES:
        lines = (ROOT / "suites/core/slices" / f"{slice_name}.jsonl").read_text().splitlines()[:limit]
        for line in lines:
            case = json.loads(line)
            value = next(iter(case["expected"].values()))
            out.append(
                Sample(
                    id=case["id"],
                    input=case["input"]["prompt"],
                    target=f"{value:g}",
                    metadata={"slice": slice_name},
                )
            )
    return out


@task
def core_two_slices(limit: int = 6, epochs: int = 2) -> Task:
    return Task(
        dataset=_samples(limit),
        solver=generate(),
        scorer=[pattern(r"<answer>\s*([-0-9.]+)\s*</answer>"), includes()],
        epochs=epochs,
    )


def _answer(prompt: str, careful: bool) -> str:
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", prompt)]
    if "÷" in prompt and len(numbers) >= 2:
        value = numbers[0] / numbers[1]
        return f"{round(value, 3 if careful else 2):g}"
    if len(numbers) >= 3:
        a, b, c = numbers[:3]
        removed = "sell" in prompt or "give" in prompt or "eat" in prompt or "lose" in prompt
        if careful:
            return f"{a + b - c:g}" if removed else f"{a + b + c:g}"
        return f"{a + b - c:g}" if "sell" in prompt else f"{a + b + c:g}"
    return "0"


def solver_model(careful: bool) -> Any:
    """A callable for mockllm's `custom_outputs`: it answers the last user message."""

    def respond(messages: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        prompt = str(messages[-1].text)
        output = ModelOutput.from_content("mockllm/model", f"<answer>{_answer(prompt, careful)}</answer>")
        # Counted in words: tiktoken, mockllm's default counter, downloads its tables.
        prompt_words, answer_words = len(prompt.split()), len(output.completion.split())
        output.usage = ModelUsage(
            input_tokens=prompt_words, output_tokens=answer_words, total_tokens=prompt_words + answer_words
        )
        return output

    return respond
