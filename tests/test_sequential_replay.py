"""`replay --sequential POLICY`: rounds in a pre-committed order, early stopping, run.json / gate.json.

The fast tests replay on tests/fake_engine.py (a hash, not a model: `make_engine` and
`probe_runtime` are replaced, the one thing mocked, because loading SmolLM2 for every test would
take minutes on 2 cores); the fake's outputs fail almost every verifier but always carry the
`<answer>` tag, which the crafted policies below use. The last test replays the embedded model
(marked `model`) and checks the sequential verdict against the full run's.
"""

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

PROMOTE = """\
format_pass_rate(math_basic).lower_ci >= 0.5
aggregate.success@1.upper_ci <= 0.5
no_regressions_on: ['headache_redflags', 'debug_search_api']
"""
BLOCK = "aggregate.success@1.lower_ci >= 0.5\n"
TOTAL = 162  # cases in suites/core


@pytest.fixture
def fake(monkeypatch):
    """Every replay in the test runs on the fake engine (fixed batches of 2)."""
    replay_on_fake(monkeypatch)


@pytest.fixture
def repo(example_repo, fake):
    """The example repo with a full baseline run of v1.2 (fake engine) and two policies."""
    run_replay(load_manifest(example_repo / "releases" / "v1.2.yaml"), example_repo / "runs" / "v1.2")
    (example_repo / "promote.rules").write_text(PROMOTE)
    (example_repo / "block.rules").write_text(BLOCK)
    return example_repo


def sequential(repo: Path, out: str, policy: str = "promote.rules", *extra: str):
    return run_cli(
        "replay",
        "releases/v1.3.yaml",
        "--out",
        out,
        "--sequential",
        policy,
        "--baseline",
        "runs/v1.2",
        "--round-size",
        "16",
        "--no-regressions-margin",
        "0.5",
        *extra,
        cwd=repo,
    )


def run_json(repo: Path, out: str) -> dict:
    return json.loads((repo / out / "run.json").read_text())


