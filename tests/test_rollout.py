"""`releasectl rollout`: traffic steps (5 → 20 → 50 → 100 %) gated by seed 004's relative gate,
decided with anytime-valid confidence sequences, on synthetic request logs (numpy, fixed seeds).

Everything goes through the CLI in a temp copy of the releases repository (git-initialised), and
checks what a user sees: exit codes, output, channels.yaml, history.jsonl (earlier lines
byte-identical) and the git commits. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from conftest import REPO_ROOT, git, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from runfactory import gate_document

from releasectl.manifest.loader import load_manifest

LOG = Path("releases") / "history.jsonl"
VIEW = Path("releases") / "channels.yaml"
BIG = 50_000  # requests per side and step: enough for a 0.5-point margin to decide at 1 % errors


def write_gate(repo: Path, release: str = "v1.3", stage: str = "production") -> None:
    """A consistent passing gate.json bound to the manifest (promote re-derives it)."""
    digest = load_manifest(repo / "releases" / f"{release}.yaml").digest
    path = repo / "runs" / release / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gate_document(release, stage=stage, manifest_digest=digest)))


def write_log(
    path: Path,
    *,
    release: str,
    start: str,
    n: int,
    seed: int,
    error_rate: float = 0.01,
    abandon_rate: float = 0.10,
    latency_log_mean: float = 6.2,
    satisfaction: tuple[float, ...] = (0.02, 0.05, 0.13, 0.40, 0.40),
    earlier: int = 0,
) -> None:
    """`n` requests of `release` timestamped from `start` on (within its second), plus `earlier`
    requests an hour before it, all failed: an earlier step's traffic, which the step's analysis
    must ignore."""
    rng = np.random.default_rng(seed)
    base = start.removesuffix("Z")
    micros = np.sort(rng.integers(0, 900_000, n))
    errors = rng.random(n) < error_rate
    abandoned = rng.random(n) < abandon_rate
    latency = rng.lognormal(latency_log_mean, 0.4, n).round(1)
    ratings = rng.choice(np.arange(1, 6), size=n, p=np.array(satisfaction))
    rated = rng.random(n) < 0.3
    lines = []
    hour_before = (datetime.fromisoformat(base) - timedelta(hours=1)).isoformat() + "Z"
    for _ in range(earlier):
        rec = {
            "timestamp": hour_before,
            "release": release,
            "error": "upstream_5xx",
            "abandoned": True,
            "response_time_ms": 9e4,
        }
        lines.append(orjson.dumps(rec))
    for i in range(n):
        rec = {
            "timestamp": f"{base}.{micros[i]:06d}Z",
            "release": release,
            "response_time_ms": float(latency[i]),
            "error": "upstream_5xx" if errors[i] else None,
            "abandoned": bool(abandoned[i]),
            "tokens_generated": 120,
        }
        if rated[i]:
            rec["user_satisfaction"] = int(ratings[i])
        lines.append(orjson.dumps(rec))
    path.write_bytes(b"\n".join(lines) + b"\n")


def status(repo: Path) -> dict:
    r = run_cli("rollout", "status", "--format", "json", cwd=repo)
    assert r.code == 0, r.output
    return r.json()


def step_logs(
    repo: Path, tmp: Path, step: int, *, n: int = BIG, canary_errors: float = 0.01, **kw
) -> list[str]:
    """Canary and baseline logs for the current step's window; the arguments `advance` takes."""
    record = status(repo)["rollout"]
    canary, baseline = tmp / f"canary-{step}.jsonl", tmp / f"baseline-{step}.jsonl"
    canary_release, baseline_release = record["release"], status(repo)["release"]
    write_log(
        canary,
        release=canary_release,
        start=record["step_started"],
        n=n,
        seed=100 + step,
        error_rate=canary_errors,
        **kw,
    )
    # At 100 % the old release serves nothing: its baseline is its traffic since the rollout started.
    base_start = record["started"] if record["weight"] == 100 else record["step_started"]
    write_log(baseline, release=baseline_release, start=base_start, n=n + n // 5, seed=200 + step, **kw)
    return ["--canary-logs", str(canary), "--baseline-logs", str(baseline)]


def events(repo: Path) -> list[dict]:
    return [json.loads(x) for x in (repo / LOG).read_text().splitlines() if x.strip()]


def view(repo: Path) -> dict:
    return yaml.safe_load((repo / VIEW).read_text())


@pytest.fixture
def rolling(example_repo: Path) -> Path:
    """v1.3 rolling out to production (v1.2) in steps of 5, 20, 50, 100 %, on a passing gate."""
    write_gate(example_repo)
    r = run_cli(
        "rollout", "v1.3", "--channel", "production", "--steps", "5,20,50,100", "--reason", "seed 004 plan",
        cwd=example_repo,
    )  # fmt: skip
    assert r.code == 0, r.output
    return example_repo


def test_a_candidate_no_worse_advances_through_every_step_and_ends_in_production(rolling, tmp_path):
    start = events(rolling)[-1]
    assert (start["action"], start["from"], start["to"], start["forced"]) == (
        "rollout",
        "v1.2",
        "v1.3",
        False,
    )
    assert start["gate"]["verdict"] == "promote" and start["reason"] == "seed 004 plan"
    assert start["rollout"] == {
        "release": "v1.3",
        "plan": [5, 20, 50, 100],
        "step": 0,
        "weight": 5,
        "state": "started",
        "started": start["time"],
        "step_started": start["time"],
    }
    assert view(rolling)["channels"]["production"] == "v1.2"  # the old release serves the other 95 %
    assert view(rolling)["rollouts"]["production"]["weight"] == 5
    weights = []
    for step in range(4):
        args = step_logs(rolling, tmp_path, step, earlier=2_000)
        r = run_cli("rollout", "advance", *args, "--format", "json", cwd=rolling)
        assert r.code == 0, r.output
        doc = r.json()
        assert doc["analysis"]["outcome"] == "pass", doc["analysis"]
        assert {m["metric"]: m["decision"] for m in doc["analysis"]["metrics"]} == dict.fromkeys(
            ("task_completion", "latency_p95_ms", "error_rate", "satisfaction"), "pass"
        )
        assert doc["analysis"]["canary"]["before_window"] == 2_000  # the earlier traffic is left out
        assert doc["analysis"]["canary_requests"] == BIG
        weights.append(doc["rollout"]["weight"])
    assert weights == [20, 50, 100, 100]
    last = events(rolling)[-1]
    assert (last["action"], last["from"], last["to"], last["forced"]) == ("promote", "v1.2", "v1.3", False)
    assert last["rollout"]["state"] == "completed" and last["rollout"]["analysis"]["outcome"] == "pass"
    assert last["gate"]["verdict"] == "promote"  # promote's checks ran again at the end
    assert view(rolling) == {
        "channels": {"staging": "v1.2", "canary": "v1.2", "production": "v1.3"},
        "revision": 14,
    }
    subjects = git(rolling, "log", "--format=%s", "-5").splitlines()
    assert subjects[0].startswith("promote(production): v1.2 → v1.3 — rollout complete")
    assert subjects[1].startswith("rollout(production): v1.3 step 4/4 at 100 % (advanced)")
    assert subjects[4].startswith("rollout(production): v1.3 step 1/4 at 5 % (started), v1.2 serves the rest")
    prod = next(
        c
        for c in run_cli("status", "--format", "json", cwd=rolling).json()["channels"]
        if c["channel"] == "production"
    )
    assert prod["release"] == "v1.3" and prod["rollout"] is None and prod["action"] == "promote"


def test_two_points_more_errors_fails_and_the_abort_keeps_the_old_release(rolling, tmp_path):
    before = (rolling / LOG).read_bytes()
    args = step_logs(rolling, tmp_path, 0, canary_errors=0.03)
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=rolling)
    assert r.code == 1, r.output
    doc = r.json()
    assert doc["outcome"] == "fail" and doc["aborted"] is None
    decisions = {m["metric"]: m["decision"] for m in doc["metrics"]}
    assert decisions["error_rate"] == "fail" and decisions["task_completion"] == "pass"
    human = run_cli("rollout", "analyze", *args, cwd=rolling)
    assert human.code == 1 and "fail" in human.stdout and "error_rate" in human.stdout
    refused = run_cli("rollout", "advance", *args, cwd=rolling)
    assert refused.code == 1 and "the analysis says fail" in refused.stderr
    assert (rolling / LOG).read_bytes() == before
    aborted = run_cli("rollout", "analyze", *args, "--auto-abort", "--format", "json", cwd=rolling)
    assert aborted.code == 1, aborted.output
    move = aborted.json()["aborted"]
    assert (move["action"], move["from"], move["to"]) == ("rollout", "v1.2", "v1.3")
    after = (rolling / LOG).read_bytes()
    assert after.startswith(before)  # every earlier line byte-identical, one line appended
    event = json.loads(after[len(before) :])
    assert event["rollout"]["state"] == "aborted" and event["rollout"]["weight"] == 0
    assert event["rollout"]["analysis"]["error_rate"] == "fail"
    trigger = event["trigger"]
    assert trigger["source"] == "rollout analyze --auto-abort" and trigger["outcome"] == "fail"
    assert [f["metric"] for f in trigger["failed"]] == ["error_rate"] and trigger["canary_logs"] == args[1]
    assert event["reason"].startswith("analysis failed: worse than allowed: error_rate")
    assert view(rolling) == {
        "channels": {"staging": "v1.2", "canary": "v1.2", "production": "v1.2"},
        "revision": 11,
    }
    assert git(rolling, "log", "-1", "--format=%s").startswith(
        "rollout(production): v1.3 step 1/4 at 0 % (aborted)"
    )
    assert status(rolling)["rollout"] is None
    again = run_cli("rollout", "analyze", *args, cwd=rolling)
    assert again.code == 2 and "no rollout in progress on production" in again.stderr


