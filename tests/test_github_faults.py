# ruff: noqa: F811 - pytest fixtures imported from test_github are test arguments here
"""The GitHub client against a hostile or broken server: a drip-feed, a pagination loop, HTML
where JSON belongs. Each ends in exit 3 with a message that says what the server did, never a hang
and never "internal error". The server is the real HTTP fake in tests/fakegithub.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakegithub import FakeGitHub, Fault
from test_github import fake, gh, waits  # noqa: F401 - the shared fixtures

SHA = "0123456789abcdef0123456789abcdef01234567"


def body(tmp_path: Path) -> str:
    p = tmp_path / "report.md"
    p.write_text("the report\n")
    return str(p)


@pytest.mark.parametrize("endpoint", ["list", "status"])
def test_a_server_that_drips_bytes_is_cut_off_by_the_total_timeout(
    gh, fake: FakeGitHub, tmp_path: Path, endpoint: str
) -> None:
    # One byte every 0.2 s: each read succeeds well within the timeout, the whole answer never does.
    fake.inject(endpoint, *[Fault("drip", delay=0.2)] * 3)
    args = (
        ["comment", "--pr", "5", "--body", body(tmp_path)]
        if endpoint == "list"
        else ["status", "--sha", SHA, "--state", "success"]
    )
    started = time.monotonic()
    result = gh(*args, "--timeout", "1", "--retries", "2")
    elapsed = time.monotonic() - started
    assert result.code == 3, result.output
    assert "did not finish within 1 s" in result.output and "after 3 attempts" in result.output
    assert "internal error" not in result.output
    assert elapsed < 8, f"took {elapsed:.1f} s for 3 attempts of 1 s"


def test_one_drip_then_a_good_answer_succeeds(gh, fake: FakeGitHub) -> None:
    fake.inject("status", Fault("drip", delay=0.2))
    result = gh("status", "--sha", SHA, "--state", "success", "--timeout", "1")
    assert result.code == 0, result.output
    assert len(fake.statuses[SHA]) >= 1


def test_a_next_link_to_the_same_page_stops_with_exit_3(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    fake.inject("list", "loop-link")
    result = gh("comment", "--pr", "5", "--body", body(tmp_path))
    assert result.code == 3, result.output
    assert 'links (rel="next") back to a page already read' in result.output
    assert fake.count("list") == 1 and fake.creates_applied == 0


def test_a_next_link_back_to_an_earlier_page_stops(gh, fake: FakeGitHub, tmp_path: Path) -> None:
    """Page 2 links back to page 1 (spelled with its query in another order): still a loop."""
    for i in range(150):
        fake.add_comment(5, f"comment {i}")
    real_apply = fake._apply

    def apply(endpoint, params, raw, query, root):  # type: ignore[no-untyped-def]
        status, data, headers = real_apply(endpoint, params, raw, query, root)
        if endpoint == "list" and "page=2" in query:
            headers = {
                "Link": f'<{root}/repos/{fake.repo}/issues/5/comments?page=1&per_page=100>; rel="next"'
            }
        return status, data, headers

    fake._apply = apply  # type: ignore[method-assign]
    result = gh("comment", "--pr", "5", "--body", body(tmp_path))
    assert result.code == 3, result.output
    assert "already read" in result.output
    assert fake.count("list") == 2


@pytest.mark.parametrize(
    ("endpoint", "kind", "found"),
    [
        ("list", "html", "text/html; charset=utf-8, first bytes b'<!DOCTYPE html>"),
        ("list", "wrong-json", "a JSON str where a list belongs"),
        ("create", "html", "text/html"),
        ("status", "wrong-json", "a JSON str where a dict belongs"),
        ("checks-list", "html", "text/html"),
    ],
)
def test_html_or_wrongly_typed_json_says_so(
    gh, fake: FakeGitHub, tmp_path: Path, endpoint: str, kind: str, found: str
) -> None:
    fake.inject(endpoint, kind)
    if endpoint == "status":
        result = gh("status", "--sha", SHA, "--state", "success")
    elif endpoint == "checks-list":
        gate = tmp_path / "gate.json"
        from test_github_checks import write_gate

        write_gate(gate, "promote")
        result = gh("check", "--sha", SHA, "--gate", str(gate))
    else:
        result = gh("comment", "--pr", "5", "--body", body(tmp_path))
    assert result.code == 3, result.output
    assert f"the GitHub API at {fake.url}/repos/{fake.repo}/" in result.output
    assert "answered something that is not its JSON" in result.output
    assert found in result.output
    assert "internal error" not in result.output and "JSONDecodeError" not in result.output