def test_a_clear_cut_policy_stops_early_and_run_json_records_every_round(repo):
    result = sequential(repo, "runs/seq")
    assert result.code == 0, result.output
    seq = run_json(repo, "runs/seq")["sequential"]
    used = seq["cases_used"]
    assert seq["stopped_early"] and 16 <= used < TOTAL and seq["cases_total"] == TOTAL
    assert seq["order"] == "sha256(seed:case_id)" and seq["order_seed"] == 1234  # v1.3's sampling.seed
    assert seq["policy"] == "promote.rules" and len(seq["policy_sha256"]) == 64
    assert seq["rules"] == PROMOTE.splitlines() and seq["no_regressions_margin"] == 0.5
    rounds = seq["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert [r["cases"] for r in rounds] == [16 * (i + 1) for i in range(len(rounds))]
    assert rounds[-1] == {**rounds[-1], "decided": True, "verdict": "promote", "states": ["pass"] * 3}
    assert not any(r["decided"] for r in rounds[:-1])
    # results.jsonl holds exactly the replayed cases: the first `used` of the pre-committed order
    every = sorted(
        (json.loads(line)["case_id"] for line in (repo / "runs/v1.2/results.jsonl").read_text().splitlines()),
        key=lambda c: order_key(1234, c),
    )
    replayed = {r["case_id"] for r in read_results(repo / "runs/seq/results.jsonl")}
    assert replayed == set(every[:used]) and len(replayed) == used
    assert "round 1: 16/162 cases" in result.stderr and "stop" in result.stderr
    assert f"decided after {used} of 162 cases" in result.stdout and "gate it with" in result.stdout


def test_the_same_seed_gives_the_same_order_and_stopping_point(repo):
    assert sequential(repo, "runs/a").code == 0
    assert sequential(repo, "runs/b").code == 0
    a, b = run_json(repo, "runs/a"), run_json(repo, "runs/b")
    assert a["sequential"]["rounds"] == b["sequential"]["rounds"]
    assert a["output_digest"] == b["output_digest"]
    assert sequential(repo, "runs/c", "promote.rules", "--order-seed", "99").code == 0
    c = run_json(repo, "runs/c")["sequential"]
    first = {r["case_id"] for r in read_results(repo / "runs/a/results.jsonl")}
    other = {r["case_id"] for r in read_results(repo / "runs/c/results.jsonl")}
    assert c["order_seed"] == 99 and first != other  # another seed, another order


def test_the_gate_evaluates_a_sequential_run_with_anytime_valid_statistics(repo):
    assert sequential(repo, "runs/seq").code == 0
    result = run_cli(
        "gate", "--run", "runs/seq", "--baseline-run", "runs/v1.2", "--rules", "promote.rules",
        "--no-regressions-margin", "0.5", cwd=repo,
    )  # fmt: skip  # the margin is the gate's; the replay's must match it
    assert result.code == 0, result.output
    gate = json.loads((repo / "runs/seq/gate.json").read_text())
    seq = run_json(repo, "runs/seq")["sequential"]
    assert gate["verdict"] == "promote" == seq["rounds"][-1]["verdict"]
    assert [r["outcome"] for r in gate["rules"]] == seq["rounds"][-1]["states"]
    s = gate["sequential"]
    assert s["statistics"] == "anytime-valid" == gate["policy"]["statistics"]
    assert s["cases_used"] == seq["cases_used"] and s["cases_saved"] == TOTAL - seq["cases_used"]
    assert s["stopped_early"] and s["same_policy"] and s["no_regressions_margin"] == 0.5
    assert all("anytime-valid" in r["detail"] for r in gate["rules"])
    assert all(row["statistics"] == "anytime-valid" for row in gate["slices"])
    assert "stopped early after" in result.stdout
    report = run_cli("report", "runs/seq/gate.json", cwd=repo)
    assert report.code == 0, report.output
    saved = TOTAL - seq["cases_used"]
    assert f"stopped early after {seq['cases_used']} of {TOTAL} cases ({saved} not replayed" in report.stdout
    assert "anytime-valid" in report.stdout
    # the fixed-n Wilson interval would be narrower than the confidence sequence the gate used
    agg = gate["rules"][1]
    assert agg["upper_ci"] is not None and agg["upper_ci"] <= 0.5


def test_a_clearly_failing_policy_stops_at_the_first_round_and_blocks(repo):
    assert sequential(repo, "runs/bad", "block.rules").code == 0
    seq = run_json(repo, "runs/bad")["sequential"]
    assert seq["cases_used"] == 16 and seq["rounds"][0]["verdict"] == "block"
    result = run_cli("gate", "--run", "runs/bad", "--rules", "block.rules", cwd=repo)
    assert result.code == 1
    gate = json.loads((repo / "runs/bad/gate.json").read_text())
    assert gate["verdict"] == "block" and gate["sequential"]["cases_saved"] == TOTAL - 16


def test_an_undecidable_policy_replays_the_whole_suite_and_holds(repo):
    (repo / "never.rules").write_text("no_regressions_on: ['headache_redflags']\n")
    result = run_cli(
        "replay", "releases/v1.3.yaml", "--out", "runs/all", "--sequential", "never.rules",
        "--baseline", "runs/v1.2", "--round-size", "64", cwd=repo,
    )  # fmt: skip
    assert result.code == 0, result.output
    seq = run_json(repo, "runs/all")["sequential"]
    assert not seq["stopped_early"] and seq["cases_used"] == TOTAL and seq["rounds"][-1]["cases"] == TOTAL
    assert [r["cases"] for r in seq["rounds"]] == [64, 128, 162]
    gate = run_cli(
        "gate", "--run", "runs/all", "--baseline-run", "runs/v1.2", "--rules", "never.rules", cwd=repo
    )
    doc = json.loads((repo / "runs/all/gate.json").read_text())
    assert gate.code == 1 and doc["verdict"] == "hold" and not doc["sequential"]["stopped_early"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sequential", "promote.rules"], "no --baseline run was given"),
        (["--sequential", "bad.rules", "--baseline", "runs/v1.2"], "bad.rules:1:32: unexpected end of rule"),
        (["--sequential", "empty.rules", "--baseline", "runs/v1.2"], "has no rules"),
        (["--sequential", "missing.rules", "--baseline", "runs/v1.2"], "does not exist"),
        (["--sequential", "unknown.rules", "--baseline", "runs/v1.2"], "unknown slice"),
        (["--sequential", "promote.rules", "--baseline", "runs/nowhere"], "not a run directory"),
        (["--sequential", "promote.rules", "--baseline", "runs/v1.2", "--shard", "0/2"], "--shard"),
        (["--baseline", "runs/v1.2"], "go with --sequential"),
    ],
)
def test_bad_input_is_exit_2_before_any_replay(repo, args, message):
    (repo / "bad.rules").write_text("aggregate.success@1.lower_ci >=\n")
    (repo / "empty.rules").write_text("# nothing\n")
    (repo / "unknown.rules").write_text("success@1(no_such_slice).lower_ci >= 0.5\n")
    result = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/x", *args, cwd=repo)
    assert result.code == 2, result.output
    assert message in result.output
    assert not (repo / "runs/x/results.jsonl").exists()


def test_a_baseline_of_another_suite_is_refused(repo):
    run = repo / "runs/v1.2/run.json"
    run.write_text(run.read_text().replace(json.loads(run.read_text())["suite_digest"], "md5:other"))
    result = sequential(repo, "runs/seq")
    assert result.code == 2 and "replayed a different suite" in result.output


def test_the_gate_refuses_a_sequential_run_whose_cases_were_changed(repo):
    assert sequential(repo, "runs/seq").code == 0
    results = repo / "runs/seq/results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))  # one case fewer than run.json says
    gate = run_cli(
        "gate", "--run", "runs/seq", "--baseline-run", "runs/v1.2", "--rules", "promote.rules", cwd=repo
    )
    assert gate.code == 2 and "results.jsonl has" in gate.output