def test_small_undecided_data_holds(rolling, tmp_path):
    args = step_logs(rolling, tmp_path, 0, n=300)
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=rolling)
    assert r.code == 1 and r.json()["outcome"] == "hold", r.output
    assert "cannot decide" in r.json()["reason"]
    before = (rolling / LOG).read_bytes()
    adv = run_cli("rollout", "advance", *args, "--format", "json", cwd=rolling)
    assert adv.code == 1 and adv.json()["refused"] is True and adv.json()["analysis"]["outcome"] == "hold"
    assert (rolling / LOG).read_bytes() == before
    # --force --reason overrides, and says so in the history
    forced = run_cli("rollout", "advance", *args, "--force", "--reason", "exec call", cwd=rolling)
    assert forced.code == 0, forced.output
    event = events(rolling)[-1]
    assert event["forced"] is True and "past an analysis that says hold" in event["override"]
    assert event["rollout"]["analysis"]["outcome"] == "hold" and event["rollout"]["weight"] == 20


def test_pause_blocks_advance_until_resumed(rolling, tmp_path):
    assert run_cli("rollout", "pause", "--reason", "holiday freeze", cwd=rolling).code == 0
    assert view(rolling)["rollouts"]["production"]["state"] == "paused"
    args = step_logs(rolling, tmp_path, 0)
    blocked = run_cli("rollout", "advance", *args, cwd=rolling)
    assert blocked.code == 1 and "is paused" in blocked.stderr and "rollout resume" in blocked.stderr
    forced = run_cli("rollout", "advance", "--force", "--reason", "x", cwd=rolling)
    assert forced.code == 1 and "is paused" in forced.stderr
    assert run_cli("rollout", "pause", cwd=rolling).code == 1  # already paused
    assert run_cli("rollout", "resume", cwd=rolling).code == 0
    assert run_cli("rollout", "advance", *args, cwd=rolling).code == 0
    assert [e["rollout"]["state"] for e in status(rolling)["events"]] == [
        "started",
        "paused",
        "resumed",
        "advanced",
    ]


