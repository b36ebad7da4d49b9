"""`language_consistency` 1.0 (stopword lists) vs 2.0 (lingua-language-detector), same run.

Accuracy on two labelled sets:
- benchmarks/data/language_texts.jsonl: 60 short single-language texts in 6 languages and 18
  two-language texts (written for this benchmark; `consistent: false` means the verifier must fail);
- the suite's language_consistency cases: each prompt's non-English instruction (the trailing
  English "Be brief." / "Use two sentences." removed), labelled with the case's language.
Measures language detection (single-language texts), the verifier's verdict (all texts), the
detector's first-use cost, and throughput in texts/s. Lingua's low-accuracy mode is shown too.

    python benchmarks/language_detector.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_sets() -> tuple[list[dict], list[dict]]:
    own = [
        json.loads(x) for x in (ROOT / "benchmarks/data/language_texts.jsonl").read_text().splitlines() if x
    ]
    suite = []
    for line in (ROOT / "suites/core/slices/language_consistency.jsonl").read_text().splitlines():
        case = json.loads(line)
        text = re.sub(r"\s*(Be brief\.|Use two sentences\.)\s*$", "", case["input"]["prompt"]).strip()
        suite.append({"text": text, "language": case["expected"]["language"], "consistent": True})
    return own, suite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from releasectl.suite import registry
    from releasectl.suite.verifiers import language

    own, suite = load_sets()
    everything = own + suite
    single = [t for t in everything if t["consistent"]]
    t0 = time.perf_counter()
    language.detect_language_lingua("warm up the detector with a sentence")
    build_s = time.perf_counter() - t0

    from lingua import IsoCode639_1, LanguageDetectorBuilder

    low = (
        LanguageDetectorBuilder.from_iso_codes_639_1(
            *[IsoCode639_1.from_str(c) for c in language.SUITE_LANGUAGES]
        )
        .with_low_accuracy_mode()
        .build()
    )

    def detect_low(text: str) -> str | None:
        found = low.detect_language_of(text) if len(language.words(text)) >= language.MIN_WORDS else None
        return None if found is None else found.iso_code_639_1.name.lower()

    detectors = {
        "1.0 stopwords": language.detect_language,
        "2.0 lingua": language.detect_language_lingua,
        "lingua low-accuracy": detect_low,
    }
    print(
        f"texts: {len(own)} own ({sum(t['consistent'] for t in own)} single-language, "
        f"{sum(not t['consistent'] for t in own)} mixed, {len({t['language'] for t in own})} languages)"
        f" + {len(suite)} suite cases; lingua first use {build_s:.2f} s"
    )
    print(f"{'detector':<22}{'detect acc (single)':>21}{'undecided':>11}{'texts/s':>11}")
    for name, fn in detectors.items():
        got = [fn(t["text"]) for t in single]
        acc = sum(g == t["language"] for g, t in zip(got, single, strict=True)) / len(single)
        start = time.perf_counter()
        for _ in range(args.repeat):
            for t in everything:
                fn(t["text"])
        rate = args.repeat * len(everything) / (time.perf_counter() - start)
        print(f"{name:<22}{acc:>20.1%}{sum(g is None for g in got):>11}{rate:>11,.0f}")

    print(
        f"\n{'verifier':<22}{'verdict acc (all)':>19}{'single ok':>11}{'mixed caught':>14}{'suite ok':>10}{'texts/s':>11}"
    )
    for version in ("1.0", "2.0"):
        v = registry.get("language_consistency", version)
        s = v.settings()

        def verdict(t: dict, v: registry.Registered = v, s: object = s) -> bool:
            return v.fn(t["text"], s, registry.VerifyContext({"language": t["language"]})).passed

        res = [verdict(t) == t["consistent"] for t in everything]
        own_single = [verdict(t) for t in own if t["consistent"]]
        own_mixed = [not verdict(t) for t in own if not t["consistent"]]
        suite_ok = [verdict(t) for t in suite]
        start = time.perf_counter()
        for _ in range(args.repeat):
            for t in everything:
                verdict(t)
        rate = args.repeat * len(everything) / (time.perf_counter() - start)
        print(
            f"{version:<22}{sum(res) / len(res):>18.1%}{sum(own_single):>6}/{len(own_single):<4}"
            f"{sum(own_mixed):>9}/{len(own_mixed):<4}{sum(suite_ok):>6}/{len(suite_ok):<3}{rate:>11,.0f}"
        )


if __name__ == "__main__":
    main()
