"""Issue 11: one strict model per stage file. Property tests: malformed results rows and gate.json
documents are exit 2 (naming file and line) or parsed exactly as the model says, and never promote."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from runfactory import case_row, gate_document, write_run

from releasectl.contracts.gate import COMPARATORS, GateRecord, verdict_of
from releasectl.contracts.results import ResultRow
from releasectl.errors import BadInput
from releasectl.gate.fastrows_msgspec import decode_block
from releasectl.gate.runs import NO_SAMPLE, NO_SEED, _read_block, _verifier_table, row_ok

GOOD = case_row("c-1", "s", {"v": (True, "correctness"), "w": (True, "format")}, steps=3)
FIELDS = [*GOOD, "ttft_ms", "sample", "seed", "extra_field"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [0, 1, -1, 0.0, 1e308, 1e15, 10**15 + 1, 1e12, 1e12 + 1, "", "true", "false", "yes", "1"]
    ),
    st.text(max_size=5),
    st.sampled_from(["x" * 257, "rule", "format", "tool", "quality", "correctness", "vibes"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
verdicts = st.fixed_dictionaries(
    {
        "passed": st.one_of(st.booleans(), json_scalars),
        "kind": st.one_of(st.sampled_from(["rule", "format", "tool"]), json_scalars),
    },
    optional={"detail": st.one_of(st.text(max_size=3), json_scalars), "version": json_values},
)


@st.composite
def mutated_rows(draw: st.DrawFn) -> Any:
    """A valid row with a few fields replaced, removed or added, or verifiers reshaped."""
    row: Any = json.loads(json.dumps(GOOD))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        action = draw(st.sampled_from(["set", "drop", "verifier", "verifiers", "consistent"]))
        key = draw(st.sampled_from(FIELDS))
        if action == "set":
            row[key] = draw(json_values)
        elif action == "drop":
            row.pop(key, None)
        elif action == "verifier" and isinstance(row.get("verifiers"), dict):
            row["verifiers"][draw(st.sampled_from(["v", "w", "", "n" * 257, "new"]))] = draw(
                st.one_of(verdicts, json_values)
            )
        elif action == "verifiers":
            row["verifiers"] = draw(st.dictionaries(st.text(max_size=3), verdicts, max_size=3))
        elif isinstance(row.get("verifiers"), dict):  # make `passed` agree with the verifiers again
            vs = row["verifiers"].values()
            if all(isinstance(v, dict) for v in vs):
                row["passed"] = all(v.get("passed") is True for v in vs)
    if draw(st.integers(min_value=0, max_value=20)) == 0:
        row = draw(json_values)
    return orjson.loads(orjson.dumps(row))  # what the reader sees: JSON, parsed


def model_accepts(row: Any) -> bool:
    try:
        ResultRow.model_validate(row)
    except ValidationError:
        return False
    return True


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_rows())
def test_fast_path_accepts_exactly_what_the_model_accepts(row: Any) -> None:
    assert row_ok(row) == model_accepts(row), row


def _same_columns(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    for name in ("case_id", "slice", "latency", "completion", "prompt", "sample", "seed"):
        assert fast[name] == slow[name], name
    assert np.array_equal(np.asarray(fast["steps"], float), np.asarray(slow["steps"], float), equal_nan=True)
    for name in ("passed", "rule_ok", "format_ok"):
        assert list(fast[name]) == list(slow[name]), name
    n = len(fast["case_id"])
    tables = [_verifier_table(n, ((k, i, t) for k, (i, t) in got["shapes"].items())) for got in (fast, slow)]
    assert list(tables[0]) == list(tables[1])  # the same verifiers, first seen in the same order
    assert all(tables[0][k].tolist() == tables[1][k].tolist() for k in tables[1])


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_rows(), min_size=1, max_size=4), st.sampled_from([b"\n", b"\r\n"]))
def test_msgspec_blocks_accept_only_what_the_definition_reads_the_same(
    rows: list[Any], newline: bytes
) -> None:
    """`fastrows_msgspec.decode_block` takes a block only when `_extract` takes every one of its
    lines, and then gives the same columns; anything else is left to `_extract`."""
    block = b"".join(orjson.dumps(r) + newline for r in rows)
    fast = decode_block(block, NO_SAMPLE, NO_SEED, math.nan)
    accepted = all(row_ok(r) for r in rows)
    if fast is None:
        return
    assert accepted, rows
    slow, numbers, _ = _read_block(block, 1, Path("results.jsonl"))
    assert numbers == list(range(1, len(rows) + 1))
    _same_columns(fast, slow)


@pytest.mark.parametrize(
    "block",
    [
        orjson.dumps(GOOD) + b"\n\n" + orjson.dumps(GOOD) + b"\n",  # a blank line: numbers would shift
        orjson.dumps(GOOD) + b" " + orjson.dumps(GOOD) + b"\n",  # two values on a line
        orjson.dumps({**GOOD, "extra_field": 1}) + b"\n",  # extras are allowed, and read by `_extract`
        orjson.dumps(GOOD)[:-1] + b', "latency_ms": 1e400}\n',
        orjson.dumps(GOOD)[:-1] + b', "note": NaN}\n',
        orjson.dumps(GOOD)[:-1] + b",}\n",
        orjson.dumps(GOOD).replace(b'"c-1"', b'"\\ud800"') + b"\n",
        orjson.dumps({**GOOD, "passed": False}) + b"\n",  # disagrees with its verifiers
        orjson.dumps({**GOOD, "prompt_tokens": 1.0}) + b"\n",
        orjson.dumps({**GOOD, "case_id": ""}) + b"\n",
        b"[1]\n",
        b"\n",
    ],
)
def test_msgspec_leaves_every_other_block_to_the_definition(block: bytes) -> None:
    assert decode_block(block, NO_SAMPLE, NO_SEED, math.nan) is None


def test_msgspec_reads_canonical_blocks_as_the_definition_does() -> None:
    rows = [
        GOOD,
        {**GOOD, "case_id": "c-2", "sample": 3, "seed": 9, "ttft_ms": 1},
        case_row("c-3", "t", {"v": (False, "rule"), "w": (True, "format")}),
        case_row("c-4", "t", {"x": (False, "format")}, steps=None),
        {**GOOD, "case_id": "é" * 256, "latency_ms": 0},
        {**GOOD, "verifiers": dict(reversed(GOOD["verifiers"].items()))},  # the same verifiers, reordered
    ]
    block = b"".join(orjson.dumps(r) + b"\n" for r in rows)[:-1]  # a torn last line is still a row
    fast = decode_block(block, NO_SAMPLE, NO_SEED, math.nan)
    assert fast is not None and all(row_ok(r) for r in rows)
    slow, _, _ = _read_block(block, 1, Path("results.jsonl"))
    _same_columns(fast, slow)
    assert fast["rule_ok"].tolist() == [True, True, False, True, True, True]
    assert fast["format_ok"].tolist() == [True, True, True, False, True, True]
    uniform = b"".join(orjson.dumps(r) + b"\n" for r in (rows[0], rows[1], rows[5]))  # one struct decoder
    fast = decode_block(uniform, NO_SAMPLE, NO_SEED, math.nan)
    assert fast is not None and list(fast["shapes"]) == [("v", "w")]
    _same_columns(fast, _read_block(uniform, 1, Path("results.jsonl"))[0])


def test_the_equivalence_sees_both_sides() -> None:
    assert row_ok(GOOD) and model_accepts(GOOD)
    for bad in ({**GOOD, "passed": "false"}, {**GOOD, "latency_ms": float("nan")}, {**GOOD, "steps": True}):
        assert not row_ok(bad) and not model_accepts(bad)
    # repeated sampling: `sample` and `seed` are absent or integers in range, never null/bool/str
    for good in ({**GOOD, "sample": 0, "seed": 7}, {**GOOD, "sample": 999}, {**GOOD, "seed": 10**15}):
        assert row_ok(good) and model_accepts(good), good
    for key, values in (("sample", (None, True, "1", 1.0, -1, 1000)), ("seed", (None, False, "7", -1))):
        for value in values:
            bad = {**GOOD, key: value}
            assert not row_ok(bad) and not model_accepts(bad), bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=mutated_rows())
def test_a_malformed_row_is_exit_2_at_its_line_or_gated_as_the_model_reads_it(
    cli, tmp_path_factory, row
) -> None:
    tmp = tmp_path_factory.mktemp("row")
    rows = [case_row(f"ok-{i}", "s", {"v": (i % 2 == 0, "correctness")}) for i in range(4)]
    run = write_run(tmp / "run", "v1.3", rows)
    results = run / "results.jsonl"
    with results.open("ab") as f:
        f.write(orjson.dumps(row) + b"\n")
    rules = tmp / "p.rules"
    rules.write_text("aggregate.success@1.point >= 0\n")
    result = cli("gate", "--run", str(run), "--rules", str(rules), "--format", "json")
    if not model_accepts(row) or row["case_id"].startswith("ok-"):
        assert result.code == 2, result.output
        problems = json.loads(result.stdout)["problems"]
        assert any(p.get("file") == str(results) and p.get("line") in (5, None) for p in problems), problems
        assert all(p.get("line") is not None for p in problems), problems
        return
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    model = ResultRow.model_validate(row)
    assert doc["aggregate"]["candidate"]["n"] == 5
    assert doc["aggregate"]["candidate"]["success_at_1"] == pytest.approx((2 + model.passed) / 5)


# --- gate.json ----------------------------------------------------------------------------------------

GATE_FIELDS = [
    "verdict",
    "rules",
    "release",
    "stage",
    "manifest_digest",
    "schema_version",
    "provenance",
    "policy",
]
RULE_FIELDS = ["outcome", "observed", "threshold", "comparator", "line", "rule"]


@st.composite
def mutated_gates(draw: st.DrawFn) -> Any:
    outcomes = tuple(
        draw(st.lists(st.sampled_from(["pass", "fail", "inconclusive"]), min_size=0, max_size=4))
    )
    doc: Any = gate_document("v1.3", outcomes=outcomes)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        action = draw(st.sampled_from(["set", "drop", "rule", "verdict"]))
        if action == "set":
            doc[draw(st.sampled_from(GATE_FIELDS))] = draw(json_values)
        elif action == "drop":
            doc.pop(draw(st.sampled_from(GATE_FIELDS)), None)
        elif action == "verdict":
            doc["verdict"] = draw(st.sampled_from(["promote", "block", "hold", "PROMOTE", True]))
        elif isinstance(doc.get("rules"), list) and doc["rules"]:
            rule = draw(st.sampled_from(doc["rules"]))
            if isinstance(rule, dict):
                rule[draw(st.sampled_from(RULE_FIELDS))] = draw(
                    st.one_of(
                        st.sampled_from(["pass", "fail", "inconclusive", ">=", "<", 0.1, 0.9, None]),
                        json_values,
                    )
                )
    return doc


def _consistent(record: GateRecord) -> bool:
    for r in record.rules:
        if r.outcome != "inconclusive":
            assert r.observed is not None and r.threshold is not None
            assert COMPARATORS[r.comparator](r.observed, r.threshold) == (r.outcome == "pass")
    return verdict_of(record.rules)[0] == record.verdict


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated_gates())
def test_a_gate_document_is_refused_or_consistent_and_never_promotes_on_failing_rules(
    tmp_path_factory, doc
) -> None:
    from releasectl.channels.verified import verified_gate

    path = tmp_path_factory.mktemp("gate") / "gate.json"
    path.write_text(json.dumps(doc, indent=2))
    try:
        checked, digest = verified_gate(path)
    except BadInput as e:
        assert e.exit_code == 2 and all(p.file == str(path) and p.line for p in e.problems), e.to_dict()
        return
    record = GateRecord.model_validate(checked)
    assert _consistent(record)
    if record.verdict == "promote":
        assert record.rules and all(r.outcome == "pass" for r in record.rules)
        assert all(isinstance(r.observed, float) and math.isfinite(r.observed) for r in record.rules)


@pytest.mark.parametrize(
    ("change", "field", "line_text"),
    [
        (lambda d: d.pop("rules"), "rules", None),
        (lambda d: d.update(rules="all pass"), "rules", '"rules": "all pass"'),
        (lambda d: d.update(rules=[]), "rules", '"rules": []'),
        (
            lambda d: d["rules"][1].update(outcome="pass"),
            "rules[1].outcome",
            None,
        ),  # 0.5 >= 0.8 is not a pass
        (lambda d: d.update(verdict="promote"), "verdict", None),  # a failing rule, verdict promote
        (lambda d: d["rules"][0].update(observed="0.9"), "rules[0].observed", '"observed": "0.9"'),
        (lambda d: d["rules"][0].update(outcome="PASS"), "rules[0].outcome", '"outcome": "PASS"'),
    ],
)
def test_promote_side_check_names_the_file_line_and_field(tmp_path: Path, change, field, line_text) -> None:
    from releasectl.channels.verified import verified_gate

    doc = gate_document("v1.3", outcomes=("pass", "fail"))
    change(doc)
    path = tmp_path / "gate.json"
    text = json.dumps(doc, indent=2)
    path.write_text(text)
    with pytest.raises(BadInput) as err:
        verified_gate(path)
    assert "refusing to promote" in err.value.message
    p = next(p for p in err.value.problems if p.field == field)
    assert p.file == str(path)
    if line_text:
        assert line_text in text.splitlines()[p.line - 1], (p, text)


def test_report_refuses_an_inconsistent_gate_with_exit_2(cli, tmp_path: Path) -> None:
    doc = gate_document("v1.3", outcomes=("fail",))
    doc["verdict"] = "promote"
    path = tmp_path / "gate.json"
    text = json.dumps(doc, indent=2)
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if t.strip().startswith('"verdict"'))
    result = cli("report", str(path))
    expected = f"{path}:{line}: verdict: verdict 'promote' disagrees with its rules (0 pass, 1 fail, 0 inconclusive give 'block')"
    assert result.code == 2 and expected in " ".join(result.stderr.split()), result.output


def _promote_uses_verified_gate() -> bool:
    import inspect

    from releasectl.channels import moves

    return "verified_gate" in inspect.getsource(moves)


@pytest.mark.skipif(
    not _promote_uses_verified_gate(), reason="channels/moves.py does not call verified_gate yet"
)
@pytest.mark.parametrize("bad", ["fail-verdict-promote", "rules-missing", "rules-string"])
def test_promote_refuses_an_inconsistent_gate(cli, example_repo: Path, bad: str) -> None:
    from releasectl.manifest.loader import load_manifest

    digest = load_manifest(example_repo / "releases" / "v1.3.yaml").digest
    doc = gate_document("v1.3", manifest_digest=digest, outcomes=("pass", "fail"))
    doc["verdict"] = "promote"
    if bad == "rules-missing":
        doc = {k: v for k, v in gate_document("v1.3", manifest_digest=digest).items() if k != "rules"}
    elif bad == "rules-string":
        doc = {**gate_document("v1.3", manifest_digest=digest), "rules": "all 12 rules pass"}
    path = example_repo / "runs" / "v1.3" / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    result = cli("promote", "v1.3", "--to", "staging", cwd=example_repo)
    assert result.code == 2 and str(path) in result.stderr, result.output
    assert "v1.3" not in (example_repo / "releases" / "channels.yaml").read_text()


# --- schemas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("artifact", ["run", "results", "gate", "canary"])
def test_schema_of_each_artifact_validates_what_releasectl_writes(cli, tmp_path: Path, artifact: str) -> None:
    import jsonschema

    result = cli("schema", "--artifact", artifact)
    assert result.code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    run = write_run(tmp_path / "run", "v1.3", [GOOD])
    rules = tmp_path / "p.rules"
    rules.write_text("aggregate.success@1.point >= 0\n")
    assert cli("gate", "--run", str(run), "--rules", str(rules)).code == 0
    instance = {
        "run": json.loads((run / "run.json").read_text()),
        "results": GOOD,
        "gate": json.loads((run / "gate.json").read_text()),
        "canary": {"metrics": {"safety_incidents": {"value": 0, "n": 10}}},
    }[artifact]
    jsonschema.validate(instance, schema)
    wrong = {"run": "gpus", "results": "passed", "gate": "verdict", "canary": "metrics"}[artifact]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**instance, wrong: "yes"}, schema)
