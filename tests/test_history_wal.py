"""The audit log as a write-ahead log: torn tails, mistyped events, --repair, and rollback
during an incident (docs/channels.md). Every case goes through the CLI and checks that every
byte before the damage is unchanged afterwards."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, git, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LOG = Path("releases") / "history.jsonl"
GOOD = {
    "revision": 10,
    "time": "2026-11-20T10:00:00Z",
    "actor": "x",
    "action": "promote",
    "channel": "staging",
    "from": "v1.2",
    "to": "v1.3",
    "reason": "r",
    "forced": True,
    "gate": None,
}

TORN_TAILS = {
    "no final newline": json.dumps(GOOD).encode(),
    "partial JSON": b'{"revision": 10, "time": "2026-11-20T1',
    "partial multibyte char": b'{"revision": 10, "reason": "caf' + "é".encode()[:1],
    "partial JSON with newline": b'{"revision": 10, "actor": \n',
}


def mistyped(**change: object) -> dict:
    return {k: v for k, v in {**GOOD, **change}.items() if v is not ...}


MISTYPED = {
    "a list": b"[1, 2, 3]",
    "missing channel": json.dumps(mistyped(channel=...)).encode(),
    "string revision": json.dumps(mistyped(revision="10")).encode(),
    "null actor": json.dumps(mistyped(actor=None)).encode(),
    "huge int": json.dumps(mistyped(revision=10**30)).encode(),
    "NaN": json.dumps(mistyped(revision=math.nan)).encode(),
    "bool as int": json.dumps(mistyped(revision=True)).encode(),
    "unknown action": json.dumps(mistyped(action="delete")).encode(),
    "string forced": json.dumps(mistyped(forced="false")).encode(),
    "unknown channel": json.dumps(mistyped(channel="prod")).encode(),
}
COMMANDS = {
    "status": ("status",),
    "history": ("history",),
    "promote": ("promote", "v1.3", "--to", "staging", "--force", "--reason", "x"),
    "rollback": ("rollback", "--reason", "x"),
}


def log_bytes(repo: Path) -> bytes:
    return (repo / LOG).read_bytes()


def assert_bad_input_at(result, line: int) -> None:
    assert result.code == 2, result.output
    assert f"releases/history.jsonl:{line}" in result.stderr, result.stderr
    assert "internal error" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(TORN_TAILS))
def test_a_torn_tail_is_exit_2_with_the_line_and_never_extended(example_repo, kind, command):
    before = log_bytes(example_repo) + TORN_TAILS[kind]
    (example_repo / LOG).write_bytes(before)
    result = run_cli(*COMMANDS[command], cwd=example_repo)
    assert_bad_input_at(result, 10)
    assert "releasectl history --repair" in result.stderr
    assert log_bytes(example_repo) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(MISTYPED))
def test_a_mistyped_last_event_is_exit_2_with_file_line(example_repo, kind, command):
    before = log_bytes(example_repo) + MISTYPED[kind] + b"\n"
    (example_repo / LOG).write_bytes(before)
    result = run_cli(*COMMANDS[command], "--format", "json", cwd=example_repo)
    assert result.code == 2, result.output
    doc = result.json()
    assert doc["exit_code"] == 2 and "releases/history.jsonl:10" in doc["message"]
    assert all(p["file"] == "releases/history.jsonl" and p["line"] == 10 for p in doc["problems"])
    assert log_bytes(example_repo) == before


def test_field_paths_name_what_is_wrong(example_repo):
    (example_repo / LOG).write_bytes(log_bytes(example_repo) + MISTYPED["string revision"] + b"\n")
    doc = run_cli("status", "--format", "json", cwd=example_repo).json()
    assert [(p["field"], p["found"]) for p in doc["problems"]] == [("revision", '"10"')]
    (example_repo / LOG).write_bytes(
        log_bytes(example_repo)[:-1] + b"\n" + MISTYPED["missing channel"] + b"\n"
    )
    doc = run_cli("history", "--format", "json", cwd=example_repo).json()
    assert ("channel", "nothing") in [(p["field"], p["found"]) for p in doc["problems"]]


def damage_line(repo: Path, number: int, text: bytes) -> bytes:
    lines = log_bytes(repo).splitlines(keepends=True)
    lines[number - 1] = text + b"\n"
    data = b"".join(lines)
    (repo / LOG).write_bytes(data)
    return data


def test_rollback_works_past_a_damaged_line_of_another_channel(example_repo):
    # line 1 is a staging event; production's history is intact
    bad = json.dumps({**json.loads(log_bytes(example_repo).splitlines()[0]), "revision": "1"}).encode()
    before = damage_line(example_repo, 1, bad)
    r = run_cli("rollback", "--reason", "incident", cwd=example_repo)
    assert r.code == 0, r.output
    assert "warning: releases/history.jsonl:1: revision" in r.stderr
    after = log_bytes(example_repo)
    assert after.startswith(before) and json.loads(after[len(before) :])["to"] == "v1.1"
    assert_bad_input_at(run_cli("status", cwd=example_repo), 1)  # reads stay strict


@pytest.mark.parametrize("damage", [b"{not json", b'{"revision": 3, "to": 5}', b"[]"])
def test_a_damaged_line_rollback_may_need_says_how_to_get_out(example_repo, damage):
    before = damage_line(example_repo, 3, damage)  # line 3 is production's first event, or unknown
    r = run_cli("rollback", "--reason", "x", cwd=example_repo)
    assert_bad_input_at(r, 3)
    assert "releasectl rollback vX.Y --channel production --force" in r.stderr
    assert log_bytes(example_repo) == before
    forced = run_cli(
        "rollback", "v1.1", "--force", "--reason", "incident", "--format", "json", cwd=example_repo
    )
    assert forced.code == 0, forced.output
    event = json.loads(log_bytes(example_repo)[len(before) :])
    assert event["to"] == "v1.1" and "damaged releases/history.jsonl line(s) 3" in event["override"]
    repair = run_cli("history", "--repair", cwd=example_repo)
    assert repair.code == 2 and "git log -p" in repair.stderr  # a middle line is not cut


def test_repair_keeps_the_fragment_aside_and_the_log_then_works(example_repo):
    whole = log_bytes(example_repo)
    fragment = TORN_TAILS["partial multibyte char"]
    (example_repo / LOG).write_bytes(whole + fragment)
    r = run_cli("history", "--repair", "--format", "json", cwd=example_repo)
    assert r.code == 0, r.output
    doc = r.json()
    assert doc["repaired"] and doc["truncated_at_line"] == 10 and doc["revision"] == 9
    aside = example_repo / doc["kept_aside"]
    assert aside.name.startswith("history.jsonl.torn-") and aside.read_bytes() == fragment
    assert log_bytes(example_repo) == whole
    assert doc["commit"] is None  # the log is back to what HEAD holds: nothing to commit
    ok = run_cli("rollback", "--reason", "after repair", cwd=example_repo)
    assert ok.code == 0 and log_bytes(example_repo).startswith(whole)
    again = run_cli("history", "--repair", cwd=example_repo)
    assert again.code == 0 and "nothing to repair" in again.stdout


def test_repair_rebuilds_the_view_and_commits(example_repo):
    whole = log_bytes(example_repo)
    assert run_cli("rollback", "--reason", "x", "--no-commit", cwd=example_repo).code == 0
    committed = log_bytes(example_repo)  # revision 10, not committed yet: the repair commits it
    (example_repo / LOG).write_bytes(committed + MISTYPED["unknown action"] + b"\n")
    (example_repo / "releases" / "channels.yaml").write_text("channels: [oops]\n")
    assert_bad_input_at(run_cli("rollback", "--reason", "y", cwd=example_repo), 11)
    r = run_cli("history", "--repair", cwd=example_repo)
    assert r.code == 0, r.output
    assert "kept aside: releases/history.jsonl.torn-" in r.stdout and "commit " in r.stdout
    assert log_bytes(example_repo) == committed and committed.startswith(whole)
    view = yaml.safe_load((example_repo / "releases" / "channels.yaml").read_text())
    assert view == {"channels": {"staging": "v1.2", "canary": "v1.2", "production": "v1.1"}, "revision": 10}
    assert git(example_repo, "log", "-1", "--format=%s").startswith("history --repair: cut 1 bad line(s)")


@pytest.mark.parametrize(
    "view",
    ["channels: {production: 7}\n", "channels:\n  prod: v1.0\n", "channels: {}\nrevision: true\n", "a: [\n"],
)
def test_a_damaged_view_is_rebuilt_from_an_intact_log(example_repo, view):
    (example_repo / "releases" / "channels.yaml").write_text(view)
    r = run_cli("status", "--format", "json", cwd=example_repo)
    assert r.code == 0 and r.json()["view_repaired"] is True
    assert yaml.safe_load((example_repo / "releases" / "channels.yaml").read_text())["revision"] == 9


def test_a_damaged_view_without_a_log_is_exit_2_with_its_line(example_repo):
    (example_repo / LOG).unlink()
    (example_repo / "releases" / "channels.yaml").write_text("channels:\n  staging: v1.0\n  production: 12\n")
    r = run_cli("status", cwd=example_repo)
    assert r.code == 2 and "releases/channels.yaml:3: channels.production" in r.stderr


def test_rollback_to_an_unknown_release_lists_the_known_ones(example_repo):
    before = log_bytes(example_repo)
    r = run_cli("rollback", "v0.0", cwd=example_repo)
    assert r.code == 2 and "unknown release 'v0.0'" in r.stderr and "never held" not in r.stderr
    assert "known releases: v1.0, v1.1, v1.2, v1.3, v1.4" in r.stderr
    assert log_bytes(example_repo) == before


# --- property: any generated event is exit 2 or read exactly as the model says ----------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        ["v1.0", "v1.1", "v1.3", "promote", "rollback", "production", "staging", "2026-11-20T10:00:00Z"]
    ),
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
mutated_event = st.builds(
    lambda drop, change: {k: v for k, v in {**GOOD, **change}.items() if k not in drop},
    st.sets(st.sampled_from(sorted(GOOD)), max_size=2),
    st.dictionaries(
        st.sampled_from([*sorted(GOOD), "override", "trigger", "rollout", "extra"]), json_value, max_size=3
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.one_of(mutated_event, json_value))
def test_property_malformed_events_are_exit_2_or_read_as_the_model_says(example_repo, event):
    from pydantic import ValidationError

    from releasectl.channels.state import fast_event_ok
    from releasectl.contracts.history import HistoryEvent

    base = (REPO_ROOT / LOG).read_bytes()  # examples share the repository: start each one afresh
    view = (REPO_ROOT / "releases" / "channels.yaml").read_bytes()
    data = base + json.dumps(event).encode() + b"\n"
    (example_repo / LOG).write_bytes(data)
    (example_repo / "releases" / "channels.yaml").write_bytes(view)
    try:
        HistoryEvent.model_validate(event)
        valid = True
    except ValidationError:
        valid = False
    assert not fast_event_ok(event) or valid  # the fast path never accepts what the model refuses
    r = run_cli("history", "--limit", "0", "--format", "json", cwd=example_repo)
    if valid and event["revision"] == 10:
        assert r.code == 0, r.output
        assert r.json()["events"][-1]["to"] == event["to"]
    else:
        assert r.code == 2 and "releases/history.jsonl:10" in r.stdout, r.output
        moved = run_cli("rollback", "--reason", "x", "--no-commit", cwd=example_repo)
        assert moved.code == 2 and log_bytes(example_repo) == data
        assert (example_repo / "releases" / "channels.yaml").read_bytes() == view


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_duplicated_key_in_an_event_is_exit_2_and_nothing_is_rewritten(example_repo, command):
    """orjson keeps the last of two equal keys, so `"to": "v1.2", "to": "v1.0"` read as v1.0 and
    `status` rewrote channels.yaml to it. A duplicated key is a damaged line (an escaped spelling
    of the key too)."""
    last = log_bytes(example_repo).splitlines()[-1]
    for forged in (b',"to":"v1.0"}', b',"t\\u006f":"v1.0"}'):
        data = damage_line(example_repo, 9, last[:-1] + forged)
        view = (example_repo / "releases" / "channels.yaml").read_bytes()
        result = run_cli(*COMMANDS[command], cwd=example_repo)
        assert_bad_input_at(result, 9)
        assert "duplicate key 'to'" in result.stderr
        assert log_bytes(example_repo) == data
        assert (example_repo / "releases" / "channels.yaml").read_bytes() == view


def test_a_gate_json_with_a_duplicated_key_is_refused(cli, tmp_path):
    from runfactory import gate_document

    text = json.dumps(gate_document("v1.3"))
    path = tmp_path / "gate.json"
    path.write_text(text[:-1] + ', "stage": "production"}')
    result = cli("report", str(path), "--out", str(tmp_path / "r.md"))
    assert result.code == 2 and "duplicate key 'stage'" in result.stderr, result.output
    assert not (tmp_path / "r.md").exists()
