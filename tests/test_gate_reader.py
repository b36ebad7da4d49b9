"""The DuckDB results reader (`gate.fastrows`) must give exactly what the Python reader gives:
the same columns, verifier table, failing examples, and, for a file the contract refuses, the
same error (message, file, line, field). Each test reads the same real file both ways (real
DuckDB, real orjson), selected with RELEASECTL_GATE_READER."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasectl.errors import BadInput
from releasectl.gate import runs

RUN = {
    "release": "v2.0",
    "manifest_digest": "sha256:" + "0" * 64,
    "suite_digest": "s.dir",
    "engine": {"name": "hf", "version": "x"},
    "device": "cpu",
    "cases": 1,
    "generation_seconds": 1.0,
    "gpus": 1,
    "gpu_hourly_usd": 2.0,
    "output_digest": "x",
}
COLUMNS = ("slice_idx", "passed", "rule_ok", "format_ok", "latency_ms", "completion_tokens", "prompt_tokens")


def row(i: int, **over: Any) -> dict[str, Any]:
    ok = i % 3 != 0
    out: dict[str, Any] = {
        "case_id": f"c{i}",
        "slice": f"s{i % 4}",
        "passed": ok and i % 5 != 0,
        "verifiers": {
            "correct": {"passed": ok, "kind": "correctness", "detail": "" if ok else f"wrong {i}"},
            "tag": {"passed": i % 5 != 0, "kind": "format" if i % 2 else "rule"},
        },
        "output": f"answer {i}",
        "prompt_tokens": 10 + i,
        "completion_tokens": 20 + i,
        "latency_ms": 100.5 + i,
        "steps": None if i % 2 else i,
    }
    out.update(over)
    return out


def line(r: Any) -> bytes:
    return orjson.dumps(r) + b"\n"


def good_lines(n: int) -> list[bytes]:
    return [line(row(i)) for i in range(n)]


def write(tmp_path: Path, body: bytes) -> Path:
    d = tmp_path / "run"
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps(RUN))
    (d / "results.jsonl").write_bytes(body)
    return d


def read(d: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> runs.RunData | dict[str, Any]:
    monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
    try:
        return runs.load_run(d)
    except BadInput as e:
        return e.to_dict()


def same(
    d: Path, monkeypatch: pytest.MonkeyPatch, *, fast: bool | None = None
) -> runs.RunData | dict[str, Any]:
    """Read `d` both ways and assert they agree; `fast`: whether DuckDB must have read it itself."""
    slow = read(d, "python", monkeypatch)
    quick = read(d, "duckdb", monkeypatch)
    if isinstance(slow, dict):
        assert quick == slow
        return slow
    assert isinstance(quick, runs.RunData), quick
    assert slow.reader == "python"
    if fast is not None:
        assert (quick.reader == "duckdb") is fast, quick.reader_note
    assert quick.case_ids == slow.case_ids
    assert quick.slices == slow.slices
    for name in COLUMNS:
        a, b = getattr(quick, name), getattr(slow, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(quick.steps, slow.steps, equal_nan=True)
    assert list(quick.verifier_pass) == list(slow.verifier_pass)
    for name, arr in slow.verifier_pass.items():
        assert np.array_equal(quick.verifier_pass[name], arr), name
    assert quick.failing == slow.failing
    assert quick.failing_total == slow.failing_total
    return slow


def test_plain_file_is_read_by_duckdb_with_the_same_columns(tmp_path, monkeypatch):
    data = same(write(tmp_path, b"".join(good_lines(50))), monkeypatch, fast=True)
    assert isinstance(data, runs.RunData) and data.n == 50 and data.failing_total > 0


def test_more_failing_cases_than_examples_kept(tmp_path, monkeypatch):
    lines = [
        line(row(i, passed=False, verifiers={"v": {"passed": False, "kind": "rule"}})) for i in range(700)
    ]
    data = same(write(tmp_path, b"".join(lines)), monkeypatch, fast=True)
    assert isinstance(data, runs.RunData) and len(data.failing) == runs.MAX_EXAMPLES
    assert data.failing_total == 700


VALID_ODD = {
    "unicode escape in output": line(row(1, output="caf\u00e9")).replace("caf\u00e9".encode(), b"caf\\u00e9"),
    "escaped quote in case id": line(row(1, case_id='c"1')),
    "non-ascii names": line(
        row(1, slice="é", passed=True, verifiers={"ünï": {"passed": True, "kind": "quality", "detail": "ok"}})
    ),
    "extra fields with passed inside": line(row(1, extra={"passed": 1, "kind": [1, {"detail": None}]})),
    "detail says passed": line(
        row(1, passed=False, verifiers={"v": {"passed": False, "kind": "tool", "detail": "passed"}})
    ),
    "no verifiers": line(row(1, passed=True, verifiers={})),
    "integer latency, ttft, exponent": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{},'
    b'"output":"","prompt_tokens":0,"completion_tokens":-0,"latency_ms":1E2,"ttft_ms":5,"steps":null}\n',
    "leading and trailing spaces": b"  " + line(row(1))[:-1] + b"  \n",
    "verifier with extra keys": line(
        row(1, passed=True, verifiers={"v": {"passed": True, "kind": "rule", "weight": 2, "Passed": False}})
    ),
    "upper-case extra key": line(row(1, Passed=False, CASE_ID="x")),
    "max lengths": line(row(1, case_id="c" * 256, slice="é" * 256)),
    "bounds": line(row(1, prompt_tokens=10**15, latency_ms=1e12, steps=10**15, ttft_ms=0)),
}


@pytest.mark.parametrize("name", list(VALID_ODD))
def test_valid_rows_that_duckdb_sets_aside_read_the_same(tmp_path, monkeypatch, name):
    lines = good_lines(30)
    lines[7] = VALID_ODD[name].replace(b'"c1"', b'"odd"', 1)
    data = same(write(tmp_path, b"".join(lines)), monkeypatch, fast=True)
    assert isinstance(data, runs.RunData), data


LAYOUTS = {
    "blank lines": lambda ls: b"\n" + b"".join(ls[:5]) + b"\n\n   \n" + b"".join(ls[5:]) + b"\n",
    "CRLF": lambda ls: b"".join(x[:-1] + b"\r\n" for x in ls),
    "CRLF blank lines": lambda ls: (
        b"\r\n" + b"".join(x[:-1] + b"\r\n" for x in ls[:4]) + b"\r\n" + b"".join(ls[4:])
    ),
    "torn last line": lambda ls: b"".join(ls)[:-1],
    "tab before newline": lambda ls: b"".join(x[:-1] + b"\t\n" for x in ls),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_line_layouts_keep_line_numbers(tmp_path, monkeypatch, name):
    lines = good_lines(40)
    lines[30] = line(row(30, passed=True))  # refused: a verifier failed; named by its line number
    body = LAYOUTS[name](lines)
    bad = same(write(tmp_path, body), monkeypatch)
    assert isinstance(bad, dict) and bad["exit_code"] == 2 and "passed" in json.dumps(bad)
    lines[30] = line(row(30))
    same(write(tmp_path, LAYOUTS[name](lines)), monkeypatch, fast=True)


BAD = {
    "duplicate passed, last false": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{},"output":"",'
    b'"prompt_tokens":1,"completion_tokens":1,"latency_ms":1,"passed":false}\n',
    "duplicate passed in disguise": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{},"output":"",'
    b'"prompt_tokens":1,"completion_tokens":1,"latency_ms":1,"pa\\u0073sed":false}\n',
    "duplicate verifier passed": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{"v":{"passed":true,'
    b'"kind":"rule","passed":false}},"output":"","prompt_tokens":1,"completion_tokens":1,"latency_ms":1}\n',
    "duplicate verifier kind": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{"v":{"passed":true,'
    b'"kind":"rule","kind":"nope"}},"output":"","prompt_tokens":1,"completion_tokens":1,"latency_ms":1}\n',
    "duplicate verifier name": b'{"case_id":"c1","slice":"s","passed":true,"verifiers":{"v":{"passed":true,'
    b'"kind":"rule"},"v":{"passed":false,"kind":"rule"}},"output":"","prompt_tokens":1,"completion_tokens":1,'
    b'"latency_ms":1}\n',
    "duplicate latency": line(row(1))[:-2] + b',"latency_ms":-1}\n',
    "duplicate steps": line(row(1, steps=2))[:-2] + b',"steps":"x"}\n',
    "NaN latency": line(row(1, latency_ms=1.5)).replace(b"101.5", b"NaN"),
    "Infinity ttft": line(row(1, ttft_ms=1.5)).replace(b'"ttft_ms":1.5', b'"ttft_ms":Infinity'),
    "nan in an extra field": line(row(1, extra=1.5)).replace(b'"extra":1.5', b'"extra":nan'),
    "trailing comma": line(row(1))[:-2] + b",}\n",
    "trailing comma in verifiers": line(row(1)).replace(b'"rule"}}', b'"rule"},}'),
    "huge number": line(row(1, extra=1)).replace(b'"extra":1', b'"extra":1e400'),
    "huge integer": line(row(1, extra=1)).replace(b'"extra":1', b'"extra":' + b"9" * 25),
    "float tokens": line(row(1)).replace(b'"prompt_tokens":11', b'"prompt_tokens":11.0'),
    "bool tokens": line(row(1, prompt_tokens=True)),
    "string tokens": line(row(1, completion_tokens="5")),
    "negative tokens": line(row(1, completion_tokens=-1)),
    "tokens over the cap": line(row(1, prompt_tokens=10**15 + 1)),
    "latency over the cap": line(row(1, latency_ms=1e12 + 1e-3 * 1e12)),
    "negative latency": line(row(1, latency_ms=-0.5)),
    "string latency": line(row(1, latency_ms="5")),
    "bool latency": line(row(1, latency_ms=True)),
    "null latency": line(row(1, latency_ms=None)),
    "missing output": line({k: v for k, v in row(1).items() if k != "output"}),
    "empty case id": line(row(1, case_id="")),
    "long case id": line(row(1, case_id="c" * 257)),
    "long slice in characters": line(row(1, slice="é" * 257)),
    "int case id": line(row(1, case_id=5)),
    "string passed": line(row(1, passed="true")),
    "int passed in verifier": line(row(1, passed=True, verifiers={"v": {"passed": 1, "kind": "rule"}})),
    "unknown kind": line(row(1, passed=True, verifiers={"v": {"passed": True, "kind": "rules"}})),
    "null detail": line(
        row(1, passed=True, verifiers={"v": {"passed": True, "kind": "rule", "detail": None}})
    ),
    "verifier not an object": line(row(1, passed=True, verifiers={"v": True})),
    "verifiers an array": line(row(1, passed=True, verifiers=[])),
    "empty verifier name": line(row(1, passed=True, verifiers={"": {"passed": True, "kind": "rule"}})),
    "passed but a verifier failed": line(row(1, passed=True)),
    "failed but every verifier passed": line(row(1, passed=False, verifiers={})),
    "too many verifiers": line(
        row(1, passed=True, verifiers={f"v{j}": {"passed": True, "kind": "rule"} for j in range(257)})
    ),
    "negative steps": line(row(1, steps=-1)),
    "float steps": line(row(1, steps=1.5)),
    "lone surrogate": line(row(1)).replace(b"answer 1", b"answer \\ud800"),
    "deep nesting": line(row(1, extra=1)).replace(b'"extra":1', b'"extra":' + b"[" * 2000 + b"]" * 2000),
    "array line": b"[1, 2]\n",
    "two objects on a line": line(row(1))[:-1] + line(row(99)),
    "trailing garbage": line(row(1))[:-1] + b" x\n",
    "comment": line(row(1))[:-2] + b"/* c */}\n",
    "invalid utf-8": line(row(1)).replace(b"answer 1", b"answer \xff"),
    "raw tab in a string": line(row(1)).replace(b"answer 1", b"answer\t1"),
    "NUL byte": line(row(1)).replace(b"answer 1", b"answer\x001"),
    "unit separator": line(row(1)).replace(b"answer 1", b"answer\x1f1"),
    "lone carriage return": line(row(1)).replace(b"answer 1", b"answer\r1"),
    "duplicate case id": line(row(3)),
    "not an object": b'"just a string"\n',
}


@pytest.mark.parametrize("name", list(BAD))
def test_refused_rows_are_the_same_error(tmp_path, monkeypatch, name):
    lines = good_lines(30)
    lines[12] = BAD[name]
    bad = same(write(tmp_path, b"".join(lines)), monkeypatch)
    assert isinstance(bad, dict), f"{name}: accepted by both readers"
    assert bad["exit_code"] == 2
    assert "results.jsonl" in json.dumps(bad)


@pytest.mark.parametrize("body", [b"", b"\n\n", b"  \n\t\n"])
def test_a_file_without_results_is_the_same_error(tmp_path, monkeypatch, body):
    bad = same(write(tmp_path, body), monkeypatch)
    assert isinstance(bad, dict) and "no results" in bad["message"]


def test_an_unknown_reader_is_exit_2(tmp_path, monkeypatch):
    bad = read(write(tmp_path, b"".join(good_lines(3))), "spark", monkeypatch)
    assert isinstance(bad, dict) and bad["exit_code"] == 2 and "RELEASECTL_GATE_READER" in bad["message"]


def test_gzip_results_are_read_by_python(tmp_path, monkeypatch):
    import gzip

    d = write(tmp_path, gzip.compress(b"".join(good_lines(20))))
    data = same(d, monkeypatch, fast=False)
    assert isinstance(data, runs.RunData) and data.n == 20


def test_the_cli_gives_the_same_gate_and_errors(cli, tmp_path, monkeypatch):
    body = b"".join(good_lines(60))
    cand, base = write(tmp_path / "c", body), write(tmp_path / "b", body)
    rules = tmp_path / "r.rules"
    rules.write_text("aggregate.success@1.lower_ci >= 0.1\nlatency_p95_ms.point <= 1000\n")
    outs = {}
    for reader in ("python", "duckdb"):
        monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
        out = tmp_path / f"{reader}.json"
        result = cli(
            "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--out", str(out)
        )
        assert result.code == 0, result.stderr
        gate = json.loads(out.read_text())
        gate.pop("created_at")  # the wall clock: two runs may straddle a second
        outs[reader] = gate
    assert outs["python"] == outs["duckdb"]
    (cand / "results.jsonl").write_bytes(body + BAD["duplicate passed, last false"])
    errs = {}
    for reader in ("python", "duckdb"):
        monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
        result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
        assert result.code == 2
        errs[reader] = result.stderr
    assert errs["python"] == errs["duckdb"] and "results.jsonl:61" in errs["python"]


# Hypothesis: rows built from valid ones with random damage, fields and encodings.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["rule", "format", "correctness", "tool", "quality", "", "x" * 257]),
)
_FIELDS = [
    "case_id",
    "slice",
    "passed",
    "output",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "steps",
    "ttft_ms",
]
_RAW = [b"NaN", b"-Infinity", b"1e400", b"-0", b"1.0", b"01", b'"\\ud800"', b"[1,]", b"true", b"null", b"{}"]


@st.composite
def damaged_line(draw: st.DrawFn, i: int) -> bytes:
    r = row(i)
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.integers(0, 4))
        name = draw(st.sampled_from(_FIELDS))
        if kind == 0:
            r[name] = draw(_values)
        elif kind == 1:
            r.pop(name, None)
        elif kind == 2:
            v = draw(st.sampled_from(["correct", "tag", "new"]))
            r["verifiers"].setdefault(v, {"passed": True, "kind": "rule"})[
                draw(st.sampled_from(["passed", "kind", "detail"]))
            ] = draw(_values)
        elif kind == 3:
            r["passed"] = all(v.get("passed") is True for v in r["verifiers"].values())
    text = orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS)
    if draw(st.booleans()) and draw(st.booleans()):
        # a raw literal DuckDB and orjson may read differently, as a field's value or a duplicate key
        raw = draw(st.sampled_from(_RAW))
        key = draw(st.sampled_from([*_FIELDS, "extra"]))
        text = text[:-1] + b',"' + key.encode() + b'":' + raw + b"}"
    return text + b"\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_damaged_files_read_the_same(tmp_path_factory, monkeypatch, data):
    n = data.draw(st.integers(1, 12))
    lines = [
        data.draw(damaged_line(i)) if data.draw(st.integers(0, 3)) == 0 else line(row(i)) for i in range(n)
    ]
    d = write(tmp_path_factory.mktemp("h"), b"".join(lines))
    same(d, monkeypatch)
