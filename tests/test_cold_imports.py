"""Commands that need no ML stack import none of it (an import audit, not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "vllm", "dvc", "scipy", "sklearn", "pandas", "transformers", "huggingface_hub", "peft", "numpy", "duckdb"}


def imported_by(*argv: str) -> set[str]:
    code = (
        "import sys, runpy, json\n"
        f"sys.argv = ['releasectl', *{list(argv)!r}]\n"
        "try:\n    runpy.run_module('releasectl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('\\nMODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES ") :])) & HEAVY


@pytest.mark.parametrize(
    "argv",
    [
        ("validate", "releases/v1.3.yaml", "--format", "json"),
        ("--help",),
        ("schema",),
        ("diff", "v1.2", "v1.3"),
        ("capacity", "releases/v1.3.yaml"),
    ],
)
def test_no_heavy_imports(argv):
    assert imported_by(*argv) == set()
