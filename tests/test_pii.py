"""Every PII kind is scrubbed to its typed placeholder and counted; look-alikes are left alone."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasectl.flywheel.pii import luhn_ok, scrub

CASES = [
    ("write to jane.doe+billing@example.co.uk today", "EMAIL", "jane.doe"),
    ("card 4111 1111 1111 1111 was charged", "CARD", "4111"),
    ("card 5500-0000-0000-0004 expired", "CARD", "5500"),
    ("my SSN is 123-45-6789", "SSN", "6789"),
    ("from 192.168.10.24 last night", "IP", "192.168"),
    ("over 2001:db8::8a2e:370:7334 only", "IP", "2001:db8"),
    ("call (555) 123-4567 please", "PHONE", "123-4567"),
    ("or +1 415 555 0199 after six", "PHONE", "415"),
    ("My name is Alice Johnson and I need help", "NAME", "Alice"),
    ("I'm Bob, hi", "NAME", "Bob"),
    ("Dr. Robert Smith referred me", "NAME", "Robert"),
    ("Ms Garcia called", "NAME", "Garcia"),
    ("Thanks,\nJane Doe", "NAME", "Jane"),
]


@pytest.mark.parametrize("text, kind, secret", CASES)
def test_each_kind_is_scrubbed_and_counted(text, kind, secret):
    counts: Counter[str] = Counter()
    out = scrub(text, counts)
    assert f"[{kind}]" in out and secret not in out
    assert counts[kind] == 1 and sum(counts.values()) == 1, counts


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 is not a card (fails Luhn)",
        "ships in 1-2 business days at 10:30 on 2026-11-20",
        "version 1.2.3 and ratio 3:4",
        "I am fine, thanks",
        "we saw 999.1.1.1 in the log",
    ],
)
def test_look_alikes_are_left_alone(text):
    counts: Counter[str] = Counter()
    assert scrub(text, counts) == text and not counts


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
    st.sampled_from(["a.b@example.com", "123-45-6789", "10.0.0.1"]),
)
def test_no_email_ssn_or_ip_survives_in_any_context(noise, secret):
    counts: Counter[str] = Counter()
    out = scrub(f"{noise} {secret} {noise}", counts)
    assert secret not in out and sum(counts.values()) >= 1
