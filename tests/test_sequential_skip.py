"""`replay --sequential POLICY --skip-decided-slices`: once every rule of the whole suite is
decided, only the slices an undecided rule reads are replayed; the suite-wide rules stay read on
the uniform prefix they were decided on. On tests/fake_engine.py (a hash, not a model: the one
thing mocked, as in tests/test_sequential_replay.py): its outputs fail almost every verifier but
carry the `<answer>` tag, so `aggregate.success@1.upper_ci <= 0.5` is decided in the first round
and `format_pass_rate(math_basic)` needs a few dozen math cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from fake_engine import FakeEngine, replay_on_fake

from releasectl.gate.sequential import order_key
from releasectl.manifest.loader import load_manifest
from releasectl.replay import run_replay
from releasectl.replay.writer import read_results

POLICY = """\
aggregate.success@1.upper_ci <= 0.5
format_pass_rate(math_basic).lower_ci >= 0.8
"""
TOTAL = 162


@pytest.fixture
def repo(example_repo, monkeypatch):
    replay_on_fake(monkeypatch)
    run_replay(load_manifest(example_repo / "releases" / "v1.2.yaml"), example_repo / "runs" / "v1.2")
    (example_repo / "focus.rules").write_text(POLICY)
    return example_repo


def sequential(repo: Path, out: str, *extra: str):
    return run_cli(
        "replay", "releases/v1.3.yaml", "--out", out, "--sequential", "focus.rules",
        "--baseline", "runs/v1.2", "--round-size", "16", *extra, cwd=repo,
    )  # fmt: skip


def gate(repo: Path, run: str):
    return run_cli(
        "gate",
        "--run",
        run,
        "--baseline-run",
        "runs/v1.2",
        "--rules",
        "focus.rules",
        "--format",
        "json",
        cwd=repo,
    )


def seq_of(repo: Path, run: str) -> dict:
    return json.loads((repo / run / "run.json").read_text())["sequential"]


def slices_of(repo: Path, run: str) -> list[str]:
    return [r["slice"] for r in read_results(repo / run / "results.jsonl")]


def test_after_the_suite_wide_rules_only_undecided_slices_are_replayed(repo):
    plain, focused = sequential(repo, "runs/plain"), sequential(repo, "runs/focus", "--skip-decided-slices")
    assert plain.code == 0 and focused.code == 0, focused.output
    p, f = seq_of(repo, "runs/plain"), seq_of(repo, "runs/focus")
    assert f["skip_decided_slices"] and f["uniform_cases"] == 16  # aggregate decided in round 1
    assert f["rounds"][0]["open_slices"] == ["math_basic"]
    assert f["rounds"][-1]["decided"] and f["rounds"][-1]["verdict"] == "promote"
    got = slices_of(repo, "runs/focus")
    assert len(got) == f["cases_used"] and set(got[16:]) == {"math_basic"}
    # the same decision from far fewer cases: the math cases arrive at 24/162 without skipping
    assert f["cases_used"] < p["cases_used"] / 2, (f["cases_used"], p["cases_used"])
    assert "every slice for the first 16 cases, then only the open slices" in focused.stdout


def test_the_gate_reads_the_suite_wide_rules_on_the_uniform_prefix(repo):
    assert sequential(repo, "runs/focus", "--skip-decided-slices").code == 0
    result = gate(repo, "runs/focus")
    assert result.code == 0, result.output
    doc = json.loads((repo / "runs/focus/gate.json").read_text())
    seq = seq_of(repo, "runs/focus")
    assert doc["verdict"] == "promote" and [r["outcome"] for r in doc["rules"]] == seq["rounds"][-1]["states"]
    assert doc["sequential"]["uniform_cases"] == 16 and doc["sequential"]["skip_decided_slices"]
    assert doc["rules"][0]["n"] == 16  # aggregate.success@1 on the uniform prefix, not on every row
    assert doc["rules"][1]["n"] == slices_of(repo, "runs/focus").count("math_basic")
    report = run_cli("report", "runs/focus/gate.json", cwd=repo)
    assert report.code == 0, report.output


def test_the_same_seed_gives_the_same_cases_and_a_resume_the_same_run(repo, monkeypatch):
    import releasectl.replay.runner as runner

    assert sequential(repo, "runs/a", "--skip-decided-slices").code == 0
    assert sequential(repo, "runs/b", "--skip-decided-slices").code == 0
    assert seq_of(repo, "runs/a") == seq_of(repo, "runs/b")

    class Interrupted(FakeEngine):
        def generate(self, prompts, sampling, *, seed):  # type: ignore[no-untyped-def]
            if len(self.calls) == 12:  # after 24 cases: past the switch, inside the math-only rounds
                raise KeyboardInterrupt
            return super().generate(prompts, sampling, seed=seed)

    monkeypatch.setattr(runner, "make_engine", lambda *a, **k: Interrupted(batch_size=2))
    assert sequential(repo, "runs/cut", "--skip-decided-slices").code == 130
    monkeypatch.setattr(runner, "make_engine", lambda *a, **k: FakeEngine(batch_size=2))
    assert sequential(repo, "runs/cut", "--skip-decided-slices", "--resume").code == 0
    assert seq_of(repo, "runs/cut") == seq_of(repo, "runs/a")
    assert slices_of(repo, "runs/cut") == slices_of(repo, "runs/a")
    # a resume must keep the option: the run directory records it
    other = sequential(repo, "runs/cut", "--resume")
    assert other.code == 2, other.output


def test_a_hand_picked_run_is_refused(repo):
    assert sequential(repo, "runs/focus", "--skip-decided-slices").code == 0
    results = repo / "runs/focus/results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    seed = seq_of(repo, "runs/focus")["order_seed"]
    full = [json.loads(line) for line in (repo / "runs/v1.2/results.jsonl").read_text().splitlines()]
    debug = sorted(
        (r for r in full if r["slice"] == "debug_search_api"), key=lambda r: order_key(seed, r["case_id"])
    )
    have = {r["case_id"] for r in rows}
    later = [r for r in debug if r["case_id"] not in have][1]  # past the slice's prefix, with a gap
    results.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:-1], later]))
    refused = gate(repo, "runs/focus")
    assert refused.code == 2 and "not the first" in refused.output and "debug_search_api" in refused.output
    # a case of the uniform prefix left out, a later math case in its place
    math = sorted(
        (r for r in full if r["slice"] == "math_basic"), key=lambda r: order_key(seed, r["case_id"])
    )
    first = rows[0]
    spare = next((r for r in math if r["case_id"] not in have), None)
    if spare is None:  # every math case was replayed: drop one of the prefix and keep the count
        spare = later
    results.write_text("".join(json.dumps(r) + "\n" for r in [*rows[1:], spare]))
    refused = gate(repo, "runs/focus")
    assert refused.code == 2 and "of the first 16 cases of the order are missing" in refused.output, (
        refused.output
    )
    assert first["case_id"] not in {r["case_id"] for r in rows[1:]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(uniform_cases=10**6), "uniform_cases"),
        (lambda s: s.update(skip_decided_slices=False), "uniform_cases"),
        (lambda s: s.update(uniform_cases="16"), "uniform_cases"),
    ],
)
def test_an_inconsistent_record_is_exit_2(repo, change, message):
    assert sequential(repo, "runs/focus", "--skip-decided-slices").code == 0
    path = repo / "runs/focus/run.json"
    run = json.loads(path.read_text())
    change(run["sequential"])
    path.write_text(json.dumps(run))
    refused = gate(repo, "runs/focus")
    assert refused.code == 2 and message in refused.output, refused.output


def test_the_option_needs_sequential(repo):
    result = run_cli("replay", "releases/v1.3.yaml", "--skip-decided-slices", cwd=repo)
    assert result.code == 2 and "--skip-decided-slices" in result.output


def test_a_count_that_only_grows_is_settled_once_it_crosses(repo):
    """`n` and `count` only grow as cases are added: `success@1(math_basic).n >= 20` passes for
    good once 20 math cases are in, so a skipping replay (which never reaches the whole suite)
    decides it instead of holding to the end."""
    (repo / "focus.rules").write_text("aggregate.success@1.upper_ci <= 0.5\nsuccess@1(math_basic).n >= 20\n")
    r = sequential(repo, "runs/n", "--skip-decided-slices")
    assert r.code == 0, r.output
    s = seq_of(repo, "runs/n")
    assert s["rounds"][-1]["decided"] and s["rounds"][-1]["verdict"] == "promote" and s["stopped_early"]
    assert 20 <= slices_of(repo, "runs/n").count("math_basic") < 24 + 16
    doc = gate(repo, "runs/n").json()
    assert doc["verdict"] == "promote" and [x["outcome"] for x in doc["rules"]] == ["pass", "pass"]