def test_one_rollout_per_channel_and_no_plain_promote_during_one(rolling):
    again = run_cli("rollout", "v1.4", "--force", "--reason", "x", cwd=rolling)
    assert again.code == 1 and "rollout of v1.3 in progress" in again.stderr
    promote = run_cli("promote", "v1.4", "--to", "production", "--force", "--reason", "x", cwd=rolling)
    assert promote.code == 1 and "rollout abort" in promote.stderr
    other = run_cli("rollout", "v1.3", "--channel", "staging", "--force", "--reason", "x", cwd=rolling)
    assert other.code == 0, other.output  # another channel may step its own traffic
    assert set(view(rolling)["rollouts"]) == {"production", "staging"}


def test_a_manual_abort_re_renders_the_old_release_in_the_same_commit(rolling):
    r = run_cli(
        "rollout", "abort", "--reason", "pager: p95", "--render", "vllm", "--format", "json", cwd=rolling
    )
    assert r.code == 0, r.output
    doc = r.json()
    assert doc["rollout"]["state"] == "aborted" and doc["rendered"]
    served = json.loads((rolling / "deploy/rendered/production/vllm/serve.json").read_text())
    assert served["release"] == "v1.2"
    event = events(rolling)[-1]
    assert event["trigger"] == {"source": "manual"} and event["reason"] == "pager: p95"
    changed = git(rolling, "show", "--name-only", "--format=", "HEAD").split()
    assert "deploy/rendered/production/vllm/serve.json" in changed and "releases/history.jsonl" in changed
    assert run_cli("rollout", "abort", cwd=rolling).code == 2  # nothing left to abort


def test_a_plain_rollback_during_a_rollout_refuses_and_points_at_abort(rolling):
    """The channel still holds v1.2 during the rollout: a plain rollback would move production to
    v1.1, further back; the way back to v1.2 is the rollout's abort."""
    before = (rolling / LOG).read_bytes()
    for fmt in ("text", "json"):
        r = run_cli("rollback", "--reason", "incident", "--format", fmt, cwd=rolling)
        assert r.code == 1, r.output
    doc = r.json()
    assert doc["refused"] is True and "rollout of v1.3 in progress" in doc["message"]
    assert "move it to v1.1, not back to v1.2" in doc["message"]
    assert "releasectl rollout abort --channel production --reason" in doc["hint"]
    assert (rolling / LOG).read_bytes() == before
    forced = run_cli("rollback", "--force", "--reason", "incident: v1.2 is bad too", cwd=rolling)
    assert forced.code == 0, forced.output  # --force: the previous release, as before
    event = events(rolling)[-1]
    assert (event["to"], event["forced"], event["rollout"]["state"]) == ("v1.1", True, "aborted")
    abort = run_cli("rollout", "abort", "--reason", "x", cwd=rolling)
    assert abort.code == 2  # the rollback ended it


def test_a_rollback_during_a_rollout_ends_it(rolling):
    r = run_cli("rollback", "v1.1", "--reason", "incident", cwd=rolling)
    assert r.code == 0, r.output
    event = events(rolling)[-1]
    assert (event["action"], event["from"], event["to"]) == ("rollback", "v1.2", "v1.1")
    assert event["rollout"]["state"] == "aborted" and event["rollout"]["release"] == "v1.3"
    assert "rollouts" not in view(rolling) and view(rolling)["channels"]["production"] == "v1.1"
    # the rollout steps are not moves: the release before v1.1 here is v1.2, and v1.3 never held production
    refused = run_cli("rollback", "v1.3", cwd=rolling)
    assert refused.code == 1 and "v1.3 never held production" in refused.stderr


def test_start_needs_what_promote_needs(example_repo):
    before = (example_repo / LOG).read_bytes()
    missing = run_cli("rollout", "v1.3", cwd=example_repo)
    assert missing.code == 1 and "no gate result" in missing.stderr and "releasectl gate" in missing.stderr
    write_gate(example_repo, stage="staging")
    wrong = run_cli("rollout", "v1.3", "--channel", "production", cwd=example_repo)
    assert wrong.code == 1 and "needs stage 'production'" in wrong.stderr
    assert run_cli("rollout", "v1.3", "--force", cwd=example_repo).code == 2  # --force needs --reason
    assert run_cli("rollout", "v9.9", "--force", "--reason", "x", cwd=example_repo).code == 2
    assert run_cli("rollout", "v1.2", "--force", "--reason", "x", cwd=example_repo).code == 1  # already holds
    assert (example_repo / LOG).read_bytes() == before
    forced = run_cli(
        "rollout", "v1.3", "--force", "--reason", "no gate yet", "--format", "json", cwd=example_repo
    )
    assert forced.code == 0 and forced.json()["forced"] is True
    assert "needs stage 'production'" in events(example_repo)[-1]["override"]


@pytest.mark.parametrize("steps", ["5,20,50", "20,5,100", "0,100", "5,,100", "abc", "5,20,50,100,100", "١٠٠"])
def test_a_bad_step_plan_is_bad_input(rolling, steps):
    r = run_cli(
        "rollout", "v1.4", "--channel", "staging", "--steps", steps, "--force", "--reason", "x", cwd=rolling
    )
    assert r.code == 2 and "--steps" in r.stderr, r.output


