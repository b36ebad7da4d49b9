"""Channels: promote, rollback (with git), refusals, inspection, concurrency and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import git, run_cli

from releasectl.manifest.loader import load_manifest


def channels(repo: Path) -> dict:
    return yaml.safe_load((repo / "releases" / "channels.yaml").read_text())["channels"]


def history(repo: Path) -> list[dict]:
    return [
        json.loads(x) for x in (repo / "releases" / "history.jsonl").read_text().splitlines() if x.strip()
    ]


def test_new_user_flow_status_rollback_history(cli, example_repo):
    status = cli("status", cwd=example_repo)
    assert status.code == 0 and "production" in status.stdout and "v1.2" in status.stdout
    result = cli("rollback", "--reason", "p95 spike", cwd=example_repo)
    assert result.code == 0, result.output
    assert "rolled back production: v1.2 → v1.1" in result.stdout
    assert "next: deploy: point the production serving layer at releases/v1.1.yaml" in result.stdout
    assert channels(example_repo)["production"] == "v1.1"
    last = history(example_repo)[-1]
    assert (last["action"], last["channel"], last["from"], last["to"], last["reason"], last["revision"]) == (
        "rollback",
        "production",
        "v1.2",
        "v1.1",
        "p95 spike",
        10,
    )
    assert last["actor"] == "Test <test@example.invalid>" and last["time"].endswith("Z")
    log = git(example_repo, "log", "-1", "--format=%s")
    assert log.strip() == "rollback(production): v1.2 → v1.1 — p95 spike"
    assert git(example_repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "releases/channels.yaml",
        "releases/history.jsonl",
    ]
    hist = cli("history", "--channel", "production", "--format", "json", cwd=example_repo).json()
    assert [(e["to"], e["status"]) for e in hist["events"]] == [
        ("v1.0", "superseded"),
        ("v1.1", "superseded"),
        ("v1.2", "superseded"),
        ("v1.1", "deployed"),
    ]
    human = cli("history", cwd=example_repo)
    assert "rollback" in human.stdout and "p95 spike" in human.stdout and "deployed" in human.stdout


def test_rollback_to_a_named_release_and_actor_from_github(cli, example_repo):
    result = cli(
        "rollback",
        "v1.0",
        "--reason",
        "bad",
        "--format",
        "json",
        cwd=example_repo,
        env={"GITHUB_ACTOR": "octo-oncall"},
    )
    assert result.code == 0
    assert result.json()["to"] == "v1.0" and history(example_repo)[-1]["actor"] == "octo-oncall"


def test_refuses_a_release_that_never_held_the_channel(cli, example_repo):
    before = (example_repo / "releases" / "history.jsonl").read_text()
    result = cli("rollback", "v1.3", cwd=example_repo)
    assert result.code == 1
    assert "v1.3 never held production" in result.stderr and "--force" in result.stderr
    assert (example_repo / "releases" / "history.jsonl").read_text() == before
    forced = cli("rollback", "v1.3", "--force", "--reason", "hotfix", cwd=example_repo)
    assert forced.code == 0 and history(example_repo)[-1]["forced"] is True


def test_refuses_a_manifest_that_no_longer_validates(cli, example_repo):
    (example_repo / "prompts" / "assistant_v1.j2").write_text("tampered\n")
    result = cli("rollback", "v1.1", cwd=example_repo)
    assert result.code == 1
    assert "releases/v1.1.yaml no longer validates" in result.stderr and "sha256 mismatch" in result.stderr
    assert cli("rollback", "v1.1", "--force", "--reason", "incident", cwd=example_repo).code == 0


def test_compare_and_set_refuses_a_stale_view(cli, example_repo):
    assert cli("rollback", "--expect", "v1.2", "--reason", "a", cwd=example_repo).code == 0
    stale = cli("rollback", "--expect", "v1.2", "--reason", "b", cwd=example_repo)
    assert stale.code == 1 and "production holds v1.1, not v1.2" in stale.stderr
    assert channels(example_repo)["production"] == "v1.1"


def test_unknown_release_and_channel_are_bad_input(cli, example_repo):
    r = cli("rollback", "v9.9", "--force", cwd=example_repo)
    assert r.code == 2 and "unknown release 'v9.9'" in r.stderr
    assert cli("rollback", "--channel", "prod", cwd=example_repo).code == 2


def test_no_commit_and_dry_run(cli, example_repo):
    head = git(example_repo, "rev-parse", "HEAD")
    assert cli("rollback", "--no-commit", "--reason", "x", cwd=example_repo).code == 0
    assert git(example_repo, "rev-parse", "HEAD") == head
    before = (example_repo / "releases" / "history.jsonl").read_text()
    dry = cli("rollback", "--dry-run", "--reason", "y", cwd=example_repo)
    assert dry.code == 0 and "would move" in dry.stdout
    assert (example_repo / "releases" / "history.jsonl").read_text() == before


def test_commit_leaves_other_staged_changes_alone(cli, example_repo):
    (example_repo / "notes.txt").write_text("wip\n")
    git(example_repo, "add", "notes.txt")
    assert cli("rollback", "--reason", "x", cwd=example_repo).code == 0
    assert "notes.txt" not in git(example_repo, "show", "--name-only", "--format=", "HEAD")
    assert "A  notes.txt" in git(example_repo, "status", "--short")


def write_gate(
    repo: Path, release: str, *, stage: str, verdict: str = "promote", digest: str | None = None
) -> Path:
    """A consistent gate.json (its verdict follows from its rules, as promote re-checks)."""
    from runfactory import gate_document

    loaded = load_manifest(repo / "releases" / f"{release}.yaml")
    outcomes = {"promote": ("pass",), "block": ("pass", "fail"), "hold": ("inconclusive",)}[verdict]
    doc = gate_document(release, stage=stage, manifest_digest=digest or loaded.digest, outcomes=outcomes)
    path = repo / "runs" / release / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_promote_requires_a_passing_gate_bound_to_the_manifest(cli, example_repo):
    missing = cli("promote", "v1.3", "--to", "staging", cwd=example_repo)
    assert missing.code == 1 and "no gate result" in missing.stderr and "releasectl gate" in missing.stderr
    write_gate(example_repo, "v1.3", stage="staging", digest="sha256:" + "0" * 64)
    stale = cli("promote", "v1.3", "--to", "staging", cwd=example_repo)
    assert stale.code == 1 and "was made for manifest" in stale.stderr
    write_gate(example_repo, "v1.3", stage="staging", verdict="block")
    assert "the gate says block" in cli("promote", "v1.3", "--to", "staging", cwd=example_repo).stderr
    write_gate(example_repo, "v1.3", stage="staging")
    assert "needs stage 'production'" in cli("promote", "v1.3", "--to", "production", cwd=example_repo).stderr
    ok = cli("promote", "v1.3", "--to", "staging", cwd=example_repo)
    assert ok.code == 0, ok.output
    event = history(example_repo)[-1]
    assert (
        event["gate"]["verdict"] == "promote"
        and len(event["gate"]["sha256"]) == 64
        and event["forced"] is False
    )
    assert git(example_repo, "log", "-1", "--format=%s").startswith("promote(staging): v1.2 → v1.3")


def test_forced_promotion_needs_a_reason_and_is_recorded(cli, example_repo):
    assert cli("promote", "v1.3", "--to", "canary", "--force", cwd=example_repo).code == 2
    r = cli("promote", "v1.3", "--to", "canary", "--force", "--reason", "exec override", cwd=example_repo)
    assert r.code == 0
    event = history(example_repo)[-1]
    assert (
        event["forced"] is True
        and "no gate result" in event["override"]
        and event["reason"] == "exec override"
    )


def test_status_shows_channels_and_json(cli, example_repo):
    doc = cli("status", "--format", "json", cwd=example_repo).json()
    prod = next(c for c in doc["channels"] if c["channel"] == "production")
    assert prod["release"] == "v1.2" and prod["age"].endswith("ago") and doc["revision"] == 9


def test_fifty_concurrent_moves_lose_nothing(example_repo):
    """50 rollbacks and 10 promotions at once; a reader polls channels.yaml throughout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = yaml.safe_load((example_repo / "releases" / "channels.yaml").read_text())
                assert set(data["channels"]) == {"staging", "canary", "production"}
            except Exception as e:  # noqa: BLE001 - any failure to parse is the bug under test
                errors.append(repr(e))
            time.sleep(0.005)

    t = threading.Thread(target=reader)
    t.start()
    cmds = [
        ["rollback", "--channel", "production" if i % 2 else "staging", "--reason", f"r{i}"]
        for i in range(50)
    ]
    cmds += [["promote", "v1.3", "--to", "canary", "--force", "--reason", f"p{i}"] for i in range(10)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "releasectl", *c],
            cwd=example_repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in cmds
    ]
    outs = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    stop.set()
    t.join()
    assert errors == []
    rollbacks = [o for o in outs[:50]]
    assert all(code == 0 for code, _ in rollbacks), rollbacks
    promoted = [code for code, _ in outs[50:]]
    assert promoted.count(0) == 1 and all(
        code == 1 for code in promoted if code
    )  # one moves it, nine see "already holds"
    events = history(example_repo)
    assert [e["revision"] for e in events] == list(range(1, 9 + 51 + 1))
    last: dict[str, str | None] = {}
    for e in events:
        assert e["from"] == last.get(e["channel"]), e  # each move starts where the previous one ended
        last[e["channel"]] = e["to"]
    assert channels(example_repo) == {c: last[c] for c in ("staging", "canary", "production")}
    assert yaml.safe_load((example_repo / "releases" / "channels.yaml").read_text())["revision"] == 60
    assert int(git(example_repo, "rev-list", "--count", "HEAD")) == 1 + 51


