"""What a sequential (or sampled) run and its gate.json must hold together (issue 11 and 13 red team).

Every test goes through the CLI. Replays run on tests/fake_engine.py (a hash, not a model:
`make_engine` and `probe_runtime` are replaced, the one thing mocked, because loading SmolLM2 per
test would take minutes on 2 cores); hand-made runs come from tests/runfactory.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from fake_engine import replay_on_fake
from runfactory import case_row, write_run

from releasectl.manifest.loader import load_manifest
from releasectl.replay import run_replay

PROMOTE = """\
format_pass_rate(math_basic).lower_ci >= 0.5
aggregate.success@1.upper_ci <= 0.5
no_regressions_on: ['headache_redflags', 'debug_search_api']
"""
HOLD = "no_regressions_on: ['headache_redflags', 'debug_search_api']\n"
TOTAL = 162  # cases in suites/core


@pytest.fixture
def fake(monkeypatch):
    replay_on_fake(monkeypatch)


@pytest.fixture
def repo(example_repo, fake):
    run_replay(load_manifest(example_repo / "releases" / "v1.2.yaml"), example_repo / "runs" / "v1.2")
    (example_repo / "promote.rules").write_text(PROMOTE)
    (example_repo / "hold.rules").write_text(HOLD)
    return example_repo


def sequential(repo: Path, out: str, policy: str = "promote.rules", *extra: str, margin: str = "0.5"):
    return run_cli(
        "replay", "releases/v1.3.yaml", "--out", out, "--sequential", policy, "--baseline", "runs/v1.2",
        "--round-size", "16", "--no-regressions-margin", margin, *extra, cwd=repo,
    )  # fmt: skip


def gate(repo: Path, run: str, policy: str, *extra: str):
    return run_cli(
        "gate", "releases/v1.3.yaml", "--run", run, "--baseline-run", "runs/v1.2", "--rules", policy,
        *extra, cwd=repo,
    )  # fmt: skip


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def dump(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2))


# --- 1. promote re-derives every rule from the statistics it was decided on -----------------


def test_promote_refuses_a_one_field_forgery_of_a_held_sequential_gate(repo):
    assert sequential(repo, "runs/v1.3", "hold.rules", margin="0").code == 0
    held = gate(repo, "runs/v1.3", "hold.rules")
    assert held.code == 1, held.output
    path = repo / "runs/v1.3/gate.json"
    doc = load(path)
    assert doc["verdict"] == "hold" and doc["sequential"]["decided"] is False
    rule = doc["rules"][0]
    assert rule["lower_ci"] < 0 < rule["upper_ci"]  # the CS straddles 0: nothing is shown
    forged = {**doc, "verdict": "promote", "rules": [{**rule, "outcome": "pass", "observed": 0.0}]}
    dump(path, forged)
    result = run_cli("promote", "v1.3", "--to", "staging", cwd=repo)
    assert result.code == 2, result.output
    assert "rules[0].outcome" in result.output and "does not follow from the interval" in result.output
    assert "sequential.decided" in result.output
    assert "v1.3" not in (repo / "releases/channels.yaml").read_text()
    # the same forgery with same_policy flipped: named too
    dump(path, {**forged, "sequential": {**forged["sequential"], "same_policy": False}})
    result = run_cli("promote", "v1.3", "--to", "staging", cwd=repo)
    assert result.code == 2 and "sequential.same_policy" in result.output


def test_promote_refuses_a_sequential_gate_on_another_policy_than_the_replay_stopped_on(repo):
    assert sequential(repo, "runs/v1.3").code == 0
    (repo / "other.rules").write_text(PROMOTE + "# the same rules, another file\n")
    result = gate(repo, "runs/v1.3", "other.rules", "--no-regressions-margin", "0.5")
    assert result.code == 0, result.output
    assert load(repo / "runs/v1.3/gate.json")["sequential"]["same_policy"] is False
    promoted = run_cli("promote", "v1.3", "--to", "staging", cwd=repo)
    assert promoted.code == 2 and "stopped on another policy" in promoted.output
    assert gate(repo, "runs/v1.3", "promote.rules", "--no-regressions-margin", "0.5").code == 0
    promoted = run_cli("promote", "v1.3", "--to", "staging", "--no-commit", cwd=repo)
    assert promoted.code == 0, promoted.output


# --- 2. the margin is the gate's, never the candidate's run.json ----------------------------


def test_the_margin_comes_from_the_gate_not_from_run_json(repo):
    assert sequential(repo, "runs/v1.3", "hold.rules", margin="0").code == 0
    run = repo / "runs/v1.3/run.json"
    doc = load(run)
    doc["sequential"]["no_regressions_margin"] = 0.99
    dump(run, doc)
    result = gate(repo, "runs/v1.3", "hold.rules")
    assert result.code == 2, result.output
    assert "stopped under no_regressions_margin 0.99" in result.output and "margin is 0" in result.output
    assert "run.json" in result.output
    # any margin other than the one the replay stopped under is refused, naming both
    again = gate(repo, "runs/v1.3", "hold.rules", "--no-regressions-margin", "0.5")
    assert again.code == 2 and "0.99" in again.output and "0.5" in again.output


# --- 3. a sampled run's non-inferiority interval is case-level ------------------------------


def _sampled(path: Path, release: str, per_case: list[int], n: int = 5) -> Path:
    rows = []
    for i, c in enumerate(per_case):
        for s in range(n):
            row = case_row(f"p-{i:03d}", "p", {"ok": (s < c, "correctness")})
            rows.append({**row, "sample": s, "seed": 100 * i + s})
    write_run(path, release, rows, sampling={"n": n})
    return path


def test_sampled_runs_get_a_case_level_non_inferiority_interval(tmp_path):
    # 3 cases flip 5/5 → 0/5 and 3 flip 0/5 → 5/5: six cases of evidence, not 30 samples
    _sampled(tmp_path / "c", "v1.4", [0] * 3 + [5] * 3 + [5] * 24)
    _sampled(tmp_path / "b", "v1.3", [5] * 3 + [0] * 3 + [5] * 24)
    (tmp_path / "nr.rules").write_text("no_regressions_on: [p]\n")
    result = run_cli(
        "gate", "--run", "c", "--baseline-run", "b", "--rules", "nr.rules",
        "--no-regressions-margin", "0.1", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 1, result.output
    doc = result.json()
    rule = doc["rules"][0]
    assert doc["verdict"] == "hold" and rule["n"] == 30  # cases, not 150 samples
    assert rule["lower_ci"] < -0.1 and "case-level" in rule["detail"]
    # a clear case-level improvement still passes
    _sampled(tmp_path / "c2", "v1.4", [5] * 30)
    _sampled(tmp_path / "b2", "v1.3", [4] * 30)
    ok = run_cli(
        "gate", "--run", "c2", "--baseline-run", "b2", "--rules", "nr.rules",
        "--no-regressions-margin", "0.1", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert ok.code == 0, ok.output


# --- 4. every option is checked before any case is replayed ---------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round-size", "99999999999999999999999"], "--round-size"),
        (["--order-seed", "99999999999999999999999999999"], "--order-seed"),
        (["--no-regressions-margin", "nan"], "finite number in [0, 1)"),
        (["--no-regressions-margin", "inf"], "finite number in [0, 1)"),
        (["--no-regressions-margin", "1"], "finite number in [0, 1)"),
        (["--no-regressions-margin", "-0.1"], "finite number in [0, 1)"),
    ],
)
def test_bad_sequential_options_are_exit_2_before_any_replay(repo, args, message):
    result = run_cli(
        "replay", "releases/v1.3.yaml", "--out", "runs/x", "--sequential", "promote.rules",
        "--baseline", "runs/v1.2", *args, cwd=repo,
    )  # fmt: skip
    assert result.code == 2, result.output
    assert message in result.output and "internal error" not in result.output
    assert not (repo / "runs/x/results.jsonl").exists()


def test_an_order_seed_from_the_manifest_outside_the_record_is_exit_2_before_any_replay(repo):
    m = repo / "releases/v1.3.yaml"
    m.write_text(m.read_text().replace("seed: 1234", "seed: 99999999999999999999"))
    result = sequential(repo, "runs/x")
    assert result.code == 2 and "sampling.seed" in result.output and "--order-seed" in result.output
    assert not (repo / "runs/x/results.jsonl").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1.5"])
def test_gate_refuses_a_non_finite_margin(repo, value):
    result = gate(repo, "runs/v1.2", "hold.rules", "--no-regressions-margin", value)
    assert result.code == 2, result.output
    assert "finite number in [0, 1)" in result.output and "internal error" not in result.output


# --- 5. replay --sequential runs the gate's policy checks before replaying ------------------


def test_replay_sequential_refuses_what_the_gate_would_refuse_before_replaying(repo):
    (repo / "pk.rules").write_text("aggregate.pass@k(k=3).point >= 0.5\n")
    result = sequential(repo, "runs/x", "pk.rules")
    assert result.code == 2, result.output
    assert "pk.rules:1" in result.output and "k=3" in result.output and "k <= 1" in result.output
    assert not (repo / "runs/x/results.jsonl").exists()
    (repo / "field.rules").write_text("aggregate.cost_per_1k_tokens_usd.lower_ci <= 1\n")
    result = sequential(repo, "runs/x", "field.rules")
    assert result.code == 2 and "has no field .lower_ci" in result.output, result.output
    # and the gate says the same for the same rule
    full = run_cli(
        "gate", "--run", "runs/v1.2", "--baseline-run", "runs/v1.2", "--rules", "pk.rules", cwd=repo
    )
    assert full.code == 2 and "k <= 1" in full.output


# --- 6. a run that misses cases of its suite must say why -----------------------------------


def test_a_sequential_run_without_its_record_is_refused_naming_the_missing_cases(repo):
    assert sequential(repo, "runs/v1.3").code == 0
    run = repo / "runs/v1.3/run.json"
    doc = load(run)
    used = doc["sequential"]["cases_used"]
    del doc["sequential"]
    dump(run, doc)
    for args in ((), ("--baseline-run", "runs/v1.2")):
        result = run_cli(
            "gate", "releases/v1.3.yaml", "--run", "runs/v1.3", *args, "--rules", "promote.rules", cwd=repo
        )
        assert result.code == 2, result.output
        assert "runs/v1.3/run.json" in result.output and f"misses {TOTAL - used} case(s)" in result.output


def test_limited_and_full_runs_still_gate(repo):
    full = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/v1.3", cwd=repo)
    assert full.code == 0, full.output
    assert run_cli("gate", "releases/v1.3.yaml", "--run", "runs/v1.3", "--baseline-run", "runs/v1.2",
                   "--rules", "hold.rules", cwd=repo).code in (0, 1)  # fmt: skip
    limited = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/lim", "--limit", "2", cwd=repo)
    assert limited.code == 0, limited.output
    result = run_cli("gate", "releases/v1.3.yaml", "--run", "runs/lim", "--baseline-run", "runs/v1.2",
                     "--rules", "hold.rules", cwd=repo)  # fmt: skip
    assert result.code in (0, 1), result.output


# --- 7. the baseline is tied to the run and to its release --------------------------------


def test_a_sequential_run_is_gated_only_against_the_baseline_it_stopped_against(repo):
    assert sequential(repo, "runs/v1.3").code == 0
    seq = load(repo / "runs/v1.3/run.json")["sequential"]
    assert seq["baseline_release"] == "v1.2" and seq["baseline_output_digest"].startswith("sha256:")
    import shutil

    shutil.copytree(repo / "runs/v1.2", repo / "runs/other")
    other = repo / "runs/other/run.json"
    doc = load(other)
    dump(other, {**doc, "release": "v9.9"})
    result = run_cli("gate", "--run", "runs/v1.3", "--baseline-run", "runs/other", "--rules", "promote.rules",
                     "--no-regressions-margin", "0.5", cwd=repo)  # fmt: skip
    assert result.code == 2 and "release v1.2" in result.output and "v9.9" in result.output, result.output
    dump(other, {**doc, "output_digest": "sha256:" + "9" * 64})
    result = run_cli("gate", "--run", "runs/v1.3", "--baseline-run", "runs/other", "--rules", "promote.rules",
                     "--no-regressions-margin", "0.5", cwd=repo)  # fmt: skip
    assert result.code == 2 and "output_digest" in result.output, result.output


def test_a_baseline_replayed_from_another_manifest_than_its_release_is_refused(repo):
    run = repo / "runs/v1.2/run.json"
    doc = load(run)
    dump(run, {**doc, "manifest_digest": "sha256:" + "0" * 64})
    full = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/v1.3", cwd=repo)
    assert full.code == 0, full.output
    result = run_cli(
        "gate", "--run", "runs/v1.3", "--baseline-run", "runs/v1.2", "--rules", "hold.rules", cwd=repo
    )
    assert result.code == 2, result.output
    assert "sha256:" + "0" * 64 in result.output and "releases/v1.2.yaml" in result.output


def test_replay_sequential_refuses_a_partial_or_own_release_baseline(repo):
    assert sequential(repo, "runs/seq").code == 0
    result = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/x", "--sequential", "promote.rules",
                     "--baseline", "runs/seq", cwd=repo)  # fmt: skip
    assert result.code == 2 and "itself a sequential run" in result.output, result.output
    assert not (repo / "runs/x/results.jsonl").exists()
    assert run_cli("replay", "releases/v1.2.yaml", "--out", "runs/lim", "--limit", "2", cwd=repo).code == 0
    result = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/x", "--sequential", "promote.rules",
                     "--baseline", "runs/lim", cwd=repo)  # fmt: skip
    assert result.code == 2 and "limit 2" in result.output, result.output
    full = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/v1.3", cwd=repo)
    assert full.code == 0
    result = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/x", "--sequential", "promote.rules",
                     "--baseline", "runs/v1.3", cwd=repo)  # fmt: skip
    assert result.code == 2 and "the candidate's own release" in result.output, result.output


# --- 8. a killed sequential replay keeps every look it made --------------------------------


KILLABLE = """\
import sys
sys.path.insert(0, {tests!r})
from fake_engine import FakeEngine
import releasectl.replay.runner as runner
runner.probe_runtime = lambda *a, **k: FakeEngine().runtime
runner.make_engine = lambda *a, **k: FakeEngine(batch_size=2, kill_after_calls=20)
from releasectl.cli import run
sys.argv[0] = "releasectl"
run()
"""


def test_a_killed_sequential_replay_resumes_with_every_round_in_run_json(repo, tmp_path):
    import subprocess
    import sys

    assert sequential(repo, "runs/whole").code == 0
    whole = load(repo / "runs/whole/run.json")["sequential"]
    # a real SIGKILL (in a child process) after 20 engine calls = 40 cases, past rounds 16 and 32
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE.format(tests=str(Path(__file__).parent)))
    args = ["replay", "releases/v1.3.yaml", "--out", "runs/cut", "--sequential", "promote.rules",
            "--baseline", "runs/v1.2", "--round-size", "16", "--no-regressions-margin", "0.5"]  # fmt: skip
    proc = subprocess.run([sys.executable, str(script), *args], cwd=repo, capture_output=True, check=False)
    assert proc.returncode == -9, proc.stderr
    assert not (repo / "runs/cut/run.json").exists()
    assert [r["cases"] for r in load(repo / "runs/cut/.sequential-rounds.json")] == [16, 32]
    assert sequential(repo, "runs/cut", "promote.rules", "--resume").code == 0
    cut = load(repo / "runs/cut/run.json")["sequential"]
    assert cut["rounds"] == whole["rounds"] and cut["cases_used"] == whole["cases_used"]
    # a fresh run in the same directory forgets the old rounds
    assert sequential(repo, "runs/cut").code == 0
    assert load(repo / "runs/cut/run.json")["sequential"]["rounds"] == whole["rounds"]


# --- 6. the second red team: nothing of the order is taken from the run's own run.json -----------

MATH = "format_pass_rate(math_basic).lower_ci >= 0.5\n"


def _handpick(repo: Path, run: str, keep) -> None:  # type: ignore[no-untyped-def]
    """Keep the rows `keep(row)` of the run, with counts fixed so the record agrees with itself."""
    results = repo / run / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    kept = [r for r in rows if keep(r)]
    results.write_text("".join(json.dumps(r) + "\n" for r in kept))
    doc = load(repo / run / "run.json")
    doc["cases"] = doc["sequential"]["cases_used"] = len(kept)
    dump(repo / run / "run.json", doc)


@pytest.mark.parametrize("field", ["cases_total", "order_seed", "max_tokens"])
def test_what_run_json_says_of_the_order_must_be_the_manifests(repo, field):
    """Editing `cases_total` once switched the prefix check off, `max_tokens` set the tokens bound
    and `order_seed` the order: each is now checked against the manifest and its suite (exit 2)."""
    assert sequential(repo, "runs/s", "promote.rules").code == 0
    doc = load(repo / "runs/s/run.json")
    doc["sequential"][field] += 1
    dump(repo / "runs/s/run.json", doc)
    r = gate(repo, "runs/s", "promote.rules", "--no-regressions-margin", "0.5")
    assert r.code == 2 and f"sequential.{field} is" in r.stderr, r.output


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("with_baseline", [True, False])
def test_a_hand_picked_sequential_run_is_refused_with_or_without_a_baseline(repo, skip, with_baseline):
    """The order is rebuilt from the manifest's suite, so the check needs no baseline run."""
    extra = ("--skip-decided-slices",) if skip else ()
    (repo / "math.rules").write_text(MATH)
    assert sequential(repo, "runs/s", "math.rules", *extra).code == 0
    rows = [json.loads(line) for line in (repo / "runs/s/results.jsonl").read_text().splitlines()]
    drop = next(r["case_id"] for r in rows if r["slice"] == "math_basic")
    _handpick(repo, "runs/s", lambda r: r["case_id"] != drop)
    args = ["gate", "releases/v1.3.yaml", "--run", "runs/s", "--rules", "math.rules"]
    if with_baseline:
        args += ["--baseline-run", "runs/v1.2"]
    else:
        (repo / "runs/v1.2").rename(repo / "away")  # nothing for the gate to find either
    r = run_cli(*args, cwd=repo)
    assert r.code == 2 and "not the first" in r.stderr, r.output


