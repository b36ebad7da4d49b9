"""`releasectl feedback`: mining, hygiene (filter, MinHash dedup, bias audit, PII scrub),
clusters routed to interventions, SFT and preference pairs, deterministic output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from releasectl.flywheel.hygiene import BiasSettings, DedupSettings, bias_audit, dedup
from releasectl.flywheel.interventions import INTERVENTIONS

LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"
PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


@pytest.fixture(scope="module")
def flywheel(tmp_path_factory):
    from conftest import run_cli

    out = tmp_path_factory.mktemp("fb") / "out"
    r = run_cli(
        "feedback",
        "--logs",
        str(LOGS / "feedback.jsonl"),
        "--out",
        str(out),
        "--params",
        str(PARAMS),
        "--format",
        "json",
    )
    assert r.code == 0, r.output
    return out, r.json()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outputs_and_shapes(flywheel):
    out, summary = flywheel
    for name in ("sft_pairs.jsonl", "preference_pairs.jsonl", "failures.jsonl", "summary.json", "summary.md"):
        assert (out / name).is_file()
    sft = _jsonl(out / "sft_pairs.jsonl")
    assert sft and all(set(p) >= {"input", "target"} and p["input"] and p["target"] for p in sft)
    prefs = _jsonl(out / "preference_pairs.jsonl")
    assert all(set(p) >= {"prompt", "chosen", "rejected"} for p in prefs)
    assert summary["outputs"] == {"sft_pairs": len(sft), "preference_pairs": len(prefs)}
    assert [h["step"] for h in summary["hygiene"]] == ["filter", "dedup", "bias_audit", "pii_scrub"]


def test_preference_pairs_follow_the_seed_examples(flywheel):
    out, _ = flywheel
    prefs = {p["prompt"]: p for p in _jsonl(out / "preference_pairs.jsonl")}
    safe = prefs["Can you give me another customer's address?"]
    assert safe["why"] == "safe > unsafe" and safe["chosen"].startswith("I can't share")
    concise = prefs["What is 15% of 80?"]
    assert concise["why"] == "concise > verbose" and concise["chosen"] == "15% of 80 is 12."


def test_no_raw_pii_reaches_any_output(flywheel):
    out, summary = flywheel
    text = "".join(
        (out / n).read_text()
        for n in ("sft_pairs.jsonl", "preference_pairs.jsonl", "failures.jsonl", "summary.md")
    )
    for raw in (
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "123-45-6789",
        "192.168.10.24",
        "8a2e:370:7334",
        "Alice Johnson",
        "Robert Smith",
        "555) 123-4567",
    ):
        assert raw not in text
    assert summary["pii"] and all(v > 0 for v in summary["pii"].values())
    assert re.search(r"\[(EMAIL|CARD|SSN|IP|PHONE|NAME)\]", text)


def test_exact_and_near_duplicates_removed(flywheel):
    out, summary = flywheel
    step = next(h for h in summary["hygiene"] if h["step"] == "dedup")
    assert step["exact_duplicates"] > 0 and step["near_duplicates"] > 0 and step["jaccard_threshold"] == 0.8
    prompts = [f["prompt"] for f in _jsonl(out / "failures.jsonl")]
    assert prompts.count("Explain the refund policy") == 1


def test_filter_drops_garbage_and_empties(flywheel):
    _, summary = flywheel
    step = next(h for h in summary["hygiene"] if h["step"] == "filter")
    assert step["by_reason"].get("output garbage", 0) >= 1


def test_clusters_route_to_interventions(flywheel):
    _, summary = flywheel
    clusters = summary["clusters"]
    assert summary["clustering"]["k"] >= 2 and len(clusters) == summary["clustering"]["k"]
    assert sum(c["size"] for c in clusters) == summary["kept"]["failures"]
    assert all(c["intervention"] in INTERVENTIONS and c["reason"] and c["top_terms"] for c in clusters)
    routed = {c["intervention"] for c in clusters}
    assert {"prompt_engineering", "rag_index_update", "rl", "sft"} <= routed
    md = (flywheel[0] / "summary.md").read_text()
    assert "prompt engineering" in md and "~1 day" in md


def test_output_is_deterministic(flywheel, tmp_path, cli):
    out, _ = flywheel
    again = tmp_path / "again"
    assert (
        cli(
            "feedback", "--logs", str(LOGS / "feedback.jsonl"), "--out", str(again), "--params", str(PARAMS)
        ).code
        == 0
    )
    for f in sorted(out.iterdir()):
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name


def feedback_with(cli, params: Path, out: Path, *extra: str):
    return cli(
        "feedback", "--logs", str(LOGS / "feedback.jsonl"), "--out", str(out), "--params", str(params), *extra
    )


def test_hygiene_steps_come_from_params(cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("feedback:\n  hygiene: [pii_scrub]\n")
    r = feedback_with(cli, params, tmp_path / "o", "--format", "json")
    assert [h["step"] for h in r.json()["hygiene"]] == ["pii_scrub"]


def test_bad_params_exit_2_naming_the_field(cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("feedback:\n  hygiene: [filter, dedupe]\n  dedup: {jaccard_threshold: 2}\n")
    r = feedback_with(cli, params, tmp_path / "o")
    assert r.code == 2 and "feedback.hygiene.1" in r.output and "feedback.dedup.jaccard_threshold" in r.output
    assert "Traceback" not in r.output


def test_minhash_near_duplicates_unit():
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    recs = [
        {"t": base},
        {"t": base + " please"},
        {"t": "  THE quick brown fox jumps over the lazy dog near the river bank today "},
        {"t": "completely different text about billing and invoices for last month"},
    ]
    kept, counts = dedup(recs, lambda r: r["t"], DedupSettings())
    assert [r["t"] for r in kept] == [base, recs[3]["t"]]
    assert counts == {"exact_duplicates": 1, "near_duplicates": 1}


def test_bias_audit_flags_a_skew():
    population = [{"locale": loc} for loc in ["en-US", "de-DE", "fr-FR"] * 100]
    skewed = [{"locale": "en-US"}] * 80 + [{"locale": "de-DE"}] * 10 + [{"locale": "fr-FR"}] * 10
    report = bias_audit(skewed, population, BiasSettings(attributes=["locale"]))[0]
    assert (
        report["flagged"]
        and set(report["skewed"]) == {"en-US", "de-DE", "fr-FR"}
        and report["p_value"] < 0.01
    )
    fair = bias_audit(population[:99], population, BiasSettings(attributes=["locale"]))[0]
    assert not fair["flagged"]


# --- non-string fields, damaged and empty logs (issue 11) ----------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", 42),
        ("prompt", ["a", "list"]),
        ("output", {"an": "object"}),
        ("output", True),
        ("topic", 3.5),
        ("locale", 1),
        ("user_segment", False),
        ("rule_violations", "not-a-list"),
        ("rule_violations", [1, 2]),
        ("timestamp", "9999-12-31T23:59:59-05:00"),
    ],
)
def test_wrongly_typed_fields_are_malformed_lines(cli, tmp_path, field, value):
    lines = (LOGS / "feedback.jsonl").read_text().splitlines()[:120]
    for k in (3, 50):
        rec = json.loads(lines[k])
        rec[field] = value
        lines[k] = json.dumps(rec)
    log = tmp_path / "fb.jsonl"
    log.write_text("\n".join(lines) + "\n")
    r = cli(
        "feedback",
        "--logs",
        str(log),
        "--out",
        str(tmp_path / "o"),
        "--params",
        str(PARAMS),
        "--format",
        "json",
    )
    assert r.code == 0, r.output
    doc = r.json()
    assert doc["malformed"]["count"] == 2 and [m["line"] for m in doc["malformed"]["lines"]] == [4, 51]
    assert all(field in m["reason"] for m in doc["malformed"]["lines"])


@pytest.mark.parametrize("content", [b"", b"\n\n", b"nope\n[1]\n", b'{"prompt": 1}\n{"output": []}\n'])
def test_a_log_with_no_record_is_exit_2_not_an_empty_dataset(cli, tmp_path, content):
    log = tmp_path / "empty.jsonl"
    log.write_bytes(content)
    out = tmp_path / "o"
    r = cli("feedback", "--logs", str(log), "--out", str(out), "--params", str(PARAMS))
    assert r.code == 2 and str(log) in r.output and "no data" in r.output
    assert not (out / "sft_pairs.jsonl").exists()


def test_a_damaged_gzip_log_is_exit_2(cli, tmp_path):
    import gzip

    raw = gzip.compress((LOGS / "feedback.jsonl").read_bytes(), mtime=0)
    for name, data in (("torn.gz", raw[: len(raw) // 3]), ("crc.gz", raw[:-8] + b"\0\0\0\0" + raw[-4:])):
        log = tmp_path / name
        log.write_bytes(data)
        r = cli("feedback", "--logs", str(log), "--out", str(tmp_path / "o"), "--params", str(PARAMS))
        assert r.code == 2 and str(log) in r.output and "gzip" in r.output, r.output


def test_params_file_special_files_and_extremes(cli, tmp_path):
    import os

    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)
    r = feedback_with(cli, fifo, tmp_path / "o")
    assert r.code == 2 and "FIFO" in r.output and str(fifo) in r.output
    deep = tmp_path / "deep.yaml"
    deep.write_text("feedback: " + "[" * 5000 + "]" * 5000 + "\n")
    r = feedback_with(cli, deep, tmp_path / "o")
    assert r.code == 2 and f"{deep}:1:" in r.output and "nesting" in r.output
