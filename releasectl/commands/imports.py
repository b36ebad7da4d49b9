"""`releasectl import lm-eval|inspect|promptfoo SRC --out DIR`: gate what other harnesses produced.

Each subcommand reads the harness's own output and writes a run directory (SPEC §5.1) that
`gate`, `report` and `promote` read like a replayed one; `import check A B` says whether two
imported runs hold the same cases with the same content (the gate refuses them otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, format_option
from releasectl.errors import BadInput, Problem


def _thresholds(values: tuple[str, ...]) -> dict[str, float]:
    import math

    out: dict[str, float] = {}
    for text in values:
        name, sep, number = text.rpartition("=")
        name = name if sep else "*"
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadInput(
                f"--threshold {text!r} is not NAME=NUMBER",
                [Problem("bad threshold", field="--threshold", expected="NAME=NUMBER or NUMBER", found=text)],
            )
        out[name] = value
    return out


def _select(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise BadInput(
                f"--select {text!r} is not KEY=VALUE",
                [Problem("bad selection", field="--select", expected="KEY=VALUE", found=text)],
            )
        out[key] = value
    return out


def _common(func: Callable[..., int]) -> Callable[..., int]:
    options = [
        click.option(
            "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run directory to write."
        ),
        click.option(
            "--slice-from", default=None, help="Where slices come from (see the subcommand's help)."
        ),
        click.option(
            "--scorer",
            "--metric",
            "scorers",
            multiple=True,
            help="Keep only this metric / scorer / assertion metric as a verifier (repeatable; default all).",
        ),
        click.option(
            "--threshold",
            "thresholds",
            multiple=True,
            help="NAME=X: a non-binary score passes when >= X (X alone: every score). Required for non-binary scores.",
        ),
        click.option(
            "--select",
            "selects",
            multiple=True,
            help="KEY=VALUE: which filter / prompt / provider / model to import.",
        ),
        click.option(
            "--release",
            default=None,
            help="Release name for run.json (default: the manifest's, else imported-<harness>).",
        ),
        click.option(
            "--manifest",
            type=click.Path(path_type=Path),
            default=None,
            help="Bind the run to this manifest; it must pin the imported file or folder by digest.",
        ),
        click.option(
            "--gpus",
            type=int,
            default=None,
            help="GPUs the harness run used (>= 1; default: the manifest's).",
        ),
        click.option(
            "--gpu-hourly-usd",
            type=float,
            default=None,
            help="Price of one GPU hour (default: the manifest's).",
        ),
        format_option(),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_import(harness: str, source: Path, fmt: str, **kw: Any) -> int:
    from releasectl import safeio
    from releasectl.imports import HARNESSES
    from releasectl.imports.common import Choices
    from releasectl.imports.writer import bind, write_run

    if not source.is_dir():
        source = safeio.regular_file(source, what=f"{harness} output")
    elif not source.exists():
        raise BadInput(f"{source} does not exist")
    choices = Choices(
        slice_from=kw["slice_from"],
        scorers=tuple(kw["scorers"]),
        thresholds=_thresholds(kw["thresholds"]),
        select=_select(kw["selects"]),
    )
    from releasectl.imports import SELECT_KEYS

    unknown = sorted(set(choices.select) - set(SELECT_KEYS[harness]))
    if unknown:
        raise BadInput(
            f"--select {unknown[0]}=… means nothing to the {harness} importer",
            [
                Problem(
                    "unknown selection",
                    field="--select",
                    expected=", ".join(SELECT_KEYS[harness]) or "none",
                    found=unknown[0],
                )
            ],
        )
    binding = bind(kw["manifest"], source) if kw["manifest"] else None
    imported = HARNESSES[harness](source, choices)
    record = write_run(
        imported,
        kw["out_dir"],
        source=source,
        choices=choices,
        release=kw["release"],
        gpus=kw["gpus"],
        gpu_hourly_usd=kw["gpu_hourly_usd"],
        binding=binding,
    )
    slices: dict[str, list[int]] = {}
    for case in imported.cases:
        tally = slices.setdefault(case.slice, [0, 0])
        tally[0] += 1
        tally[1] += case.passed
    summary = {
        "run_dir": str(kw["out_dir"]),
        "release": record["release"],
        "manifest_digest": record["manifest_digest"],
        "bound": binding is not None,
        "harness": harness,
        "harness_version": imported.harness_version,
        "format": imported.format,
        "cases": record["cases"],
        "slices": {s: {"n": n, "passed": p} for s, (n, p) in sorted(slices.items())},
        "unmapped": record["import"]["unmapped"],
    }
    if fmt == "json":
        emit_json(summary)
        return 0
    from rich.markup import escape

    out = console()
    out.print(
        f"imported {record['cases']} cases from {escape(str(source))} ({harness} {imported.harness_version or '?'}, {escape(imported.format)})"
    )
    for name, s in summary["slices"].items():
        out.print(f"  {escape(name)}: {s['passed']}/{s['n']} passed")
    out.print(
        "bound to " + escape(binding.manifest)
        if binding
        else "unbound (no --manifest): gate it with --rules; it cannot promote"
    )
    if summary["unmapped"]:
        out.print("not in the harness output: " + escape(", ".join(summary["unmapped"])))
    out.print(f"run → {escape(str(kw['out_dir']))}")
    return 0


@click.group(name="import")
def import_group() -> None:
    """Import another harness's results as a run directory the gate can pair."""