@pytest.mark.parametrize("point", ["after-history", None])
def test_sigkill_mid_write_leaves_old_or_new_never_torn(cli, example_repo, point):
    """Test hook: RELEASECTL_TEST_PAUSE_AT=after-history makes a writer pause between appending
    the event and rewriting channels.yaml, so the kill lands exactly there; with no hook the
    kill lands at a random moment of a normal rollback."""
    env = {**os.environ, "RELEASECTL_TEST_PAUSE_S": "30"}
    if point:
        env["RELEASECTL_TEST_PAUSE_AT"] = point
    proc = subprocess.Popen(
        [sys.executable, "-m", "releasectl", "rollback", "--reason", "killed", "--no-commit"],
        cwd=example_repo,
        env=env,
    )
    deadline = time.monotonic() + 30
    while point and time.monotonic() < deadline and len(history(example_repo)) < 10:
        time.sleep(0.01)
    if not point:
        time.sleep(0.25)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    events = history(example_repo)  # parses: no torn line
    view = yaml.safe_load((example_repo / "releases" / "channels.yaml").read_text())  # parses: atomic rename
    assert view["channels"]["production"] in ("v1.2", "v1.1")
    assert len(events) in (9, 10)
    status = cli("status", "--format", "json", cwd=example_repo).json()
    prod = next(c for c in status["channels"] if c["channel"] == "production")
    assert prod["release"] == events[-1]["to"] if events[-1]["channel"] == "production" else "v1.2"
    if point:
        assert len(events) == 10 and view["revision"] == 9 and status["view_repaired"] is True
    nxt = cli("rollback", "--reason", "after crash", "--no-commit", cwd=example_repo)
    assert nxt.code == 0
    final = history(example_repo)
    assert [e["revision"] for e in final] == list(range(1, len(final) + 1))
    assert channels(example_repo)["production"] == final[-1]["to"]