def test_unreadable_or_empty_logs_are_bad_input(rolling, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    missing = run_cli(
        "rollout",
        "analyze",
        "--canary-logs",
        str(tmp_path / "nope"),
        "--baseline-logs",
        str(empty),
        cwd=rolling,
    )
    assert missing.code == 2 and "nope" in missing.stderr
    empty2 = tmp_path / "empty2.jsonl"
    empty2.write_text("")
    r = run_cli(
        "rollout", "analyze", "--canary-logs", str(empty), "--baseline-logs", str(empty2), cwd=rolling
    )
    assert r.code == 2 and "no data" in r.stderr
    one = run_cli("rollout", "analyze", "--canary-logs", str(empty), cwd=rolling)
    assert one.code == 2 and "--baseline-logs" in one.stderr
    assert run_cli("rollout", "advance", cwd=rolling).code == 2  # no analysis and no --force


def test_logs_from_before_the_step_hold_never_pass(rolling, tmp_path):
    """No data in the window is never an all-clear."""
    record = status(rolling)["rollout"]
    old = (datetime.fromisoformat(record["started"].removesuffix("Z")) - timedelta(days=1)).isoformat() + "Z"
    canary, baseline = tmp_path / "c.jsonl", tmp_path / "b.jsonl"
    write_log(canary, release="v1.3", start=old, n=BIG, seed=1)
    write_log(baseline, release="v1.2", start=old, n=BIG, seed=2)
    r = run_cli(
        "rollout",
        "analyze",
        "--canary-logs",
        str(canary),
        "--baseline-logs",
        str(baseline),
        "--format",
        "json",
        cwd=rolling,
    )
    assert r.code == 1 and r.json()["outcome"] == "hold"
    assert r.json()["canary"]["before_window"] == BIG and any(
        "no request of v1.3 since" in n for n in r.json()["notes"]
    )


def _iso_in(minutes: float) -> str:
    """Now + `minutes`, as a log timestamp (whole seconds, UTC)."""
    from datetime import UTC

    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _analyze(repo: Path, canary: Path, baseline: Path, *extra: str):
    return run_cli(
        "rollout", "analyze", "--canary-logs", str(canary), "--baseline-logs", str(baseline), *extra, cwd=repo
    )  # fmt: skip


# --- the step's window ends at the analysis time -------------------------------------------------


@pytest.mark.parametrize("when", ["in an hour", "year 9998"])
def test_records_stamped_after_the_analysis_are_bad_input_never_every_steps_traffic(rolling, tmp_path, when):
    """One log stamped in the future once counted in every step, so it advanced a rollout through
    all of them in seconds. The window is [step start, now]: a later record is exit 2 naming the
    file, the first such line and how many, in analyze and advance alike, and nothing is written."""
    args = step_logs(rolling, tmp_path, 0, n=2_000)
    canary = Path(args[1])
    future = _iso_in(60) if when == "in an hour" else "9998-06-01T00:00:00Z"
    good = canary.read_bytes()
    lines = good.splitlines(keepends=True)
    late = {"timestamp": future, "release": "v1.3", "response_time_ms": 500.0, "error": None}
    canary.write_bytes(
        b"".join(lines[:7]) + b"".join(orjson.dumps(late) + b"\n" for _ in range(3)) + b"".join(lines[7:])
    )
    before = (rolling / LOG).read_bytes()
    for verb in ("analyze", "advance"):
        r = run_cli("rollout", verb, *args, "--format", "json", cwd=rolling)
        assert r.code == 2, r.output
        doc = r.json()
        assert (
            f"{canary}:8:" in doc["message"]
            and "3 record(s) stamped after the analysis time" in doc["message"]
        )
        assert doc["problems"][0]["line"] == 8 and doc["problems"][0]["found"] == future
        assert "Traceback" not in r.output
    assert (rolling / LOG).read_bytes() == before


def test_records_within_the_clock_skew_allowance_count(rolling, tmp_path):
    """A few minutes ahead is clock skew (docs/channels.md: 5 minutes), not an error."""
    record = status(rolling)["rollout"]
    canary, baseline = tmp_path / "c.jsonl", tmp_path / "b.jsonl"
    write_log(canary, release="v1.3", start=_iso_in(3), n=500, seed=1)
    write_log(baseline, release="v1.2", start=record["step_started"], n=500, seed=2)
    r = _analyze(rolling, canary, baseline, "--format", "json")
    assert r.code == 1 and r.json()["canary_requests"] == 500, r.output  # counted (a hold: too few)
    assert r.json()["canary"]["until"] <= _iso_in(0)


def test_a_step_younger_than_min_step_minutes_holds_and_advance_refuses(example_repo, tmp_path):
    manifest = example_repo / "releases" / "v1.3.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("policy:\n", "policy:\n  rollout:\n    min_step_minutes: 60\n", 1))
    write_gate(example_repo)
    assert run_cli("rollout", "v1.3", "--reason", "an hour a step", cwd=example_repo).code == 0
    args = step_logs(example_repo, tmp_path, 0)
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=example_repo)
    assert r.code == 1, r.output
    doc = r.json()
    assert (
        doc["outcome"] == "hold"
        and "min_step_minutes" in doc["reason"]
        and "of the 60 minutes" in doc["reason"]
    )
    assert all(m["decision"] == "pass" for m in doc["metrics"])  # the data pass; the clock holds
    before = (example_repo / LOG).read_bytes()
    adv = run_cli("rollout", "advance", *args, cwd=example_repo)
    assert adv.code == 1 and "min_step_minutes" in adv.stderr, adv.output
    assert (example_repo / LOG).read_bytes() == before
    forced = run_cli("rollout", "advance", "--force", "--reason", "sev-2 fix", cwd=example_repo)
    assert forced.code == 0, forced.output
    assert "advanced before the step's minimum" in events(example_repo)[-1]["override"]


# --- each side counts its own release's records --------------------------------------------------


