"""Shared fixtures: an in-process CLI runner and a temp copy of the example releases repository."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# What a releases repository is made of (copied into example_repo).
RELEASES_REPO_PARTS = [
    "releases",
    "checklists",
    "suites",
    "prompts",
    "adapters",
    "data",
    "training",
    "dvc.yaml",
    "params.yaml",
]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run `releasectl ARGS` in-process, the way the console script does."""
    from releasectl import console as console_mod
    from releasectl.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = Path.cwd()
    old_env = dict(os.environ)
    console_mod._consoles.clear()
    console_mod._current_format = "text"
    try:
        if cwd is not None:
            os.chdir(cwd)
        if env:
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        console_mod._consoles.clear()
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def copy_releases_repo(dest: Path) -> Path:
    """A copy of this repository's releases repository (manifests, suite, pins) at `dest`."""
    dest.mkdir(parents=True)
    for part in RELEASES_REPO_PARTS:
        src = REPO_ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, dest / part)
    return dest


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A copy of this repository's releases repository in a fresh git repo (one commit)."""
    dest = copy_releases_repo(tmp_path / "repo")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "Test")
    git(dest, "config", "user.email", "test@example.invalid")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "example releases repository")
    return dest
