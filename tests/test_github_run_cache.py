"""Baseline reuse (`releasectl run-key`): the key covers exactly the fields gate checks, a second
gate of the same baseline hits the cache, any changed key field misses it, and a cached run that
does not match its key is refused. actions/cache is played by a directory of saved runs keyed by
the printed key; the replay is played by tests/runfactory.py (no model is loaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from runfactory import case_row, write_run

from releasectl.replay.writer import output_digest

BASE = ["--engine", "hf", "--engine-version", "5.19.0", "--device", "cpu"]


def key_of(cli, repo: Path, *extra: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = cli("run-key", "releases/v1.2.yaml", *BASE, *extra, "--format", "json", cwd=repo)
    assert result.code == 0, result.output
    return result.json()


def fake_replay(run_dir: Path, fields: dict) -> None:  # type: ignore[type-arg]
    """What `releasectl replay` would leave, with the key's fields (a stand-in for the GPU job)."""
    rows = [case_row(f"c{i}", "s", {"answer": (i % 3 != 0, "format")}) for i in range(12)]
    write_run(
        run_dir,
        fields["release"],
        rows,
        manifest_digest=fields["manifest_digest"],
        suite_digest=fields["suite_digest"],
        engine={"name": fields["engine"], "version": fields["engine_version"]},
        device=fields["device"],
        limit=fields["limit"],
        shard=fields["shard"],
        output_digest=output_digest(rows),
    )


def restore_or_replay(cli, repo: Path, cache: Path, *extra: str) -> tuple[bool, Path]:  # type: ignore[no-untyped-def]
    """The workflow's baseline steps: key, restore, verify, else replay and save."""
    doc = key_of(cli, repo, *extra)
    run_dir = repo / "runs" / "v1.2"
    shutil.rmtree(run_dir, ignore_errors=True)
    saved = cache / doc["key"]
    if saved.exists():
        shutil.copytree(saved, run_dir)
        verified = cli(
            "run-key",
            "releases/v1.2.yaml",
            *BASE,
            *extra,
            "--verify",
            str(run_dir),
            "--from",
            f"actions/cache:{doc['key']}",
            cwd=repo,
        )
        if verified.code == 0:
            return True, run_dir
        assert verified.code == 1, verified.output
        shutil.rmtree(run_dir)
    fake_replay(run_dir, doc["fields"])
    shutil.copytree(run_dir, saved)
    return False, run_dir


def test_key_fields_are_exactly_what_gate_compares(cli, example_repo: Path) -> None:
    doc = key_of(cli, example_repo)
    assert set(doc["fields"]) == {
        "release",
        "manifest_digest",
        "suite_digest",
        "engine",
        "engine_version",
        "device",
        "limit",
        "shard",
    }
    assert doc["fields"]["manifest_digest"].startswith("sha256:")
    assert doc["key"].startswith("releasectl-run-v1.2-hf-")
    text = cli("run-key", "releases/v1.2.yaml", *BASE, cwd=example_repo)
    assert text.stdout == f"key={doc['key']}\n"


def test_second_gate_of_the_same_baseline_hits_the_cache(cli, example_repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    hit, run_dir = restore_or_replay(cli, example_repo, cache)
    assert not hit and not (run_dir / "reuse.json").exists()
    hit, run_dir = restore_or_replay(cli, example_repo, cache)
    assert hit
    reuse = json.loads((run_dir / "reuse.json").read_text())
    assert reuse["reused"] is True and reuse["reused_from"].startswith(
        "actions/cache:releasectl-run-v1.2-hf-"
    )
    assert reuse["fields"]["device"] == "cpu"


@pytest.mark.parametrize(
    "change",
    [
        ["--engine-version", "5.20.0"],
        ["--device", "NVIDIA H100 80GB HBM3"],
        ["--limit", "5"],
        ["--shard", "0/2"],
        ["--engine", "vllm"],
        "manifest",
    ],
    ids=["engine_version", "device", "limit", "shard", "engine", "manifest_digest"],
)
def test_changing_any_key_field_misses(cli, example_repo: Path, tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    cache.mkdir()
    restore_or_replay(cli, example_repo, cache)
    before = key_of(cli, example_repo)["key"]
    if change == "manifest":
        manifest = example_repo / "releases" / "v1.2.yaml"
        text = manifest.read_text()
        assert "seed:" in text
        manifest.write_text(text.replace("seed: ", "seed: 9", 1))
        extra: list[str] = []
    else:
        # Later options win in click, so the change overrides BASE.
        extra = list(change)
    after = key_of(cli, example_repo, *extra)["key"]
    assert after != before
    hit, _ = restore_or_replay(cli, example_repo, cache, *extra)
    assert not hit
    assert sorted(p.name for p in cache.iterdir()) == sorted({before, after})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("suite_digest", "0" * 32 + ".dir"),
        ("device", "NVIDIA A10G"),
        ("limit", 3),
        ("shard", "1/4"),
        ("manifest_digest", "sha256:" + "9" * 64),
    ],
)
def test_a_poisoned_cache_entry_is_refused(
    cli, example_repo: Path, tmp_path: Path, field: str, value
) -> None:  # type: ignore[no-untyped-def]
    """Content saved under the right key but with another run inside: every key field is checked."""
    doc = key_of(cli, example_repo)
    run_dir = tmp_path / "restored"
    fake_replay(run_dir, {**doc["fields"], field: value})
    result = cli("run-key", "releases/v1.2.yaml", *BASE, "--verify", str(run_dir), cwd=example_repo)
    assert result.code == 1, result.output
    assert f"miss: {field}:" in result.output
    assert not (run_dir / "reuse.json").exists()


def test_tampered_results_are_refused(cli, example_repo: Path, tmp_path: Path) -> None:
    doc = key_of(cli, example_repo)
    run_dir = tmp_path / "restored"
    fake_replay(run_dir, doc["fields"])
    results = run_dir / "results.jsonl"
    results.write_text(results.read_text().replace('"output": "ok"', '"output": "forged"', 1))
    result = cli(
        "run-key", "releases/v1.2.yaml", *BASE, "--verify", str(run_dir), "--format", "json", cwd=example_repo
    )
    assert result.code == 1
    assert any("output_digest" in p for p in result.json()["problems"])
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = cli("run-key", "releases/v1.2.yaml", *BASE, "--verify", str(empty), cwd=example_repo)
    assert missing.code == 1 and "run.json does not exist" in missing.output