def test_a_canary_log_of_another_release_or_a_mislabelled_baseline_is_bad_input(rolling, tmp_path):
    record = status(rolling)["rollout"]
    start = record["step_started"]
    v14, v13, v12 = tmp_path / "v14.jsonl", tmp_path / "v13.jsonl", tmp_path / "v12.jsonl"
    write_log(v14, release="v1.4", start=start, n=400, seed=1)
    write_log(v13, release="v1.3", start=start, n=400, seed=2)
    write_log(v12, release="v1.2", start=start, n=400, seed=3)
    other = _analyze(rolling, v14, v12)
    assert other.code == 2 and "no record of v1.3 (the canary's release)" in other.stderr
    assert "v1.4 (400)" in other.stderr and str(v14) in other.stderr
    tagged = tmp_path / "v13-as-baseline.jsonl"
    write_log(tagged, release="v1.3", start=start, n=400, seed=4)
    wrong_side = _analyze(rolling, v13, tagged)
    assert wrong_side.code == 2 and "no record of v1.2 (the baseline's release)" in wrong_side.stderr
    assert "v1.3 (400)" in wrong_side.stderr


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_the_same_file_for_both_sides_is_bad_input(rolling, tmp_path, how):
    log = tmp_path / "both.jsonl"
    write_log(log, release="v1.3", start=status(rolling)["rollout"]["step_started"], n=100, seed=1)
    other = log
    if how == "symlink":
        other = tmp_path / "link.jsonl"
        other.symlink_to(log)
    elif how == "hard link":
        other = tmp_path / "hard.jsonl"
        os.link(log, other)
    for verb in ("analyze", "advance"):
        r = run_cli("rollout", verb, "--canary-logs", str(log), "--baseline-logs", str(other), cwd=rolling)
        assert r.code == 2 and "are the same file" in r.stderr, r.output


def test_a_mixed_release_log_counts_only_the_sides_release(rolling, tmp_path):
    """Production logs mix releases: the canary's v1.2 records (all failed here) are left out."""
    args = step_logs(rolling, tmp_path, 0)
    canary = Path(args[1])
    noise = tmp_path / "noise.jsonl"
    write_log(
        noise,
        release="v1.2",
        start=status(rolling)["rollout"]["step_started"],
        n=1_000,
        seed=9,
        error_rate=1.0,
    )
    canary.write_bytes(noise.read_bytes() + canary.read_bytes())
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=rolling)
    assert r.code == 0 and r.json()["outcome"] == "pass", r.output
    assert r.json()["canary"]["other_releases"] == {"v1.2": 1_000} and r.json()["canary_requests"] == BIG
    assert any("1,000 records of other releases (v1.2)" in n for n in r.json()["notes"])


def test_records_without_a_release_are_bad_input_naming_the_line(rolling, tmp_path):
    args = step_logs(rolling, tmp_path, 0, n=300)
    baseline = Path(args[3])
    lines = baseline.read_bytes().splitlines(keepends=True)
    untagged = orjson.loads(lines[4])
    del untagged["release"]
    numbered = {**orjson.loads(lines[9]), "release": 13}
    lines[4], lines[9] = orjson.dumps(untagged) + b"\n", orjson.dumps(numbered) + b"\n"
    baseline.write_bytes(b"".join(lines))
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=rolling)
    assert r.code == 2, r.output
    assert (
        f"{baseline}:5:" in r.json()["message"] and "2 record(s) without a `release`" in r.json()["message"]
    )


# --- the audit log: hostile rollout events are exit 2 with file:line -----------------------------

GOOD = {
    "revision": 10,
    "time": "2026-11-20T10:00:00Z",
    "actor": "x",
    "action": "rollout",
    "channel": "production",
    "from": "v1.2",
    "to": "v1.3",
    "reason": "r",
    "forced": False,
    "gate": None,
    "rollout": {
        "release": "v1.3",
        "plan": [5, 20, 50, 100],
        "step": 1,
        "weight": 20,
        "state": "advanced",
        "started": "2026-11-19T10:00:00Z",
        "step_started": "2026-11-20T10:00:00Z",
    },
}


# The event that starts GOOD's rollout (a line before it in the log).
STARTED = {
    **GOOD,
    "revision": 10,
    "time": "2026-11-19T10:00:00Z",
    "rollout": {
        **GOOD["rollout"],
        "step": 0,
        "weight": 5,
        "state": "started",
        "step_started": "2026-11-19T10:00:00Z",
    },
}


def hostile(**rollout: object) -> dict:
    return {**GOOD, "rollout": {**GOOD["rollout"], **rollout}}


