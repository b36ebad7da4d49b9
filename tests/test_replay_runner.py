"""The replay runner's own logic — plan, resume, shards, merge, runtime pins — on a fake engine.

The engine here is tests/fake_engine.py (a hash, not a model), so these run in seconds without
the `model` marker; the same properties on real engines are in test_replay_model.py (transformers)
and test_replay_vllm.py (vLLM's CPU build).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from fake_engine import FakeEngine

from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.manifest.loader import load_manifest
from releasectl.replay import Shard, run_replay
from releasectl.replay.merge import merge_runs
from releasectl.replay.plan import Batch, Item, pending, plan_replay, select_cases
from releasectl.replay.writer import read_results
from releasectl.suite import load_suite


@pytest.fixture
def loaded(example_repo):
    return load_manifest(example_repo / "releases" / "v1.3.yaml")


def rows(run_dir):
    return [(r["case_id"], r["output"]) for r in read_results(run_dir / "results.jsonl")]


@pytest.mark.parametrize("batch_size", [2, 3, None])
def test_shards_merged_equal_one_run(loaded, tmp_path, batch_size):
    one = run_replay(loaded, tmp_path / "one", limit=2, engine_instance=FakeEngine(batch_size=batch_size))
    for i in range(3):
        run_replay(
            loaded,
            tmp_path / f"s{i}",
            limit=2,
            shard=Shard(i, 3),
            engine_instance=FakeEngine(batch_size=batch_size),
        )
    merged = merge_runs([tmp_path / f"s{i}" for i in range(3)], tmp_path / "merged")
    assert merged.run["output_digest"] == one.run["output_digest"]
    assert rows(tmp_path / "merged") == rows(tmp_path / "one")
    assert one.run["cases"] == 14


def test_fixed_batches_seed_per_batch_and_shards_take_whole_batches(example_repo):
    suite = load_suite(example_repo / "suites" / "core")
    cases = select_cases(suite, 2)
    plan = plan_replay(cases, batch_size=4, seed=100)
    assert [b.seed for b in plan.batches] == [100, 101, 102, 103]
    assert [len(b.cases) for b in plan.batches] == [4, 4, 4, 2]
    shard = plan_replay(cases, batch_size=4, seed=100, shard=Shard(1, 2))
    assert [b.index for b in shard.batches] == [1, 3] and shard.total == 6
    invariant = plan_replay(cases, batch_size=None, seed=100, shard=Shard(0, 2))
    assert {b.seed for b in invariant.batches} == {100}  # every request uses the pinned seed
    assert [c.id for c in invariant.cases] == [c.id for c in cases[::2]]


def test_a_partly_written_fixed_batch_is_redone_whole():
    from releasectl.suite import Case

    cases = tuple(Case(id=f"c{i}", slice="s", input={}, expected={}, verifiers=[]) for i in range(3))  # type: ignore[call-arg]
    items = tuple(Item(c, 0, 1) for c in cases)
    assert pending(Batch(0, 1, items, atomic=True), {("c0", 0)}) == items
    assert pending(Batch(0, 1, items, atomic=False), {("c0", 0)}) == items[1:]
    assert pending(Batch(0, 1, items, atomic=True), {("c0", 0), ("c1", 0), ("c2", 0)}) == ()


def test_resume_continues_and_equals_one_run(loaded, tmp_path):
    one = run_replay(loaded, tmp_path / "one", limit=2, engine_instance=FakeEngine(batch_size=3))
    out = tmp_path / "partial"
    run_replay(loaded, out, limit=2, engine_instance=FakeEngine(batch_size=3))
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    # A replay killed mid-write: four complete rows and a torn fifth, no run.json yet.
    (out / "results.jsonl").write_text("".join(lines[:4]) + lines[4][:20])
    (out / "run.json").unlink()
    engine = FakeEngine(batch_size=3)
    resumed = run_replay(loaded, out, limit=2, resume=True, engine_instance=engine)
    assert resumed.run["output_digest"] == one.run["output_digest"]
    assert rows(out) == rows(tmp_path / "one")
    # Rows 0-2 are batch 0 (complete); row 3 is half of batch 1, which is redone whole.
    assert len(engine.calls) == 4 and len(engine.calls[0]) == 3


def test_resume_after_a_real_sigkill(example_repo, tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(example_repo.parent)!r})
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from fake_engine import FakeEngine
        from releasectl.manifest.loader import load_manifest
        from releasectl.replay import run_replay
        loaded = load_manifest({str(example_repo / "releases" / "v1.3.yaml")!r})
        run_replay(loaded, __import__("pathlib").Path({str(out)!r}), limit=2,
                   engine_instance=FakeEngine(batch_size=3, kill_after_calls=2))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not (out / "run.json").exists()
    assert len(read_results(out / "results.jsonl")) == 6  # two batches were on disk
    loaded = load_manifest(example_repo / "releases" / "v1.3.yaml")
    resumed = run_replay(loaded, out, limit=2, resume=True, engine_instance=FakeEngine(batch_size=3))
    one = run_replay(loaded, tmp_path / "one", limit=2, engine_instance=FakeEngine(batch_size=3))
    assert resumed.run["output_digest"] == one.run["output_digest"]


def test_resume_refuses_a_different_run(loaded, tmp_path):
    run_replay(loaded, tmp_path / "d", limit=1, shard=Shard(0, 2), engine_instance=FakeEngine())
    with pytest.raises(BadInput, match="different run"):
        run_replay(loaded, tmp_path / "d", limit=1, resume=True, engine_instance=FakeEngine())


def test_adapters_are_attached_for_the_replay(loaded, tmp_path):
    engine = FakeEngine()
    run_replay(loaded, tmp_path / "r", limit=1, engine_instance=engine)
    assert engine.adapters_seen == {("lora_math_v1",)}  # every generate call ran with v1.3's adapter
    assert engine.adapters == ()  # and the base model is restored afterwards
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [a["name"] for a in run["adapters"]] == ["lora_math_v1"]


def test_engine_drift_is_refused_unless_allowed_and_recorded(loaded, tmp_path):
    with pytest.raises(EnvironmentFailure, match=r"pins hf 5\.19\.0, but 5\.18\.0 is installed") as err:
        run_replay(loaded, tmp_path / "a", limit=1, engine_instance=FakeEngine(version="5.18.0"))
    assert "--allow-engine-drift" in (err.value.hint or "")
    assert not (tmp_path / "a").exists()  # refused before anything was written
    summary = run_replay(
        loaded, tmp_path / "b", limit=1, allow_engine_drift=True, engine_instance=FakeEngine(version="5.18.0")
    )
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["drift"]["engine"] == {"engine": "hf", "pinned": "5.19.0", "installed": "5.18.0"}
    assert run["allow_engine_drift"] is True and run["runtime"]["engine_version"] == "5.18.0"
    assert summary.run["engine"] == {"name": "hf", "version": "5.18.0"}


def test_an_engine_the_release_pins_no_version_for_is_drift(example_repo, tmp_path):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace('  engine_versions:\n    vllm: "0.32.0"', "  engine_versions: {}"))
    loaded = load_manifest(m)
    engine = FakeEngine()
    engine.name = "vllm"
    with pytest.raises(EnvironmentFailure, match="pins no version of the 'vllm' engine") as err:
        run_replay(loaded, tmp_path / "a", limit=1, engine_instance=engine)
    assert "engine_versions" in (err.value.hint or "")


def test_run_json_records_the_runtime(loaded, tmp_path):
    run_replay(loaded, tmp_path / "r", limit=1, engine_instance=FakeEngine())
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["runtime"]["engine"] == "hf" and run["runtime"]["device_class"] == "cpu"
    assert run["drift"] == {"engine": None, "device": None}
    assert set(run["runtime"]) >= {"torch", "transformers", "vllm", "cuda", "cpu_isa", "gpu_name", "driver"}
    assert all(r["latency_ms"] == 1.0 for r in read_results(tmp_path / "r" / "results.jsonl"))


def test_chunk_size_override_is_validated(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASECTL_REPLAY_CHUNK", "zero")
    with pytest.raises(BadInput, match="RELEASECTL_REPLAY_CHUNK"):
        run_replay(loaded, tmp_path / "r", limit=1, engine_instance=FakeEngine(batch_size=None))
    monkeypatch.setenv("RELEASECTL_REPLAY_CHUNK", "2")
    engine = FakeEngine(batch_size=None)
    run_replay(loaded, tmp_path / "r2", limit=1, engine_instance=engine)
    assert [len(c) for c in engine.calls] == [2, 2, 2, 1]


def test_a_bad_out_directory_is_refused_before_the_engine_loads(cli, example_repo, tmp_path):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        result = cli("replay", "releases/v1.3.yaml", "--limit", "1", "--out", str(out), cwd=example_repo)
        assert result.code == 2, result.output
        assert f"cannot write the run directory {out}" in result.stderr


def test_a_damaged_resume_directory_is_named_by_file_and_line(loaded, tmp_path):
    out = tmp_path / "r"
    run_replay(loaded, out, limit=1, engine_instance=FakeEngine())
    (out / "run.json").unlink()
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.raises(BadInput, match=r"results\.jsonl:2: not a JSON object"):
        run_replay(loaded, out, limit=1, resume=True, engine_instance=FakeEngine())
    forged = json.loads(lines[0]) | {"passed": "yes"}  # a string where a bool belongs
    (out / "results.jsonl").write_text(json.dumps(forged) + "\n")
    with pytest.raises(BadInput, match=r"results\.jsonl:1: not a valid results row"):
        run_replay(loaded, out, limit=1, resume=True, engine_instance=FakeEngine())
    (out / ".state.json").write_text("[1, 2")
    with pytest.raises(BadInput, match="unreadable resume state"):
        run_replay(loaded, out, limit=1, resume=True, engine_instance=FakeEngine())


def test_merge_refuses_shards_of_another_runtime_and_damaged_shards(loaded, tmp_path):
    run_replay(loaded, tmp_path / "s0", limit=1, shard=Shard(0, 2), engine_instance=FakeEngine())
    other = FakeEngine(version="5.18.0")
    run_replay(
        loaded, tmp_path / "s1", limit=1, shard=Shard(1, 2), engine_instance=other, allow_engine_drift=True
    )
    with pytest.raises(BadInput, match="is a different run: engine"):
        merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    (tmp_path / "s1" / "run.json").write_text(json.dumps({"release": "v1.3", "gpus": 0}))
    with pytest.raises(BadInput, match="not a valid run record"):
        merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")


def test_merge_accepts_shards_that_do_not_say_when_they_ran(loaded, tmp_path):
    for i in range(2):
        run_replay(loaded, tmp_path / f"s{i}", limit=1, shard=Shard(i, 2), engine_instance=FakeEngine())
        run = json.loads((tmp_path / f"s{i}" / "run.json").read_text())
        del run["started_at"], run["finished_at"]
        (tmp_path / f"s{i}" / "run.json").write_text(json.dumps(run))
    merged = merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    assert merged.run["cases"] == 7 and merged.run["started_at"] is None


def test_a_replay_into_a_used_directory_starts_over_unless_resumed(loaded, tmp_path):
    first = run_replay(loaded, tmp_path / "r", limit=1, engine_instance=FakeEngine())
    engine = FakeEngine()
    again = run_replay(loaded, tmp_path / "r", limit=1, engine_instance=engine)
    assert again.run["output_digest"] == first.run["output_digest"] and again.run["cases"] == 7
    assert sum(len(c) for c in engine.calls) == 7  # everything generated again, nothing kept
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 7
