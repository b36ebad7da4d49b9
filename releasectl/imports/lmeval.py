"""lm-evaluation-harness: `--log_samples` output (`samples_<task>_<date>.jsonl` beside
`results_<date>.json`), as lm-eval 0.4 writes it (lm_eval/evaluator.py, result_schema.py).

Two shapes of a samples line are read: with `doc_hash`/`prompt_hash`/`target_hash`, `filter` and
`metrics` (later 0.4 releases), and without them (early 0.4). For the older shape the document
hash is computed exactly as lm-eval computes `doc_hash` (sha256 of `json.dumps(doc, indent=2,
ensure_ascii=False)`), so a case pairs across both.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem
from releasectl.imports.common import (
    Choices,
    ImportedCase,
    ImportedRun,
    Verdict,
    as_dict,
    bad,
    check_scorers_seen,
    iter_json_lines,
    keep_scorer,
    need,
    read_json_source,
    score_passes,
    slice_for,
)

HARNESS = "lm-eval"
SUPPORTED = (
    "lm-eval 0.4.x --log_samples output: samples_<task>_<date>.jsonl lines with doc_id, doc, "
    "filtered_resps and per-sample metrics, with doc_hash/prompt_hash (later 0.4) or without (early 0.4), "
    "optionally beside results_<date>.json"
)
SLICE_SOURCES = ("task", "group")
_SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")
_RESULTS = re.compile(r"^results_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.json$")
_FIXED = {
    "doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
    "doc_hash", "prompt_hash", "target_hash",
}  # fmt: skip


def locate(path: Path) -> tuple[Path | None, list[tuple[str, Path]]]:
    """(results file or None, [(task, samples file)]) for a folder, a results file or a samples file."""
    if path.is_dir():
        results = sorted(p for p in path.rglob("results_*.json") if _RESULTS.match(p.name))
        if len(results) > 1:
            raise BadInput(
                f"{path} holds {len(results)} lm-eval results files; import one of them",
                [Problem("more than one run", file=str(path), found=", ".join(str(r) for r in results[:5]))],
            )
        if results:
            return locate(results[0])
        samples = sorted(p for p in path.rglob("samples_*.jsonl") if _SAMPLES.match(p.name))
        if not samples:
            raise BadInput(
                f"{path} holds no lm-eval samples_<task>_<date>.jsonl files",
                hint="run lm_eval with --log_samples; supported: " + SUPPORTED,
            )
        return None, [(_task_of(s), s) for s in samples]
    m = _RESULTS.match(path.name)
    if m:
        date = m.group("date")
        found = sorted(p for p in path.parent.glob(f"samples_*_{date}.jsonl") if _SAMPLES.match(p.name))
        if not found:
            raise BadInput(
                f"{path}: no samples_<task>_{date}.jsonl beside it, so there are no per-sample scores",
                hint="run lm_eval with --log_samples (the gate pairs cases; aggregate scores cannot be paired)",
            )
        return path, [(_task_of(s), s) for s in found]
    if path.suffix == ".jsonl":
        return None, [(_task_of(path), path)]
    raise BadInput(f"{path} is not lm-eval output", hint="supported: " + SUPPORTED)


def _check_counts(results: dict[str, Any], docs: dict[str, set[int]], results_file: Path, path: Path) -> None:
    """Every task results.json counted (`n-samples.<task>.effective`) has that many documents in
    its samples file: a missing, truncated or compressed samples file would otherwise import as
    a smaller suite, and gate as if it were whole. Exit 2 naming the task and both counts."""
    counted = results.get("n-samples")
    if not isinstance(counted, dict):
        return
    problems = []
    for task, n in counted.items():
        effective = n.get("effective") if isinstance(n, dict) else None
        if type(effective) is not int or task in (results.get("group_subtasks") or {}):
            continue
        found = len(docs.get(task, ()))
        if found != effective:
            problems.append(
                Problem(
                    f"task {task}: results.json counts {effective} samples, the samples files hold {found}"
                    + ("" if task in docs else " (no samples_" + task + "_<date>.jsonl)"),
                    file=str(results_file),
                    field=f"n-samples.{task}.effective",
                    expected=str(effective),
                    found=str(found),
                )
            )
    if problems:
        gz = sorted(p.name for p in (path if path.is_dir() else path.parent).rglob("samples_*.jsonl.gz"))
        raise BadInput(
            f"{path}: {len(problems)} task(s) have fewer or more samples than results.json counts",
            problems,
            hint=(f"gunzip {', '.join(gz[:3])} first; " if gz else "")
            + "import the complete --log_samples output of one lm-eval run",
        )


def _task_of(samples: Path) -> str:
    m = _SAMPLES.match(samples.name)
    return m.group("task") if m else samples.stem.removeprefix("samples_")


def lm_eval_doc_hash(doc: Any) -> str:
    """lm-eval's own `doc_hash` (evaluator.py: hash_string(json.dumps(doc, indent=2, ...)))."""
    text = json.dumps(doc, indent=2, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _output(sample: dict[str, Any], where: str) -> str:
    filtered = need(sample, "filtered_resps", list, where)
    if filtered and all(isinstance(r, list) and len(r) == 2 for r in filtered):
        # multiple choice: one [log-likelihood, is_greedy] per choice; the output is the best one
        try:
            scores = [float(r[0]) for r in filtered]
        except (TypeError, ValueError):
            raise bad(
                "a log-likelihood is not a number", f"{where}.filtered_resps", found=filtered[:2]
            ) from None
        best = max(range(len(scores)), key=scores.__getitem__)
        arguments = sample.get("arguments")
        if isinstance(arguments, dict):  # {"gen_args_0": {"arg_0": context, "arg_1": continuation}}
            arg = arguments.get(f"gen_args_{best}")
            if isinstance(arg, dict) and isinstance(arg.get("arg_1"), str):
                return arg["arg_1"].strip()
        elif isinstance(arguments, list) and best < len(arguments):  # early 0.4: [[context, continuation]]
            arg = arguments[best]
            if isinstance(arg, list) and len(arg) >= 2 and isinstance(arg[1], str):
                return arg[1].strip()
        return f"choice {best}"
    if filtered and isinstance(filtered[0], str):
        return filtered[0]
    return json.dumps(filtered, ensure_ascii=False)[:4096]


def read(path: Path, choices: Choices) -> ImportedRun:
    results_file, sample_files = locate(path)
    results: dict[str, Any] = {}
    if results_file is not None:
        doc = read_json_source(results_file, "lm-eval results file")
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
            raise bad(
                "not an lm-eval results file",
                f"{results_file}:$",
                expected="an object with 'results'",
                hint="supported: " + SUPPORTED,
            )
        results = doc
    groups: dict[str, str] = {}
    for group, tasks in (results.get("group_subtasks") or {}).items():
        if isinstance(tasks, list):
            for t in tasks:
                if isinstance(t, str):
                    groups.setdefault(t, group)
    slice_from = choices.slice_from or "task"
    wanted_filter = choices.select.get("filter")
    cases: list[ImportedCase] = []
    seen_metrics: set[str] = set()
    filters: set[str] = set()
    shapes: set[str] = set()
    docs: dict[str, set[int]] = {}  # the doc_ids read per task, to check against n-samples
    for task, file in sample_files:
        docs.setdefault(task, set())
        for line, sample in iter_json_lines(file, "lm-eval samples file"):
            where = f"{file}:{line}"
            if not isinstance(sample, dict) or "doc_id" not in sample or "filtered_resps" not in sample:
                raise bad(
                    "not an lm-eval samples line",
                    where,
                    expected="an object with doc_id, doc, filtered_resps",
                    hint="supported: " + SUPPORTED,
                )
            doc_id = need(sample, "doc_id", int, where)
            docs[task].add(doc_id)
            flt = sample.get("filter", "none")
            if not isinstance(flt, str):
                raise bad("wrong type", f"{where}.filter", expected="a string", found=flt)
            filters.add(flt)
            if wanted_filter is not None and flt != wanted_filter:
                continue
            if "doc_hash" in sample:
                doc_hash = need(sample, "doc_hash", str, where)
                shapes.add("samples with doc_hash")
            else:
                doc_hash = lm_eval_doc_hash(sample.get("doc"))
                shapes.add("samples without doc_hash (hash computed as lm-eval does)")
            listed = sample.get("metrics")
            if listed is not None and not (
                isinstance(listed, list) and all(isinstance(m, str) for m in listed)
            ):
                raise bad("wrong type", f"{where}.metrics", expected="a list of metric names", found=listed)
            names = listed if listed is not None else [k for k in sample if k not in _FIXED]
            verdicts: dict[str, Verdict] = {}
            for name in names:
                seen_metrics.add(name)
                if not keep_scorer(name, choices):
                    continue
                if name not in sample:
                    raise bad(f"metric '{name}' is listed but has no value", where)
                passed, detail = score_passes(name, sample[name], choices, f"{where}.{name}")
                verdicts[name] = Verdict(passed, "correctness", detail)
            if not verdicts:
                raise bad(
                    "no metric to decide pass/fail",
                    where,
                    expected=", ".join(choices.scorers) or "a per-sample metric",
                    found=names,
                )
            group = groups.get(task, task)
            cases.append(
                ImportedCase(
                    key=f"{task}/{doc_id}" + ("" if flt == "none" else f"/{flt}"),
                    content_hash=doc_hash,
                    slice=slice_for(slice_from, {"task": task, "group": group}, where, SLICE_SOURCES),
                    verifiers=verdicts,
                    output=_output(sample, where),
                    where=where,
                )
            )
    if len(filters) > 1 and wanted_filter is None:
        raise BadInput(
            f"{path}: the samples hold {len(filters)} filters ({', '.join(sorted(filters))}); choose one",
            [
                Problem(
                    "more than one filter",
                    file=str(path),
                    field="filter",
                    expected="--select filter=NAME",
                    found=", ".join(sorted(filters)),
                )
            ],
        )
    if wanted_filter is not None and wanted_filter not in filters:
        raise BadInput(
            f"{path}: no filter named {wanted_filter!r}",
            [
                Problem(
                    "unknown filter", file=str(path), expected=", ".join(sorted(filters)), found=wanted_filter
                )
            ],
        )
    check_scorers_seen(seen_metrics, choices, str(path), "metric")
    if results_file is not None:
        _check_counts(results, docs, results_file, path)
    config = as_dict(results.get("config"))
    seconds = results.get("total_evaluation_time_seconds")
    try:
        generation_seconds = float(seconds) if seconds is not None else None
    except (TypeError, ValueError):
        raise bad(
            "not a number of seconds", f"{results_file}:$.total_evaluation_time_seconds", found=seconds
        ) from None
    seed = config.get("random_seed")
    model_args = config.get("model_args")
    return ImportedRun(
        harness=HARNESS,
        harness_version=results.get("lm_eval_version")
        if isinstance(results.get("lm_eval_version"), str)
        else None,
        format="lm-eval " + " + ".join(sorted(shapes)) + ("" if results_file else " (no results file)"),
        sources=[p for p in [results_file, *(f for _, f in sample_files)] if p is not None],
        cases=cases,
        model={
            "name": results.get("model_name") or config.get("model"),
            "source": results.get("model_source") or config.get("model"),
            "args": model_args,
            "revision": config.get("model_revision"),
            "sha": config.get("model_sha") or None,
            "dtype": config.get("model_dtype"),
        },
        device=config.get("device") if isinstance(config.get("device"), str) else None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        generation_seconds=generation_seconds,
        details={
            "tasks": sorted({t for t, _ in sample_files}),
            "filter": wanted_filter or (next(iter(filters)) if filters else None),
            "versions": results.get("versions"),
            "n-shot": results.get("n-shot"),
            "task_hashes": results.get("task_hashes"),
            "git_hash": results.get("git_hash"),
            "transformers_version": results.get("transformers_version"),
        },
        unmapped=[] if results_file else ["harness version, model and timing (no results_<date>.json)"],
    )
