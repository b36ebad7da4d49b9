"""The DuckDB reader (`production.fastscan`) must give exactly what the Python reader gives:
same records, same malformed lines with the same numbers, same sums, windows, topics and
percentiles. Each test reads the same real file both ways (real DuckDB, real orjson)."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasectl.errors import BadInput
from releasectl.monitoring import fastscan
from releasectl.monitoring import stats as stats_mod
from releasectl.monitoring.sketch import QuantileSketch
from releasectl.monitoring.stats import COUNT_FIELDS, SAMPLE_SIZE, SUM_FIELDS, LogStats, scan

LOGS = Path(__file__).resolve().parent.parent / "examples" / "logs"


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def assert_same(fast: LogStats, slow: LogStats) -> None:
    assert fast.reader == "duckdb", fast.reader_note
    assert slow.reader == "python"
    assert fast.requests == slow.requests
    assert fast.malformed.to_dict() == slow.malformed.to_dict()
    for name in COUNT_FIELDS:
        assert getattr(fast, name) == getattr(slow, name), name
    for name in SUM_FIELDS:
        assert close(getattr(fast, name), getattr(slow, name)), name
    assert fast.error_kinds == slow.error_kinds
    assert fast.topics == slow.topics
    assert (fast.first_ts, fast.last_ts) == (slow.first_ts, slow.last_ts)
    a, b = fast.latency, slow.latency
    assert (a.count, a.exact) == (b.count, b.exact)
    if a.count:
        assert (a.min, a.max) == (b.min, b.max) and close(a.total, b.total)
        for q in (0.0, 0.5, 0.95, 0.99, 1.0):
            assert close(a.quantile(q), b.quantile(q)), q
    assert fast.windows.keys() == slow.windows.keys()
    for start, w in slow.windows.items():
        v = fast.windows[start]
        assert (v.requests, v.satisfaction_n, v.proxy_n) == (w.requests, w.satisfaction_n, w.proxy_n), start
        assert close(v.satisfaction_sum, w.satisfaction_sum)
        assert v.proxy_sum.keys() == w.proxy_sum.keys()
        assert all(close(v.proxy_sum[k], w.proxy_sum[k]) for k in w.proxy_sum)
    assert len(fast.sample_lengths) == len(slow.sample_lengths) == min(slow.requests, SAMPLE_SIZE)
    if slow.requests <= SAMPLE_SIZE:  # both samples are then the whole log
        assert sorted(fast.sample_lengths) == sorted(slow.sample_lengths)
        assert sorted(fast.sample_prompts) == sorted(slow.sample_prompts)
        assert sorted(map(repr, map(float, fast.sample_latency))) == sorted(
            map(repr, map(float, slow.sample_latency))
        )


def both(path: Path) -> tuple[LogStats, LogStats]:
    return scan(path, engine="duckdb"), scan(path, engine="python")


def same_outcome(path: Path) -> None:
    """Both readers give the same statistics, or both refuse the log with the same message
    (a log of which no line is a record is "no data", exit 2, in either reader)."""
    outcomes = []
    for engine in ("duckdb", "python"):
        try:
            outcomes.append(scan(path, engine=engine))
        except BadInput as e:
            outcomes.append(e.message)  # type: ignore[arg-type]
    fast, slow = outcomes
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
    else:
        assert_same(fast, slow)


@pytest.mark.parametrize(
    "name",
    [
        "prod.jsonl",
        "reward_collapse.jsonl",
        "feedback.jsonl",
        "baseline.jsonl.gz",
        "drifted.jsonl.gz",
        "canary.jsonl.gz",
    ],
)
def test_every_example_log_reads_the_same(name, tmp_path):
    path = LOGS / name
    if name.endswith(".gz"):  # DuckDB reads plain files; gzip stays on the streaming path
        plain = tmp_path / name.removesuffix(".gz")
        with gzip.open(path, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        path = plain
    assert_same(*both(path))


def rec(**fields: Any) -> str:
    base = {
        "timestamp": "2026-11-20T01:02:03Z",
        "prompt": "Where is my order?",
        "output": "It ships tomorrow.",
        "prompt_tokens": 150,
        "tokens_generated": 20,
        "response_time_ms": 812.5,
        "error": None,
        "user_satisfaction": 4,
        "topic": "shipping",
        "reward_score": 0.7,
    }
    base.update(fields)
    return json.dumps(base)


HOSTILE = [
    rec(),
    rec(),  # an exact duplicate
    '{"response_time_ms": NaN, "topic": "x"}',
    '{"response_time_ms": 5, "topic": "x",}',
    '{"response_time_ms": [1, 2, ], "topic": "x"}',
    '{"response_time_ms": nan}',
    '{"response_time_ms": -Infinity}',
    '{"response_time_ms": 1e400}',
    '{"tokens_generated": -1e999}',
    rec(response_time_ms="812"),
    rec(response_time_ms=True),
    rec(user_satisfaction="5"),
    rec(timeout="yes"),
    rec(timeout=1),
    rec(timeout=True, error=None),
    rec(error="timeout"),
    rec(error=True),
    rec(error=0),
    rec(error={"code": 500}),
    rec(error=["x"]),
    rec(error=""),
    rec(error="None"),
    rec(error="upstream_5xx"),
    rec(error=False, expected_format="json", output='{"a": 1}'),
    rec(expected_format="json", output='{"a": NaN}'),
    rec(expected_format="json", output="[1, 2,]"),
    rec(expected_format="json", output="1e400"),
    rec(expected_format="json", output="NaN"),
    rec(expected_format="json", output=""),
    rec(expected_format="json", output='  {"a": 1}  '),
    rec(expected_format="json", output='{"a": '),
    rec(expected_format="json", output=5),
    rec(expected_format="json", output={"a": 1}),
    rec(expected_format="json", output=None),
    rec(expected_format="json", output="[" * 1100 + "]" * 1100),
    rec(expected_format="JSON", output="{"),
    rec(expected_format=True),
    rec(timestamp="2026-11-20 03:04:05"),
    rec(timestamp="2026-11-20T03:04:05+02:00"),
    rec(timestamp="2026-11-20T03:04:05-05:30"),
    rec(timestamp="2026-11-20T03:59:59.999999Z"),
    rec(timestamp="2026-11-20T04:00:00"),
    rec(timestamp="2026-02-30T00:00:00Z"),
    rec(timestamp="1969-12-31T23:00:00Z"),
    rec(timestamp="2026-11-20"),
    rec(timestamp="2026-11-20T05:06Z"),
    rec(timestamp="yesterday"),
    rec(timestamp=""),
    rec(timestamp=1795132800),
    rec(topic=5),
    rec(topic="bíllïng ☃"),
    rec(topic='say "hi"\\now'),
    rec(topic=""),
    rec(topic=None),
    rec(prompt="caf\u00e9 \U0001f600 \\ \t tab"),
    rec(prompt=None),
    rec(prompt=42),
    rec(response_time_ms=0),
    rec(response_time_ms=-5.5),
    rec(response_time_ms=None),
    rec(prompt_tokens=123456789012345678901234567890),
    rec(user_satisfaction=3.5, cost_usd=0.0012, ctr=0.1),
    rec(abandoned=True, safety_incident=True),
    rec(abandoned="true"),
    '{"foo": 1, "foo": 2, "response_time_ms": 7}',
    "[1, 2]",
    "5",
    '"a string"',
    "null",
    "",
    "   ",
    "\t" + rec(),
    " " + rec(),
    rec() + " ",
    rec() + " trailing",
    '{"response_time_ms": 1',
    '{"x": ' + "[" * 1100 + "]" * 1100 + "}",
    "{'single': 'quotes'}",
]


def test_a_hostile_log_reads_the_same(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(HOSTILE) + "\n")
    fast, slow = both(path)
    assert_same(fast, slow)
    assert slow.malformed.count >= 20 and slow.requests >= 40  # the log does exercise both sides


def test_the_two_documented_differences(tmp_path, monkeypatch):
    """JSON that no serializer writes, in ways monitor does not read: orjson refuses the line,
    DuckDB reads it (fastscan's docstring names both)."""
    path = tmp_path / "edge.jsonl"
    path.write_text(
        '{"unread": 1e400, "response_time_ms": 3}\n{"response_time_ms": 3, "response_time_ms": 9}\n'
    )
    ran = _queries(monkeypatch)
    fast, slow = both(path)
    assert ran[-1] == "lines"  # read_json refuses the duplicate key: the exact query decides
    assert (slow.requests, slow.malformed.count) == (1, 1)  # orjson: "number is infinity"
    assert (fast.requests, fast.malformed.count) == (2, 0)
    assert (slow.latency.max, fast.latency.max) == (9, 3)  # orjson keeps the last duplicate, DuckDB the first


def test_crlf_lines_and_a_missing_final_newline_read_the_same(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n".join(line.encode() for line in HOSTILE[:30]) + b"\r\n" + rec().encode())
    assert_same(*both(path))


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "none", "null", "None", "timeout", "json", "x,}", "NaN", "2026-11-20T01:00:00Z"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
)
FIELD_NAMES = [*fastscan.FIELDS, "extra"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=8).map(lambda d: json.dumps(d)),
            st.sampled_from(HOSTILE),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_random_records_read_the_same(tmp_path, lines):
    # json.dumps writes NaN and Infinity for non-finite floats, as Python loggers do.
    path = tmp_path / "random.jsonl"
    path.write_text("\n".join(lines) + "\n")
    same_outcome(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (rec().encode() + b"\r" + rec().encode() + b"\n" + rec().encode() + b"\n", "carriage return"),
        (rec().encode() + b"\x1f\n" + rec().encode() + b"\n", "unit separator"),
        (rec().encode()[:-1] + b'\x00"}\n' + rec().encode() + b"\n", "NUL"),
        (b'{"prompt": "\xff\xfe"}\n' + rec().encode() + b"\n", "DuckDB could not read it"),
    ],
)
def test_what_duckdb_would_split_differently_goes_to_the_python_reader(tmp_path, content, reason):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(content)
    got = scan(path, engine="duckdb")
    assert got.reader == "python" and reason in (got.reader_note or "")
    want = scan(path, engine="python")
    assert (got.requests, got.malformed.to_dict()) == (want.requests, want.malformed.to_dict())