def test_a_row_relabelled_into_another_slice_is_refused(repo):
    assert sequential(repo, "runs/s", "promote.rules", "--skip-decided-slices").code == 0
    results = repo / "runs/s/results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    i = next(i for i, r in enumerate(rows) if r["slice"] == "math_basic")
    rows[i]["slice"] = "tool_calls"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = gate(repo, "runs/s", "promote.rules", "--no-regressions-margin", "0.5")
    assert r.code == 2 and f"case {rows[i]['case_id']!r}" in r.stderr and "'math_basic'" in r.stderr, r.output


def test_an_order_seed_picked_at_replay_time_is_noted_and_refused_by_the_gate(repo):
    r = sequential(repo, "runs/s", "promote.rules", "--order-seed", "1422")
    assert r.code == 0 and "--order-seed 1422 is not" in r.stderr, r.output
    g = gate(repo, "runs/s", "promote.rules", "--no-regressions-margin", "0.5")
    assert g.code == 2 and "sequential.order_seed is 1422" in g.stderr and "sampling.seed is 1234" in g.stderr


def test_a_deleted_baseline_record_does_not_make_any_baseline_acceptable(repo):
    assert sequential(repo, "runs/s", "promote.rules").code == 0
    doc = load(repo / "runs/s/run.json")
    doc["sequential"]["baseline_release"] = None
    dump(repo / "runs/s/run.json", doc)
    r = gate(repo, "runs/s", "promote.rules", "--no-regressions-margin", "0.5")
    assert r.code == 2 and "names no baseline" in r.stderr, r.output