HOSTILE = {
    "weight off the plan": hostile(weight=7),
    "plan not ending at 100": hostile(plan=[5, 20, 50]),
    "plan going down": hostile(plan=[50, 20, 100], step=0, weight=50),
    "string step": hostile(step="1"),
    "bool weight": hostile(plan=[1, 100], step=0, weight=True),
    "unknown state": hostile(state="exploded"),
    "step past the plan": hostile(step=4),
    "release not the event's to": hostile(release="v1.4"),
    "step before the start": hostile(step_started="2026-11-18T10:00:00Z"),
    "not a real time": hostile(started="2026-02-30T10:00:00Z"),
    "extra key": hostile(canary="v1.3"),
    "bad analysis": hostile(analysis={"outcome": "maybe"}),
    "a list": {**GOOD, "rollout": [1, 2]},
    "missing record": {k: v for k, v in GOOD.items() if k != "rollout"},
    "promote carrying started": {
        **GOOD,
        "action": "promote",
        "rollout": {**GOOD["rollout"], "state": "started"},
    },
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_rollout_event_is_exit_2_with_file_line(example_repo, kind):
    good = (example_repo / LOG).read_bytes() + b"".join(
        json.dumps(e).encode() + b"\n" for e in (STARTED, {**GOOD, "revision": 11})
    )
    (example_repo / LOG).write_bytes(good)
    assert run_cli("rollout", "status", "--format", "json", cwd=example_repo).code == 0  # the good one reads
    data = (example_repo / LOG).read_bytes() + json.dumps({**HOSTILE[kind], "revision": 12}).encode() + b"\n"
    (example_repo / LOG).write_bytes(data)
    for args in (("rollout", "status"), ("history",), ("rollout", "pause"), ("rollback", "--reason", "x")):
        r = run_cli(*args, "--format", "json", cwd=example_repo)
        assert r.code == 2, (args, r.output)
        doc = r.json()
        assert "releases/history.jsonl:12" in doc["message"] and "Traceback" not in r.output
        assert all(p["line"] == 12 for p in doc["problems"])
    assert (example_repo / LOG).read_bytes() == data  # never appended after


# --- the order of events: a hand-added line that does not follow is exit 2 at its line ----------


def _forge(repo: Path, change) -> dict:
    """Append a copy of the last event, changed by `change(e, r)` (its rollout record `r`)."""
    e = json.loads((repo / LOG).read_text().splitlines()[-1])
    e["revision"] += 1
    change(e, e.get("rollout"))
    with (repo / LOG).open("a") as f:
        f.write(json.dumps(e) + "\n")
    return e


FORGED = {
    "an advance jumping to the last step": (
        lambda e, r: r.update(state="advanced", step=3, weight=100),
        "rollout.step",
        "step index 1 (step 2/4 at 20 %)",
    ),
    "a second start while one runs": (
        lambda e, r: (e.update(to="v1.4"), r.update(release="v1.4")),
        "rollout.state",
        "a step, pause, resume or end of the v1.3 rollout",
    ),
    "a resume without a pause": (lambda e, r: r.update(state="resumed"), "rollout.state", "paused before it"),
    "a `from` that is not the holder": (lambda e, r: e.update({"from": "v1.1"}), "from", "v1.2"),
    "an abort of another rollout": (
        lambda e, r: r.update(state="aborted", weight=0, started="2026-01-01T00:00:00Z"),
        "rollout.started",
        None,
    ),
    "a change of plan": (
        lambda e, r: r.update(state="advanced", plan=[5, 50, 100], step=1, weight=50),
        "rollout.plan",
        "[5, 20, 50, 100]",
    ),
    "a completion from the first step": (
        lambda e, r: (e.update(action="promote"), r.update(state="completed", step=3, weight=100)),
        "rollout.step",
        "step index 3",
    ),
    "a plain promote during the rollout": (
        lambda e, r: (e.update(action="promote"), e.pop("rollout")),
        "rollout",
        "rollout.state completed (the last step's advance)",
    ),
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_a_forged_rollout_event_out_of_order_is_exit_2_at_its_line(rolling, kind):
    change, field, expected = FORGED[kind]
    _forge(rolling, change)
    data = (rolling / LOG).read_bytes()
    for cmd in (
        ("rollout", "status"),
        ("rollout", "advance", "--force", "--reason", "x"),
        ("status",),
        ("promote", "v1.3", "--to", "production"),
    ):
        r = run_cli(*cmd, "--format", "json", cwd=rolling)
        assert r.code == 2, (cmd, r.output)
        doc = r.json()
        assert "releases/history.jsonl:11" in doc["message"] and "Traceback" not in r.output, doc
        problem = doc["problems"][0]
        assert (problem["line"], problem["field"]) == (11, field), problem
        if expected is not None:
            assert problem["expected"] == expected, problem
        assert "history --repair" in doc["hint"]  # the last line: cut it aside (the way out)
    assert (rolling / LOG).read_bytes() == data  # never appended after
    repaired = run_cli("history", "--repair", "--format", "json", cwd=rolling)
    assert repaired.code == 0 and repaired.json()["truncated_at_line"] == 11, repaired.output
    assert status(rolling)["rollout"]["step"] == 0  # back to the rollout as the tool wrote it


def test_a_forged_line_of_another_channel_does_not_block_a_rollback(rolling):
    """rollback still works when a line it does not need is out of order (docs/channels.md)."""
    _forge(
        rolling,
        lambda e, r: (e.update(channel="staging", to="v1.4"), r.update(release="v1.4", state="resumed")),
    )
    assert run_cli("history", "--format", "json", cwd=rolling).code == 2
    _forge(
        rolling,
        lambda e, r: (
            e.update(channel="production", to="v1.3", revision=e["revision"]),
            r.update(release="v1.3", state="paused"),
        ),
    )
    middle = run_cli("rollout", "status", "--format", "json", cwd=rolling)
    assert middle.code == 2 and "releases/history.jsonl:11" in middle.json()["message"]
    assert "restore that line from git" in middle.json()["hint"]
    r = run_cli(
        "rollback", "v1.1", "--channel", "production", "--reason", "incident", "--format", "json", cwd=rolling
    )
    assert r.code == 0, r.output
    assert any("history.jsonl:11" in w for w in r.json()["warnings"])
    last = events(rolling)[-1]
    assert (last["action"], last["from"], last["to"], last["rollout"]["state"]) == (
        "rollback",
        "v1.2",
        "v1.1",
        "aborted",
    )


def test_a_rollout_in_progress_of_a_release_without_a_manifest_is_exit_2_at_its_start(rolling):
    _forge(rolling, lambda e, r: r.update(state="aborted", weight=0))
    _forge(
        rolling,
        lambda e, r: (
            e.update(to="v7.7", time="2026-12-01T00:00:00Z"),
            r.update(
                release="v7.7",
                state="started",
                step=0,
                weight=5,
                started="2026-12-01T00:00:00Z",
                step_started="2026-12-01T00:00:00Z",
            ),
        ),
    )
    r = run_cli("rollout", "status", "--format", "json", cwd=rolling)
    assert r.code == 2, r.output
    problem = r.json()["problems"][0]
    assert (problem["line"], problem["field"], problem["found"]) == (12, "rollout.release", "v7.7")
    assert "releases/v7.7.yaml does not exist" in problem["message"]


def test_a_damaged_rollouts_view_is_rebuilt_from_the_log(rolling):
    (rolling / VIEW).write_text((rolling / VIEW).read_text().replace('"weight": 5', '"weight": 6'))
    r = run_cli("status", "--format", "json", cwd=rolling)
    assert r.code == 0 and r.json()["view_repaired"] is True
    assert view(rolling)["rollouts"]["production"]["weight"] == 5


# --- fast check == model, on generated rollout records --------------------------------------------

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=120),
    st.sampled_from(["v1.3", "v1.4", "started", "advanced", "paused", "resumed", "aborted", "completed"]),
    st.sampled_from(
        ["2026-11-19T10:00:00Z", "2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z", "2026-13-01T00:00:00Z"]
    ),
    st.lists(st.integers(min_value=0, max_value=101), max_size=5),
    st.sampled_from([[5, 20, 50, 100], [100], [50, 100], [20, 5, 100]]),
)
ACTION_OF = {"completed": "promote", "aborted": "rollback"}


