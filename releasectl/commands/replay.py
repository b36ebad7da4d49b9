"""`releasectl replay` and `releasectl merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from releasectl.console import console, emit_json, esc, format_option, progress
from releasectl.errors import ExitCode
from releasectl.gate import options


def _summary_table(summary) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    run = summary.run
    table = Table(
        title=esc(
            f"{run['release']} on {run['engine']['name']} {run['engine']['version']} ({run['device']})"
        ),
        title_justify="left",
    )
    table.add_column("slice")
    table.add_column("cases", justify="right")
    table.add_column("passed", justify="right")
    table.add_column("success@1", justify="right")
    for name, s in summary.slices.items():
        table.add_row(esc(name), str(s["cases"]), str(s["passed"]), f"{s['success_at_1']:.2f}")
    total = sum(s["cases"] for s in summary.slices.values())
    passed = sum(s["passed"] for s in summary.slices.values())
    table.add_row("[bold]all[/]", str(total), str(passed), f"{passed / total:.2f}" if total else "–")
    out = console()
    out.print(table)
    out.print(
        f"output digest {run['output_digest'][:23]}…  generation {run['generation_seconds']:.1f} s  → {summary.run_dir}",
        markup=False,
    )


@click.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--engine",
    type=click.Choice(["hf", "vllm", "openai"]),
    default=None,
    help="hf (transformers), vllm (vLLM: CPU build or GPU) or openai (a served endpoint); default: runtime.engine.",
)
@click.option(
    "--device", default=None, help="hf engine device (cpu, cuda, cuda:1); default: CUDA when present."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory; default runs/<release>/.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Replay only the first N cases of every slice (a quick, still stratified subset).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in the same directory.")
@click.option(
    "--shard",
    default=None,
    metavar="i/N",
    help="Replay shard i of N (batches round-robin); join with `releasectl merge`.",
)
@click.option(
    "--check-determinism", is_flag=True, help="Replay twice and fail (exit 1) on any difference in outputs."
)
@click.option(
    "--allow-device-drift",
    is_flag=True,
    help="Run although this device differs from runtime.device (recorded in run.json).",
)
@click.option(
    "--allow-engine-drift",
    is_flag=True,
    help="Run although the installed engine version differs from the pin (recorded in run.json).",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="openai engine: the endpoint, e.g. http://127.0.0.1:8000/v1 (default: runtime.endpoint).",
)
@click.option(
    "--served-model-name",
    default=None,
    help="openai engine: the name the server serves the base model under.",
)
@click.option(
    "--trust-served-model",
    default=None,
    metavar="ROOT",
    help="openai engine: accept this served model root that cannot be checked against the pin here (recorded).",
)
@click.option(
    "--sequential",
    "sequential_policy",
    type=click.Path(path_type=Path),
    default=None,
    metavar="POLICY",
    help="Replay in a pre-committed random order, in rounds, and stop as soon as POLICY (a rules file) is decided by anytime-valid statistics.",
)
@click.option(
    "--baseline",
    "baseline_run",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN",
    help="--sequential: the baseline run the rounds are gated against (paired by case id).",
)
@click.option(
    "--round-size",
    type=int,
    callback=options.bounded_int(1, options.MAX_ROUND),
    default=None,
    help="--sequential: cases per round (a round ends at the first batch boundary after it); default 32.",
)
@click.option(
    "--order-seed",
    type=int,
    callback=options.bounded_int(-options.MAX_SEED, options.MAX_SEED),
    default=None,
    help="--sequential: the seed of the case order; default sampling.seed (recorded in run.json).",
)
@click.option(
    "--no-regressions-margin",
    type=float,
    callback=options.margin,
    default=0.0,
    show_default=True,
    help="--sequential: no_regressions_on passes once every protected slice is shown no worse than this.",
)
@click.option(
    "--skip-decided-slices",
    is_flag=True,
    default=False,
    help="--sequential: once every rule of the whole suite is decided, replay only the slices an undecided rule reads.",
)
@format_option()
def replay(
    manifest: Path,
    engine: str | None,
    device: str | None,
    out_dir: Path | None,
    limit: int | None,
    resume: bool,
    shard: str | None,
    check_determinism: bool,
    allow_device_drift: bool,
    allow_engine_drift: bool,
    base_url: str | None,
    served_model_name: str | None,
    trust_served_model: str | None,
    sequential_policy: Path | None,
    baseline_run: Path | None,
    round_size: int | None,
    order_seed: int | None,
    no_regressions_margin: float,
    skip_decided_slices: bool,
    fmt: str,
) -> int:
    """Replay the frozen suite on MANIFEST's pinned model and score every output.

    Writes run.json (provenance, output digest) and results.jsonl (one line per case) to the
    run directory. Same manifest + suite + engine + device gives the same output digest.
    Ctrl-C leaves a resumable directory: re-run with --resume.

    With --sequential POLICY --baseline RUN it replays in rounds and stops once the policy is
    decided (docs/sequential.md); run.json records the order, every round and the cases saved, and
    `releasectl gate` evaluates such a run with the same anytime-valid statistics.
    """
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.runner import Shard, read_results, run_replay

    loaded = load_manifest(manifest)
    if trust_served_model is not None:
        import os

        from releasectl.replay.engines.openai import TRUST_ENV

        os.environ[TRUST_ENV] = trust_served_model  # read by the openai engine's identity check
    limit = limit or None
    out_dir = out_dir or loaded.root / "runs" / loaded.manifest.release
    shard_obj = Shard.parse(shard) if shard else None
    endpoint = _endpoint(loaded, base_url, served_model_name)
    schedule = None
    if sequential_policy is not None:
        schedule = _schedule(
            loaded,
            sequential_policy,
            baseline_run,
            round_size,
            order_seed,
            no_regressions_margin,
            shard=shard,
            limit=limit,
            check_determinism=check_determinism,
            skip_decided_slices=skip_decided_slices,
        )
        if order_seed is not None and order_seed != loaded.manifest.sampling.seed:
            from releasectl.console import say

            say(
                "[yellow]note[/]: --order-seed {} is not {}'s sampling.seed ({}): the gate accepts only"
                " the order the manifest pre-commits, so this run is for experiments",
                order_seed,
                loaded.display,
                loaded.manifest.sampling.seed,
                stderr=True,
            )
    elif (
        any(v is not None for v in (baseline_run, round_size, order_seed))
        or no_regressions_margin
        or skip_decided_slices
    ):
        from releasectl.errors import BadInput

        raise BadInput(
            "--baseline, --round-size, --order-seed, --no-regressions-margin and --skip-decided-slices"
            " go with --sequential POLICY"
        )
    options = {
        "engine": engine,
        "device": device,
        "limit": limit,
        "shard": shard_obj,
        "allow_device_drift": allow_device_drift,
        "allow_engine_drift": allow_engine_drift,
        "endpoint": endpoint,
    }
    with progress(f"replay {loaded.manifest.release}", None) as bar:
        task = bar.add_task(f"replay {loaded.manifest.release}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def on_status(text: str) -> None:
            bar.console.print(text, markup=False, highlight=False)

        if schedule is not None:
            schedule.on_round = lambda record, decision: on_status(_round_line(record, schedule.total))
        try:
            summary = run_replay(
                loaded,
                out_dir,
                resume=resume,
                on_progress=on_progress,
                on_status=on_status,
                schedule=schedule,
                **options,
            )
        except KeyboardInterrupt:
            console(stderr=True).print(
                f"interrupted; the run directory is resumable: releasectl replay {manifest} --out {out_dir} --resume"
                + (f" --limit {limit}" if limit else "")
                + (f" --shard {shard}" if shard else ""),
                markup=False,
            )
            return 130
    code = int(ExitCode.OK)
    differences: list[str] = []
    if check_determinism:
        second_dir = out_dir.parent / f"{out_dir.name}.determinism"
        second = run_replay(loaded, second_dir, **options)
        if second.run["output_digest"] != summary.run["output_digest"]:

            def key(row: dict[str, Any]) -> str:  # (case, sample): with sampling.n > 1 a case has n rows
                sample = row.get("sample")
                return row["case_id"] if not sample else f"{row['case_id']}#{sample}"

            first_rows = {key(r): r["output"] for r in read_results(out_dir / "results.jsonl")}
            differences = [
                key(r)
                for r in read_results(second_dir / "results.jsonl")
                if first_rows.get(key(r)) != r["output"]
            ]
            code = int(ExitCode.NO)
    if fmt == "json":
        emit_json(
            {
                **summary.run,
                "slices": summary.slices,
                **(
                    {"determinism": {"identical": not differences, "differing_cases": differences}}
                    if check_determinism
                    else {}
                ),
            }
        )
        return code
    _summary_table(summary)
    if schedule is not None:
        _sequential_summary(summary.run["sequential"], summary.run_dir)
    if check_determinism:
        if differences:
            console().print(
                f"[red]not deterministic:[/] {len(differences)} cases differ, first: {esc(', '.join(differences[:5]))}"
            )
        else:
            console().print("[green]deterministic:[/] a second replay produced identical outputs")
    return code


def _schedule(  # type: ignore[no-untyped-def]
    loaded,
    policy: Path,
    baseline_run: Path | None,
    round_size: int | None,
    order_seed: int | None,
    margin: float,
    *,
    shard: str | None,
    limit: int | None = None,
    check_determinism: bool,
    skip_decided_slices: bool = False,
):
    """The checked plan of `replay --sequential` (exit 2 before the model loads when it cannot run)."""
    import hashlib

    from releasectl.errors import BadInput
    from releasectl.gate.rules import parse_rules_file
    from releasectl.gate.runs import load_run
    from releasectl.replay.sequential import DEFAULT_ROUND, SequentialPlan, SequentialSchedule, check_plan
    from releasectl.safeio import read_bytes

    if shard is not None or check_determinism:
        raise BadInput(
            "--sequential replays one run in one order: it does not combine with "
            + ("--shard" if shard is not None else "--check-determinism")
        )
    rules = parse_rules_file(policy, display=str(policy))
    if not rules:
        raise BadInput(
            f"{policy} has no rules: a sequential replay would stop at once and promote anything",
            hint="write one rule per line (docs/rules.md); `#` starts a comment",
        )
    digest = hashlib.sha256(read_bytes(policy, what="rules file", name=str(policy))).hexdigest()
    p = loaded.manifest.policy
    seed = loaded.manifest.sampling.seed if order_seed is None else order_seed
    if not -options.MAX_SEED <= seed <= options.MAX_SEED:  # the default: sampling.seed, unbounded there
        raise BadInput(
            f"{loaded.display}: sampling.seed is the sequential order seed, and run.json records it"
            f" within ±{options.MAX_SEED:.0e}; found {str(seed)[:40]}",
            hint="set sampling.seed within that range: the gate accepts only the order the manifest"
            " pre-commits (--order-seed is for experiments)",
        )
    plan = SequentialPlan(
        rules=rules,
        policy_display=str(policy),
        policy_sha256=digest,
        order_seed=seed,
        round_size=round_size or DEFAULT_ROUND,
        baseline=load_run(baseline_run) if baseline_run is not None else None,
        baseline_dir=baseline_run,
        confidence_level=p.confidence_level,
        correction=p.correction,
        no_regressions_margin=margin,
        skip_decided_slices=skip_decided_slices,
    )
    check_plan(plan, loaded)
    return SequentialSchedule(plan, loaded)


def _round_line(record: dict[str, Any], total: int) -> str:
    """One round of a sequential replay, for the progress output."""
    states = record["states"]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("pass", "fail", "undecided"))
    then = "done" if record["cases"] >= total else "stop" if record["decided"] else "continue"
    return f"round {record['round']}: {record['cases']}/{total} cases, {counts} → {record['verdict']}, {then}"


def _sequential_summary(seq: dict[str, Any], run_dir: Path) -> None:
    used, total = seq["cases_used"], seq["cases_total"]
    verdict = seq["rounds"][-1]["verdict"] if seq["rounds"] else "hold"
    decided = bool(seq["rounds"]) and seq["rounds"][-1]["decided"]
    if seq["stopped_early"]:
        text = (
            f"sequential: {'decided' if decided else 'undecided'} after {used} of {total} cases"
            f" ({total - used} not replayed, {1 - used / total:.0%} saved): {verdict}"
        )
        if seq.get("uniform_cases") is not None and seq["uniform_cases"] < used:
            text += f"; every slice for the first {seq['uniform_cases']} cases, then only the open slices"
    else:
        text = f"sequential: replayed the whole suite ({total} cases) without deciding every rule: {verdict}"
    base = seq.get("baseline_run")
    gate = f"releasectl gate --run {run_dir}" + (f" --baseline-run {base}" if base else "")
    console().print(esc(f"{text}; gate it with `{gate}`"))


def _endpoint(loaded, base_url: str | None, served_model_name: str | None):  # type: ignore[no-untyped-def]
    """runtime.endpoint with --base-url / --served-model-name over it; None when neither is given."""
    if base_url is None and served_model_name is None:
        return None
    from pydantic import ValidationError

    from releasectl.errors import BadInput
    from releasectl.manifest.models import Endpoint

    pinned = loaded.manifest.runtime.endpoint
    fields = pinned.model_dump() if pinned else {}
    if base_url is not None:
        fields["base_url"] = base_url
    if served_model_name is not None:
        fields["served_model_name"] = served_model_name
    if "base_url" not in fields:
        raise BadInput("--served-model-name needs an endpoint: pass --base-url too")
    try:
        return Endpoint(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadInput(
            f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}",
            hint="e.g. --base-url http://127.0.0.1:8000/v1",
        ) from None


@click.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Where to write the merged run."
)
@format_option()
def merge(shards: tuple[Path, ...], out_dir: Path, fmt: str) -> int:
    """Merge the run directories of `replay --shard i/N` into one run (identical to an unsharded run)."""
    from releasectl.replay.merge import merge_runs

    summary = merge_runs(list(shards), out_dir)
    if fmt == "json":
        emit_json({**summary.run, "slices": summary.slices})
    else:
        _summary_table(summary)
    return 0
