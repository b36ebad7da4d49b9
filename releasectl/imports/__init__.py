"""Importers: turn lm-eval, inspect_ai and promptfoo output into releasectl run directories.

One module per harness reads its format into an `ImportedRun` (`common.py`); `writer.py` writes
the run directory and binds it to a manifest; `pairing.py` checks two runs hold the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from releasectl.imports.common import Choices, ImportedRun


def _lm_eval(path: Path, choices: Choices) -> ImportedRun:
    from releasectl.imports import lmeval

    return lmeval.read(path, choices)


def _inspect(path: Path, choices: Choices) -> ImportedRun:
    from releasectl.imports import inspectai

    return inspectai.read(path, choices)


def _promptfoo(path: Path, choices: Choices) -> ImportedRun:
    from releasectl.imports import promptfoo

    return promptfoo.read(path, choices)


HARNESSES: dict[str, Callable[[Path, Choices], ImportedRun]] = {
    "lm-eval": _lm_eval,
    "inspect": _inspect,
    "promptfoo": _promptfoo,
}

# what --select may choose, per harness: anything else is a typo, not a no-op
SELECT_KEYS: dict[str, tuple[str, ...]] = {
    "lm-eval": ("filter",),
    "inspect": ("epoch",),
    "promptfoo": ("prompt", "provider"),
}
