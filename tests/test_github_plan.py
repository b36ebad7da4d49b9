"""`releasectl github matrix`: the release-gate plan from real git history and channels."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_changed_manifests_their_baselines_and_legs(cli, example_repo: Path) -> None:
    base = git(example_repo, "rev-parse", "HEAD").strip()
    for name in ("v1.3", "v1.1"):
        path = example_repo / "releases" / f"{name}.yaml"
        path.write_text(path.read_text() + "# touched\n")
    (example_repo / "releases" / "notes.md").write_text("not a manifest\n")
    commit(example_repo, "two releases")
    result = cli(
        "github", "matrix", "--base-sha", base, "--shards", "2", "--format", "json", cwd=example_repo
    )
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["releases"] == ["v1.1", "v1.3"]
    # staging serves v1.2, so both are gated against it
    assert doc["baselines"] == {"v1.1": "v1.2", "v1.3": "v1.2"}
    assert [(leg["release"], leg["shard"]) for leg in doc["legs"]["include"]] == [
        ("v1.1", "0/2"),
        ("v1.1", "1/2"),
        ("v1.3", "0/2"),
        ("v1.3", "1/2"),
    ]
    text = cli("github", "matrix", "--base-sha", base, cwd=example_repo)
    lines = dict(line.split("=", 1) for line in text.stdout.splitlines())
    assert json.loads(lines["releases"]) == ["v1.1", "v1.3"]
    assert lines["manifests"] == "releases/v1.1.yaml releases/v1.3.yaml" and lines["shards"] == "1"


def test_the_release_in_the_channel_is_never_its_own_baseline(cli, example_repo: Path) -> None:
    base = git(example_repo, "rev-parse", "HEAD").strip()
    path = example_repo / "releases" / "v1.2.yaml"
    path.write_text(path.read_text() + "# touched\n")
    commit(example_repo, "v1.2 again")
    doc = cli("github", "matrix", "--base-sha", base, "--format", "json", cwd=example_repo).json()
    # v1.2 holds staging and production: its baseline is its manifest's parent.
    parent = next(
        line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("parent:")
    )
    assert doc["baselines"] == {"v1.2": parent} and parent != "v1.2"


def test_no_changed_manifest_is_an_empty_plan(cli, example_repo: Path) -> None:
    base = git(example_repo, "rev-parse", "HEAD").strip()
    doc = cli("github", "matrix", "--base-sha", base, "--format", "json", cwd=example_repo).json()
    assert doc["releases"] == [] and doc["legs"] == {"include": []}


def test_an_unknown_base_is_exit_2_with_a_hint(cli, example_repo: Path) -> None:
    result = cli("github", "matrix", "--base-sha", "0" * 40, cwd=example_repo)
    assert result.code == 2 and "fetch-depth: 0" in result.output
    result = cli("github", "matrix", "--base-sha", "HEAD", "--shards", "0", cwd=example_repo)
    assert result.code == 2