def test_too_many_candidates_go_to_the_python_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(fastscan, "CANDIDATE_CAP", 3)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([rec()] * 5 + ["{bad"] * 4) + "\n")
    got = scan(path, engine="duckdb")
    assert got.reader == "python" and "4 lines need the exact reader" in got.reader_note
    assert got.malformed.count == 4 and got.requests == 5


def test_large_logs_get_the_sketch_and_a_bounded_deterministic_sample(tmp_path, monkeypatch):
    """Above the exact limit both readers keep log buckets, so they estimate the same
    percentiles; the sample is the SAMPLE_SIZE records of smallest hash, the same on every run."""
    monkeypatch.setattr(fastscan, "SAMPLE_SIZE", 50)
    monkeypatch.setattr(QuantileSketch.__init__, "__defaults__", (0.01, 1000))  # exact up to 1,000
    monkeypatch.setattr(fastscan, "_estimate_rows", lambda path: 10**7)  # far off: it reads again
    path = tmp_path / "big.jsonl"
    path.write_text(
        "\n".join(rec(response_time_ms=100 + i * 7.3, tokens_generated=i) for i in range(3000)) + "\n"
    )
    fast, again = scan(path, engine="duckdb"), scan(path, engine="duckdb")
    slow = scan(path, engine="python")
    assert fast.reader == "duckdb" and not fast.latency.exact and not slow.latency.exact
    for q in (0.5, 0.95, 0.99):
        assert fast.latency.quantile(q) == slow.latency.quantile(q)
    assert len(fast.sample_lengths) == 50
    assert fast.sample_lengths == again.sample_lengths
    assert set(fast.sample_lengths) <= set(range(3000))


