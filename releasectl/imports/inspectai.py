"""inspect_ai eval logs: `.eval` (a zip of header.json + samples/<id>_epoch_<n>.json, zstd- or
deflate-compressed) and the older single-document `.json` logs, log format versions 1 and 2.

Read through inspect's own `read_eval_log` when inspect_ai is installed; directly otherwise, with
the same mapping, so an environment without inspect still imports its logs.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem
from releasectl.imports.common import (
    MAX_SOURCE_BYTES,
    Choices,
    ImportedCase,
    ImportedRun,
    Verdict,
    as_dict,
    bad,
    check_scorers_seen,
    content_hash,
    keep_scorer,
    need,
    optional,
    read_json_source,
    score_passes,
    slice_for,
)

HARNESS = "inspect"
LOG_VERSIONS = (1, 2)
SUPPORTED = "inspect_ai eval logs, format versions 1 and 2: .eval (zip) and .json"
SLICE_SOURCES = ("task", "metadata")
# inspect's letter grades (inspect_ai.scorer: CORRECT, INCORRECT, PARTIAL, NOANSWER)
_LETTERS: dict[str, bool | float] = {"C": True, "I": False, "N": False, "P": 0.5}
_ZSTD = 93  # the zip method number inspect writes on Python < 3.14 (zipfile_zstd)


def _with_inspect(path: Path) -> dict[str, Any] | None:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        return None
    try:
        log = read_eval_log(str(path))
    except Exception as e:  # inspect raises many kinds for a damaged log; all are bad input
        errors = getattr(e, "errors", None)
        if callable(errors):  # pydantic: say where, as a JSON path
            first = errors()[0]
            at = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
            raise bad(
                f"inspect_ai refuses the log: {first.get('msg')}",
                f"{path}:{at}",
                hint="supported: " + SUPPORTED,
            ) from None
        raise BadInput(
            f"{path}: inspect_ai cannot read this log: {type(e).__name__}: {str(e)[:300]}",
            hint="supported: " + SUPPORTED,
        ) from None
    data: dict[str, Any] = log.model_dump(mode="json", exclude_none=True)
    data.pop("location", None)
    return data


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    if info.file_size > MAX_SOURCE_BYTES:
        raise BadInput(f"{path}: {info.filename} unpacks to {info.file_size:,} bytes, more than allowed")
    if info.compress_type != _ZSTD:
        with archive.open(info) as f:
            return f.read(MAX_SOURCE_BYTES + 1)
    try:
        import zstandard
    except ImportError:
        raise BadInput(
            f"{path}: {info.filename} is zstd-compressed; install inspect_ai or zstandard to read it"
        ) from None
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset)
    header = fp.read(30)
    if header[:4] != b"PK\x03\x04":
        raise BadInput(f"{path}: {info.filename}: damaged zip entry")
    skip = int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    fp.seek(info.header_offset + 30 + skip)
    raw = fp.read(info.compress_size)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    return reader.read(info.file_size + 1)


def _direct(path: Path) -> dict[str, Any]:
    from releasectl import safeio

    if not zipfile.is_zipfile(path):
        doc = read_json_source(path, "inspect log")
        if not isinstance(doc, dict):
            raise bad("not an inspect log", f"{path}:$", expected="an object", found=doc)
        return doc
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
            if "header.json" not in infos:
                raise BadInput(
                    f"{path}: no header.json in the .eval log (the eval did not finish)",
                    hint="supported: " + SUPPORTED,
                )
            source = f"{path}!header.json"
            doc = safeio.loads_json(_member(archive, infos["header.json"], path), source=source)
            samples = []
            for name in sorted(n for n in infos if n.startswith("samples/") and n.endswith(".json")):
                samples.append(
                    safeio.loads_json(_member(archive, infos[name], path), source=f"{path}!{name}")
                )
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadInput(f"{path}: damaged .eval log: {e}") from None
    except Exception as e:  # zstandard.ZstdError and friends
        if isinstance(e, BadInput):
            raise
        raise BadInput(f"{path}: damaged .eval log: {type(e).__name__}: {e}") from None
    if not isinstance(doc, dict):
        raise bad("not an inspect log header", f"{path}!header.json:$", expected="an object", found=doc)
    doc["samples"] = samples
    return doc


def load_log(path: Path, *, use_inspect: bool = True) -> dict[str, Any]:
    """The log as plain JSON data: inspect's own reader where installed, else read directly.
    The header is always checked directly first, so an unsupported version or an unfinished
    eval is named as such rather than as whatever inspect's models make of it."""
    direct = _direct(path)
    _check_header(direct, path)
    data = _with_inspect(path) if use_inspect else None
    return data if data is not None else direct