@st.composite
def consistent_event(draw: st.DrawFn) -> dict:
    """A valid rollout event, then at most one field of its record (or the event) changed."""
    plan = draw(st.sampled_from([[5, 20, 50, 100], [100], [50, 100], [1, 2, 3, 100]]))
    state = draw(st.sampled_from(["started", "advanced", "paused", "resumed", "aborted", "completed"]))
    step = (
        0
        if state == "started"
        else len(plan) - 1
        if state == "completed"
        else draw(st.integers(0, len(plan) - 1))
    )
    r = {
        "release": "v1.3",
        "plan": plan,
        "step": step,
        "weight": {"aborted": 0, "completed": 100}.get(state, plan[step]),
        "state": state,
        "started": "2026-11-19T10:00:00Z",
        "step_started": "2026-11-19T10:00:00Z" if state == "started" else "2026-11-20T09:00:00Z",
    }
    if draw(st.booleans()):
        decisions = st.sampled_from(["pass", "fail", "undecided", "not_tracked"])
        r["analysis"] = {
            "outcome": draw(st.sampled_from(["pass", "fail", "hold"])),
            "canary_requests": draw(st.integers(0, 10**6)),
            "baseline_requests": 5,
            **{
                m: draw(decisions)
                for m in ("task_completion", "latency_p95_ms", "error_rate", "satisfaction")
            },
        }
    action = (
        ACTION_OF.get(state, "rollout")
        if draw(st.integers(0, 4))
        else draw(st.sampled_from(["rollout", "promote", "rollback"]))
    )
    e = {**GOOD, "action": action, "rollout": r}
    how = draw(st.integers(0, 3))
    if how == 1:
        r[draw(st.sampled_from([*sorted(r), "analysis", "extra"]))] = draw(leaf)
    elif how == 2 and "analysis" in r:
        r["analysis"][draw(st.sampled_from(sorted(r["analysis"])))] = draw(leaf)
    elif how == 3:
        e[draw(st.sampled_from(["to", "from", "time", "rollout"]))] = draw(leaf)
    return e


@settings(max_examples=400, deadline=None)
@given(e=consistent_event())
def test_property_the_fast_check_accepts_exactly_what_the_model_accepts(e):
    from pydantic import ValidationError

    from releasectl.channels.state import _fast_view, fast_event_ok
    from releasectl.contracts.channels import ChannelsView
    from releasectl.contracts.history import HistoryEvent

    def accepts(model, obj) -> bool:
        try:
            model.model_validate(obj)
            return True
        except ValidationError:
            return False

    assert fast_event_ok(e) == accepts(HistoryEvent, e), e
    doc = {"channels": {"production": "v1.2"}, "rollouts": {"production": e["rollout"]}, "revision": 3}
    assert (_fast_view(doc) is not None) == accepts(ChannelsView, doc), doc


# --- schemas, the pure analysis, and the rollback path --------------------------------------------


def test_schema_of_history_and_channels_includes_the_rollout(rolling):
    import jsonschema

    history = json.loads(run_cli("schema", "--artifact", "history").stdout)
    assert "rollout" in history["properties"] and "rollout" in history["properties"]["action"]["enum"]
    record = history["$defs"]["RolloutRecord"]
    assert {"plan", "step", "weight", "state", "started", "step_started"} <= set(record["required"])
    assert set(record["properties"]["state"]["enum"]) == {
        "started",
        "advanced",
        "paused",
        "resumed",
        "aborted",
        "completed",
    }
    jsonschema.validate(events(rolling)[-1], history)
    channels = json.loads(run_cli("schema", "--artifact", "channels").stdout)
    assert "rollouts" in channels["properties"]
    jsonschema.validate(view(rolling), channels)