def test_gate_no_regressions_margin_reads_the_rule_as_non_inferiority(repo):
    run_replay(load_manifest(repo / "releases" / "v1.3.yaml"), repo / "runs" / "v1.3")
    (repo / "protect.rules").write_text("no_regressions_on: ['headache_redflags', 'debug_search_api']\n")
    base = ("gate", "--run", "runs/v1.3", "--baseline-run", "runs/v1.2", "--rules", "protect.rules")
    point = run_cli(*base, cwd=repo)
    assert point.code == 0  # the seed's point comparison: equal is no regression
    loose = run_cli(*base, "--no-regressions-margin", "0.5", "--format", "json", cwd=repo)
    assert loose.code == 0 and loose.json()["policy"]["no_regressions_margin"] == 0.5
    rule = loose.json()["rules"][0]
    assert rule["threshold"] == -0.5 and "Newcombe" in rule["detail"]
    # 20-24 identical cases cannot show non-inferiority within 5 points: hold, not promote
    tight = run_cli(*base, "--no-regressions-margin", "0.05", "--format", "json", cwd=repo)
    assert tight.code == 1 and tight.json()["verdict"] == "hold"
    assert "sequential" not in tight.json()


def test_the_margin_passes_a_slice_truly_worse_than_it_at_most_half_alpha():
    import numpy as np

    from releasectl.gate.noninferiority import newcombe_paired_interval

    rng = np.random.default_rng(5)
    passed = 0
    for _ in range(2000):
        u = rng.random(150)
        base = u < 0.85
        cand = np.where(rng.random(150) < 0.7, u, rng.random(150)) < 0.82  # truth Δ = −0.03
        table = (int(np.sum(c)) for c in (cand & base, cand & ~base, ~cand & base, ~cand & ~base))
        passed += newcombe_paired_interval(*table)[0] >= -0.03
    assert passed / 2000 <= 0.035  # nominal α/2 = 0.025


@pytest.mark.model
def test_on_the_embedded_model_a_sequential_replay_stops_early_with_the_full_runs_verdict(tmp_path):
    """SmolLM2-135M (loaded once in-process), 2 cases per slice, 16 new tokens, batches of 2."""
    from conftest import copy_releases_repo

    repo = copy_releases_repo(tmp_path / "repo")
    m = repo / "releases" / "v1.3.yaml"
    m.write_text(
        m.read_text().replace("max_tokens: 96", "max_tokens: 16").replace("batch_size: 8", "batch_size: 2")
    )
    (repo / "clear.rules").write_text("aggregate.success@1.lower_ci >= 0.99\n")  # a small model cannot
    full = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/full", "--limit", "2", cwd=repo)
    assert full.code == 0, full.output
    seq = run_cli(
        "replay", "releases/v1.3.yaml", "--out", "runs/seq", "--limit", "2",
        "--sequential", "clear.rules", "--round-size", "2", cwd=repo,
    )  # fmt: skip
    assert seq.code == 0, seq.output
    record = run_json(repo, "runs/seq")["sequential"]
    assert record["stopped_early"] and record["cases_used"] < record["cases_total"] == 14
    verdicts = {}
    for run in ("full", "seq"):
        gate = run_cli("gate", "--run", f"runs/{run}", "--rules", "clear.rules", "--format", "json", cwd=repo)
        assert gate.code in (0, 1), gate.output
        verdicts[run] = gate.json()["verdict"]
    assert verdicts["seq"] == verdicts["full"] == "block"


def test_an_interrupted_sequential_replay_resumes_and_stops_where_it_would_have(repo, monkeypatch):
    import releasectl.replay.runner as runner

    class Interrupted(FakeEngine):
        def generate(self, prompts, sampling, *, seed):  # type: ignore[no-untyped-def]
            if len(self.calls) == 20:  # Ctrl-C after 40 cases, between two rounds' boundaries
                raise KeyboardInterrupt
            return super().generate(prompts, sampling, seed=seed)

    assert sequential(repo, "runs/whole").code == 0
    monkeypatch.setattr(runner, "make_engine", lambda *a, **k: Interrupted(batch_size=2))
    assert sequential(repo, "runs/cut").code == 130
    assert len(read_results(repo / "runs/cut/results.jsonl")) == 40
    monkeypatch.setattr(runner, "make_engine", lambda *a, **k: FakeEngine(batch_size=2))
    assert sequential(repo, "runs/cut", "promote.rules", "--resume").code == 0
    whole, cut = run_json(repo, "runs/whole"), run_json(repo, "runs/cut")
    assert cut["sequential"]["cases_used"] == whole["sequential"]["cases_used"]
    assert cut["output_digest"] == whole["output_digest"]
    # the looks made before the interruption are kept (resume state), so the record is the same
    assert cut["sequential"]["rounds"] == whole["sequential"]["rounds"]
    assert [r["cases"] for r in cut["sequential"]["rounds"]][:3] == [16, 32, 48]
