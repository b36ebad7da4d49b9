"""Workflow-command annotations: escaping and the per-step limit."""

from __future__ import annotations

from releasectl.errors import Problem
from releasectl.github.annotations import annotation, annotations, escape_data, escape_property


def test_full_annotation_has_location_and_title() -> None:
    p = Problem("bad sha", file="releases/v1.3.yaml", line=12, col=5, field="model.revision")
    assert annotation("error", p) == (
        "::error file=releases/v1.3.yaml,line=12,col=5,title=releasectl%3A model.revision::model.revision: bad sha"
    )


def test_message_escapes_percent_cr_lf_but_not_colon() -> None:
    p = Problem("100% bad\r\nnext: line, here")
    line = annotation("warning", p)
    assert line.endswith("::100%25 bad%0D%0Anext: line, here")
    assert "\n" not in line and "\r" not in line


def test_properties_escape_colon_and_comma() -> None:
    p = Problem("m", file="dir,odd:name%.yaml", line=1)
    assert "file=dir%2Codd%3Aname%25.yaml,line=1," in annotation("notice", p)
    assert escape_property("a:b,c\nd") == "a%3Ab%2Cc%0Ad"
    assert escape_data("a:b,c") == "a:b,c"


def test_percent_escaped_first_so_escapes_are_not_doubled() -> None:
    assert escape_data("%0A\n") == "%250A%0A"


def test_expected_found_hint_in_message_and_no_line_without_file() -> None:
    p = Problem("wrong type", line=3, expected="int", found="'x'", hint="use a number")
    line = annotation("error", p)
    assert "line=" not in line
    assert line.endswith("::wrong type (expected int; found 'x'); use a number")


def test_limit_summarises_the_rest() -> None:
    problems = [Problem(f"p{i}", file=f"f{i % 3}.yaml", line=i + 1) for i in range(25)]
    lines = annotations("error", problems, limit=10)
    assert len(lines) == 10
    assert all(ln.startswith("::error ") for ln in lines)
    assert "::p8" in lines[8]
    assert "16 more problem(s) in f0.yaml, f1.yaml, f2.yaml not shown" in lines[-1]


def test_under_limit_all_shown() -> None:
    problems = [Problem(f"p{i}") for i in range(10)]
    assert [ln.rsplit("::", 1)[1] for ln in annotations("error", problems)] == [f"p{i}" for i in range(10)]
    assert annotations("error", []) == []


def test_cli_renders_errors_as_annotations(cli, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("release: [unclosed\n")
    result = cli("validate", str(bad), "--format", "github")
    assert result.code == 2
    assert any(ln.startswith("::error file=") for ln in result.stdout.splitlines())
