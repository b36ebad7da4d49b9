"""Escaping for untrusted text (model output, names from files) in GitHub-flavoured Markdown.

GitHub renders a comment's Markdown, then keeps a subset of HTML and turns `@name`, `#123`,
`org/repo#1`, `GH-1` and issue URLs into pings and cross-references. Untrusted text therefore
goes either into a fenced code block (`code_block`) or through `inline` (table cells, headings),
and never reaches the page as HTML.
"""

from __future__ import annotations

import html
import re

ZWJ = "\u200d"  # zero-width joiner: invisible, but breaks mention and reference detection

# ANSI CSI/OSC sequences first (so their parameters do not survive as text), then C0/C1 controls
# except tab and newline, and the bidi overrides that can make text read differently than it is.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BACKTICK_RUN = re.compile(r"`+")
# Characters with an inline Markdown meaning ($ is GitHub math); a backslash makes each literal.
# Line-start markers (- + . >) need no escape because `inline` output never starts a line.
_MD_PUNCT = re.compile(r"([\\`*_\[\]#!|~$])")
# Things GitHub turns into pings or cross-references after rendering, so entities do not help.
_MENTION = re.compile(r"([@#])")
_GH_REF = re.compile(r"(?i)\b(gh)-(?=\d)")
_URL = re.compile(r"(?i)(:(?=//)|\bwww(?=\.))")


def strip_controls(text: str) -> str:
    """Normalise line endings and remove ANSI escapes and control characters (keeps \\n and \\t)."""
    # A lone CR is a line ending to CommonMark: leaving it would let text start a new line
    # (and close a fence) where we do not see one.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _ANSI.sub("", text))


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending with a marker that says how much was cut."""
    if len(text) <= limit:
        return text
    keep = limit
    while True:  # the marker's length depends on the count it reports; settle both
        marker = f"\n… [truncated {len(text) - keep:,} more characters]"
        settled = limit - len(marker)
        if settled < 0:
            return text[:limit]  # no room for a marker at all
        if settled == keep:
            return text[:keep] + marker
        keep = settled


def defuse_pings(text: str) -> str:
    """Break @mentions, #refs, GH-refs and URL autolinks with an invisible zero-width joiner."""
    text = _MENTION.sub(lambda m: m.group(1) + ZWJ, text)
    text = _GH_REF.sub(lambda m: m.group(1) + "-" + ZWJ, text)
    return _URL.sub(lambda m: m.group(1) + ZWJ, text)


def inline(text: object, limit: int = 200) -> str:
    """Untrusted text for one line of Markdown (table cell, list item): literal, no HTML, no pings."""
    s = strip_controls(str(text))
    s = " ".join(s.split())  # one line: newlines would end a table row
    s = truncate(s, limit).replace("\n", " ")
    s = html.escape(s, quote=False)  # < > & become entities, so no tag can open
    s = _MD_PUNCT.sub(r"\\\1", s)
    return defuse_pings(s)


def html_text(text: object, limit: int = 200) -> str:
    """Untrusted text inside an HTML element we emit (e.g. `<summary>`): escaped, one line, no pings."""
    s = " ".join(strip_controls(str(text)).split())
    s = truncate(s, limit).replace("\n", " ")
    return defuse_pings(html.escape(s, quote=True))


def code_block(text: str, limit: int, info: str = "text") -> str:
    """Untrusted text as a fenced code block that nothing inside it can close.

    The fence is one backtick longer than the longest backtick run in the content, so no line of
    the content can be a closing fence; GitHub does not link mentions or render HTML in code.
    """
    body = truncate(strip_controls(text), limit)
    longest = max((len(m.group(0)) for m in _BACKTICK_RUN.finditer(body)), default=0)
    fence = "`" * max(3, longest + 1)
    if not body.endswith("\n"):
        body += "\n"
    return f"{fence}{info}\n{body}{fence}"


def mermaid_text(text: object, limit: int = 24) -> str:
    """Text for inside a Mermaid quoted string: safe characters only, so no quote or bracket ends it."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text))[:limit]


def mermaid_label(text: object, limit: int = 24) -> str:
    """A slice name as a quoted Mermaid axis label."""
    return f'"{mermaid_text(text, limit)}"'
