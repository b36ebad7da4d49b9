"""PII scrubbing with typed placeholders (`[EMAIL]`, `[PHONE]`, ...), every scrub counted by kind.

Patterns, in the order applied (earlier kinds win where they overlap):
- EMAIL: local@domain.tld.
- CARD: 13-19 digits with optional spaces/dashes that pass the Luhn check (others are left alone).
- SSN: ddd-dd-dddd (US; area 000/666/9xx excluded).
- IP: IPv4 dotted quads (each octet ≤ 255) and IPv6 (validated with `ipaddress`).
- PHONE: +country, (area) and dashed/spaced forms with 10-15 digits.
- NAME: a capitalised name after "my name is", "I'm"/"I am", "this is", a title (Dr./Mr./Mrs./Ms./Prof.),
  or a sign-off line ("Thanks,\\nJane Doe"). Names elsewhere are not detectable without a model.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})(?:[\s.-]?\d{2,4}){2,4}(?!\w)")
_NAME = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}"
NAME_INTRO = re.compile(r"(?i:\b(?:my name is|i'm|i am|this is)\s+)(" + _NAME + r")")
NAME_TITLE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Prof)\.?\s+(" + _NAME + r")")
NAME_SIGNOFF = re.compile(
    r"(?im)^(?:thanks|thank you|regards|best|cheers|sincerely)[,!]?\s*\n\s*(" + _NAME + r")\s*$"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> str | None:
    digits = re.sub(r"\D", "", m.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else None


def _ipv6(m: re.Match[str]) -> str | None:
    try:
        ipaddress.IPv6Address(m.group(0))
    except ValueError:
        return None
    return "[IP]"


def _phone(m: re.Match[str]) -> str | None:
    n = len(re.sub(r"\D", "", m.group(0)))
    return "[PHONE]" if 10 <= n <= 15 else None


def scrub(text: str, counts: Counter[str]) -> str:
    """`text` with PII replaced by typed placeholders; `counts` gains one per replacement."""

    def sub(pattern: re.Pattern[str], kind: str, text: str, check=None, group: int = 0) -> str:  # type: ignore[no-untyped-def]
        def repl(m: re.Match[str]) -> str:
            out = check(m) if check else f"[{kind}]"
            if out is None:
                return m.group(0)
            counts[kind] += 1
            if group:
                s, e = m.span(group)
                base = m.start(0)
                whole = m.group(0)
                return whole[: s - base] + f"[{kind}]" + whole[e - base :]
            return out

        return pattern.sub(repl, text)

    text = sub(EMAIL, "EMAIL", text)
    text = sub(CARD, "CARD", text, _card)
    text = sub(SSN, "SSN", text)
    text = sub(IPV4, "IP", text)
    text = sub(IPV6, "IP", text, _ipv6)
    text = sub(PHONE, "PHONE", text, _phone)
    for pattern in (NAME_INTRO, NAME_TITLE, NAME_SIGNOFF):
        text = sub(pattern, "NAME", text, group=1)
    return text