def test_a_limited_sequential_run_gates_on_the_limited_suite_and_never_promotes(repo):
    """`--limit N` replays the first N cases of each slice, in the order over those: the gate
    rebuilds that order from the manifest's suite and the recorded limit, and promote refuses a
    gate of a partial replay, sequential or not."""
    r = sequential(repo, "runs/v1.3", "promote.rules", "--limit", "3")
    assert r.code == 0, r.output
    seq = load(repo / "runs/v1.3/run.json")["sequential"]
    assert seq["cases_total"] == 7 * 3
    g = gate(repo, "runs/v1.3", "promote.rules", "--no-regressions-margin", "0.5")
    assert g.code in (0, 1), g.output
    p = run_cli("promote", "v1.3", "--to", "staging", cwd=repo)
    assert p.code in (1, 2) and "promoted" not in p.output, p.output


def test_resuming_a_decided_skip_run_keeps_its_uniform_prefix(repo):
    """The deciding round records no focus; resume used to take the uniform prefix from it (None),
    and the gate then refused the tool's own run."""
    assert sequential(repo, "runs/s", "promote.rules", "--skip-decided-slices").code == 0
    before = load(repo / "runs/s/run.json")["sequential"]
    assert before["uniform_cases"] is not None
    assert sequential(repo, "runs/s", "promote.rules", "--skip-decided-slices", "--resume").code == 0
    after = load(repo / "runs/s/run.json")["sequential"]
    assert after["uniform_cases"] == before["uniform_cases"] and after["rounds"] == before["rounds"]
    assert gate(repo, "runs/s", "promote.rules", "--no-regressions-margin", "0.5").code == 0