def _check_header(log: dict[str, Any], path: Path) -> None:
    root = f"{path}:$"
    version = log.get("version")
    if version not in LOG_VERSIONS or isinstance(version, bool):
        raise bad(
            f"unsupported inspect log version {version!r}",
            f"{root}.version",
            expected=SUPPORTED,
            found=version,
        )
    status = log.get("status")
    if status != "success":
        raise bad(
            f"the eval's status is {status!r}, not 'success'; a partial eval is not a release's evidence",
            f"{root}.status",
            hint="finish it (inspect eval-retry LOG) and import the finished log",
        )


def _seconds(stats: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(stats["started_at"]))
        end = datetime.fromisoformat(str(stats["completed_at"]))
    except (KeyError, ValueError):
        return None
    return max(0.0, (end - start).total_seconds())


def _score_value(name: str, value: Any, choices: Choices, where: str) -> tuple[bool, str]:
    if isinstance(value, str):
        if value not in _LETTERS:
            raise bad(
                f"score '{name}' is the string {value!r}", where, expected="C, I, P, N, a number or a boolean"
            )
        letter = _LETTERS[value]
        if isinstance(letter, bool):
            return letter, f"{name}={value}"
        passed, detail = score_passes(name, letter, choices, where)
        return passed, f"{name}={value} ({detail})"
    if isinstance(value, dict | list):
        raise bad(
            f"score '{name}' has a structured value; import supports one value per scorer",
            where,
            found=value,
            hint="supported: " + SUPPORTED,
        )
    return score_passes(name, value, choices, where)