def test_auto_uses_duckdb_only_for_large_plain_files(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([rec()] * 50) + "\n")
    assert scan(path).reader == "python"
    monkeypatch.setattr(stats_mod, "FAST_MIN_BYTES", 1)
    assert scan(path).reader == "duckdb"
    gz = tmp_path / "log.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert scan(gz).reader == "python"


def test_the_reader_can_be_chosen_by_environment(tmp_path, monkeypatch, cli):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([rec()] * 5) + "\n")
    monkeypatch.setenv("RELEASECTL_LOG_READER", "duckdb")
    assert scan(path).reader == "duckdb"
    r = cli("monitor", "--logs", str(path), env={"RELEASECTL_LOG_READER": "fast"})
    assert r.code == 2 and "expected auto, python or duckdb, found 'fast'" in r.output


def test_monitor_reports_which_reader_ran(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(stats_mod, "FAST_MIN_BYTES", 1)
    r = cli("monitor", "--logs", str(LOGS / "prod.jsonl"), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["reader"] == {"engine": "duckdb", "note": None}
    assert doc["malformed"]["count"] == 4  # the example's malformed lines, found by the candidate pass


def test_duckdb_draws_no_progress_bar_of_its_own():
    """On a terminal DuckDB would draw its bar on stdout, inside `--format json` output."""
    import duckdb

    from releasectl.duckjson import connect

    con = connect(duckdb)
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False


STRICT_CASES = [
    rec(timestamp="9999-12-31T23:59:59Z"),
    rec(timestamp="9998-12-31T23:59:59-05:00"),
    rec(timestamp="1970-01-01T00:00:00Z"),
    rec(timestamp="1969-12-31T23:59:59Z"),
    rec(timestamp="1970-01-01T00:59:59+01:00"),
    rec(timestamp="0000-01-01T00:00:00Z"),
    rec(timestamp="2026-02-29T00:00:00Z"),
    rec(timestamp="2028-02-29T00:00:00+14:00"),
    rec(timestamp=1732107900),
    rec(timestamp=None),
    rec(topic=7),
    rec(topic=None),
    rec(prompt=["x"]),
    rec(output=12),
    rec(output=None),
    rec(expected_format=True),
    rec(expected_format="json", output='{"a": 1}'),
    '{"response_time_ms": 5, "tokens_generated": ' + "9" * 400 + "}",
    '{"response_time_ms": 1e400}',
    '{"topic": "\\ud800"}',
    # Out of the field's range (logs.NUMERIC_RANGES): malformed, never clipped into range.
    rec(user_satisfaction=1000),
    rec(user_satisfaction=0),
    rec(user_satisfaction=-1e308),
    rec(user_satisfaction=5),
    rec(user_satisfaction=1),
    rec(ctr=1.5),
    rec(response_time_ms=-3),
    rec(response_time_ms=0),
    rec(tokens_generated=-1),
    rec(cost_usd=-0.01),
]


@pytest.mark.parametrize("line", STRICT_CASES)
def test_strict_fields_read_the_same(tmp_path, line):
    """Each strict-field case, among good records, gives the same statistics and the same
    malformed lines in both readers."""
    path = tmp_path / "strict.jsonl"
    path.write_text("\n".join([rec(), line, rec(topic="b"), line, rec()]) + "\n")
    fast, slow = both(path)
    assert fast.reader == "duckdb"
    assert_same(fast, slow)


def test_all_strict_cases_together_read_the_same(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text("\n".join(STRICT_CASES * 3) + "\n")
    assert_same(*both(path))


@pytest.mark.parametrize("content", ["", "\n\n", "nope\n", rec(timestamp="9999-12-31T23:59:59Z") + "\n"])
def test_no_record_is_no_data_in_both_readers(tmp_path, content):
    path = tmp_path / "none.jsonl"
    path.write_text(content)
    messages = []
    for engine in ("duckdb", "python"):
        with pytest.raises(BadInput) as info:
            scan(path, engine=engine)
        messages.append(info.value.message)
    assert messages[0] == messages[1] and str(path) in messages[0] and "no data" in messages[0]


def test_an_out_of_range_rating_is_a_malformed_line_not_a_clipped_one(cli, tmp_path):
    path = tmp_path / "ratings.jsonl"
    path.write_text("\n".join([rec(user_satisfaction=1)] * 99 + [rec(user_satisfaction=1000)]) + "\n")
    result = cli("monitor", "--logs", str(path), "--format", "json")
    doc = result.json()
    assert doc["malformed"]["count"] == 1
    assert doc["malformed"]["lines"] == [
        {"line": 100, "reason": "user_satisfaction: expected a number from 1 to 5, found 1000"}
    ]
    assert doc["metrics"]["quality"]["avg_satisfaction"]["value"] == 1.0


def _queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL statements scan_duckdb runs, in order: 'read_json' (the fast query) or 'lines'."""
    ran: list[str] = []
    real = fastscan._run

    def run(duckdb: Any, sql: str, params: dict[str, Any], threads: int | None) -> list[dict[str, Any]]:
        ran.append("read_json" if "read_json(" in sql else "lines")
        return real(duckdb, sql, params, threads)

    monkeypatch.setattr(fastscan, "_run", run)
    return ran


@pytest.mark.parametrize("name", ["prod.jsonl", "reward_collapse.jsonl", "feedback.jsonl"])
def test_a_clean_log_is_decided_by_the_fast_query_alone(name, tmp_path, monkeypatch):
    """read_json with JSON-typed columns, plus msgspec's strict scan of the lines, decide a log
    with no odd line (the example logs without their malformed lines); the result is the
    streaming reader's, sample included."""
    from releasectl.monitoring.logs import Malformed, parse_line

    lines = (LOGS / name).read_bytes().splitlines()
    clean = [
        raw for n, raw in enumerate(lines, 1) if raw.strip() and parse_line(raw, n, Malformed()) is not None
    ]
    assert clean
    path = tmp_path / name
    path.write_bytes(b"\n".join(clean) + b"\n")
    ran = _queries(monkeypatch)
    fast, slow = both(path)
    assert ran == ["read_json"]
    assert_same(fast, slow)


@pytest.mark.parametrize(
    "odd",
    [
        '{"extra": NaN, "response_time_ms": 3}',  # lenient JSON in a field monitor does not read
        '{"extra": [1, 2, ], "response_time_ms": 3}',
        '{"response_time_ms": 3, "extra": "\\ud800"}',
        '{"response_time_ms": 3} {"response_time_ms": 4}',  # two values on a line
        '{"response_time_ms": "812"}',  # a number as a string: JSON-typed, never cast
        '{"response_time_ms": 3, "timeout": "yes"}',
        '[{"response_time_ms": 3}]',
        "7",
        '{"response_time_ms": 3, "topic": 7}',
        '{"timestamp": "2026-02-30T00:00:00Z"}',
        '{"expected_format": "json", "output": "{\\"a\\": NaN}"}',
        '{"response_time_ms": 3',
    ],
)
def test_one_odd_line_sends_the_log_to_the_exact_query(tmp_path, monkeypatch, odd):
    ran = _queries(monkeypatch)
    path = tmp_path / "one_odd.jsonl"
    path.write_text("\n".join([rec(), rec(response_time_ms=900), odd, rec(topic="billing")]) + "\n")
    same_outcome(path)
    assert ran[0] == "read_json" and ran[-1] == "lines", ran


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=8), min_size=1, max_size=30))
def test_random_records_read_the_same_by_either_duckdb_query(tmp_path, records):
    """The exact query (raw lines) and the fast one (read_json) agree with the streaming reader
    on the same records, whichever of them decides."""
    path = tmp_path / "random.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    same_outcome(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastscan, "strict_lines", lambda path: False)  # as if a line were lenient
        same_outcome(path)
