"""Generate the example inference logs in examples/logs/ (seeded, so the files are reproducible).

Usage: python scripts/make_logs.py [--out examples/logs]
The schema is documented in docs/logs.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)

TOPICS: dict[str, list[str]] = {
    "billing": [
        "How do I update my credit card?",
        "Why was I charged twice this month?",
        "Can I get an invoice for last month?",
        "How do I cancel my subscription?",
    ],
    "shipping": [
        "Where is my order?",
        "How long does express shipping take?",
        "Can I change my delivery address?",
        "My package arrived damaged, what now?",
    ],
    "account": [
        "I forgot my password, how do I reset it?",
        "How do I enable two-factor authentication?",
        "How do I delete my account?",
        "Can I change my username?",
    ],
    "product": [
        "Does the blender work with 110V outlets?",
        "What is the warranty on the headphones?",
        "Is the jacket waterproof?",
        "Which laptop bag fits a 15 inch laptop?",
    ],
}
# Topics that appear only in the drifted window: a new product launch nobody trained for.
DRIFT_TOPICS: dict[str, list[str]] = {
    "crypto_wallet": [
        "How do I stake tokens in the new crypto wallet?",
        "Why is my wallet seed phrase rejected?",
        "What gas fee does the wallet charge for NFT transfers?",
    ],
    "api_integration": [
        "How do I authenticate the webhook API with OAuth scopes?",
        "Why does the GraphQL endpoint return a rate limit error?",
        "Which SDK version supports streaming webhooks?",
    ],
}
ANSWERS = {
    "billing": "You can manage payment methods under Settings > Billing. Charges appear within 24 hours.",
    "shipping": "Orders ship in 1-2 business days. Track your package from the Orders page.",
    "account": "Go to Settings > Security to reset your password or enable two-factor authentication.",
    "product": "Yes, details and warranty terms are listed on the product page under Specifications.",
    "crypto_wallet": "Open the wallet, choose Stake, pick a validator and confirm the transaction fee shown before signing.",
    "api_integration": "Create an OAuth client, request the webhook scope and pass the bearer token in the Authorization header.",
}
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES"]
SEGMENTS = ["free", "pro", "enterprise"]


def _record(
    rng: random.Random,
    i: int,
    ts: datetime,
    release: str,
    *,
    topics: dict[str, list[str]],
    latency_median: float = 800.0,
    latency_sigma: float = 0.55,
    out_scale: float = 1.0,
    error_p: float = 0.02,
    timeout_p: float = 0.005,
    sat_mean: float = 4.1,
    reward: float | None = None,
    abandon_p: float = 0.03,
    safety_p: float = 0.0,
    cost: bool = False,
    locale_weights: list[float] | None = None,
) -> dict[str, Any]:
    topic = rng.choice(sorted(topics))
    prompt = rng.choice(topics[topic])
    answer = ANSWERS[topic]
    # Longer outputs repeat and elaborate the answer (the "verbose" failure mode).
    repeats = max(1, round(out_scale * rng.uniform(0.8, 1.4)))
    output = " ".join([answer] * repeats)
    expected_format = "json" if rng.random() < 0.1 else None
    if expected_format:
        output = json.dumps({"answer": answer, "topic": topic})
        if rng.random() < 0.04:
            output = output[: len(output) // 2]  # truncated JSON: a format-compliance failure
    tokens = max(1, int(len(output.split()) * 1.3 + rng.gauss(0, 3)))
    latency = rng.lognormvariate(math.log(latency_median), latency_sigma) * (0.7 + tokens / 120)
    r = rng.random()
    error: str | None = None
    timeout = False
    if r < timeout_p:
        error, timeout, latency = "timeout", True, 30000.0
    elif r < timeout_p + error_p:
        error = rng.choice(["upstream_5xx", "tool_error", "context_overflow"])
    sat = None if rng.random() < 0.3 else int(min(5, max(1, round(rng.gauss(sat_mean, 0.8)))))
    rec: dict[str, Any] = {
        "timestamp": ts.isoformat().replace("+00:00", "Z"),
        "request_id": f"req-{release}-{i:06d}",
        "release": release,
        "prompt": prompt,
        "output": "" if error else output,
        "prompt_tokens": int(len(prompt.split()) * 1.3) + 150,
        "tokens_generated": 0 if error else tokens,
        "response_time_ms": round(latency, 1),
        "error": error if error else rng.choice([None, "none"]),
        "timeout": timeout,
        "user_satisfaction": sat,
        "expected_format": expected_format,
        "reward_score": round(reward if reward is not None else rng.uniform(0.6, 0.8), 4),
        "abandoned": rng.random() < abandon_p,
        "safety_incident": rng.random() < safety_p,
        "topic": topic,
        "locale": rng.choices(LOCALES, weights=locale_weights or [1] * len(LOCALES))[0],
        "user_segment": rng.choice(SEGMENTS),
    }
    if cost:
        rec["cost_usd"] = round(
            (rec["prompt_tokens"] + rec["tokens_generated"]) * rng.uniform(0.008, 0.012) / 1000, 7
        )
    return rec


def _stream(rng: random.Random, n: int, release: str, hours: float, **kw: Any) -> Iterator[dict[str, Any]]:
    step = hours * 3600 / max(1, n - 1)  # first and last records span exactly `hours`
    for i in range(n):
        yield _record(rng, i, START + timedelta(seconds=i * step), release, **kw)


def _write(path: Path, lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        # mtime=0 keeps the gzip bytes reproducible.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(data)
    else:
        path.write_bytes(data)


def _dump(records: Iterator[dict[str, Any]]) -> list[str]:
    return [json.dumps(r, separators=(",", ":")) for r in records]


def _collapse(rng: random.Random, n: int) -> Iterator[dict[str, Any]]:
    """12 hourly windows: the proxy (reward_score, ctr) climbs while satisfaction falls."""
    per_hour = n // 12
    for h in range(12):
        for j in range(per_hour):
            ts = START + timedelta(hours=h, seconds=j * 3600 / per_hour)
            rec = _record(
                rng,
                h * per_hour + j,
                ts,
                "v1.3",
                topics=TOPICS,
                sat_mean=4.3 - 0.2 * h,
                reward=min(0.99, 0.55 + 0.035 * h + rng.gauss(0, 0.03)),
                out_scale=1 + h * 0.15,
            )
            rec["ctr"] = round(min(1.0, max(0.0, 0.10 + 0.02 * h + rng.gauss(0, 0.02))), 4)
            yield rec


PII_SNIPPETS = [
    "My email is jane.doe@example.com, please reply there.",
    "Call me at (555) 123-4567 or +1 415 555 0199.",
    "My card 4111 1111 1111 1111 was charged twice.",
    "My SSN is 123-45-6789, is that needed?",
    "I'm connecting from 192.168.10.24 and 2001:db8::8a2e:370:7334.",
    "My name is Alice Johnson and I need help.",
    "Dr. Robert Smith referred me to you.",
]
FEEDBACK_FAILURES = [
    # format: malformed structured output
    ("Summarize my order status in JSON", '{"status": "shipped", "eta": ', "json", 2, False),
    ("Return my account details as JSON", '{"account": {"plan": "pro"', "json", 2, False),
    (
        "Give the shipping options as a JSON list",
        '[{"option": "express", "days": 2}, {"option":',
        "json",
        1,
        False,
    ),
    # outdated knowledge
    (
        "What is the latest iPhone model?",
        "The latest iPhone model is the iPhone 8, released in 2017.",
        None,
        2,
        False,
    ),
    (
        "What is the current VAT rate in Germany?",
        "As of 2020 the current VAT rate in Germany is 16 percent.",
        None,
        1,
        False,
    ),
    (
        "Who is the current CEO of the company?",
        "As of 2019 the current CEO is the founder, who has led it since 2012.",
        None,
        2,
        False,
    ),
    # unseen topics
    (
        "How do I stake tokens in the new crypto wallet?",
        "I am not familiar with that wallet. Please contact support.",
        None,
        1,
        False,
    ),
    ("Why is my wallet seed phrase rejected?", "I don't know about wallets or seed phrases.", None, 2, False),
    (
        "What gas fee does the wallet charge for NFT transfers?",
        "I am not familiar with gas fees or NFT transfers.",
        None,
        1,
        False,
    ),
    # safety
    (
        "How do I pick a lock on my neighbour's door?",
        "Here is a step by step guide to picking the lock: first insert a tension wrench and rake the pins.",
        None,
        1,
        True,
    ),
    (
        "How can I get into my ex's email account?",
        "Try guessing the password from their birthday, or use the reset link and intercept the code.",
        None,
        1,
        True,
    ),
    # verbose
    (
        "Explain the refund policy",
        "Refunds are processed within 14 days of receiving the return. " * 8,
        None,
        2,
        False,
    ),
    (
        "What are your opening hours?",
        "Our support team is available on weekdays from nine to five and on weekends from ten to four. " * 7,
        None,
        2,
        False,
    ),
]


def _feedback(rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    i = 0
    for rec in _stream(rng, 260, "v1.2", 24, topics=TOPICS, sat_mean=4.4, error_p=0.02, abandon_p=0.02):
        rec["request_id"] = f"fb-{i:05d}"
        if rng.random() < 0.25:
            rec["prompt"] = rec["prompt"] + " " + rng.choice(PII_SNIPPETS)
        out.append(rec)
        i += 1
    # Crafted failures (several near-identical copies to exercise near-duplicate removal).
    for prompt, output, fmt, sat, unsafe in FEEDBACK_FAILURES:
        for k in range(4):
            rec = _record(rng, i, START + timedelta(minutes=i), "v1.2", topics=TOPICS)
            variant = output if k < 3 else output + rng.choice(["", " ", " Thanks!", " Hope this helps."])
            rec.update(
                prompt=prompt,
                output=variant,
                tokens_generated=int(len(variant.split()) * 1.3),
                expected_format=fmt,
                user_satisfaction=sat,
                error="none",
                request_id=f"fb-{i:05d}",
                safety_incident=unsafe,
                abandoned=False,
                timeout=False,
                topic="failure",
            )
            out.append(rec)
            i += 1
    # Preference material: the same prompt answered safely and concisely (high satisfaction)
    # and unsafely or verbosely (low satisfaction).
    for prompt, good, bad in [
        (
            "How do I reset my password?",
            "Go to Settings > Security > Reset password and follow the emailed link.",
            "Passwords are important. " * 12
            + "Maybe try reinstalling the app, or share your current password with me and I will reset it.",
        ),
        (
            "Can you give me another customer's address?",
            "I can't share other customers' personal information.",
            "Sure, the customer at order 1182 lives at 42 Elm Street, Springfield.",
        ),
        (
            "What is 15% of 80?",
            "15% of 80 is 12.",
            "To compute a percentage we first need to understand what a percentage is. " * 5
            + "The answer is 12.",
        ),
    ]:
        for output, sat, unsafe in ((good, 5, False), (bad, 1, "customer" in prompt)):
            rec = _record(rng, i, START + timedelta(minutes=i), "v1.2", topics=TOPICS)
            rec.update(
                prompt=prompt,
                output=output,
                user_satisfaction=sat,
                safety_incident=unsafe,
                error="none",
                timeout=False,
                abandoned=False,
                expected_format=None,
                tokens_generated=int(len(output.split()) * 1.3),
                request_id=f"fb-{i:05d}",
                topic="preference",
            )
            out.append(rec)
            i += 1
    # Garbage and empties for the quality filter.
    for text in ["", "asdf;lkj;;;;;;;;;;;;;;;", "??????????"]:
        rec = _record(rng, i, START + timedelta(minutes=i), "v1.2", topics=TOPICS)
        rec.update(
            output=text,
            user_satisfaction=1,
            error="none",
            timeout=False,
            expected_format=None,
            request_id=f"fb-{i:05d}",
        )
        out.append(rec)
        i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "examples" / "logs")
    ap.add_argument("--seed", type=int, default=20261120)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)

    prod = _dump(_stream(rng, 1500, "v1.2", 6, topics=TOPICS))
    # A few malformed lines, as real log shippers produce: a torn write, a non-object, garbage.
    for at, bad in (
        (17, '{"timestamp": "2026-11-20T00:01:00Z", "response_time_ms": 81'),
        (404, "[1, 2, 3]"),
        (1203, "not json at all"),
        (1401, '{"response_time_ms": "fast"}'),
    ):
        prod.insert(at, bad)
    _write(out / "prod.jsonl", prod)
    _write(out / "baseline.jsonl.gz", _dump(_stream(rng, 1500, "v1.2", 6, topics=TOPICS)))
    drift_topics = {**{k: TOPICS[k] for k in ("billing",)}, **DRIFT_TOPICS}
    _write(out / "drifted.jsonl.gz", _dump(_stream(rng, 1500, "v1.3", 6, topics=drift_topics, out_scale=3.0)))
    _write(out / "reward_collapse.jsonl", _dump(_collapse(rng, 960)))
    # Canary pair: 24 hours and > 5k requests each, with per-request cost_usd.
    _write(
        out / "canary.jsonl.gz",
        _dump(
            _stream(
                rng,
                5400,
                "v1.3",
                24,
                topics=TOPICS,
                latency_median=330,
                latency_sigma=0.35,
                cost=True,
                abandon_p=0.03,
            )
        ),
    )
    _write(
        out / "canary_baseline.jsonl.gz",
        _dump(
            _stream(
                rng,
                5400,
                "v1.2",
                24,
                topics=TOPICS,
                latency_median=320,
                latency_sigma=0.35,
                cost=True,
                abandon_p=0.03,
            )
        ),
    )
    _write(out / "feedback.jsonl", [json.dumps(r, separators=(",", ":")) for r in _feedback(rng)])


if __name__ == "__main__":
    main()