def test_the_analysis_is_a_pure_function_of_observation_arrays():
    """The contract a Prometheus adapter calls: arrays in, decisions out."""
    from releasectl.rollout.analysis import Margins, Observations, analyze_step

    rng = np.random.default_rng(7)
    n = 60_000

    def side(errors: float, latency: float, ratings: bool = True) -> Observations:
        sat = rng.choice([3.0, 4.0, 5.0], n // 3) if ratings else np.zeros(0)
        return Observations(
            (rng.random(n) >= 0.1).astype(float),
            (rng.random(n) < errors).astype(float),
            rng.lognormal(latency, 0.3, n),
            sat,
        )

    ok = analyze_step(side(0.01, 6.0, False), side(0.01, 6.0, False))
    assert (
        ok.outcome == "pass" and ok.metrics[-1].decision == "not_tracked" and ok.alpha_per_metric == 0.05 / 3
    )
    slow = analyze_step(side(0.01, 6.4), side(0.01, 6.0))  # p95 ~ e^0.4 = 1.49× the baseline's
    assert slow.outcome == "fail" and [m.metric for m in slow.failed] == ["latency_p95_ms"]
    loose = analyze_step(side(0.03, 6.0), side(0.01, 6.0), Margins(error=0.03))
    assert loose.outcome == "pass"  # a manifest may widen the margins
    assert analyze_step(Observations.empty(), side(0.01, 6.0)).outcome == "hold"


def test_rollback_during_a_rollout_does_not_import_pydantic(rolling, tmp_path):
    """The incident path stays fast (docs/channels.md): rollout events pass the hand-written check."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    warm = "from releasectl.channels.moves import validation_problems; from pathlib import Path; assert validation_problems(Path('.'), 'v1.1') == []"
    subprocess.run([sys.executable, "-c", warm], cwd=rolling, env=env, check=True)
    code = (
        "import sys, runpy\n"
        "sys.argv = ['releasectl', 'rollback', 'v1.1', '--reason', 'incident', '--no-commit']\n"
        "try:\n    runpy.run_module('releasectl', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
        "sys.stderr.write('\\nPYDANTIC ' + str('pydantic' in sys.modules) + ' CODE ' + str(code))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=rolling,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
    )
    assert "PYDANTIC False CODE 0" in proc.stderr, proc.stderr
    assert events(rolling)[-1]["rollout"]["state"] == "aborted"


def test_the_manifest_may_set_the_margins(example_repo, tmp_path):
    manifest = example_repo / "releases" / "v1.3.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("policy:\n", "policy:\n  rollout:\n    error_margin: 0.03\n", 1))
    write_gate(example_repo)
    assert run_cli("rollout", "v1.3", "--reason", "wider error margin", cwd=example_repo).code == 0
    args = step_logs(example_repo, tmp_path, 0, canary_errors=0.03)
    r = run_cli("rollout", "analyze", *args, "--format", "json", cwd=example_repo)
    assert r.code == 0 and r.json()["outcome"] == "pass", r.output  # 2 points worse is within 3
    assert (
        r.json()["margins"]["error"] == 0.03
        and r.json()["margins_source"] == "releases/v1.3.yaml policy.rollout"
    )
    manifest.write_text(text.replace("policy:\n", "policy:\n  rollout:\n    p95_ratio: true\n", 1))
    bad = run_cli("rollout", "analyze", *args, cwd=example_repo)
    assert bad.code == 2 and "releases/v1.3.yaml:" in bad.stderr and "p95_ratio" in bad.stderr, bad.output


def test_manifests_without_a_rollout_policy_keep_their_digests(repo_root):
    """policy.rollout is left out of the canonical dump when unset (gate.json binds to the digest)."""
    loaded = load_manifest(repo_root / "releases" / "v1.3.yaml")
    assert "rollout" not in loaded.manifest.model_dump(mode="json")["policy"]


# --- small things: a one-step plan, control characters in a reason, margins that turn the gate off


def test_a_one_step_plan_is_refused_with_a_hint_to_promote(rolling):
    r = run_cli(
        "rollout", "v1.4", "--channel", "staging", "--steps", "100", "--force", "--reason", "x", cwd=rolling
    )
    assert r.code == 2 and "at least one partial step" in r.stderr and "releasectl promote" in r.stderr, (
        r.output
    )


HOSTILE_REASON = "incident\nSigned-off-by: mallory\r\x1b[2J\x1b[31mred\u202eevil\x07"


@pytest.mark.parametrize("verb", ["promote", "rollback", "rollout"])
def test_a_reason_with_control_characters_never_reaches_the_commit_subject_raw(example_repo, verb):
    write_gate(example_repo)
    args = {
        "promote": ("promote", "v1.3", "--to", "production"),
        "rollback": ("rollback", "v1.1"),
        "rollout": ("rollout", "v1.3"),
    }[verb]
    r = run_cli(*args, "--reason", HOSTILE_REASON, cwd=example_repo)
    assert r.code == 0, r.output
    message = git(example_repo, "log", "-1", "--format=%B").rstrip("\n")
    assert "\n" not in message and not any(c in message for c in "\r\x1b\x07\u202e"), repr(message)
    assert "incident\\nSigned-off-by: mallory\\r\\x1b[2J\\x1b[31mred\\u202eevil\\x07" in message
    assert "\x1b" not in r.stdout and "incident\\n" in r.stdout  # the console shows it escaped too
    assert events(example_repo)[-1]["reason"] == HOSTILE_REASON  # the history keeps it whole


@pytest.mark.parametrize(
    "setting",
    [
        "error_margin: 0.5",
        "completion_margin: 0.9",
        "p95_ratio: 100",
        "satisfaction_margin: 1.0",
        "alpha: 0.45",
        "min_step_minutes: -1",
    ],
)
def test_margins_that_would_turn_the_gate_off_are_bad_input(example_repo, tmp_path, setting):
    write_gate(example_repo)
    assert run_cli("rollout", "v1.3", "--reason", "r", cwd=example_repo).code == 0
    args = step_logs(example_repo, tmp_path, 0, n=200)
    manifest = example_repo / "releases" / "v1.3.yaml"
    manifest.write_text(manifest.read_text().replace("policy:\n", f"policy:\n  rollout:\n    {setting}\n", 1))
    r = run_cli("rollout", "analyze", *args, cwd=example_repo)
    field = setting.split(":")[0]
    assert r.code == 2 and "releases/v1.3.yaml:" in r.stderr and field in r.stderr, r.output


def test_malformed_lines_left_out_are_named_in_the_text_output(rolling, tmp_path):
    args = step_logs(rolling, tmp_path, 0, n=200)
    canary = Path(args[1])
    lines = canary.read_text().splitlines()
    bad = json.loads(lines[4])
    bad["abandoned"] = str(bad.get("abandoned", False)).lower()  # a string where a bool belongs
    lines[4] = json.dumps(bad)
    canary.write_text("\n".join(lines) + "\n" + lines[0][:20])  # and a torn last line
    r = run_cli("rollout", "analyze", *args, cwd=rolling)
    assert r.code == 1, r.output
    flat = "".join(r.stdout.split())  # the terminal wraps the long temp path anywhere
    assert "".join(f"2 malformed line(s) left out of {canary}".split()) in flat, r.stdout
    assert "line5:abandoned:expectedtrue/false" in flat
    doc = run_cli("rollout", "analyze", *args, "--format", "json", cwd=rolling).json()
    assert [x["line"] for x in doc["canary"]["malformed"]["lines"]] == [5, 201]
