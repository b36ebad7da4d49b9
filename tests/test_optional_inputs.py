"""Optional inputs (a file that may be absent) that are there but are not regular files.

"Absent" and "there but unreadable" are different answers: a FIFO, a device, a directory or a
dangling link where an optional file belongs used to read as "not there", so `validate` skipped
the parent check, `gate` skipped its binding to the release manifest and `feedback` took default
params. Each is now exit 2 naming the file (`safeio.present`), and nothing hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from runfactory import case_row, write_run

from releasectl import safeio
from releasectl.errors import BadInput

KINDS = ("fifo", "directory", "device", "dangling link")


def make(path: Path, kind: str) -> None:
    """Put a `kind` at `path` in place of whatever is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(path.parent / "nowhere")


def within(seconds: float, call: Callable[[], object]) -> object:
    """`call()`'s result, failing the test (not hanging it) after `seconds`."""
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return out["r"]


@pytest.mark.parametrize("kind", KINDS)
def test_present_says_which_kind_and_never_absent(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "params.yaml"
    assert safeio.present(target, what="params") is False
    target.write_text("x: 1\n")
    assert safeio.present(target, what="params") is True
    make(target, kind)
    with pytest.raises(BadInput) as e:
        safeio.present(target, what="params")
    assert str(target) in e.value.message
    word = {"fifo": "FIFO", "directory": "directory", "device": "device", "dangling link": "not found"}[kind]
    assert word in e.value.message


def _run_dir(path: Path) -> Path:
    return write_run(path, "v9.9", [case_row("c1", "s", {"v": (True, "format")})])


@pytest.mark.parametrize("name", ["results.jsonl", "run.json"])
@pytest.mark.parametrize("kind", KINDS)
def test_gate_names_a_run_file_that_is_not_a_regular_file(cli, tmp_path: Path, name: str, kind: str) -> None:
    cand, base = _run_dir(tmp_path / "cand"), _run_dir(tmp_path / "base")
    rules = tmp_path / "p.rules"
    rules.write_text("aggregate.success@1.point >= 0.5\n")
    make(cand / name, kind)
    r = within(
        30, lambda: cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    )
    assert r.code == 2, r.output  # type: ignore[attr-defined]
    assert f"{cand / name}" in r.stderr and "not a run directory" not in r.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_validate_names_a_parent_manifest_or_dvc_yaml_that_is_not_a_file(
    cli, example_repo: Path, kind: str
) -> None:
    """A checklist item whose input cannot be read fails naming that file (exit 1, not ready, as
    for any input a check reads); before, the parent "did not exist" and dvc.yaml had no stages."""
    word = {"fifo": "FIFO", "directory": "directory"}[kind]
    for victim, check in (
        ("releases/v1.2.yaml", "parent_release_exists"),
        ("dvc.yaml", "dvc_feedback_stage"),
    ):
        before = (example_repo / victim).read_bytes()
        make(example_repo / victim, kind)
        r = within(60, lambda: cli("validate", "releases/v1.3.yaml", "--format", "json", cwd=example_repo))
        assert r.code == 1, (victim, r.output)  # type: ignore[attr-defined]
        failed = {
            c["id"]: c["message"]
            for item in r.json()["items"]  # type: ignore[attr-defined]
            for c in item["checks"]
            if c["status"] == "fail"
        }
        assert list(failed) == [check], failed
        assert str(example_repo / victim) in failed[check] and word in failed[check]
        make(example_repo / victim, "directory")
        (example_repo / victim).rmdir()
        (example_repo / victim).write_bytes(before)


def test_feedback_refuses_a_fifo_params_yaml_instead_of_taking_defaults(cli, tmp_path: Path) -> None:
    log = tmp_path / "logs.jsonl"
    log.write_text(json.dumps({"timestamp": "2026-11-20T00:00:00Z", "prompt": "p", "output": "o"}) + "\n")
    os.mkfifo(tmp_path / "params.yaml")
    r = within(30, lambda: cli("feedback", "--logs", str(log), "--out", str(tmp_path / "out"), cwd=tmp_path))
    assert r.code == 2, r.output  # type: ignore[attr-defined]
    assert "params.yaml" in r.stderr and "FIFO" in r.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()
