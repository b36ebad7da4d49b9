"""Replay a release's frozen suite: check the pins, plan, generate, score, write the run directory.

The three parts are separate: `plan.py` decides which cases go in which batch with which seed
(pure), this module drives the engine over the plan and scores each output, and `writer.py`
owns the run directory (append, resume, finalise).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from releasectl.errors import BadInput
from releasectl.manifest.loader import LoadedManifest
from releasectl.manifest.models import Endpoint
from releasectl.replay.engines.base import Adapter, Engine, Generation, Prompt, Runtime
from releasectl.replay.plan import SEED_DERIVATION, Item, Plan, Shard, pending, plan_replay, select_cases
from releasectl.replay.writer import (
    RESULTS,
    RUN_JSON,
    STATE,
    RunDirectory,
    RunSummary,
    output_digest,
    read_results,
    slice_summary,
)
from releasectl.suite import Case, Suite, load_suite, score_case

__all__ = [
    "RESULTS",
    "RUN_JSON",
    "STATE",
    "PromptTemplate",
    "RunSummary",
    "Shard",
    "load_template",
    "output_digest",
    "read_results",
    "render_prompt",
    "run_replay",
    "select_cases",
    "slice_summary",
]


@dataclass(frozen=True)
class PromptTemplate:
    path: Path
    compiled: Any
    chat_template: bool = True


def load_template(template_path: Path, *, chat_template: bool = True) -> PromptTemplate:
    """Compile the pinned Jinja2 prompt template once, in a sandbox with strict undefined."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    from releasectl.safeio import read_text

    try:
        template = env.from_string(read_text(template_path, what="prompt template"))
    except TemplateError as e:
        raise BadInput(f"{template_path}: template error: {e}") from None
    return PromptTemplate(template_path, template, chat_template)


def render_prompt(template: PromptTemplate, case_input: dict[str, Any]) -> Prompt:
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
    return Prompt(messages, template.chat_template)


@dataclass(frozen=True)
class PinnedInputs:
    """The verified local artifacts a replay runs on."""

    suite: Suite
    model_path: Path
    model_digest: str
    tokenizer_path: Path
    adapters: tuple[Adapter, ...]
    template: PromptTemplate


def check_pins(loaded: LoadedManifest) -> PinnedInputs:
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
        found = local_path(m.model, loaded.root)
        assert found is not None, "a pinned model is hf://, pkg:// or a repo path"
        model_path = found
    tok = m.tokenizer
    if tok.uri and tok.uri.startswith("hf://"):
        tokenizer_path = hf_snapshot(tok.uri, tok.revision or "")
    else:
        tokenizer_path = local_path(tok, loaded.root) or model_path
    adapters = []
    for i, a in enumerate(m.adapters):
        if a.uri and a.uri.startswith("hf://"):
            adapters.append(Adapter(a.name, hf_snapshot(a.uri, a.revision or ""), a.rank or 8))
            continue
        result = check_digest(f"adapters[{i}]", a, loaded.root)
        if result is not None and not result.ok:
            raise BadInput(f"adapters[{i}] ({a.name}): {result.message}")
        adapters.append(Adapter(a.name, loaded.resolve(a.path or ""), a.rank or 8))
    template = load_template(loaded.resolve(m.input.template.path or ""), chat_template=m.input.chat_template)
    return PinnedInputs(
        suite,
        model_path,
        m.model.sha256 or m.model.revision or "",
        tokenizer_path,
        tuple(adapters),
        template,
    )


def probe_runtime(
    loaded: LoadedManifest, engine: str, device: str | None, endpoint: Endpoint | None = None
) -> Runtime:
    """What the chosen engine would run on here, without loading a model."""
    if engine == "hf":
        from releasectl.replay.engines.hf import probe_runtime as probe_hf

        return probe_hf(device)
    if engine == "vllm":
        from releasectl.replay.engines.vllm import probe_runtime as probe_vllm

        return probe_vllm(device)
    if engine == "openai":
        chosen = endpoint_for(loaded, endpoint)
        from releasectl.replay.engines.openai import probe_runtime as probe_openai

        return probe_openai(loaded, chosen)
    raise BadInput(
        f"unknown engine '{engine}'",
        hint="use --engine hf (transformers), vllm (vLLM, CPU build or GPU) or openai (a served endpoint)",
    )


