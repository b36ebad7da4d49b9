"""Jinja2 filters for the report: numbers, CI bars and escaping, each returning trusted Markup.

The environment's `finalize` escapes every plain string that reaches the page, so a template
cannot print untrusted text raw by forgetting a filter; only these filters mark output as safe.
"""

from __future__ import annotations

import math
import re
from typing import Any

from markupsafe import Markup

from releasectl.report import escape

DASH = "—"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def num(value: Any, digits: int = 3) -> Markup:
    """A metric value: integers as is, floats to `digits` significant decimals, missing as a dash."""
    if isinstance(value, bool):
        return Markup("yes" if value else "no")
    if isinstance(value, int):
        return Markup(str(value))
    x = _number(value)
    if x is None:
        # NaN (a rate over zero cases) and missing values both read as "no value".
        return Markup(DASH) if value is None or isinstance(value, float) else md(value)
    if math.isinf(x):
        return Markup("∞" if x > 0 else "−∞")
    if x != 0 and abs(x) < 10 ** (-digits):
        return Markup(f"{x:.{digits}g}")
    text = f"{x:.{digits}f}"
    return Markup(text.rstrip("0").rstrip(".") if "." in text else text)


def signed(value: Any, digits: int = 3) -> Markup:
    """A delta with an explicit sign (+0.110, −0.020)."""
    x = _number(value)
    if x is None:
        return Markup(DASH)
    text = f"{abs(x):.{digits}f}"
    return Markup(("+" if x > 0 else "−" if x < 0 else "±") + text)


def pvalue(value: Any) -> Markup:
    """A p-value: two significant digits, small ones as < 0.001."""
    x = _number(value)
    if x is None:
        return Markup(DASH)
    return Markup("&lt; 0.001" if x < 0.001 else f"{x:.3f}".rstrip("0").rstrip(".") if x < 1 else "1")


def ci_bar(point: Any, low: Any, high: Any, width: int = 20) -> Markup:
    """A text picture of an interval on [0, 1]: ─ outside, ━ inside the CI, ● at the estimate."""
    p, lo, hi = _number(point), _number(low), _number(high)
    if p is None:
        return Markup(DASH)
    lo = p if lo is None else lo
    hi = p if hi is None else hi

    def pos(x: float) -> int:
        return min(width - 1, max(0, int(round(x * (width - 1)))))

    cells = ["━" if pos(lo) <= i <= pos(hi) else "─" for i in range(width)]
    cells[pos(p)] = "●"
    return Markup("`" + "".join(cells) + "`")


def md(value: Any, limit: int = 200) -> Markup:
    """Untrusted text for inline Markdown (a table cell, a list item)."""
    return Markup(escape.inline(value, limit))


def html_text(value: Any, limit: int = 200) -> Markup:
    """Untrusted text inside an HTML element we emit, such as `<summary>`."""
    return Markup(escape.html_text(value, limit))


def code(value: Any, limit: int = 2000, info: str = "text") -> Markup:
    """Untrusted text as a fenced code block that cannot be closed from inside."""
    return Markup(escape.code_block(str(value if value is not None else ""), limit, info))


def code_span(value: Any, limit: int = 80) -> Markup:
    """A digest, SHA or ref as inline code; anything but safe identifier characters is dropped."""
    if value is None:
        return Markup(DASH)
    s = re.sub(r"[^A-Za-z0-9:/@._+=~#\-]", "", str(value))[:limit]
    return Markup(f"`{s}`") if s else Markup(DASH)


def link(url: Any, text: str) -> Markup:
    """A Markdown link only for plain http(s) URLs; anything else is shown as escaped text."""
    if isinstance(url, str) and re.fullmatch(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'*+,;=%]+", url):
        safe = url.replace("(", "%28").replace(")", "%29")
        return Markup(f"[{escape.inline(text)}]({safe})")
    return md(url) if url else Markup(DASH)


def finalize(value: Any) -> Any:
    """Everything printed by `{{ }}` passes here: Markup as is, numbers formatted, text escaped."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return DASH
    if isinstance(value, int | float):
        return num(value)
    return escape.inline(value)


FILTERS = {
    "num": num,
    "signed": signed,
    "pvalue": pvalue,
    "ci_bar": ci_bar,
    "md": md,
    "html_text": html_text,
    "code": code,
    "code_span": code_span,
    "link": link,
}
