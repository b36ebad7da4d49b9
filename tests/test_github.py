"""`releasectl github comment|status` against a real HTTP server on 127.0.0.1 that injects faults.

Waits between retries go through `releasectl.retry.sleep_seconds`, which these tests
replace with a recorder, so Retry-After is checked without sleeping; request timeouts are real.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakegithub import TOKEN, FakeGitHub, Fault
from test_report_samples import sample_gate

from releasectl import retry
from releasectl.report.marker import marker

SHA = "0123456789abcdef0123456789abcdef01234567"
BOT = "github-actions[bot]"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    yield server
    server.stop()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(retry, "sleep_seconds", slept.append)
    return slept


@pytest.fixture
def gh(fake: FakeGitHub, cli, waits):  # type: ignore[no-untyped-def]
    """Run `releasectl github ...` against the fake, with the environment Actions would set."""
    env = {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": fake.repo}

    def run(*args: str, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return cli("github", *args, env={**env, **(extra_env or {})})

    return run


def body_file(tmp_path: Path, text: str, name: str = "report.md") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_comment_is_created_once_then_updated(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    first = gh(
        "comment",
        "--pr",
        "7",
        "--body",
        body_file(tmp_path, "first report"),
        "--release",
        "v1.3",
        "--format",
        "json",
    )
    assert first.code == 0, first.output
    assert first.json()["action"] == "created"
    second = gh("comment", "--pr", "7", "--body", body_file(tmp_path, "second report"), "--release", "v1.3")
    assert second.code == 0 and "updated sticky comment" in second.stdout
    same = gh(
        "comment",
        "--pr",
        "7",
        "--body",
        body_file(tmp_path, "second report"),
        "--release",
        "v1.3",
        "--format",
        "json",
    )
    assert same.json()["action"] == "unchanged"
    [comment] = fake.comments[7]
    assert comment["body"] == f"{marker('v1.3')}\nsecond report"
    assert fake.count("create") == 1 and fake.count("update") == 1


def test_standard_headers(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    assert gh("comment", "--pr", "1", "--body", body_file(tmp_path, "x")).code == 0
    for headers in fake.headers_seen:
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["user-agent"].startswith("releasectl/")


def test_one_comment_per_release_and_report_marker_is_used(gh, fake: FakeGitHub, tmp_path: Path, cli) -> None:
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(sample_gate()))
    report = tmp_path / "report.md"
    assert cli("report", str(gate), "--out", str(report)).code == 0
    assert gh("comment", "--pr", "3", "--body", str(report)).code == 0  # marker taken from the body
    assert gh("comment", "--pr", "3", "--body", str(report), "--release", "v1.3").code == 0
    assert (
        gh("comment", "--pr", "3", "--body", body_file(tmp_path, "v1.4 report"), "--release", "v1.4").code
        == 0
    )
    assert len(fake.comments[3]) == 2
    assert len(fake.sticky(3, marker("v1.3"))) == 1 and len(fake.sticky(3, marker("v1.4"))) == 1
    # v1.3 must not match v1.31
    assert gh("comment", "--pr", "3", "--body", body_file(tmp_path, "x"), "--release", "v1.31").code == 0
    assert len(fake.comments[3]) == 3


def test_finds_the_comment_on_a_later_page(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    fake.per_page_max = 30
    fake.add_comment(9, f"{marker('v1.3')}\nold", user=BOT)
    for i in range(95):
        fake.add_comment(9, f"discussion {i} mentioning {marker('v1.3')} in the middle")
    fake.add_comment(9, f"> {marker('v1.3')}\n> quoted by a reviewer")
    result = gh(
        "comment", "--pr", "9", "--body", body_file(tmp_path, "new"), "--release", "v1.3", "--format", "json"
    )
    assert result.code == 0, result.output
    assert result.json()["action"] == "updated"
    assert fake.count("list") == 4  # 97 comments, 30 per page
    assert fake.comments[9][0]["body"].endswith("\nnew")
    assert fake.count("create") == 0


def test_duplicates_from_earlier_bugs_update_the_newest_and_say_so(
    gh, fake: FakeGitHub, tmp_path: Path
) -> None:
    ids = [fake.add_comment(4, f"{marker('v1.3')}\nrun {i}", user=BOT)["id"] for i in range(3)]
    result = gh("comment", "--pr", "4", "--body", body_file(tmp_path, "fresh"), "--release", "v1.3")
    assert result.code == 0
    assert "3 comments carry this marker" in result.stdout and f"{ids[0]}, {ids[1]}" in result.stdout
    assert [c["body"].split("\n")[1] for c in fake.comments[4]] == ["run 0", "run 1", "fresh"]


def test_a_copied_marker_from_someone_else_is_ignored(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_comment(10, f"{marker('v1.3')}\nI copied your marker", user="mallory")
    result = gh("comment", "--pr", "10", "--body", body_file(tmp_path, "real"), "--release", "v1.3")
    assert result.code == 0, result.output
    assert [c["body"].split("\n")[1] for c in fake.comments[10]] == ["I copied your marker", "real"]
    assert fake.comments[10][1]["user"]["login"] == BOT
    # With a personal token the sticky comment is the user's own: --author picks it.
    result = gh(
        "comment",
        "--pr",
        "10",
        "--body",
        body_file(tmp_path, "mine"),
        "--release",
        "v1.3",
        "--author",
        "mallory",
    )
    assert result.code == 0 and fake.comments[10][0]["body"].endswith("\nmine")
    assert len(fake.comments[10]) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault("500"),
        Fault("502-after"),
        Fault("timeout", delay=1.0),
        Fault("timeout-after", delay=1.0),
        Fault("429", retry_after=7),
        Fault("403-secondary", retry_after=3),
        Fault("403-reset", retry_after=5),
    ],
    ids=lambda f: f.kind,
)
def test_faults_on_create_never_duplicate(
    gh, fake: FakeGitHub, tmp_path: Path, waits: list[float], fault: Fault
) -> None:
    fake.inject("create", fault)
    result = gh(
        "comment",
        "--pr",
        "5",
        "--body",
        body_file(tmp_path, "report"),
        "--release",
        "v1.3",
        "--timeout",
        "0.4",
    )
    assert result.code == 0, result.output
    assert len(fake.comments[5]) == 1
    assert fake.comments[5][0]["body"] == f"{marker('v1.3')}\nreport"
    applied_first = fault.kind.endswith("-after")
    assert fake.count("create") == (1 if applied_first else 2)  # an applied create is never repeated
    assert fake.count("list") == 2  # listed again before deciding
    assert len(waits) == 1
    if fault.retry_after:
        # honours Retry-After / reset (x-ratelimit-reset is whole epoch seconds, plus jitter)
        assert fault.retry_after - 1 <= waits[0] <= fault.retry_after + 2


def test_faults_on_list_and_update_are_retried(
    gh, fake: FakeGitHub, tmp_path: Path, waits: list[float]
) -> None:
    fake.add_comment(6, f"{marker('v2.0')}\nold", user=BOT)
    fake.inject("list", "500", Fault("429", retry_after=2), Fault("timeout", delay=1.0))
    fake.inject("update", "502-after", Fault("403-secondary", retry_after=1))
    result = gh(
        "comment", "--pr", "6", "--body", body_file(tmp_path, "new"), "--release", "v2.0", "--timeout", "0.4"
    )
    assert result.code == 0, result.output
    assert [c["body"] for c in fake.comments[6]] == [f"{marker('v2.0')}\nnew"]
    assert len(waits) == 5
    # exponential backoff with jitter between 0.5 and 1 times the step, capped by Retry-After when given
    assert 0.5 <= waits[0] <= 1.0 and 2 <= waits[1] <= 3


def test_many_runs_with_random_faults_leave_exactly_one_comment_per_pr_and_release(
    gh, fake: FakeGitHub, tmp_path: Path
) -> None:
    rng = random.Random(4)
    kinds = ["500", "502-after", "429", "403-secondary", "403-reset", "timeout-after"]
    last: dict[tuple[int, str], str] = {}
    for run in range(24):
        pr, release = rng.choice([11, 12]), rng.choice(["v1.3", "v1.4"])
        for endpoint in ("list", "create", "update"):
            if rng.random() < 0.5:
                fake.inject(endpoint, Fault(rng.choice(kinds), retry_after=1, delay=0.6))
        text = f"report {run}"
        result = gh(
            "comment",
            "--pr",
            str(pr),
            "--body",
            body_file(tmp_path, text),
            "--release",
            release,
            "--timeout",
            "0.3",
        )
        assert result.code == 0, result.output
        last[(pr, release)] = text
        fake.faults.clear()
    for (pr, release), text in last.items():
        [comment] = fake.sticky(pr, marker(release))
        assert comment["body"] == f"{marker(release)}\n{text}"
    assert sum(len(c) for c in fake.comments.values()) == len(last)


def test_exhausted_retries_exit_3_and_create_nothing(
    gh, fake: FakeGitHub, tmp_path: Path, waits: list[float]
) -> None:
    fake.inject("list", *["500"] * 10)
    result = gh("comment", "--pr", "8", "--body", body_file(tmp_path, "r"), "--retries", "3")
    assert result.code == 3
    assert "failed" in result.stderr and "500" in result.stderr and "after 4 attempts" in result.stderr
    assert "Traceback" not in result.output
    assert fake.count("list") == 4 and not fake.comments[8] and len(waits) == 3


def test_rate_limit_reset_too_far_away_gives_up_at_once(
    gh, fake: FakeGitHub, tmp_path: Path, waits: list[float]
) -> None:
    fake.inject("list", Fault("403-reset", retry_after=3600))
    result = gh("comment", "--pr", "8", "--body", body_file(tmp_path, "r"))
    assert result.code == 3 and "rate limit" in result.stderr
    assert waits == [] and fake.count("list") == 1


def test_github_enterprise_api_url(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    result = gh(
        "comment",
        "--pr",
        "2",
        "--body",
        body_file(tmp_path, "r"),
        extra_env={"GITHUB_API_URL": fake.url + "/api/v3/"},
    )
    assert result.code == 0, result.output
    assert all(path.startswith("/api/v3/repos/") for _, path, _ in fake.log)


@pytest.mark.parametrize(
    ("verdict", "state"), [("promote", "success"), ("block", "failure"), ("hold", "failure")]
)
def test_status_from_gate(gh, fake: FakeGitHub, tmp_path: Path, verdict: str, state: str) -> None:
    gate = sample_gate(verdict)
    gate["verdict_reason"] = "a very long reason " * 20
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(gate))
    fake.inject("status", "502-after")  # repeating a status is harmless
    result = gh(
        "status",
        "--sha",
        SHA,
        "--gate",
        str(path),
        "--target-url",
        "https://ci.example/run/1",
        "--format",
        "json",
    )
    assert result.code == 0, result.output
    recorded = fake.statuses[SHA][-1]
    assert recorded["state"] == state and recorded["context"] == "releasectl/gate"
    assert recorded["target_url"] == "https://ci.example/run/1"
    assert recorded["description"].startswith(f"{verdict.upper()} v1.3 vs v1.2:")
    assert len(recorded["description"]) <= 140 and recorded["description"].endswith("…")


def test_status_explicit_state_and_default_run_url(gh, fake: FakeGitHub) -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "99"}
    result = gh(
        "status",
        "--sha",
        SHA.upper(),
        "--state",
        "pending",
        "--description",
        "replaying",
        "--context",
        "releasectl/replay",
        extra_env=env,
    )
    assert result.code == 0, result.output
    assert fake.statuses[SHA] == [
        {
            "state": "pending",
            "description": "replaying",
            "context": "releasectl/replay",
            "target_url": f"https://github.com/{fake.repo}/actions/runs/99",
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--sha", "abc123", "--state", "success"], "not a full commit SHA"),
        (["status", "--sha", SHA], "exactly one of --state and --gate"),
        (
            ["status", "--sha", SHA, "--state", "success", "--target-url", "javascript:x"],
            "not an http(s) URL",
        ),
    ],
)
def test_status_bad_input_exit_2(gh, fake: FakeGitHub, args: list[str], message: str) -> None:
    result = gh(*args)
    assert result.code == 2 and message in result.stderr
    assert not fake.log


def test_missing_token_is_exit_2_with_a_hint(gh, tmp_path: Path) -> None:
    result = gh("comment", "--pr", "1", "--body", body_file(tmp_path, "r"), extra_env={"GITHUB_TOKEN": ""})
    assert result.code == 2
    assert "GITHUB_TOKEN is not set" in result.stderr and "secrets.GITHUB_TOKEN" in result.stderr


def test_repo_option_overrides_environment(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    result = gh("comment", "--pr", "1", "--body", body_file(tmp_path, "r"), "--repo", "other/repo")
    assert result.code == 2 and "404" in result.stderr and "other/repo" in result.stderr


def test_wrong_token_and_forbidden_are_clear(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    result = gh(
        "comment", "--pr", "1", "--body", body_file(tmp_path, "r"), extra_env={"GITHUB_TOKEN": "nope"}
    )
    assert result.code == 3 and "invalid or expired" in result.stderr
    fake.inject("create", "403")
    result = gh("comment", "--pr", "1", "--body", body_file(tmp_path, "r"))
    assert result.code == 3 and "pull-requests: write" in result.stderr


def test_body_checks(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    too_long = gh("comment", "--pr", "1", "--body", body_file(tmp_path, "x" * 70_000))
    assert too_long.code == 2 and "65,536" in too_long.stderr
    other = gh(
        "comment", "--pr", "1", "--body", body_file(tmp_path, f"{marker('v1.2')}\nr"), "--release", "v1.3"
    )
    assert other.code == 2 and "another release" in other.stderr
    missing = gh("comment", "--pr", "1", "--body", str(tmp_path / "none.md"))
    assert missing.code == 2 and "releasectl report" in missing.stderr
    assert not fake.log


def test_help_reads_well(cli) -> None:
    for args in (
        ["github", "--help"],
        ["github", "comment", "--help"],
        ["github", "status", "--help"],
        ["report", "--help"],
    ):
        result = cli(*args)
        assert result.code == 0, result.output
        assert "Usage: releasectl" in result.stdout
    assert "GITHUB_API_URL" in cli("github", "comment", "--help").stdout
