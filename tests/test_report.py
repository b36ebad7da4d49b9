"""`releasectl report`: content, escaping of hostile model output, and the comment size budget.

Each hostile-input test renders with a real CommonMark parser (markdown-it-py, with tables and
raw HTML on, as GitHub parses) and checks the tokens, not just the text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from test_report_samples import sample_gate

from releasectl.github.limits import GITHUB_COMMENT_LIMIT, comment_length
from releasectl.report.render import render_report

# The only HTML the report itself writes; anything else in an HTML token came from input.
OUR_HTML = re.compile(
    r"^(<!-- releasectl:gate release=[A-Za-z0-9._\-]+ -->|<details>|</details>|<sub>|</sub>"
    r"|<details><summary>[^<>]*</summary>)$"
)
HOSTILE = [
    "</details>",
    "</details></details><details>",
    "```\n# escaped the fence\n```",
    "````\nfour\n````",
    "~~~\ntilde\n~~~",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "@octocat please look",
    "see #123 and org/repo#1 and GH-42",
    "https://github.com/acme/releases/issues/7",
    "\x1b[31mred\x1b[0m and \x1b]8;;http://evil\x07link\x1b]8;;\x07",
    "NUL\x00byte, bell\x07, DEL\x7f, CR\ronly",
    "\u202eevil bidi",
    "<!-- hidden comment -->",
    "| a | b |\n| --- | --- |",
    "[click](javascript:alert(1)) ![x](http://evil/img.png)",
    "$\\href{http://evil}{x}$",
]


def parse(markdown: str) -> list[Any]:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    flat: list[Any] = []
    for tok in md.parse(markdown):
        flat.append(tok)
        flat.extend(tok.children or [])
    return flat


def html_pieces(tokens: list[Any]) -> list[str]:
    """Every HTML tag or comment in html tokens, one per entry."""
    out = []
    for t in tokens:
        if t.type in ("html_block", "html_inline"):
            out += [p for p in re.split(r"\n+", t.content.strip()) if p]
    return out


def assert_safe(markdown: str) -> None:
    tokens = parse(markdown)
    pieces = html_pieces(tokens)
    stray = [p for p in pieces if not OUR_HTML.match(p)]
    assert not stray, f"HTML not written by the report: {stray[:5]}"
    depth = 0
    for p in pieces:
        depth += p.startswith("<details>") - (p == "</details>")
        assert depth >= 0, "a </details> closed more than was opened"
    assert depth == 0, "unbalanced <details>"
    # Text GitHub would linkify into a ping or cross-reference, outside code.
    for t in tokens:
        if t.type in ("text", "html_block", "html_inline"):
            assert not re.search(r"(?<!\w)@\w|#\d|(?i:gh)-\d|://|\bwww\.", t.content), t.content
        if t.type == "link_open":
            assert t.attrGet("href").startswith("https://github.com/acme/releases/actions/"), t.attrGet(
                "href"
            )
        assert t.type != "image"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", markdown)
    assert comment_length(markdown) < GITHUB_COMMENT_LIMIT


def fences(markdown: str) -> list[str]:
    return [t.content for t in parse(markdown) if t.type == "fence" and t.info == "text"]


def test_report_reads_well(tmp_path: Path, cli) -> None:
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(sample_gate("block")))
    result = cli("report", str(gate))
    assert result.code == 0, result.output
    md = result.stdout
    assert md.startswith("<!-- releasectl:gate release=v1.3 -->\n")
    assert "## ❌ Release gate: v1.3 — BLOCK" in md
    assert "| ❌ | latency\\_p95\\_ms.point &lt;= 900 (line 2) | 950.2 | &lt;= | 900 | **fail**" in md
    # seed-style slice table: baseline, candidate, CI, delta, p (adjusted), key metrics
    assert re.search(
        r"\| headache\\_redflags \| 20 \| 0\.31 \| 0\.84 \| `[─━●]{20}` \[0\.64, 0\.94\] \| \+0\.530 \| 0\.004 \(0\.016\) \|",
        md,
    )
    assert "```mermaid\nxychart-beta" in md and 'x-axis ["headache_redflags", "math_basic"' in md
    assert "sha256:" + "a" * 64 in md and "md5:" + "c" * 32 in md and "1" * 40 in md
    assert "vllm 0.33.0" in md and "NVIDIA H100 80GB HBM3" in md
    assert "[workflow run](https://github.com/acme/releases/actions/runs/1)" in md
    assert_safe(md)


@pytest.mark.parametrize(
    ("verdict", "mark"),
    [("promote", "✅ Release gate: v1.3 — PROMOTE"), ("hold", "⏸ Release gate: v1.3 — HOLD")],
)
def test_verdict_is_prominent(verdict: str, mark: str) -> None:
    md = render_report(sample_gate(verdict)).markdown
    assert md.splitlines()[1] == f"## {mark}" + md.splitlines()[1].split(mark, 1)[1]
    assert f"**Verdict: {verdict.upper()}**" in md


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_output_stays_inside_its_code_block(hostile: str) -> None:
    md = render_report(sample_gate(output=hostile, n_failing=2)).markdown
    assert_safe(md)
    blocks = fences(md)
    assert len(blocks) == 2, "an output escaped its fence or swallowed the next one"
    # The block holds the output itself (controls removed), so nothing was cut off early.
    expected = re.sub(
        r"[\x00-\x08\x0b-\x1f\x7f\u202e]",
        "",
        re.sub(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07)", "", hostile.replace("\r", "\n")),
    )
    assert blocks[0] == expected + "\n"


def test_every_hostile_string_in_every_untrusted_field() -> None:
    gate = sample_gate(n_failing=0, slice_names=[f"s{i}{h}" for i, h in enumerate(HOSTILE)])
    gate["failing_examples"] = [
        {"case_id": h, "slice": h, "output": h, "failed_verifiers": [{"name": h, "kind": h, "detail": h}]}
        for h in HOSTILE
    ]
    for rule in gate["rules"]:
        rule.update(
            rule=rule["rule"] + " " + HOSTILE[0] + HOSTILE[5], detail=HOSTILE[7], threshold_expr=HOSTILE[8]
        )
    gate["verdict_reason"] = " ".join(HOSTILE)
    gate["stage"] = "@octocat <b>x</b>"
    gate["release"] = "v1.3 --> <script>"
    gate["provenance"]["candidate_run"]["device"] = HOSTILE[6]
    gate["provenance"]["pins"].append({"field": HOSTILE[7], "ref": "`x` | <b>", "digest": HOSTILE[1]})
    gate["run_url"] = "javascript:alert(1)"
    gate["created_at"] = HOSTILE[8]
    md = render_report(gate).markdown
    assert md.startswith("<!-- releasectl:gate release=v1.3_--___script_ -->\n")
    assert_safe(md)
    assert len(fences(md)) == len(HOSTILE)
    # every table row still has as many cells as its header
    for table in re.findall(r"(?m)(?:^\|.*\|\n)+", md):
        rows = [r for r in table.splitlines()]
        widths = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) == 1, rows


def test_long_output_is_truncated_with_a_marker() -> None:
    md = render_report(sample_gate(output="x" * 1_000_000 + "`" * 5000, n_failing=3)).markdown
    assert_safe(md)
    blocks = fences(md)
    assert len(blocks) == 3
    assert all("… [truncated " in b and len(b) <= 1_600 for b in blocks)


def test_fence_is_longer_than_any_backtick_run_in_the_output() -> None:
    md = render_report(sample_gate(output="a ````` b\n```\n``````", n_failing=1)).markdown
    assert "\n```````text\n" in md  # seven: one more than the longest run (six)
    assert fences(md) == ["a ````` b\n```\n``````\n"]


def test_huge_suite_fits_one_comment_and_says_what_was_omitted() -> None:
    gate = sample_gate(n_slices=2_000, n_failing=10_000, output="wrong <answer>7</answer> " * 200)
    report = render_report(gate)
    md = report.markdown
    assert_safe(md)
    assert report.slices_total == 2_000 and report.examples_total == 10_000
    assert report.slices_shown < 2_000 and report.examples_shown < 10_000
    assert f"**{2_000 - report.slices_shown} of 2000 slices omitted**" in md
    assert "the rest are omitted to fit GitHub's comment size limit" in md
    assert md.count("<details><summary>slice_") == report.examples_shown
    # the rows kept are the worst regressions
    kept = {s["slice"] for s in gate["slices"] if f"| {s['slice'].replace('_', chr(92) + '_')} |" in md}
    worst = min(s["delta"] for s in gate["slices"])
    assert all(s["slice"] in kept for s in gate["slices"] if s["delta"] == worst)
    # verdict, rules and provenance survive any trimming
    assert "**Verdict: BLOCK**" in md and "### Rules" in md and "### Provenance" in md


def test_examples_are_trimmed_before_slices() -> None:
    report = render_report(sample_gate(n_slices=40, n_failing=2_000, output="y" * 5_000))
    assert report.slices_shown == 40
    assert 0 < report.examples_shown < 2_000
    assert report.outputs_shortened
    assert_safe(report.markdown)
    # one example per slice in turn: the first 40 examples shown cover 40 different slices
    shown = re.findall(r"<details><summary>(\S+) / case-", report.markdown)
    assert len(set(shown[:40])) == min(40, report.examples_shown)


def test_small_budget_is_respected() -> None:
    report = render_report(sample_gate(n_slices=100, n_failing=100), budget=8_000)
    assert comment_length(report.markdown) <= 8_000
    assert_safe(report.markdown)


def test_out_file_and_json_summary(tmp_path: Path, cli) -> None:
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps(sample_gate("hold", n_failing=10_000)))
    out = tmp_path / "sub" / "report.md"
    result = cli("report", str(gate), "--out", str(out), "--format", "json")
    assert result.code == 0, result.output
    doc = result.json()
    assert doc["verdict"] == "hold" and doc["out"] == str(out)
    assert doc["examples_total"] == 10_000 and doc["examples_shown"] < 10_000
    assert doc["characters"] == comment_length(out.read_text()) < GITHUB_COMMENT_LIMIT
    text = cli("report", str(gate), "--out", str(out))
    assert text.code == 0 and "omitted to fit" in text.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "gate.json:1:2: invalid JSON"),
        ("[]", "not a gate result"),
        (json.dumps({**sample_gate(), "verdict": "maybe"}), "verdict"),
        (json.dumps({**sample_gate(), "slices": {"a": 1}}), "slices"),
    ],
)
def test_bad_gate_file_is_exit_2_with_the_field(tmp_path: Path, cli, content: str, message: str) -> None:
    gate = tmp_path / "gate.json"
    gate.write_text(content)
    result = cli("report", str(gate))
    assert result.code == 2
    assert message in result.stderr and str(gate) in result.stderr
    assert "Traceback" not in result.output


def test_missing_gate_file(tmp_path: Path, cli) -> None:
    result = cli("report", str(tmp_path / "nope.json"))
    assert result.code == 2 and "releasectl gate" in result.stderr


def test_chart_never_draws_missing_baseline_as_zero() -> None:
    gate = sample_gate()
    gate["slices"][1]["baseline"] = None
    md = render_report(gate).markdown
    assert "bar [" in md and "line [" not in md


def test_thousands_of_rules_are_trimmed_last_failing_first() -> None:
    gate = sample_gate(n_slices=2_000, n_failing=10_000)
    base = gate["rules"]
    gate["rules"] = [dict(base[i % 3], rule=f"rule_{i}(x).point <= 1", line=i + 1) for i in range(5_000)]
    gate["provenance"]["pins"] = gate["provenance"]["pins"] * 500
    report = render_report(gate)
    md = report.markdown
    assert_safe(md)
    assert report.examples_shown == 0 and report.slices_shown == 0
    assert "of 5000 rules omitted** to fit" in md and "**Verdict: BLOCK**" in md
    shown = re.findall(r"^\| (✅|❌|⏸) \| rule\\_\d+", md, flags=re.M)
    failing = sum(1 for r in gate["rules"] if r["outcome"] == "fail")
    assert 0 < len(shown) < failing  # the budget holds only part of the failing rules...
    assert set(shown) == {"❌"}  # ...and those come before any passing one


def test_tiny_budget_still_fits() -> None:
    gate = sample_gate(n_slices=50, n_failing=50)
    gate["provenance"]["pins"] = gate["provenance"]["pins"] * 100
    report = render_report(gate, budget=5_000)
    assert comment_length(report.markdown) <= 5_000
    assert_safe(report.markdown)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d["aggregate"]["candidate"].update(n=-5), "aggregate.candidate.n"),
        (lambda d: d["aggregate"]["candidate"].update(n=True), "aggregate.candidate.n"),
        (lambda d: d.update(failing_total=0, failing_examples=[{"case_id": "x"}]), "failing_total"),
    ],
)
def test_a_gate_json_with_a_wrong_table_value_is_refused(cli, tmp_path, edit, words):
    """The slice table and the examples were free-form: a count of -5 or `true` rendered."""
    from runfactory import gate_document

    doc = gate_document("v1.3")
    doc["aggregate"] = {"slice": "aggregate", "candidate": {"n": 10, "success_at_1": 0.5, "metrics": {}}}
    edit(doc)
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(doc))
    r = cli("report", str(path), "--out", str(tmp_path / "r.md"))
    assert r.code == 2 and words in r.stderr, r.output
