"""`releasectl validate`, `diff` and `new` on the example releases repository."""

from __future__ import annotations

import pytest

from releasectl.manifest.digests import sha256_file


@pytest.mark.parametrize("release", ["v1.0", "v1.1", "v1.2", "v1.3"])
def test_every_example_release_passes_the_checklist(cli, repo_root, release):
    result = cli("validate", f"releases/{release}.yaml", "--format", "json", cwd=repo_root)
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["passed"] and [i["passed"] for i in doc["items"]] == [True] * 5
    assert [i["title"] for i in doc["items"]] == [
        "Reproducible configuration",
        "Promotion rules + rollback",
        "Monitoring + SLOs",
        "Feedback-to-data flywheel",
        "Infrastructure readiness",
    ]


def test_human_output_lists_items_with_reasons(cli, repo_root):
    result = cli("validate", "releases/v1.3.yaml", cwd=repo_root)
    assert result.code == 0
    assert "5/5 items pass" in result.stdout and "Reproducible configuration" in result.stdout
    assert "local digests match" in result.stdout


def test_changed_file_fails_item_1_naming_file_and_both_digests(cli, example_repo):
    template = example_repo / "prompts" / "assistant_v2.j2"
    before = sha256_file(template)
    template.write_text(template.read_text() + "\nBe nice.\n")
    after = sha256_file(template)
    result = cli("validate", "releases/v1.3.yaml", "--format", "json", cwd=example_repo)
    assert result.code == 1
    item = result.json()["items"][0]
    assert not item["passed"]
    check = next(c for c in item["checks"] if c["id"] == "local_digests_match")
    problem = check["problems"][0]
    assert "prompts/assistant_v2.j2" in problem["message"]
    assert problem["expected"] == before and problem["found"] == after
    assert problem["field"] == "input.template.sha256"
    text = (example_repo / "releases" / "v1.3.yaml").read_text().splitlines()
    assert text[problem["line"] - 1].strip().startswith("sha256:")


def test_uninstalled_verifier_version_fails_item_1(cli, example_repo):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace('word_cap: "1.1"', 'word_cap: "2.0"'))
    result = cli("validate", "releases/v1.3.yaml", "--format", "json", cwd=example_repo)
    assert result.code == 1
    check = next(c for c in result.json()["items"][0]["checks"] if c["id"] == "verifier_versions_installed")
    assert check["status"] == "fail"
    assert check["problems"][0]["found"] == "'2.0'" and "'1.1'" in check["problems"][0]["expected"]


def test_github_format_annotates_the_manifest_lines(cli, example_repo):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace("protected_slices: [headache_redflags, debug_search_api]", "protected_slices: [headache_redflag, debug_search_api]"))
    result = cli("validate", "releases/v1.3.yaml", "--format", "github", cwd=example_repo)
    assert result.code == 1
    line = next(i for i, t in enumerate(m.read_text().splitlines(), 1) if "protected_slices" in t)
    annotation = next(a for a in result.stdout.splitlines() if a.startswith("::error"))
    assert f"file=releases/v1.3.yaml,line={line}" in annotation
    assert "headache_redflag" in annotation and "did you mean 'headache_redflags'" in annotation


def test_github_format_for_an_invalid_manifest(cli, example_repo):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace("seed: 1234", "seed: lots"))
    result = cli("validate", "releases/v1.3.yaml", "--format", "github", cwd=example_repo)
    assert result.code == 2
    assert any(a.startswith("::error file=releases/v1.3.yaml,line=") and "sampling.seed" in a for a in result.stdout.splitlines())


@pytest.mark.parametrize(
    ("edit", "item", "check"),
    [
        (("dvc.yaml", "  feedback:\n", "  feedbak:\n"), 4, "dvc_feedback_stage"),
        (("params.yaml", "hygiene: [filter, dedup, bias_audit, pii_scrub]", "hygiene: [filter, dedup]"), 4, "hygiene_steps"),
        (("releases/v1.3.yaml", "      family: cost\n", "      family: quality\n"), 3, "families_covered"),
        (("releases/v1.3.yaml", "parent: v1.2", "parent: v0.9"), 2, "parent_release_exists"),
        (("releases/v1.3.yaml", "      rollback: true\n", "      rollback: false\n"), 2, "rollback_triggers_defined"),
        (("checklists/policies/dev_to_staging.rules", "latency_p95_ms.point <= 900", "latency_p59_ms.point <= 900"), 2, "rules_reference_known_names"),
        (("releases/v1.3.yaml", "gpus_allocated: 2", "gpus_allocated: 0"), 5, "capacity_plan"),
    ],
)
def test_each_item_fails_when_its_check_fails(cli, example_repo, edit, item, check):
    path, old, new = edit
    f = example_repo / path
    assert old in f.read_text()
    f.write_text(f.read_text().replace(old, new))
    result = cli("validate", "releases/v1.3.yaml", "--format", "json", cwd=example_repo)
    assert result.code == 1, result.output
    doc = result.json()
    failed = {(i["number"], c["id"]) for i in doc["items"] for c in i["checks"] if c["status"] == "fail"}
    assert (item, check) in failed


def test_diff_shows_what_changed_in_the_pins(cli, repo_root):
    result = cli("diff", "v1.2", "v1.3", "--format", "json", cwd=repo_root)
    assert result.code == 0
    fields = {c["field"]: c for c in result.json()["changes"]}
    assert fields["adapters[lora_math_v1].path"]["kind"] == "added"
    assert fields["training.method"]["from"] == "none" and fields["training.method"]["to"] == "sft-lora"
    human = cli("diff", "v1.1", "v1.2", cwd=repo_root)
    assert "input.template.path" in human.stdout and "assistant_v2.j2" in human.stdout


def test_new_scaffolds_the_next_release(cli, example_repo):
    result = cli("new", "v1.5", "--from", "v1.3", "--description", "next one", cwd=example_repo)
    assert result.code == 0, result.output
    text = (example_repo / "releases" / "v1.5.yaml").read_text()
    assert "release: v1.5" in text and "parent: v1.3" in text and 'description: "next one"' in text
    assert "# Release v1.3" in text  # comments survive
    assert cli("validate", "releases/v1.5.yaml", cwd=example_repo).code == 0
    again = cli("new", "v1.5", "--from", "v1.3", cwd=example_repo)
    assert again.code == 2 and "already exists" in again.stderr
    assert cli("new", "v2", "--from", "v1.3", cwd=example_repo).code == 2
    assert "unknown release" in cli("new", "v1.6", "--from", "v1.9", cwd=example_repo).stderr


def test_new_repins_changed_files(cli, example_repo):
    (example_repo / "prompts" / "assistant_v2.j2").write_text("{{ prompt }}\n")
    result = cli("new", "v1.5", "--from", "v1.3", "--format", "json", cwd=example_repo)
    assert result.code == 0
    assert [c["field"] for c in result.json()["repinned"]] == ["input.template.sha256"]
    assert cli("validate", "releases/v1.5.yaml", cwd=example_repo).code == 0