def _usage(sample: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    output = as_dict(sample.get("output"))
    usage = output.get("usage") if isinstance(output.get("usage"), dict) else None
    if usage is None:
        per_model = sample.get("model_usage")
        if isinstance(per_model, dict) and per_model:
            usage = {"input_tokens": 0, "output_tokens": 0}
            for name, u in per_model.items():
                for key in ("input_tokens", "output_tokens"):
                    usage[key] += need(u, key, int, f"{where}.model_usage.{name}")
    if usage is None:
        return None, None
    return need(usage, "input_tokens", int, f"{where}.usage"), need(
        usage, "output_tokens", int, f"{where}.usage"
    )


def read(path: Path, choices: Choices, *, use_inspect: bool = True) -> ImportedRun:
    log = load_log(path, use_inspect=use_inspect)
    root = f"{path}:$"
    version = log.get("version")
    ev = need(log, "eval", dict, root)
    task = need(ev, "task", str, f"{root}.eval")
    samples = log.get("samples")
    if not isinstance(samples, list) or not samples:
        raise bad(
            "the log holds no samples",
            f"{root}.samples",
            hint="run inspect eval with log_samples on (the default)",
        )
    slice_from = choices.slice_from or "task"
    wanted_epoch = choices.select.get("epoch")
    cases: list[ImportedCase] = []
    seen: set[str] = set()
    timed = True
    for i, sample in enumerate(samples):
        where = f"{path}:$.samples[{i}]"
        if not isinstance(sample, dict):
            raise bad("expected an object", where, found=sample)
        sid = need(sample, "id", (str, int), where)
        epoch = need(sample, "epoch", int, where)
        if wanted_epoch is not None and str(epoch) != wanted_epoch:
            continue
        scores = optional(sample, "scores", dict, where) or {}
        verdicts: dict[str, Verdict] = {}
        for name, score in scores.items():
            seen.add(name)
            if not keep_scorer(name, choices):
                continue
            value = need(score, "value", (str, int, float, bool, dict, list), f"{where}.scores.{name}")
            passed, detail = _score_value(name, value, choices, f"{where}.scores.{name}.value")
            explanation = score.get("explanation") if isinstance(score.get("explanation"), str) else ""
            verdicts[name] = Verdict(
                passed, "correctness", (detail + (f": {explanation}" if explanation else ""))[:2000]
            )
        error = sample.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            verdicts["sample_error"] = Verdict(
                False, "correctness", f"the sample failed: {str(message)[:500]}"
            )
        if not verdicts:
            raise bad(
                "no score to decide pass/fail",
                where,
                expected=", ".join(choices.scorers) or "a scorer",
                found=sorted(scores),
            )
        prompt_tokens, completion_tokens = _usage(sample, where)
        seconds = (
            sample.get("total_time") if sample.get("total_time") is not None else sample.get("working_time")
        )
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
            raise bad("wrong type", f"{where}.total_time", expected="seconds", found=seconds)
        timed = timed and seconds is not None
        output = as_dict(sample.get("output"))
        completion = output.get("completion", "")
        metadata = as_dict(sample.get("metadata"))
        cases.append(
            ImportedCase(
                key=f"{task}/{sid}/epoch{epoch}",
                content_hash=content_hash(
                    {
                        "input": sample.get("input"),
                        "target": sample.get("target"),
                        "choices": sample.get("choices"),
                    }
                ),
                slice=slice_for(slice_from, {"task": task, "metadata": metadata}, where, SLICE_SOURCES),
                verifiers=verdicts,
                output=completion if isinstance(completion, str) else json.dumps(completion),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=None if seconds is None else round(float(seconds) * 1000, 3),
                where=where,
            )
        )
    check_scorers_seen(seen, choices, str(path), "scorer")
    stats = as_dict(log.get("stats"))
    packages = as_dict(ev.get("packages"))
    config = as_dict(ev.get("config"))
    if not isinstance(ev.get("model"), str):
        raise BadInput(
            f"{path}: the log names no model",
            [Problem("missing model", file=str(path), field="$.eval.model")],
        )
    return ImportedRun(
        harness=HARNESS,
        harness_version=packages.get("inspect_ai"),
        format=f"inspect log v{version} ({'eval zip' if zipfile.is_zipfile(path) else 'json'})",
        sources=[path],
        cases=cases,
        model={
            "name": ev.get("model"),
            "args": ev.get("model_args"),
            "base_url": ev.get("model_base_url"),
            "generate_config": ev.get("model_generate_config"),
            "revision": ev.get("revision"),
        },
        device=None,
        seed=config.get("seed") if isinstance(config.get("seed"), int) else None,
        generation_seconds=_seconds(stats),
        started_at=stats.get("started_at") if isinstance(stats.get("started_at"), str) else None,
        details={
            "task": task,
            "task_version": ev.get("task_version"),
            "task_id": ev.get("task_id"),
            "eval_id": ev.get("eval_id"),
            "run_id": ev.get("run_id"),
            "epochs": config.get("epochs"),
            "dataset": {k: v for k, v in (ev.get("dataset") or {}).items() if k != "sample_ids"},
            "read_with": "inspect_ai.log.read_eval_log" if use_inspect and _inspect_installed() else "direct",
        },
        unmapped=[] if timed else ["per-sample time (an older log without total_time)"],
    )


def _inspect_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("inspect_ai") is not None
