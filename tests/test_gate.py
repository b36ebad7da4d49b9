"""The gate: the seed's example promotes, statistics match scipy, outcomes and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runfactory import case_row, runtime_block, write_run
from scipy.stats import binomtest

REPO = Path(__file__).resolve().parent.parent
DEV_TO_STAGING = REPO / "checklists" / "policies" / "dev_to_staging.rules"


def seed_runs(tmp_path: Path, *, violations: int = 10) -> tuple[Path, Path]:
    """Runs whose slice rates match seed 001's "Example Results Table".

    Sizes are chosen so the seed's CI rules can pass at the seed's rates: a Wilson lower bound
    >= 0.98 at a point estimate of 0.993 needs n of about 600 or more, and >= 0.99 at 0.999 about
    700, so math_basic and debug_search_api have 1,000 cases; headache_redflags and
    division_hard have 200. The seed lists headache violations as 0.06 but its own rule caps them
    at 0.05; with 0.06 the rule fails (see test below), so this example uses 0.05 (10 of 200).
    """
    cand, base = [], []
    # headache_redflags: success 0.31 -> 0.84; rule violations 0.62 -> 0.05
    for i in range(200):
        cid = f"headache_redflags-{i:04d}"
        c_rule, c_q = (True, True) if i < 168 else ((False, True) if i < 168 + violations else (True, False))
        b_rule, b_q = (True, True) if i < 62 else ((False, True) if i < 62 + 124 else (True, False))
        cand.append(
            case_row(
                cid,
                "headache_redflags",
                {"urgent_referral": (c_rule, "rule"), "referral_quality": (c_q, "quality")},
                latency_ms=880,
            )
        )
        base.append(
            case_row(
                cid,
                "headache_redflags",
                {"urgent_referral": (b_rule, "rule"), "referral_quality": (b_q, "quality")},
                latency_ms=700,
            )
        )
    # math_basic: success 0.97 -> 0.993; <answer> tag 0.985 -> 0.997
    for i in range(1000):
        cid = f"math_basic-{i:04d}"
        c_tag, c_ok = (True, True) if i < 993 else ((True, False) if i < 997 else (False, False))
        b_tag, b_ok = (True, True) if i < 970 else ((True, False) if i < 985 else (False, False))
        cand.append(
            case_row(
                cid,
                "math_basic",
                {"answer_tag": (c_tag, "format"), "math_correct": (c_ok, "correctness")},
                latency_ms=880,
            )
        )
        base.append(
            case_row(
                cid,
                "math_basic",
                {"answer_tag": (b_tag, "format"), "math_correct": (b_ok, "correctness")},
                latency_ms=700,
            )
        )
    # division_hard: 0.41 -> 0.52 with 12 cases lost and 34 gained (paired)
    for i in range(200):
        cid = f"division_hard-{i:04d}"
        b_ok = i < 82
        c_ok = (i >= 12 and i < 82) or (82 <= i < 82 + 34)
        cand.append(
            case_row(cid, "division_hard", {"numeric_tolerance": (c_ok, "correctness")}, latency_ms=880)
        )
        base.append(
            case_row(cid, "division_hard", {"numeric_tolerance": (b_ok, "correctness")}, latency_ms=700)
        )
    # debug_search_api: 0.71 -> 0.88; schema 0.999, API v3.2.1 match 0.99; 3 steps
    for i in range(1000):
        cid = f"debug_search_api-{i:04d}"
        if i < 880:
            c = (True, True, True)
        elif i < 890:
            c = (False, True, True)
        elif i < 891:
            c = (True, False, True)
        else:
            c = (True, True, False)
        if i < 710:
            b = (True, True, True)
        elif i < 810:
            b = (False, True, True)
        elif i < 815:
            b = (True, False, True)
        else:
            b = (True, True, False)
        names = ("api_version_match", "tool_call_schema", "unit_tests")
        cand.append(
            case_row(
                cid,
                "debug_search_api",
                {n: (ok, "tool") for n, ok in zip(names, c, strict=True)},
                latency_ms=880,
                steps=3,
            )
        )
        base.append(
            case_row(
                cid,
                "debug_search_api",
                {n: (ok, "tool") for n, ok in zip(names, b, strict=True)},
                latency_ms=700,
                steps=6,
            )
        )
    tokens = 50 * len(cand)
    tps = 1.99 * 1000 / (0.019 * 3600)  # cost/1k = $0.019 at $1.99/GPU-hr
    c_dir = write_run(tmp_path / "cand", "v1.3", cand, generation_seconds=tokens / tps)
    b_dir = write_run(tmp_path / "base", "v1.2", base, generation_seconds=tokens / 40)
    return c_dir, b_dir


def gate_json(cli, tmp_path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "gate.json"
    result = cli("gate", *args, "--out", str(out), "--format", "json")
    assert "Traceback" not in result.output
    return result.code, json.loads(out.read_text()) if out.exists() else result.json()


def test_seed_example_promotes(cli, tmp_path):
    c, b = seed_runs(tmp_path)
    code, doc = gate_json(
        cli, tmp_path, "--run", str(c), "--baseline-run", str(b), "--rules", str(DEV_TO_STAGING)
    )
    failing = [(r["rule"], r["detail"]) for r in doc["rules"] if r["outcome"] != "pass"]
    assert doc["verdict"] == "promote", failing
    assert code == 0
    rates = {
        s["slice"]: (s["baseline"]["success_at_1"], s["candidate"]["success_at_1"]) for s in doc["slices"]
    }
    assert rates["headache_redflags"] == pytest.approx((0.31, 0.84))
    assert rates["math_basic"] == pytest.approx((0.97, 0.993))
    assert rates["division_hard"] == pytest.approx((0.41, 0.52))
    assert rates["debug_search_api"] == pytest.approx((0.71, 0.88))
    by_rule = {r["rule"]: r for r in doc["rules"]}
    assert by_rule["latency_p95_ms.point <= 900"]["observed"] == pytest.approx(880)
    assert by_rule["cost_per_1k_tokens_usd.point <= 0.020"]["observed"] == pytest.approx(0.019)
    assert by_rule["delta.success@1(division_hard).point >= 0.07"]["observed"] == pytest.approx(0.11)
    assert len(doc["rules"]) == 12


def test_seed_violation_rate_of_006_fails_the_seed_rule(cli, tmp_path):
    # The seed's table shows violations 0.06 with a check mark, but its rule is <= 0.05.
    c, b = seed_runs(tmp_path, violations=12)
    code, doc = gate_json(
        cli, tmp_path, "--run", str(c), "--baseline-run", str(b), "--rules", str(DEV_TO_STAGING)
    )
    rule = next(r for r in doc["rules"] if r["rule"].startswith("rule_violation_rate"))
    assert rule["observed"] == pytest.approx(0.06) and rule["outcome"] == "fail"
    assert doc["verdict"] == "block" and code == 1


def test_wilson_and_mcnemar_match_scipy(cli, tmp_path):
    c, b = seed_runs(tmp_path)
    _, doc = gate_json(
        cli, tmp_path, "--run", str(c), "--baseline-run", str(b), "--rules", str(DEV_TO_STAGING)
    )
    row = next(s for s in doc["slices"] if s["slice"] == "math_basic")
    ci = binomtest(993, 1000).proportion_ci(confidence_level=0.95, method="wilson")
    assert row["candidate"]["lower_ci"] == pytest.approx(ci.low)
    assert row["candidate"]["upper_ci"] == pytest.approx(ci.high)
    div = next(s for s in doc["slices"] if s["slice"] == "division_hard")
    assert div["discordant"] == {"b": 12, "c": 34}
    assert div["p_value"] == pytest.approx(binomtest(12, 46, 0.5).pvalue)
    # Holm across the 4 shared slices: adjusted >= raw, and the largest raw p is multiplied by 1.
    raws = sorted(s["p_value"] for s in doc["slices"])
    assert all(s["p_value_adjusted"] >= s["p_value"] for s in doc["slices"])
    assert max(s["p_value_adjusted"] for s in doc["slices"]) == pytest.approx(
        max(min(1.0, (4 - i) * p) for i, p in enumerate(raws))
    )


def test_small_slices_are_inconclusive_and_hold(cli, tmp_path):
    rows_c = [case_row(f"s-{i}", "s", {"v": (True, "correctness")}) for i in range(5)]
    rows_b = [case_row(f"s-{i}", "s", {"v": (i < 3, "correctness")}) for i in range(5)]
    rules = tmp_path / "r.rules"
    rules.write_text("success@1(s).lower_ci >= 0.5\nno_regressions_on: ['s']\n")
    code, doc = gate_json(
        cli,
        tmp_path,
        "--run",
        str(write_run(tmp_path / "c", "v1.3", rows_c)),
        "--baseline-run",
        str(write_run(tmp_path / "b", "v1.2", rows_b)),
        "--rules",
        str(rules),
    )
    assert [r["outcome"] for r in doc["rules"]] == ["inconclusive", "inconclusive"]
    assert "5 cases < policy minimum 20" in doc["rules"][0]["detail"]
    assert doc["verdict"] == "hold" and code == 1


def test_interval_straddling_the_threshold_is_inconclusive_not_fail(cli, tmp_path):
    rows = [
        case_row(f"s-{i:03d}", "s", {"v": (i < 27, "correctness")}) for i in range(30)
    ]  # 0.9, CI ~[0.74, 0.97]
    rules = tmp_path / "r.rules"
    rules.write_text(
        "success@1(s).lower_ci >= 0.95\nsuccess@1(s).lower_ci >= 0.99999 # unreachable? no: upper bound < threshold fails\n"
    )
    _, doc = gate_json(
        cli, tmp_path, "--run", str(write_run(tmp_path / "c", "v1.3", rows)), "--rules", str(rules)
    )
    assert doc["rules"][0]["outcome"] == "inconclusive"
    assert doc["rules"][1]["outcome"] == "fail"


def test_relative_rules_against_the_baseline(cli, tmp_path):
    rows_c = [
        case_row(f"s-{i:03d}", "s", {"v": (i < 90, "correctness")}, latency_ms=1100) for i in range(100)
    ]
    rows_b = [
        case_row(f"s-{i:03d}", "s", {"v": (i < 91, "correctness")}, latency_ms=1000) for i in range(100)
    ]
    rules = tmp_path / "r.rules"
    rules.write_text(
        "success@1.point >= baseline.success@1.point - 0.02\n"  # completion >= old - 2 %
        "latency_p95_ms.point <= baseline.latency_p95_ms.point * 1.20\n"  # p95 <= old + 20 %
        "latency_p95_ms.point <= baseline.latency_p95_ms.point * 1.05\n"
    )
    _, doc = gate_json(
        cli,
        tmp_path,
        "--run",
        str(write_run(tmp_path / "c", "v1.3", rows_c)),
        "--baseline-run",
        str(write_run(tmp_path / "b", "v1.2", rows_b)),
        "--rules",
        str(rules),
    )
    assert [r["outcome"] for r in doc["rules"]] == ["pass", "pass", "fail"]
    assert doc["rules"][1]["threshold"] == pytest.approx(1200)


def test_unmatched_cases_are_reported(cli, tmp_path):
    rows_c = [case_row(f"s-{i:03d}", "s", {"v": (True, "correctness")}) for i in range(25)]
    rows_b = [case_row(f"s-{i:03d}", "s", {"v": (True, "correctness")}) for i in range(3, 30)]
    rules = tmp_path / "r.rules"
    rules.write_text("no_regressions_on: ['s']\n")
    _, doc = gate_json(
        cli,
        tmp_path,
        "--run",
        # a candidate missing cases of its suite must say why (here a --limit; else exit 2)
        str(write_run(tmp_path / "c", "v1.3", rows_c, limit=25)),
        "--baseline-run",
        # a baseline without cases the candidate has must say why too (else exit 2: see below)
        str(write_run(tmp_path / "b", "v1.2", rows_b, shard="1/2")),
        "--rules",
        str(rules),
    )
    assert doc["unmatched_cases"]["only_in_candidate"] == ["s-000", "s-001", "s-002"]
    assert len(doc["unmatched_cases"]["only_in_baseline"]) == 5
    assert doc["slices"][0]["n_paired"] == 22


def test_canary_rules_without_data_hold_and_with_data_decide(cli, tmp_path):
    rows = [case_row(f"s-{i:03d}", "s", {"v": (True, "correctness")}) for i in range(25)]
    rules = tmp_path / "r.rules"
    rules.write_text("canary.safety_incidents.count == 0\ncanary.abandon_rate.point <= 0.05\n")
    run = write_run(tmp_path / "c", "v1.3", rows)
    _, doc = gate_json(cli, tmp_path, "--run", str(run), "--rules", str(rules))
    assert doc["verdict"] == "hold"
    canary = tmp_path / "canary.json"
    canary.write_text(
        json.dumps(
            {
                "metrics": {
                    "safety_incidents": {"value": 0, "count": 0, "n": 6000},
                    "abandon_rate": {"value": 0.07, "n": 6000},
                }
            }
        )
    )
    _, doc = gate_json(cli, tmp_path, "--run", str(run), "--rules", str(rules), "--canary", str(canary))
    assert [r["outcome"] for r in doc["rules"]] == ["pass", "fail"]


def test_run_from_another_manifest_is_refused(cli, tmp_path, repo_root):
    rows = [case_row(f"s-{i:03d}", "s", {"v": (True, "correctness")}) for i in range(3)]
    run = write_run(tmp_path / "c", "v1.3", rows, manifest_digest="sha256:" + "9" * 64)
    result = cli(
        "gate",
        str(repo_root / "releases" / "v1.3.yaml"),
        "--run",
        str(run),
        "--out",
        str(tmp_path / "g.json"),
    )
    assert result.code == 2
    assert "different manifest" in result.stderr and "sha256:9999" in result.stderr


def test_bad_rules_file_points_at_line_and_column(cli, tmp_path):
    rows = [case_row("s-1", "s", {"v": (True, "correctness")})]
    rules = tmp_path / "r.rules"
    rules.write_text("# ok\nsuccess@1.point >= 0.5\nlatency_p95_ms.point <=> 3\n")
    result = cli("gate", "--run", str(write_run(tmp_path / "c", "v1.3", rows)), "--rules", str(rules))
    assert result.code == 2
    assert f"{rules}:3:" in result.stderr
    assert "^" in result.stderr


_GOOD = case_row("s-3", "s", {"v": (True, "correctness")})


@pytest.mark.parametrize(
    ("bad_line", "found"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "verifiers"}), "verifiers: Field required"),
        (json.dumps({**_GOOD, "verifiers": {"v": None}}), "verifiers.v: Input should be a valid dictionary"),
        (json.dumps({**_GOOD, "verifiers": [1]}), "verifiers: Input should be a valid dictionary"),
        (json.dumps({**_GOOD, "latency_ms": "fast"}), "latency_ms: Input should be a valid number"),
        (json.dumps({**_GOOD, "case_id": ["s-3"]}), "case_id: Input should be a valid string"),
        ("[1, 2]", "wrong type (expected a JSON object; found [1, 2])"),
        # issue 11: strings and numbers are not bools, bools are not numbers
        (json.dumps({**_GOOD, "passed": "false"}), 'passed: Input should be a valid boolean (found "false")'),
        (json.dumps({**_GOOD, "passed": "yes"}), "passed: Input should be a valid boolean"),
        (json.dumps({**_GOOD, "passed": 1}), "passed: Input should be a valid boolean (found 1)"),
        (
            json.dumps({**_GOOD, "latency_ms": True}),
            "latency_ms: Input should be a valid number (found true)",
        ),
        (
            json.dumps({**_GOOD, "completion_tokens": 1e308}),
            "completion_tokens: Input should be a valid integer",
        ),
        (
            json.dumps({**_GOOD, "prompt_tokens": -1}),
            "prompt_tokens: Input should be greater than or equal to 0",
        ),
        (json.dumps({**_GOOD, "passed": False}), "passed: passed is false but every verifier passed"),
        (
            json.dumps({**_GOOD, "verifiers": {"v": {"passed": False, "kind": "rule", "detail": ""}}}),
            "passed: passed is true but verifier 'v' failed",
        ),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "latency_ms"}), "latency_ms: Field required"),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "output"}), "output: Field required"),
        (
            json.dumps({k: v for k, v in _GOOD.items() if k != "prompt_tokens"}),
            "prompt_tokens: Field required",
        ),
        (json.dumps({**_GOOD, "verifiers": {"v": {"passed": True, "kind": "vibes"}}}), "verifiers.v.kind"),
        (json.dumps({**_GOOD, "verifiers": {"v": {"passed": "true", "kind": "rule"}}}), "verifiers.v.passed"),
        (json.dumps({**_GOOD, "case_id": "x" * 300}), "case_id: String should have at most 256 characters"),
        (json.dumps({**_GOOD, "case_id": "s-1"}), "duplicate case_id 's-1' (first on line 1)"),
    ],
)
def test_a_bad_result_line_is_named_by_file_and_line(cli, tmp_path, bad_line, found):
    rows = [case_row(f"s-{i}", "s", {"v": (True, "correctness")}) for i in (1, 2)]
    run = write_run(tmp_path / "c", "v1.3", rows)
    results = run / "results.jsonl"
    results.write_text(results.read_text() + bad_line + "\n")
    rules = tmp_path / "r.rules"
    rules.write_text("success@1.point >= 0.5\n")
    result = cli("gate", "--run", str(run), "--rules", str(rules), "--out", str(tmp_path / "g.json"))
    assert result.code == 2, result.output
    assert f"{results}:3: {found}" in result.stderr or (
        f"{results}:3" in result.stderr and found in result.stderr
    ), result.stderr
    assert "Traceback" not in result.output


# --- issue 11 §3: a rule that cannot be evaluated, an empty policy, non-finite thresholds -------------


def _small_pair(tmp_path: Path, **cand_run: Any) -> tuple[Path, Path]:
    cand = [
        case_row(f"c-{i}", "division_hard", {"math_correct": (i % 4 != 0, "correctness")}) for i in range(30)
    ]
    base = [
        case_row(f"c-{i}", "division_hard", {"math_correct": (i % 3 != 0, "correctness")}) for i in range(30)
    ]
    base_run = {k[5:]: v for k, v in cand_run.items() if k.startswith("base_")}
    cand_only = {k: v for k, v in cand_run.items() if not k.startswith("base_")}
    return write_run(tmp_path / "cand", "v1.3", cand, **cand_only), write_run(
        tmp_path / "base", "v1.2", base, **base_run
    )


@pytest.mark.parametrize(
    ("rule", "col", "message", "nearest"),
    [
        ("latecny_p95_ms.point <= 900", 1, "unknown metric 'latecny_p95_ms'", "latency_p95_ms"),
        ("delta.success@1{dvision_hard}.point >= 0", 1, "unknown slice 'dvision_hard'", "division_hard"),
        (
            "no_regressions_on: ['dvision_hard']",
            1,
            "no_regressions_on: unknown slice 'dvision_hard'",
            "division_hard",
        ),
        (
            "pass_rate(division_hard, 'math_corect').point >= 0.5",
            1,
            "unknown verifier 'math_corect'",
            "math_correct",
        ),
        ("success@1(divison_hard).lower_ci >= 0.5", 1, "unknown slice 'divison_hard'", "division_hard"),
        ("canary.abandon_rat.value <= 0.1", 1, "unknown metric 'abandon_rat'", "abandon_rate"),
    ],
)
def test_a_rule_naming_an_unknown_name_is_exit_2_with_the_nearest(cli, tmp_path, rule, col, message, nearest):
    cand, base = _small_pair(tmp_path)
    rules = tmp_path / "p.rules"
    rules.write_text("# policy\naggregate.success@1.point >= 0.1\n" + rule + "\n")
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert result.code == 2, result.output
    assert f"{rules}:3:{col}: {message}" in result.stderr and f"'{nearest}'" in result.stderr, result.stderr
    assert not (cand / "gate.json").exists()


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   # indented\n# two\n"])
def test_an_empty_policy_is_exit_2(cli, tmp_path, text):
    cand, base = _small_pair(tmp_path)
    rules = tmp_path / "empty.rules"
    rules.write_text(text)
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert result.code == 2 and f"{rules} has no rules" in result.stderr, result.output


@pytest.mark.parametrize(
    ("rule", "col", "message"),
    [
        ("latency_p95_ms.point <= 1e999", 25, "1e999 is not a finite number"),
        ("success@1.point >= nan", 20, "nan is not a finite number"),
        ("latency_p95_ms.point <= inf", 25, "inf is not a finite number"),
        ("latency_p95_ms.point <= -1e400", 26, "1e400 is not a finite number"),
    ],
)
def test_non_finite_thresholds_are_refused_at_line_and_column(cli, tmp_path, rule, col, message):
    cand, base = _small_pair(tmp_path)
    rules = tmp_path / "p.rules"
    rules.write_text("aggregate.success@1.point >= 0.1\n" + rule + "\n")
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert result.code == 2, result.output
    assert f"{rules}:2:{col}: {message}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("run_fields", "field", "found"),
    [
        ({"gpus": 0}, "gpus", "0"),
        ({"gpus": -2}, "gpus", "-2"),
        ({"gpus": True}, "gpus", "true"),
        ({"gpus": 1.5}, "gpus", "1.5"),
        ({"gpu_hourly_usd": -1.99}, "gpu_hourly_usd", "-1.99"),
        ({"gpu_hourly_usd": "1.99"}, "gpu_hourly_usd", '"1.99"'),
        ({"gpu_hourly_usd": 1e300}, "gpu_hourly_usd", "1e+300"),
        ({"generation_seconds": -3.0}, "generation_seconds", "-3.0"),
        ({"cases": False}, "cases", "false"),
        ({"engine": "hf"}, "engine", '"hf"'),
    ],
)
def test_a_run_json_that_would_fake_the_cost_rule_is_exit_2(cli, tmp_path, run_fields, field, found):
    cand, base = _small_pair(tmp_path, **run_fields)
    rules = tmp_path / "p.rules"
    rules.write_text("cost_per_1k_tokens_usd.point <= 0.02\n")
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert result.code == 2, result.output
    assert f"{cand / 'run.json'}:1: {field}:" in result.stderr and f"found {found}" in result.stderr, (
        result.stderr
    )


def test_run_json_with_nan_is_exit_2(cli, tmp_path):
    cand, base = _small_pair(tmp_path)
    (cand / "run.json").write_text((cand / "run.json").read_text().replace('"gpus": 1', '"gpus": NaN'))
    rules = tmp_path / "p.rules"
    rules.write_text("success@1.point >= 0.1\n")
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert result.code == 2 and str(cand / "run.json") in result.stderr, result.output


# --- issue 10 §3: like with like ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cand_run", "base_run", "field", "cand_value", "base_value"),
    [
        ({"engine": {"name": "vllm", "version": "0.32.0"}}, {}, "engine.name", "vllm", "hf"),
        (
            {"engine": {"name": "hf", "version": "5.23.0"}},
            {"engine": {"name": "hf", "version": "5.19.0"}},
            "engine.version",
            "5.23.0",
            "5.19.0",
        ),
        (
            {"device": "NVIDIA H100 80GB HBM3"},
            {"device": "NVIDIA A10G"},
            "device",
            "NVIDIA H100 80GB HBM3",
            "NVIDIA A10G",
        ),
        (
            {"runtime": runtime_block(torch="2.13.0+cpu")},
            {"runtime": runtime_block(torch="2.12.1+cpu")},
            "runtime.torch",
            "2.13.0+cpu",
            "2.12.1+cpu",
        ),
        (
            {"runtime": runtime_block(cpu_isa="AVX512")},
            {"runtime": runtime_block(cpu_isa="AVX2")},
            "runtime.cpu_isa",
            "AVX512",
            "AVX2",
        ),
    ],
)
def test_runs_on_different_runtimes_are_not_paired(
    cli, tmp_path, cand_run, base_run, field, cand_value, base_value
):
    cand, base = _small_pair(tmp_path, **cand_run, **{f"base_{k}": v for k, v in base_run.items()})
    rules = tmp_path / "p.rules"
    rules.write_text("success@1.point >= 0.1\n")
    args = ("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    refused = cli(*args)
    assert refused.code == 2, refused.output
    err = " ".join(refused.stderr.split())
    assert str(cand / "run.json") in err and str(base / "run.json") in err, err
    assert f"{field}: candidate '{cand_value}', baseline '{base_value}'" in err, err
    assert "--allow-mismatched-runtime" in err
    allowed = cli(*args, "--allow-mismatched-runtime", "--out", str(tmp_path / "g.json"), "--format", "json")
    assert allowed.code == 0, allowed.output
    recorded = json.loads((tmp_path / "g.json").read_text())["provenance"]["runtime_mismatch"]
    assert {"field": field, "candidate": cand_value, "baseline": base_value} in recorded
    report = cli("report", str(tmp_path / "g.json"))
    assert report.code == 0
    head = report.stdout.split("### Rules")[0]  # near the verdict, above the rule table
    assert "Runtime mismatch" in head and f"candidate **{cand_value.replace('_', chr(92) + '_')}**" in head, (
        head
    )


def test_a_run_from_another_harness_without_runtime_is_compared_on_engine_and_device(cli, tmp_path):
    cand, base = _small_pair(tmp_path, runtime=runtime_block())  # the baseline has no runtime block
    rules = tmp_path / "p.rules"
    rules.write_text("success@1.point >= 0.1\n")
    result = cli(
        "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--format", "json"
    )
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["provenance"]["runtime_mismatch"] is None


def test_different_suites_name_both_files_and_digests(cli, tmp_path):
    cand, base = _small_pair(tmp_path, suite_digest="a" * 32 + ".dir", base_suite_digest="b" * 32 + ".dir")
    rules = tmp_path / "p.rules"
    rules.write_text("success@1.point >= 0.1\n")
    result = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    err = " ".join(result.stderr.split())
    assert result.code == 2
    assert f"{cand / 'run.json'} has suite_digest {'a' * 32}.dir" in err, err
    assert f"{base / 'run.json'} has suite_digest {'b' * 32}.dir" in err, err


# --- issue 15: gate --junit ---------------------------------------------------------------------------


def test_junit_has_one_testcase_per_rule(cli, tmp_path):
    import xml.etree.ElementTree as ET

    cand, base = _small_pair(tmp_path)
    rules = tmp_path / "p.rules"
    rules.write_text(
        "aggregate.success@1.point >= 0.5\n"  # pass (0.73)
        "latency_p95_ms.point <= 100\n"  # fail (500)
        "success@1{division_hard}.lower_ci >= 0.72\n"  # interval straddles: inconclusive
        "delta.success@1{division_hard}.p_value < 0.05  # <&> in a comment\n"
    )
    junit = tmp_path / "out" / "junit.xml"
    result = cli(
        "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--junit", str(junit)
    )
    assert result.code == 1, result.output
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == rules.read_text().splitlines()  # "<&>" survives escaping
    outcomes = [
        "fail" if c.find("failure") is not None else "skip" if c.find("skipped") is not None else "pass"
        for c in cases
    ]
    assert outcomes == ["pass", "fail", "skip", "fail"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == (
        "4",
        "2",
        "1",
        "0",
    )
    assert "500 <= 100 is false" in cases[1].find("failure").get("message")
    # The common JUnit schema's element order: properties first, then testcases.
    assert [child.tag for child in suite][0] == "properties"
    assert all(set(c.attrib) <= {"name", "classname", "time", "assertions", "status"} for c in cases)


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        ({"safety_incidents": {"value": "0", "n": 6000}}, "metrics.safety_incidents.value"),
        ({"safety_incidents": {"value": True, "n": 6000}}, "metrics.safety_incidents.value"),
        ({"safety_incidents": {"value": 0, "n": -1}}, "metrics.safety_incidents.n"),
        ({"safety_incidents": [0]}, "metrics.safety_incidents"),
        ("none", "metrics"),
    ],
)
def test_mistyped_canary_data_is_exit_2_with_the_field(cli, tmp_path, metrics, field):
    cand, base = _small_pair(tmp_path)
    rules = tmp_path / "p.rules"
    rules.write_text("canary.safety_incidents.value == 0\n")
    canary = tmp_path / "canary.json"
    canary.write_text(json.dumps({"metrics": metrics}, indent=2))
    result = cli("gate", "--run", str(cand), "--rules", str(rules), "--canary", str(canary))
    assert result.code == 2, result.output
    assert f"{canary}:" in result.stderr and f": {field}:" in result.stderr, result.stderr


def test_a_reused_baseline_is_named_in_the_provenance_and_the_report(cli, tmp_path):
    cand, base = _small_pair(tmp_path)
    (base / "reuse.json").write_text(json.dumps({"reused_from": "actions/cache: replay-v1.2-abc123"}))
    rules = tmp_path / "p.rules"
    rules.write_text("aggregate.success@1.point >= 0.1\n")
    _, doc = gate_json(cli, tmp_path, "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert doc["provenance"]["baseline_run"]["reused_from"] == "actions/cache: replay-v1.2-abc123"
    assert "reused_from" not in doc["provenance"]["candidate_run"]
    report = cli("report", str(tmp_path / "gate.json"))
    assert report.code == 0 and "reused from actions/cache: replay-v1.2-abc123" in report.stdout


@pytest.mark.parametrize("same_order", [True, False])
def test_a_case_in_another_slice_than_the_baseline_has_it_is_refused(cli, tmp_path, same_order):
    """Relabelling a candidate row moves its outcome into another slice's pairs: exit 2 naming it."""
    base_rows = [case_row(f"c{i:03d}", "a" if i < 20 else "b", {"v": (True, "correctness")}) for i in range(40)]
    cand_rows = [dict(r) for r in base_rows]
    cand_rows[3] = {**cand_rows[3], "slice": "b"}
    if not same_order:
        cand_rows.reverse()
    rules = tmp_path / "r.rules"
    rules.write_text("no_regressions_on: ['a', 'b']\n")
    r = cli(
        "gate", "--run", str(write_run(tmp_path / "c", "v1.3", cand_rows)),
        "--baseline-run", str(write_run(tmp_path / "b", "v1.2", base_rows)), "--rules", str(rules),
    )  # fmt: skip
    assert r.code == 2, r.output
    assert "case 'c003'" in r.stderr and "slice 'b'" in r.stderr and "slice 'a'" in r.stderr


def test_a_baseline_missing_cases_the_candidate_has_is_refused(cli, tmp_path):
    """Deleting the baseline's rows where it beat the candidate left those losses unpaired, and a
    blocking no_regressions_on passed: a baseline without the candidate's cases must say why."""
    rows_c = [case_row(f"s-{i:03d}", "s", {"v": (i >= 3, "correctness")}) for i in range(30)]
    rows_b = [case_row(f"s-{i:03d}", "s", {"v": (True, "correctness")}) for i in range(30)]
    rules = tmp_path / "r.rules"
    rules.write_text("no_regressions_on: ['s']\n")
    cand, base = write_run(tmp_path / "c", "v1.3", rows_c), write_run(tmp_path / "b", "v1.2", rows_b[3:])
    r = cli("gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules))
    assert r.code == 2 and "the baseline misses 3 case(s)" in r.stderr, r.output