def test_promote_refuses_a_sequential_gate_stripped_of_its_record(repo):
    """Deleting `sequential` from gate.json made its early-stopped prefix read as a fixed-n gate,
    whose point rules promote more easily: a fixed-n gate of part of the suite does not promote."""
    assert sequential(repo, "runs/v1.3", "promote.rules").code == 0
    assert gate(repo, "runs/v1.3", "promote.rules", "--no-regressions-margin", "0.5").code == 0
    path = repo / "runs/v1.3/gate.json"
    doc = load(path)
    used = doc["sequential"]["cases_used"]
    del doc["sequential"]
    doc["policy"].pop("statistics", None)
    dump(path, doc)
    r = run_cli("promote", "v1.3", "--to", "staging", cwd=repo)
    assert r.code == 1 and f"evaluates {used} of the suite's {TOTAL} cases" in r.output, r.output


def test_a_resume_refusal_names_the_option_that_differs(repo):
    assert sequential(repo, "runs/s", "hold.rules", margin="0").code == 0
    r = sequential(repo, "runs/s", "hold.rules", "--round-size", "8", "--resume", margin="0")
    assert r.code == 2 and "round_size: 16 → 8" in r.stderr and "{" not in r.stderr.split("\n")[0], r.output
    plain = run_cli("replay", "releases/v1.3.yaml", "--out", "runs/s", "--resume", cwd=repo)
    assert plain.code == 2 and "a --sequential replay → a full replay" in plain.stderr, plain.output
