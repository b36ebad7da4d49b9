"""Replay a release's frozen suite and write the run directory (SPEC §5.1).

```
runs/<release>/
  run.json        provenance: manifest and suite digests, engine, device, seed, timings, output digest
  results.jsonl   one line per case, sorted by case id when the run completes
  .state.json     what the run is (manifest, suite, engine, limit, shard) so --resume continues only the same run
```
Cases are replayed in fixed batches over the selected cases in id order, so the batch a case
lands in — and with it the padding and the sampling seed — never depends on resume or sharding:
a resumed or sharded-and-merged run has the same output digest as one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.fsutil import atomic_write_text
from releasectl.manifest.loader import LoadedManifest
from releasectl.suite import Case, Suite, load_suite, score_case

RESULTS = "results.jsonl"
RUN_JSON = "run.json"
STATE = ".state.json"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise BadInput(
                f"--shard '{text}' is not i/N", hint="e.g. --shard 0/4 for the first of four shards"
            ) from None
        if n < 1 or not 0 <= i < n:
            raise BadInput(f"--shard {text}: need 0 <= i < N")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class RunSummary:
    run_dir: Path
    run: dict[str, Any]
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)


def select_cases(suite: Suite, limit: int | None) -> list[Case]:
    """All cases, or the first `limit` cases of every slice (by id), so every slice is represented."""
    if limit is None:
        return list(suite.cases)
    taken: dict[str, int] = {}
    out = []
    for case in suite.cases:
        if taken.get(case.slice, 0) < limit:
            taken[case.slice] = taken.get(case.slice, 0) + 1
            out.append(case)
    return out


def plan_batches(cases: list[Case], batch_size: int) -> list[list[Case]]:
    return [cases[i : i + batch_size] for i in range(0, len(cases), batch_size)]


def output_digest(rows: list[dict[str, Any]]) -> str:
    """sha256 over what the model produced, in case-id order (timings are not outputs)."""
    h = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r["case_id"]):
        key = {k: row[k] for k in ("case_id", "output", "prompt_tokens", "completion_tokens")}
        h.update(json.dumps(key, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def read_results(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of results.jsonl; a torn last line (a writer killed mid-line) is dropped, and with
    `repair` cut from the file so appends continue cleanly."""
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good_end = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
        good_end += len(line)
    if repair and good_end != len(data):
        with path.open("r+b") as f:
            f.truncate(good_end)
    return rows


@dataclass(frozen=True)
class PromptTemplate:
    path: Path
    compiled: Any


