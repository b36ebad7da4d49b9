# ruff: noqa: F811 - pytest fixtures imported from test_github are test arguments here
"""`releasectl github check` against the local GitHub fake: one check run per release and SHA,
the verdict as conclusion, the report as summary within 65,535 characters, annotations on the
policy's and the manifest's lines 50 per request, and no duplicate under faults."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub, Fault
from test_github import fake, gh, waits  # noqa: F401 - the shared fixtures
from test_report_samples import sample_gate

SHA = "0123456789abcdef0123456789abcdef01234567"


def write_gate(path: Path, verdict: str, n_failing_rules: int = 0) -> dict[str, Any]:
    gate = sample_gate(verdict)
    for i in range(n_failing_rules):
        # More failing rules than one request may carry, each on its own policy line.
        gate["rules"].append(
            {
                **gate["rules"][1],
                "rule": f"latency_p95_ms{{slice_{i}}}.point <= 900",
                "line": 10 + i,
                "outcome": "fail",
                "observed": 950.0 + i,
                "detail": f"{950 + i} > 900",
            }
        )
    path.write_text(json.dumps(gate))
    return gate


@pytest.mark.parametrize(
    ("verdict", "conclusion"), [("promote", "success"), ("block", "failure"), ("hold", "neutral")]
)
def test_conclusion_follows_the_verdict(
    gh, fake: FakeGitHub, tmp_path: Path, verdict: str, conclusion: str
) -> None:
    gate = tmp_path / "gate.json"
    write_gate(gate, verdict)
    result = gh("check", "--sha", SHA, "--gate", str(gate), "--format", "json")
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["action"] == "created" and doc["conclusion"] == conclusion
    (run,) = fake.check_runs.values()
    assert run["conclusion"] == conclusion and run["status"] == "completed"
    assert run["external_id"] == "releasectl:gate:v1.3" and run["name"] == "releasectl gate v1.3"
    assert verdict.upper() in run["output"]["title"]
    levels = sorted(a["annotation_level"] for a in run["annotations"])
    assert levels == {"promote": [], "block": ["failure"], "hold": ["warning"]}[verdict]


def test_annotations_land_on_policy_lines_in_batches_of_50_and_are_never_repeated(
    gh, fake: FakeGitHub, tmp_path: Path
) -> None:
    gate = tmp_path / "gate.json"
    write_gate(gate, "block", n_failing_rules=120)
    first = gh("check", "--sha", SHA, "--gate", str(gate), "--format", "json")
    assert first.code == 0, first.output
    (run,) = fake.check_runs.values()
    assert len(run["annotations"]) == 121  # the sample's failing rule + 120
    assert {a["path"] for a in run["annotations"]} == {"checklists/policies/dev_to_staging.rules"}
    assert sorted(a["start_line"] for a in run["annotations"]) == [2, *range(10, 130)]
    # 121 annotations: a create with 50, then two updates with 50 and 21 (the fake refuses > 50).
    assert fake.count("check-create") == 1 and fake.count("check-update") == 2
    again = gh("check", "--sha", SHA, "--gate", str(gate), "--format", "json")
    assert again.code == 0 and again.json()["action"] == "updated"
    assert again.json()["annotations_sent"] == 0
    assert len(run["annotations"]) == 121 and len(fake.check_runs) == 1


def test_the_manifest_validation_errors_are_annotated_on_its_lines(
    gh, fake: FakeGitHub, tmp_path: Path, example_repo: Path
) -> None:
    manifest = example_repo / "releases" / "v1.2.yaml"
    lines = manifest.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.lstrip().startswith("release:"))
    lines.insert(index + 1, "unknown_field_here: 3")
    manifest.write_text("\n".join(lines) + "\n")
    gate = tmp_path / "gate.json"
    write_gate(gate, "promote")
    result = gh("check", "--sha", SHA, "--gate", str(gate), "--manifest", str(manifest), "--format", "json")
    assert result.code == 0, result.output
    (run,) = fake.check_runs.values()
    found = [a for a in run["annotations"] if a["path"].endswith("v1.2.yaml")]
    assert found, run["annotations"]
    assert any(a["start_line"] == index + 2 and "unknown_field_here" in a["message"] for a in found), found


def test_a_long_report_is_cut_to_the_summary_limit(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    gate = tmp_path / "gate.json"
    write_gate(gate, "promote")
    report = tmp_path / "report.md"
    report.write_text("".join(f"| row {i} | 🙂 {'x' * 60} |\n" for i in range(3000)))
    result = gh("check", "--sha", SHA, "--gate", str(gate), "--report", str(report))
    assert result.code == 0, result.output
    (run,) = fake.check_runs.values()
    summary = run["output"]["summary"]
    assert len(summary.encode("utf-16-le")) // 2 <= 65535
    assert summary.startswith("| row 0 |") and "cut here" in summary


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("check-create", "500"),
        ("check-create", "502-after"),
        ("check-create", "timeout"),
        ("check-create", "timeout-after"),
        ("check-update", "500"),
        ("check-update", "502-after"),
        ("check-update", "timeout-after"),
        ("check-update", "429"),
    ],
)
def test_faults_never_duplicate_the_check_run_or_an_annotation(
    gh, fake: FakeGitHub, tmp_path: Path, endpoint: str, kind: str
) -> None:
    """A create or an annotation batch that failed, maybe after being applied, is retried by
    listing first: one check run, each annotation once."""
    gate = tmp_path / "gate.json"
    write_gate(gate, "block", n_failing_rules=60)
    fake.inject(endpoint, Fault(kind, delay=2.5))
    result = gh("check", "--sha", SHA, "--gate", str(gate), "--timeout", "1", "--format", "json")
    assert result.code == 0, result.output
    (run,) = fake.check_runs.values()
    keys = [(a["path"], a["start_line"]) for a in run["annotations"]]
    assert len(keys) == len(set(keys)) == 61


def test_random_faults_over_many_runs_leave_one_check_run_per_release(
    gh, fake: FakeGitHub, tmp_path: Path
) -> None:
    rng = random.Random(7)
    gates = {}
    for release in ("v1.3", "v1.4"):
        path = tmp_path / f"gate-{release}.json"
        gate = write_gate(path, "block", n_failing_rules=55)
        gate["release"] = release
        path.write_text(json.dumps(gate))
        gates[release] = path
    for _ in range(6):
        for endpoint in ("checks-list", "check-create", "check-update", "check-annotations"):
            if rng.random() < 0.5:
                fake.inject(
                    endpoint, Fault(rng.choice(["500", "502-after", "429", "timeout-after"]), delay=1.5)
                )
        release = rng.choice(list(gates))
        result = gh("check", "--sha", SHA, "--gate", str(gates[release]), "--timeout", "1", "--retries", "8")
        assert result.code == 0, result.output
    names = sorted(r["external_id"] for r in fake.check_runs.values())
    assert names == sorted(
        {
            f"releasectl:gate:{r}"
            for r in gates
            if any(c["external_id"] == f"releasectl:gate:{r}" for c in fake.check_runs.values())
        }
    )
    for run in fake.check_runs.values():
        keys = [(a["path"], a["start_line"]) for a in run["annotations"]]
        assert len(keys) == len(set(keys)) == 56


def test_exhausted_retries_exit_3(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    gate = tmp_path / "gate.json"
    write_gate(gate, "promote")
    fake.inject("checks-list", *["500"] * 3)
    result = gh("check", "--sha", SHA, "--gate", str(gate), "--retries", "2")
    assert result.code == 3 and "after 3 attempts" in result.output
    assert not fake.check_runs


def test_bad_sha_is_exit_2_before_any_request(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    gate = tmp_path / "gate.json"
    write_gate(gate, "promote")
    result = gh("check", "--sha", "abc", "--gate", str(gate))
    assert result.code == 2 and "not a full commit SHA" in result.output
    assert not fake.log