def make_engine(
    loaded: LoadedManifest,
    engine: str,
    inputs: PinnedInputs,
    runtime: Runtime,
    *,
    device: str | None = None,
    endpoint: Endpoint | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Engine:
    """Load the chosen engine on the verified inputs (the slow part: the model loads here)."""
    m = loaded.manifest
    if engine == "hf":
        from releasectl.replay.engines.hf import HfEngine

        return HfEngine(
            inputs.model_path,
            inputs.model_digest,
            dtype=m.runtime.dtype,
            device=device,
            batch_size=m.runtime.batch_size,
            runtime=runtime,
        )
    if engine == "vllm":
        from releasectl.replay.engines.vllm import VllmEngine

        model_path, tokenizer_path = inputs.model_path, inputs.tokenizer_path
        if m.model.format == "gguf":
            from releasectl.manifest.snapshot import vllm_snapshot

            snapshot = vllm_snapshot(
                model_path, m.model.sha256 or "", dtype=m.runtime.dtype, on_status=on_status
            )
            model_path = snapshot
            if tokenizer_path == inputs.model_path or tokenizer_path.suffix == ".gguf":
                tokenizer_path = snapshot  # the GGUF's tokenizer, converted with it
        return VllmEngine(m, model_path, tokenizer_path, inputs.adapters, runtime=runtime)
    from releasectl.replay.engines.openai import OpenAIEngine

    return OpenAIEngine(loaded, endpoint_for(loaded, endpoint), inputs.adapters, runtime=runtime)


def endpoint_for(loaded: LoadedManifest, override: Endpoint | None) -> Endpoint:
    """The served endpoint: flags over the manifest's runtime.endpoint."""
    endpoint = override or loaded.manifest.runtime.endpoint
    if endpoint is None:
        raise BadInput(
            f"the openai engine needs an endpoint, and {loaded.display} has no runtime.endpoint",
            hint="pass --base-url http://HOST:PORT/v1 (and --served-model-name), or add runtime.endpoint to the release",
        )
    return endpoint


def replay_state(
    loaded: LoadedManifest, suite: Suite, engine: str, limit: int | None, shard: Shard | None, plan: Plan
) -> dict[str, Any]:
    """What identifies a run for --resume."""
    state: dict[str, Any] = {
        "release": loaded.manifest.release,
        "manifest_digest": loaded.digest,
        "suite_digest": suite.digest,
        "engine": engine,
        "limit": limit,
        "shard": str(shard) if shard else None,
        "batch_size": plan.batch_size,
    }
    if plan.samples > 1:  # only then: a run started before sampling existed still resumes
        state["samples"] = plan.samples
    return state


def result_row(item: Item, gen: Generation, scored: Any) -> dict[str, Any]:
    """One results.jsonl row; its identity is (case_id, sample), and `seed` is what generated it."""
    case = item.case
    row: dict[str, Any] = {
        "case_id": case.id,
        "sample": item.sample,
        "seed": item.seed,
        "slice": case.slice,
        "passed": scored.passed,
        "verifiers": scored.verifiers,
        "output": gen.text,
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "latency_ms": gen.latency_ms,
        "steps": scored.steps,
    }
    if gen.ttft_ms is not None:
        row["ttft_ms"] = gen.ttft_ms
    return row


class CaseSchedule(Protocol):
    """A replay that orders its own cases and may stop before the plan ends (`replay --sequential`,
    releasectl/replay/sequential.py)."""

    def order(self, cases: list[Case]) -> list[Case]:
        """The cases to replay, in the order to replay them."""
        ...

    def state(self) -> dict[str, Any]:
        """What identifies the schedule for --resume."""
        ...

    def after_batch(self, rows: list[dict[str, Any]], generation_seconds: float) -> bool:
        """Called with every row so far after each batch is written: True stops the replay."""
        ...

    def record(self) -> dict[str, Any]:
        """Fields merged into run.json."""
        ...

    def skip(self, case: Case) -> bool:
        """True: leave this case out (it can no longer change the decision); asked per batch."""
        ...


def generate_plan(
    engine: Engine,
    plan: Plan,
    inputs: PinnedInputs,
    loaded: LoadedManifest,
    run_dir: RunDirectory,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[list[dict[str, Any]], float], bool] | None = None,
    skip: Callable[[Case], bool] | None = None,
) -> None:
    """The generation loop: each pending batch through the engine, scored, appended durably;
    `should_stop` (a CaseSchedule's after_batch) may end it after any batch, and `skip` (its
    `skip`) leaves cases out."""
    m = loaded.manifest
    done = run_dir.done
    completed = len(done & {i.key for b in plan.batches for i in b.items})
    if on_progress:
        on_progress(completed, plan.total)
    if should_stop is not None and run_dir.rows and should_stop(run_dir.rows, run_dir.generation_seconds):
        return  # a resumed run that had already decided
    rendered: dict[str, Any] = {}  # a case's prompt, rendered once for all its samples
    with engine.use_adapters(inputs.adapters):
        for batch in plan.batches:
            todo = pending(batch, done)
            if skip is not None:
                todo = tuple(item for item in todo if not skip(item.case))
            if not todo:
                continue
            prompts = []
            for item in todo:
                if item.case.id not in rendered:
                    rendered = {item.case.id: render_prompt(inputs.template, dict(item.case.input))}
                prompts.append(rendered[item.case.id])
            t0 = time.perf_counter()
            if plan.samples > 1:  # each sample its own derived seed (plan.sample_seed)
                gens = engine.generate(prompts, m.sampling, seed=batch.seed, seeds=[i.seed for i in todo])
            else:
                gens = engine.generate(prompts, m.sampling, seed=batch.seed)
            seconds = time.perf_counter() - t0
            if len(gens) != len(todo):
                raise BadInput(
                    f"the {engine.name} engine returned {len(gens)} completions for {len(todo)} prompts"
                )
            rows = []
            for item, gen in zip(todo, gens, strict=True):
                if item.key in done:
                    continue  # an atomic batch redone whole keeps the rows it had
                scored = score_case(item.case, gen.text, m.verifiers, fixtures_dir=inputs.suite.fixtures_dir)
                rows.append(result_row(item, gen, scored))
                done.add(item.key)
            run_dir.append(rows, seconds)
            completed += len(rows)
            if on_progress:
                on_progress(completed, plan.total)
            if should_stop is not None and should_stop(run_dir.rows, run_dir.generation_seconds):
                break


