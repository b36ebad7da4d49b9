"""Baseline reuse: the key of a replay's inputs, and the check that a cached run really has them.

Replay is deterministic, so a run whose inputs are identical need not run again. The key covers
exactly what `gate` compares between two runs and what makes a run what it is:

    release, manifest_digest, suite_digest, engine, engine_version, device, limit, shard

`releasectl run-key MANIFEST --engine vllm` prints `key=...` (append it to $GITHUB_OUTPUT and give
it to actions/cache); `--verify RUN_DIR --from WHERE` checks a restored run against every key
field and its output digest, and on a hit writes `reuse.json` next to run.json saying where the
run came from, for gate's provenance. A miss (exit 1) means: replay it. Why actions/cache and not
a DVC remote: see docs/github.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from releasectl.console import format_option
from releasectl.errors import BadInput, ExitCode

KEY_FIELDS = (
    "release",
    "manifest_digest",
    "suite_digest",
    "engine",
    "engine_version",
    "device",
    "limit",
    "shard",
)
KEY_PREFIX = "releasectl-run"
REUSE_FILE = "reuse.json"


@dataclass(frozen=True)
class RunKey:
    """The inputs that identify a replay."""

    release: str
    manifest_digest: str
    suite_digest: str
    engine: str
    engine_version: str
    device: str
    limit: int | None
    shard: str | None

    @property
    def key(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:40]
        return f"{KEY_PREFIX}-{self.release}-{self.engine}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "fields": asdict(self)}


def key_for(
    manifest: Path,
    *,
    engine: str,
    engine_version: str | None,
    device: str | None,
    limit: int | None,
    shard: str | None,
) -> RunKey:
    """The key of replaying `manifest` here: digests from the files, engine version and device
    probed from this machine (without loading a model) unless given."""
    from releasectl.manifest.loader import load_manifest
    from releasectl.replay.plan import Shard
    from releasectl.suite.loader import load_suite

    loaded = load_manifest(manifest)
    suite = load_suite(loaded.resolve(loaded.manifest.data.suite.path or ""))
    if engine_version is None or device is None:
        from releasectl.replay.runner import probe_runtime

        runtime = probe_runtime(loaded, engine, device)
        engine_version = engine_version or runtime.engine_version
        device = device or runtime.device
    return RunKey(
        release=loaded.manifest.release,
        manifest_digest=loaded.digest,
        suite_digest=suite.digest,
        engine=engine,
        engine_version=str(engine_version),
        device=str(device),
        limit=limit,
        shard=str(Shard.parse(shard)) if shard else None,
    )


def recorded_key(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The key fields a run directory records, and what is wrong with the run beyond them."""
    from releasectl.contracts.run import run_record
    from releasectl.replay.writer import output_digest
    from releasectl.safeio import iter_lines, loads_json, read_json

    run_file = run_dir / "run.json"
    if not run_file.exists():
        return {}, [f"{run_file} does not exist"]
    data = read_json(run_file, what="cached run.json")
    record = run_record(data, file=str(run_file))
    fields = {
        "release": record.release,
        "manifest_digest": record.manifest_digest,
        "suite_digest": record.suite_digest,
        "engine": record.engine.name,
        "engine_version": record.engine.version,
        "device": record.device,
        "limit": data.get("limit"),
        "shard": data.get("shard"),
    }
    problems: list[str] = []
    results = run_dir / "results.jsonl"
    if not results.exists():
        return fields, [f"{results} does not exist"]
    rows = [loads_json(raw, source=str(results), line=n) for n, raw in iter_lines(results) if raw.strip()]
    # One row per case and sample: `generations` rows (a run without it has one sample per case).
    expected = record.generations if record.generations is not None else record.cases
    if len(rows) != expected:
        what = "generations" if record.generations is not None else "cases"
        problems.append(f"{results} has {len(rows)} rows, run.json says {expected} {what}")
    elif record.output_digest and output_digest(rows) != record.output_digest:
        problems.append(f"{results} does not match run.json's output_digest {record.output_digest}")
    return fields, problems


def verify(run_dir: Path, wanted: RunKey, source: str) -> tuple[bool, list[str]]:
    """Whether the run in `run_dir` is exactly a replay of `wanted`; on a hit writes reuse.json."""
    from releasectl.fsutil import atomic_write_text

    reuse = run_dir / REUSE_FILE
    fields, problems = recorded_key(run_dir)
    for name, value in asdict(wanted).items():
        if fields and fields.get(name) != value:
            problems.append(f"{name}: the key wants {value!r}, the cached run.json has {fields.get(name)!r}")
    if problems:
        if reuse.exists():
            reuse.unlink()
        return False, problems
    atomic_write_text(
        reuse,
        json.dumps(
            {
                "reused": True,
                "reused_from": source,
                "key": wanted.key,
                "fields": asdict(wanted),
                "verified_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
    )
    return True, []


def read_reuse(run_dir: Path) -> dict[str, Any] | None:
    """reuse.json of a run directory, or None when the run was replayed, not reused."""
    from releasectl.safeio import read_json

    path = Path(run_dir) / REUSE_FILE
    if not path.exists():
        return None
    data = read_json(path, what="reuse.json")
    if not isinstance(data, dict) or not isinstance(data.get("reused_from"), str):
        raise BadInput(f"{path}: not a reuse record", hint="written by `releasectl run-key --verify`")
    return data


@click.command("run-key")
@click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--engine",
    type=click.Choice(["hf", "vllm", "openai"]),
    default="vllm",
    show_default=True,
    help="Replay engine.",
)
@click.option("--engine-version", default=None, help="Engine version. Default: the one installed here.")
@click.option(
    "--device", default=None, help="Device model, e.g. 'NVIDIA H100 80GB HBM3'. Default: this machine's."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="As given to replay --limit.")
@click.option("--shard", default=None, metavar="i/N", help="As given to replay --shard.")
@click.option(
    "--verify",
    "run_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Check that this (restored) run directory matches every key field; writes reuse.json on a hit.",
)
@click.option(
    "--from",
    "source",
    default=None,
    help="Where the verified run came from, recorded in reuse.json (e.g. actions/cache:KEY).",
)
@format_option()
def run_key(
    manifest: Path,
    engine: str,
    engine_version: str | None,
    device: str | None,
    limit: int | None,
    shard: str | None,
    run_dir: Path | None,
    source: str | None,
    fmt: str,
) -> int:
    """Print the cache key of replaying MANIFEST here, or verify a cached run against it.

    \b
    The key covers the manifest and suite digests, engine and version, device model, limit and
    shard: exactly what gate compares. Text output is `key=...` lines, ready for $GITHUB_OUTPUT.
    Exit codes: 0 key printed, or --verify hit (reuse.json written); 1 --verify miss: replay it.
    """
    from releasectl.console import emit_json

    wanted = key_for(
        manifest, engine=engine, engine_version=engine_version, device=device, limit=limit, shard=shard
    )
    if run_dir is None:
        if fmt == "json":
            emit_json(wanted.to_dict())
        else:
            click.echo(f"key={wanted.key}")
        return 0
    hit, problems = verify(run_dir, wanted, source or str(run_dir))
    if fmt == "json":
        emit_json({**wanted.to_dict(), "run_dir": str(run_dir), "hit": hit, "problems": problems})
    else:
        click.echo(f"key={wanted.key}")
        click.echo(f"hit={'true' if hit else 'false'}")
        for p in problems:
            click.echo(f"miss: {p}", err=True)
    return int(ExitCode.OK if hit else ExitCode.NO)
