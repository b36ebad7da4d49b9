"""Property tests for the escaping of untrusted text: whatever the text, it stays text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from releasectl.report.escape import code_block, inline, strip_controls, truncate

# Text biased towards what breaks Markdown: backticks, tildes, tags, pipes, mentions, controls.
hostile = st.text(
    alphabet=st.sampled_from(list("`~<>/|@#*_[]()!\\&;:-\n\r\t \x00\x1b\x07\u202eabcdetails123")),
    max_size=300,
)


def md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table")


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_code_block_holds_exactly_the_text(text: str) -> None:
    tokens = md().parse(f"before\n\n{code_block(text, 10_000)}\n\nafter\n")
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1
    body = strip_controls(text)
    assert fences[0].content == (body if body.endswith("\n") else body + "\n")
    assert tokens[-2].content == "after"  # nothing after the block was swallowed
    assert not [t for t in tokens if t.type == "html_block"]


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_inline_text_is_one_cell_without_html(text: str) -> None:
    row = f"| a | b |\n| --- | --- |\n| {inline(text)} | end |\n"
    tokens = md().parse(row)
    cells = [t for t in tokens if t.type == "td_open"]
    assert len(cells) == 2
    inline_tokens = [c for t in tokens if t.children for c in t.children]
    assert not [c for c in inline_tokens if c.type in ("html_inline", "link_open", "image", "code_inline")]
    assert [t for t in tokens if t.type == "inline"][-1].content == "end"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20_000), st.integers(min_value=40, max_value=15_000))
def test_truncate_respects_the_limit(text: str, limit: int) -> None:
    out = truncate(text, limit)
    assert len(out) <= limit
    assert out == text or "[truncated" in out
