"""monitor.yml: scheduled + manual, least privilege per job, rollback through `--auto-rollback`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "monitor.yml"


@pytest.fixture(scope="module")
def wf() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_triggers(wf):
    on = wf[True]  # YAML 1.1 reads the key `on` as true
    assert on["schedule"][0]["cron"] and "workflow_dispatch" in on


def test_least_privilege(wf):
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    assert jobs["monitor"]["permissions"] == {"contents": "read"}
    assert jobs["rollback"]["permissions"] == {"contents": "write"}
    assert jobs["issue"]["permissions"] == {"issues": "write"}


def test_rollback_uses_the_policy_and_pushes(wf):
    rollback = wf["jobs"]["rollback"]
    assert "rollback == 'true'" in rollback["if"]
    run = "\n".join(s.get("run", "") for s in rollback["steps"])
    assert "releasectl monitor" in run and "--auto-rollback" in run and "git push" in run
    issue_run = "\n".join(s.get("run", "") for s in wf["jobs"]["issue"]["steps"])
    assert "gh issue create" in issue_run


def test_actionlint_passes():
    exe = shutil.which("actionlint") or str(Path(__import__("sys").executable).parent / "actionlint")
    if not Path(exe).exists():
        pytest.skip("actionlint binary not installed")
    proc = subprocess.run([exe, str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