def test_push_goes_to_the_upstream_and_a_failed_push_keeps_the_local_commit(cli, example_repo, tmp_path):
    no_upstream = cli("rollback", "--reason", "x", "--push", cwd=example_repo)
    assert no_upstream.code == 3 and "the local commit stays" in no_upstream.stderr
    assert git(example_repo, "log", "-1", "--format=%s").startswith("rollback(production): v1.2 → v1.1")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    branch = git(example_repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(example_repo, "remote", "add", "origin", str(remote))
    git(example_repo, "push", "-q", "-u", "origin", branch)
    pushed = cli("rollback", "--reason", "y", "--push", cwd=example_repo)
    assert pushed.code == 0, pushed.output
    assert git(remote, "log", "-1", "--format=%s", branch).strip() == "rollback(production): v1.1 → v1.2 — y"


def test_history_filters_limits_and_marks_the_deployed_release(cli, example_repo):
    doc = cli("history", "--limit", "2", "--format", "json", cwd=example_repo).json()
    assert [e["revision"] for e in doc["events"]] == [8, 9]
    staging = cli("history", "--channel", "staging", "--format", "json", cwd=example_repo).json()["events"]
    assert {e["channel"] for e in staging} == {"staging"}
    assert [e["status"] for e in staging] == ["superseded", "superseded", "deployed"]
    table = cli("history", "--channel", "production", cwd=example_repo).stdout
    rows = [line for line in table.splitlines() if "→" in line and "│" in line]
    assert len(rows) == 3 and "deployed" in rows[-1] and "superseded" in rows[0]
    assert "v1.1 → v1.2" in rows[-1] and "forced" in table  # the imported events are marked


def test_status_repairs_a_view_that_lags_the_history(cli, example_repo):
    view = example_repo / "releases" / "channels.yaml"
    before = view.read_text()
    assert cli("rollback", "--reason", "x", "--no-commit", cwd=example_repo).code == 0
    view.write_text(before)  # as if the writer died after appending the event
    out = cli("status", cwd=example_repo)
    assert out.code == 0 and "repaired" in out.stdout
    assert channels(example_repo)["production"] == "v1.1"
    assert yaml.safe_load(view.read_text())["revision"] == 10


def test_rollback_channel_api_records_trigger_override_and_the_gate_relied_on(example_repo):
    """The entry point `releasectl monitor --auto-rollback` uses."""
    from releasectl.channels import RollbackResult, rollback_channel

    events = history(example_repo)
    gate = {"verdict": "promote", "stage": "production", "sha256": "a" * 64, "file": "runs/v1.1/gate.json"}
    events[5]["gate"] = gate  # v1.1 entered production relying on this gate
    (example_repo / "releases" / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    trigger = {"source": "test", "alerts": [{"name": "p95"}]}
    result = rollback_channel(
        example_repo, "production", None, reason="p95", actor="bot", expect="v1.2", trigger=trigger
    )
    assert isinstance(result, RollbackResult)
    assert (result.from_release, result.to_release, result.revision, result.actor) == (
        "v1.2",
        "v1.1",
        10,
        "bot",
    )
    assert result.commit == git(example_repo, "rev-parse", "HEAD").strip()
    last = history(example_repo)[-1]
    assert last["trigger"] == trigger and last["gate"] == gate and "override" not in last
    forced = rollback_channel(example_repo, "production", "v1.3", reason="hotfix", force=True, commit=False)
    assert forced.forced and history(example_repo)[-1]["override"] == "v1.3 never held production"


def test_a_remembered_validation_is_dropped_when_an_artifact_changes(
    cli, example_repo, tmp_path, monkeypatch
):
    """The validation cache (releasectl/channels/verified.py) may skip pydantic, never a refusal."""
    from releasectl.channels import verified
    from releasectl.channels.moves import validation_problems

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest = example_repo / "releases" / "v1.1.yaml"
    assert not verified.is_verified(manifest)
    assert validation_problems(example_repo, "v1.1") == []
    assert verified.is_verified(manifest)
    prompt = example_repo / "prompts" / "assistant_v1.j2"
    prompt.write_text(prompt.read_text() + " ")
    assert not verified.is_verified(manifest)
    assert any("sha256 mismatch" in p for p in validation_problems(example_repo, "v1.1"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    refused = cli("rollback", "v1.1", "--reason", "x", cwd=example_repo, env=env)
    assert refused.code == 1 and "no longer validates" in refused.stderr


def test_first_move_in_a_repository_without_channel_files_adds_and_commits_them(cli, example_repo):
    git(example_repo, "rm", "-q", "releases/channels.yaml", "releases/history.jsonl")
    git(example_repo, "commit", "-q", "-m", "start over")
    r = cli("promote", "v1.0", "--to", "staging", "--force", "--reason", "bootstrap", cwd=example_repo)
    assert r.code == 0, r.output
    assert history(example_repo)[0]["revision"] == 1 and channels(example_repo)["staging"] == "v1.0"
    assert git(example_repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "releases/channels.yaml",
        "releases/history.jsonl",
    ]
    assert cli("rollback", "--channel", "staging", cwd=example_repo).code == 1  # nothing earlier


def test_outside_a_releases_repository_is_bad_input(cli, tmp_path):
    for args in (("status",), ("history",), ("rollback", "--reason", "x")):
        r = cli(*args, cwd=tmp_path)
        assert r.code == 2 and "no releases/ folder" in r.stderr and "RELEASECTL_ROOT" in r.stderr


@pytest.mark.parametrize("reason", ["x" * 70_000, "", "   "])
@pytest.mark.parametrize("verb", ["promote", "rollback"])
def test_a_reason_the_audit_log_cannot_keep_is_exit_2_before_any_write(example_repo, verb, reason):
    """A 70,000-character reason failed the event model only at the write ("internal error"); a
    blank one was recorded as the reason for a forced move."""
    from releasectl.commands.channels import MAX_REASON
    from releasectl.contracts._types import MAX_TEXT

    assert MAX_REASON == MAX_TEXT
    log = (example_repo / "releases" / "history.jsonl").read_bytes()
    args = ["promote", "v1.3", "--to", "staging", "--force"] if verb == "promote" else ["rollback"]
    r = run_cli(*args, "--reason", reason, "--no-commit", cwd=example_repo)
    assert r.code == 2 and "--reason" in r.output and "internal error" not in r.output, r.output
    assert (example_repo / "releases" / "history.jsonl").read_bytes() == log


def test_history_shows_escape_sequences_from_the_log_escaped(example_repo):
    """A reason is kept as given in the log, and `history` printed it raw: anyone who can commit
    to the log could send ANSI/OSC sequences to an operator's terminal."""
    hostile = "a\x1b[31mRED\x1b]0;pwned\x07\u202e"
    r = run_cli(
        "promote", "v1.3", "--to", "staging", "--force", "--reason", hostile, "--no-commit", cwd=example_repo
    )
    assert r.code == 0, r.output
    out = run_cli("history", "--limit", "1", cwd=example_repo).output
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b" in out  # shown escaped, as promote shows it


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.update(suite_digest="0" * 32 + ".dir"), "pins"),
        (lambda d: d["aggregate"]["candidate"].pop("n"), "aggregate.candidate.n"),  # the model: exit 2
        (lambda d: d.update(aggregate={}), "records no case count"),
        (lambda d: d["aggregate"]["candidate"].update(n=20), "evaluates 20 of the suite's"),
        (lambda d: d.update(provenance={"candidate_run": {"limit": 20}}), "partial replay (limit 20)"),
        (
            lambda d: d.update(slices=[{"slice": "s", "candidate": {"n": 20, "metrics": {}}}]),
            "not the sum of its slices",
        ),
    ],
)
def test_promote_fails_closed_on_a_gate_that_does_not_cover_the_pinned_suite(example_repo, edit, words):
    """One field of gate.json (the count deleted or raised, another suite digest) used to get
    past the partial-suite check, which returned 'fine' whenever it could not count."""
    path = write_gate(example_repo, "v1.3", stage="staging")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    r = run_cli("promote", "v1.3", "--to", "staging", cwd=example_repo)
    assert r.code in (1, 2) and words in r.output and "promoted" not in r.output, r.output