def run_record(
    loaded: LoadedManifest,
    inputs: PinnedInputs,
    engine: Engine,
    *,
    limit: int | None,
    shard: Shard | None,
    plan: Plan,
    drift: dict[str, Any],
    generation_seconds: float,
    started: datetime,
) -> dict[str, Any]:
    """run.json (SPEC §5.1) without the output digest and case count, which the writer adds."""
    m = loaded.manifest
    runtime = engine.runtime
    return {
        "schema_version": 1,
        "release": m.release,
        "manifest_digest": loaded.digest,
        "suite_digest": inputs.suite.digest,
        "engine": {"name": engine.name, "version": runtime.engine_version},
        "device": runtime.device,
        "pinned_device": m.runtime.device,
        "allow_device_drift": drift["device"] is not None,
        "allow_engine_drift": drift["engine"] is not None,
        "runtime": runtime.as_dict(),
        "drift": drift,
        "seed": m.sampling.seed,
        "sampling": {
            "n": plan.samples,
            "temperature": m.sampling.temperature,
            # per-sample seeds (replay/plan.py) or, with one sample, the seed of each generate call
            "seed_derivation": SEED_DERIVATION if plan.samples > 1 else "batch",
        },
        "limit": limit,
        "shard": str(shard) if shard else None,
        "batch_size": plan.batch_size,
        "generation_seconds": round(generation_seconds, 3),
        # A CPU replay counts as one device at the manifest's GPU price, so cost is comparable.
        "gpus": max(1, m.runtime.tensor_parallel_size),
        "gpu_hourly_usd": m.infrastructure.gpu_hourly_usd,
        "model": {"uri": m.model.uri or m.model.path, "sha256": m.model.sha256, "revision": m.model.revision},
        "adapters": [
            {"name": a.name, "ref": a.path or a.uri, "digest": a.md5 or a.sha256 or a.revision}
            for a in m.adapters
        ],
        "provenance": {"settings": engine.settings(), **runtime.as_dict()},
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
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
    allow_engine_drift: bool = False,
    endpoint: Endpoint | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    engine_instance: Engine | None = None,
    schedule: CaseSchedule | None = None,
) -> RunSummary:
    """Replay the release's suite into `out_dir`; resumable, shardable and deterministic. A
    `schedule` orders the cases and may stop early (`replay --sequential`)."""
    from releasectl.replay.runtime_pin import enforce_runtime

    m = loaded.manifest
    engine_name = engine_instance.name if engine_instance else (engine or m.runtime.engine)
    inputs = check_pins(loaded)
    # The runtime pin is checked before the model loads: a refusal costs seconds, not minutes.
    runtime = (
        engine_instance.runtime if engine_instance else probe_runtime(loaded, engine_name, device, endpoint)
    )
    drift = enforce_runtime(
        m.runtime,
        engine_name,
        runtime,
        manifest_display=loaded.display,
        allow_engine_drift=allow_engine_drift,
        allow_device_drift=allow_device_drift,
    )
    RunDirectory(out_dir, {}).prepare()  # a bad --out fails now, not after the model loads
    eng = engine_instance or make_engine(
        loaded, engine_name, inputs, runtime, device=device, endpoint=endpoint, on_status=on_status
    )
    cases = select_cases(inputs.suite, limit)
    if schedule is not None:
        cases = schedule.order(cases)
    plan = plan_replay(
        cases, batch_size=eng.batch_size, seed=m.sampling.seed, shard=shard, samples=m.sampling.n
    )
    state = replay_state(loaded, inputs.suite, engine_name, limit, shard, plan)
    if schedule is not None:
        state["schedule"] = schedule.state()
    run_dir = RunDirectory(out_dir, state)
    run_dir.start(resume=resume)
    restore = getattr(schedule, "restore", None)  # a schedule's own resume state (its rounds so far)
    if restore is not None:
        restore(out_dir, len(run_dir.rows))
    started = datetime.now(UTC)
    try:
        generate_plan(
            eng,
            plan,
            inputs,
            loaded,
            run_dir,
            on_progress,
            schedule.after_batch if schedule else None,
            schedule.skip if schedule else None,
        )
    finally:
        run_dir.close()
        if engine_instance is None:
            eng.close()
    record = run_record(
        loaded,
        inputs,
        eng,
        limit=limit,
        shard=shard,
        plan=plan,
        drift=drift,
        generation_seconds=run_dir.generation_seconds,
        started=started,
    )
    if schedule is not None:
        record.update(schedule.record())
    return run_dir.finish(record)
