"""The rules language: every rule of SPEC §6 parses, errors point at columns, fuzzing is clean."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasectl.errors import BadInput
from releasectl.gate.rules import Comparison, NoRegressions, parse_rule, parse_rules, validate_rules

SPEC_RULES = [
    "aggregate.success@1.lower_ci >= 0.82",
    "no_regressions_on: ['headache_redflags', 'debug_search_api']",
    "rule_violation_rate(headache_redflags).point <= 0.05",
    "format_pass_rate(math_basic, tag='<answer>').lower_ci >= 0.98",
    "delta.success@1{division_hard}.point >= 0.07",
    "delta.success@1{division_hard}.p_value < 0.05",
    "delta.success@1(division_hard).p_value < 0.05",
    "api_version_match_rate(debug_search_api, '3.2.1').lower_ci >= 0.98",
    "steps_to_solve_median(debug_search_api).point <= 5",
    "latency_p95_ms.point <= 900",
    "cost_per_1k_tokens_usd.point <= 0.020",
    "canary.safety_incidents.count == 0",
    "canary.abandon_rate.point <= 0.05       # measure of helpfulness from user behavior",
    "math_correct_rate(math_basic).lower_ci >= 0.98",
    "tool_call_correctness.schema(debug_search_api).lower_ci >= 0.99",
    "pass_rate(math_basic, 'answer_tag').point >= 0.9",
    "success@1{math_basic}.point >= baseline.success@1{math_basic}.point - 0.02",
    "latency_p95_ms.point <= baseline.latency_p95_ms.point * 1.20",
    "error_rate.point <= baseline.error_rate.point + 0.005",
]
SLICES = {"headache_redflags", "debug_search_api", "math_basic", "division_hard"}


@pytest.mark.parametrize("text", SPEC_RULES)
def test_spec_rules_parse(text):
    rule = parse_rule(text)
    assert isinstance(rule, Comparison | NoRegressions)


def test_parsed_structure():
    r = parse_rule("format_pass_rate(math_basic, tag='<answer>').lower_ci >= 0.98")
    assert r.left.name == "format_pass_rate" and r.left.slice == "math_basic"
    assert r.left.kwargs == (("tag", "<answer>"),) and r.left.field == "lower_ci"
    d = parse_rule("delta.success@1{division_hard}.p_value < 0.05")
    assert (d.left.namespace, d.left.name, d.left.slice, d.left.field) == (
        "delta",
        "success@1",
        "division_hard",
        "p_value",
    )
    t = parse_rule("tool_call_correctness.schema(debug_search_api).lower_ci >= 0.99")
    assert t.left.name == "tool_call_correctness.schema"


def test_syntax_error_has_a_caret_at_the_column():
    with pytest.raises(BadInput) as err:
        parse_rules("success@1.point >= 0.5\nlatency_p95_ms.point <=> 900\n", source="p.rules")
    p = err.value.problems[0]
    assert (p.file, p.line, p.col) == ("p.rules", 2, 24)  # the stray ">" after "<="
    assert "latency_p95_ms.point <=> 900\n" + " " * 4 + " " * 23 + "^" in p.hint


def test_unknown_metric_and_slice_suggest_nearest():
    rules = parse_rules(
        "lantency_p95_ms.point <= 900\nsuccess@1(math_basik).point >= 0.5\n", source="p.rules"
    )
    problems = validate_rules(rules, slices=SLICES)
    assert "did you mean 'latency_p95_ms'" in problems[0].hint
    assert "did you mean 'math_basic'" in problems[1].hint
    assert (problems[1].line, problems[1].col) == (2, 1)


def test_include_and_cycles(tmp_path):
    (tmp_path / "a.rules").write_text("include: b.rules\nlatency_p95_ms.point <= 900\n")
    (tmp_path / "b.rules").write_text("success@1.point >= 0.5\n")
    from releasectl.gate.rules import parse_rules_file

    assert len(parse_rules_file(tmp_path / "a.rules")) == 2
    (tmp_path / "b.rules").write_text("include: a.rules\n")
    with pytest.raises(BadInput, match="rule error"):
        parse_rules_file(tmp_path / "a.rules")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_arbitrary_text_gives_only_clean_errors(text):
    try:
        parse_rules(text, source="fuzz.rules")
    except BadInput as e:
        assert e.problems and all(p.line for p in e.problems)


ALPHABET = st.sampled_from(list("(){}[].,'\"=<>!@#+-*/ 0123456789_abcxyz") + ["\n", "\t", "é", "\x00"])


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(SPEC_RULES),
    st.integers(min_value=0, max_value=80),
    st.integers(min_value=0, max_value=4),
    st.lists(ALPHABET, max_size=4),
)
def test_fuzz_mutated_rules_give_only_clean_errors(rule, pos, cut, insert):
    mutated = rule[:pos] + "".join(insert) + rule[pos + cut :]
    try:
        parse_rules(mutated, source="fuzz.rules")
    except BadInput as e:
        assert e.problems


# --- metric signatures (issue 13 red team): an argument the gate would not read is an error -----


@pytest.mark.parametrize(
    ("text", "col", "words"),
    [
        ("success@1(a, zz).point >= 0", 14, ["success@1 takes 1 positional", "'zz' is one too many"]),
        ("pass@k(b, k=1, k=5).point >= 0.9", 16, ["k= is given twice"]),
        ("pass@k(b, k=5, k=1).point >= 0.9", 16, ["k= is given twice"]),
        ("pass@k(b, 'nonexistent', k=5).point >= 0", 11, ["'nonexistent' is one too many"]),
        ("success@1(b, k=5).point >= 0", 14, ["success@1 has no argument k=", "takes no keyword"]),
        ("latency_p95_ms(a, k=2).point >= 0", 19, ["latency_p95_ms has no argument k="]),
        ("success@1(b, slice=a).point >= 0", 14, ["no argument slice=", "the slice is positional"]),
        ("aggregate.pass@k(b, k=5).point >= 0", 18, ["aggregate.pass@k pools every case and takes no slice"]),
        ("aggregate.success@1(b).point >= 0", 21, ["takes no slice"]),
        ("cost_per_1k_tokens_usd(a).point <= 1", 24, ["cost_per_1k_tokens_usd takes 0 positional"]),
        ("canary.error_rate(a).point <= 1", 19, ["canary.error_rate takes 0 positional"]),
        ("pass_rate(b).point >= 0", 1, ["pass_rate needs its verifier"]),
        ("pass@k(b).point >= 0", 1, ["pass@k needs k=, a positive integer"]),
        ("pass@k(b, k=0).point >= 0", 11, ["needs k, a positive integer", "k=0"]),
        ("pass@k(b, k=-1).point >= 0", 11, ["needs k, a positive integer", "k=-1"]),
        ("pass^k(b, k=2.5).point >= 0", 11, ["needs k, a positive integer", "k=2.5"]),
        ("format_pass_rate(a, tag='x', tag='y').point >= 0", 30, ["tag= is given twice"]),
        ("delta.success@1(a).point >= 0.1 + pass@k(a, k=1, z=3).point", 50, ["pass@k has no argument z="]),
    ],
)
def test_arguments_outside_a_metrics_signature_are_errors_at_their_column(text, col, words):
    with pytest.raises(BadInput) as err:
        parse_rules(f"# policy\n{text}\n", source="p.rules")
    (p,) = err.value.problems
    assert (p.file, p.line, p.col) == ("p.rules", 2, col), p
    rendered = p.render()
    for w in words:
        assert w in rendered, (w, rendered)
    assert p.expected and p.found, p  # what the metric takes, and what was written
    assert rendered.endswith("^") and "; \n" not in rendered  # a caret, never an empty hint


def test_a_negative_k_parse_error_is_no_longer_an_empty_hint():
    with pytest.raises(BadInput) as err:
        parse_rules("latency_p95_ms.point <=> 900\n", source="p.rules")
    assert "; here:\n" in err.value.problems[0].render()


@pytest.mark.parametrize(
    "text",
    SPEC_RULES
    + [
        "pass@k(math_basic, k=5).lower_ci >= 0.6",
        "aggregate.pass^k(k=3).point >= 0.8",
        "delta.pass@k{division_hard, k=5}.p_value < 0.05",
    ],
)
def test_every_documented_rule_fits_its_signature(text):
    assert parse_rules(text + "\n", source="p.rules")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("delta.success@1(s).point >= " + "-" * 5_000 + "0.1", "nested 5002 levels deep"),
        ("latency_p95_ms.point <= 0" + " + 1" * 1_500, "levels deep"),
        ("latency_p95_ms.point <= 1" + " * 1" * 1_500 + " * baseline.latency_p95_ms.point", "levels deep"),
        ("aggregate.success@1.lower_ci >= " + "(" * 100_000 + "0.5" + ")" * 100_000, "characters long"),
        ("no_regressions_on: [" + ", ".join(f"'s{i}'" for i in range(5_000)) + "]", "characters long"),
    ],
)
def test_rules_too_deep_or_too_long_are_errors_at_their_line_not_crashes(text, words):
    """A rule nested thousands of levels (signs, operators) used to exhaust Python's recursion
    when it was built, and a 200,000-character rule to overflow gate.json's bounds: both were
    "internal error". Each is a rule error at its line, with the bound."""
    with pytest.raises(BadInput) as err:
        parse_rules("latency_p95_ms.point <= 900\n" + text + "\n", source="p.rules")
    (p,) = err.value.problems
    assert (p.file, p.line) == ("p.rules", 2) and words in p.message
    assert len(p.hint or "") < 1_000  # the caret line quotes the start of the rule, not all of it


def test_the_cli_reports_a_deep_rule_as_exit_2(cli, tmp_path):
    from runfactory import case_row, write_run

    rows = [case_row(f"c{i}", "s", {"v": (True, "format")}) for i in range(3)]
    cand, base = write_run(tmp_path / "c", "v2", rows), write_run(tmp_path / "b", "v1", rows)
    rules = tmp_path / "deep.rules"
    rules.write_text("latency_p95_ms.point <= " + "-" * 3_000 + "900\n")
    r = cli(
        "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--format", "json"
    )
    assert r.code == 2 and "internal error" not in r.output
    assert f"{rules}:1:1" in r.output or r.json()["problems"][0]["line"] == 1