def load_template(template_path: Path) -> PromptTemplate:
    """Compile the pinned Jinja2 prompt template once, in a sandbox with strict undefined."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    try:
        template = env.from_string(template_path.read_text(encoding="utf-8"))
    except TemplateError as e:
        raise BadInput(f"{template_path}: template error: {e}") from None
    return PromptTemplate(template_path, template)


def render_prompt(template: PromptTemplate, case_input: dict[str, Any]) -> list[dict[str, str]]:
    """Render a case through the compiled template: the body is the user message, and a
    top-level `{% set system %}…{% endset %}` (if any) becomes the system prompt."""
    from jinja2 import TemplateError

    try:
        module = template.compiled.make_module(dict(case_input))
    except TemplateError as e:
        raise BadInput(f"{template.path}: template error: {e}") from None
    messages = []
    system = getattr(module, "system", None)
    if system is not None and str(system).strip():
        messages.append({"role": "system", "content": str(system).strip()})
    messages.append({"role": "user", "content": str(module).strip()})
    return messages


def _check_pins(loaded: LoadedManifest) -> tuple[Suite, Path, str]:
    """Refuse to replay anything that is not exactly what the manifest pins."""
    from releasectl.manifest.artifacts import check_digest, hf_snapshot, local_path

    m = loaded.manifest
    suite = load_suite(loaded.resolve(m.data.suite.path or ""))
    if m.data.suite.md5 and suite.digest != m.data.suite.md5:
        raise BadInput(
            f"the suite on disk is not the one {loaded.display} pins",
            hint=f"pinned md5 {m.data.suite.md5}, {m.data.suite.path} has {suite.digest}; re-pin or restore the suite",
        )
    for field_name, art in (("model", m.model), ("input.template", m.input.template)):
        result = check_digest(field_name, art, loaded.root)
        if result is not None and not result.ok:
            raise BadInput(
                f"{field_name}: {result.message}",
                hint="the file differs from its pin; replay refuses to run an unpinned artifact",
            )
    if m.model.uri and m.model.uri.startswith("hf://"):
        snapshot = hf_snapshot(m.model.uri, m.model.revision or "")
        model_path = snapshot / m.model.file if m.model.file else snapshot
    else:
        model_path = local_path(m.model, loaded.root)  # type: ignore[assignment]
    assert model_path is not None
    return suite, model_path, m.model.sha256 or m.model.revision or ""


def _adapters(loaded: LoadedManifest) -> list[tuple[str, Path]]:
    from releasectl.manifest.artifacts import check_digest, hf_snapshot

    out = []
    for i, a in enumerate(loaded.manifest.adapters):
        if a.uri and a.uri.startswith("hf://"):
            out.append((a.name, hf_snapshot(a.uri, a.revision or "")))
            continue
        result = check_digest(f"adapters[{i}]", a, loaded.root)
        if result is not None and not result.ok:
            raise BadInput(f"adapters[{i}] ({a.name}): {result.message}")
        out.append((a.name, loaded.resolve(a.path or "")))
    return out


def _tokenizer_path(loaded: LoadedManifest, model_path: Path) -> Path:
    from releasectl.manifest.artifacts import hf_snapshot, local_path

    tok = loaded.manifest.tokenizer
    if tok.uri and tok.uri.startswith("hf://"):
        return hf_snapshot(tok.uri, tok.revision or "")
    return local_path(tok, loaded.root) or model_path


def make_engine(
    loaded: LoadedManifest, engine: str, model_path: Path, model_digest: str, device: str | None
) -> Any:
    from releasectl.replay.engines import create_engine

    m = loaded.manifest
    if engine == "hf":
        return create_engine(
            "hf", model_path=model_path, model_digest=model_digest, dtype=m.runtime.dtype, device=device
        )
    adapters = _adapters(loaded)
    return create_engine(
        "vllm",
        manifest=m,
        model_path=model_path,
        tokenizer_path=_tokenizer_path(loaded, model_path),
        adapters=adapters,
        adapter_ranks=[a.rank or 8 for a in m.adapters],
    )


def _state(
    loaded: LoadedManifest, suite: Suite, engine: str, limit: int | None, shard: Shard | None, batch_size: int
) -> dict[str, Any]:
    return {
        "release": loaded.manifest.release,
        "manifest_digest": loaded.digest,
        "suite_digest": suite.digest,
        "engine": engine,
        "limit": limit,
        "shard": str(shard) if shard else None,
        "batch_size": batch_size,
    }


def run_replay(
    loaded: LoadedManifest,
    out_dir: Path,
    *,
    engine: str | None = None,
    device: str | None = None,
    limit: int | None = None,
    resume: bool = False,
    shard: Shard | None = None,
    allow_device_drift: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    engine_instance: Any = None,
) -> RunSummary:
    """Replay the release's suite into `out_dir`; resumable, shardable and deterministic."""
    m = loaded.manifest
    engine_name = engine or m.runtime.engine
    suite, model_path, model_digest = _check_pins(loaded)
    cases = select_cases(suite, limit)
    # vLLM is batch-invariant, so the whole (shard of the) suite goes in one call; hf batches.
    batch_size = (len(cases) or 1) if engine_name == "vllm" else m.runtime.batch_size
    batches = plan_batches(cases, batch_size) if engine_name == "hf" else [cases]
    if shard is not None:
        if engine_name == "hf":
            batches = [b for i, b in enumerate(batches) if i % shard.count == shard.index]
        else:
            batches = [[c for i, c in enumerate(cases) if i % shard.count == shard.index]]
    state = _state(loaded, suite, engine_name, limit, shard, batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS
    done_rows: list[dict[str, Any]] = []
    if resume and (out_dir / STATE).exists():
        previous = json.loads((out_dir / STATE).read_text(encoding="utf-8"))
        previous.pop("generation_seconds", None)
        if previous != state:
            diffs = ", ".join(
                f"{k}: {previous.get(k)!r} → {v!r}" for k, v in state.items() if previous.get(k) != v
            )
            raise BadInput(
                f"{out_dir} holds a different run ({diffs})",
                hint="resume with the same manifest, suite, engine, --limit and --shard, or use another --out",
            )
        done_rows = read_results(results_path, repair=True)
    else:
        if results_path.exists() and not resume:
            results_path.unlink()
        (out_dir / RUN_JSON).unlink(missing_ok=True)
        atomic_write_text(out_dir / STATE, json.dumps(state, indent=2))
    done = {r["case_id"] for r in done_rows}
    total = sum(len(b) for b in batches)

    eng = engine_instance or make_engine(loaded, engine_name, model_path, model_digest, device)
    actual_device = eng.device
    if actual_device != m.runtime.device and not allow_device_drift:
        raise EnvironmentFailure(
            f"this machine's device is '{actual_device}' but {loaded.display} pins runtime.device '{m.runtime.device}'",
            hint="results reproduce only on the pinned device; run on it, or pass --allow-device-drift (recorded in run.json)",
        )
    started = datetime.now(UTC)
    gen_seconds = float(previous_seconds(out_dir)) if resume else 0.0
    completed = len(done)
    if on_progress:
        on_progress(completed, total)
    adapters = _adapters(loaded) if engine_name == "hf" else []
    template = load_template(loaded.resolve(m.input.template.path or ""))
    context = eng.adapters(adapters) if engine_name == "hf" else _null()
    with context, results_path.open("a", encoding="utf-8") as sink:
        for batch in batches:
            todo = [c for c in batch if c.id not in done]
            if not todo:
                continue
            if len(todo) != len(batch):
                todo = batch  # a partly written batch is redone whole, so padding stays the same
            batch_index = cases.index(batch[0]) // batch_size if engine_name == "hf" else 0
            prompts = [render_prompt(template, dict(c.input)) for c in todo]
            t0 = time.perf_counter()
            gens = eng.generate(
                prompts,
                m.sampling,
                batch_seed=m.sampling.seed + batch_index,
                chat_template=m.input.chat_template,
            )
            seconds = time.perf_counter() - t0
            gen_seconds += seconds
            lines = []
            for case, gen in zip(todo, gens, strict=True):
                if case.id in done:
                    continue
                scored = score_case(case, gen.text, m.verifiers, fixtures_dir=suite.fixtures_dir)
                lines.append(
                    json.dumps(
                        {
                            "case_id": case.id,
                            "slice": case.slice,
                            "passed": scored.passed,
                            "verifiers": scored.verifiers,
                            "output": gen.text,
                            "prompt_tokens": gen.prompt_tokens,
                            "completion_tokens": gen.completion_tokens,
                            # Every request in a batch waits for the whole batch: that is its latency.
                            "latency_ms": round(seconds * 1000, 3),
                            "steps": scored.steps,
                        },
                        ensure_ascii=False,
                    )
                )
                done.add(case.id)
            sink.write("".join(line + "\n" for line in lines))
            sink.flush()
            os.fsync(sink.fileno())
            atomic_write_text(
                out_dir / STATE, json.dumps({**state, "generation_seconds": round(gen_seconds, 3)}, indent=2)
            )
            completed += len(lines)
            if on_progress:
                on_progress(completed, total)
    rows = read_results(results_path)
    rows.sort(key=lambda r: r["case_id"])
    atomic_write_text(results_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    run = {
        "schema_version": 1,
        "release": m.release,
        "manifest_digest": loaded.digest,
        "suite_digest": suite.digest,
        "engine": {"name": engine_name, "version": eng.version},
        "device": actual_device,
        "pinned_device": m.runtime.device,
        "allow_device_drift": allow_device_drift,
        "seed": m.sampling.seed,
        "output_digest": output_digest(rows),
        "cases": len(rows),
        "limit": limit,
        "shard": str(shard) if shard else None,
        "batch_size": batch_size,
        "generation_seconds": round(gen_seconds, 3),
        # A CPU replay counts as one device at the manifest's GPU price, so cost is comparable.
        "gpus": max(1, m.runtime.tensor_parallel_size),
        "gpu_hourly_usd": m.infrastructure.gpu_hourly_usd,
        "model": {"uri": m.model.uri or m.model.path, "sha256": m.model.sha256, "revision": m.model.revision},
        "adapters": [
            {"name": a.name, "ref": a.path or a.uri, "digest": a.md5 or a.sha256 or a.revision}
            for a in m.adapters
        ],
        "provenance": eng.provenance(),
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    atomic_write_text(out_dir / RUN_JSON, json.dumps(run, indent=2, ensure_ascii=False) + "\n")
    return RunSummary(out_dir, run, slice_summary(rows))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def previous_seconds(out_dir: Path) -> float:
    try:
        return float(json.loads((out_dir / STATE).read_text()).get("generation_seconds", 0.0))
    except (OSError, ValueError):
        return 0.0


def slice_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(r["slice"], {"cases": 0, "passed": 0})
        s["cases"] += 1
        s["passed"] += bool(r["passed"])
    for s in out.values():
        s["success_at_1"] = round(s["passed"] / s["cases"], 4) if s["cases"] else None
    return dict(sorted(out.items()))