@import_group.command(name="lm-eval")
@click.argument("path", type=click.Path(path_type=Path))
@_common
def lm_eval(path: Path, fmt: str, **kw: Any) -> int:
    """PATH: lm_eval's --output_path folder, a results_<date>.json, or a samples_<task>_<date>.jsonl
    (run with --log_samples). --slice-from task (default) or group; --select filter=NAME when a
    task has several filters. case_id = task/doc_id#doc_hash."""
    return _run_import("lm-eval", path, fmt, **kw)


@import_group.command(name="inspect")
@click.argument("log", type=click.Path(path_type=Path))
@_common
def inspect_log(log: Path, fmt: str, **kw: Any) -> int:
    """LOG: an inspect_ai .eval log (or an older .json log). --slice-from task (default) or
    metadata.KEY; --select epoch=N imports one epoch. case_id = task/sample id/epoch#content hash."""
    return _run_import("inspect", log, fmt, **kw)


@import_group.command(name="promptfoo")
@click.argument("results", type=click.Path(path_type=Path))
@_common
def promptfoo(results: Path, fmt: str, **kw: Any) -> int:
    """RESULTS: the JSON of `promptfoo eval -o results.json`. --select prompt=LABEL and
    provider=ID pick one prompt × provider; --slice-from metadata.KEY, vars.KEY or prompt.
    case_id = test index#vars hash."""
    return _run_import("promptfoo", results, fmt, **kw)


@import_group.command(name="check")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@format_option()
def check(run_a: Path, run_b: Path, fmt: str) -> int:
    """Say whether two run directories hold the same cases with the same content.

    Exit 0 when every case pairs, 1 when a case's content hash differs or a case is missing."""
    from releasectl.imports.pairing import compare_runs

    result = compare_runs(run_a, run_b)
    if fmt == "json":
        emit_json(result)
    else:
        from rich.markup import escape

        out = console()
        out.print(f"{result['paired']} cases pair; {len(result['content_differs'])} differ in content")
        for item in result["content_differs"][:20]:
            out.print(f"  {escape(item['case'])}: {item['a']} ≠ {item['b']}")
        for side in ("only_in_a", "only_in_b"):
            if result[side]:
                out.print(f"  {side.replace('_', ' ')}: {len(result[side])}, e.g. {escape(result[side][0])}")
    return 0 if result["pairs"] else 1
