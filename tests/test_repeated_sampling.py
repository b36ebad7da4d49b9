"""Repeated sampling (issue 13 §1): `sampling.n` samples per case, pass@k / pass^k, and statistics
where the case, not the sample, is the unit.

Replays run on tests/fake_engine.py (a hash, not a model: its output depends on each request's
seed, so it checks that every sample gets its own derived seed). The hf engine's per-row sampler
is tested on random logits with torch, without loading a model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngine, replay_on_fake
from runfactory import case_row, write_run

from releasectl.errors import BadInput
from releasectl.gate.stats import mcnemar_exact, wilson_interval
from releasectl.manifest.loader import load_manifest
from releasectl.replay import Shard, run_replay
from releasectl.replay.merge import merge_runs
from releasectl.replay.plan import sample_seed
from releasectl.replay.writer import read_results
from releasectl.stats.cluster import cluster_interval, pass_at_k, pass_hat_k, sign_flip_pvalue

# --- estimators --------------------------------------------------------------------------------


def test_pass_at_k_and_pass_hat_k_equal_the_closed_form_on_hand_computed_cases():
    # n = 5 samples per case, c passes: pass@2 = 1 - C(5-c, 2)/C(5, 2), pass^2 = C(c, 2)/C(5, 2)
    c = np.array([0, 1, 2, 5])
    assert pass_at_k(5, c, 2) == pytest.approx([0.0, 0.4, 0.7, 1.0])  # 1-10/10, 1-6/10, 1-3/10, 1-0
    assert pass_hat_k(5, c, 2) == pytest.approx([0.0, 0.0, 0.1, 1.0])  # 0, 0, 1/10, 10/10
    assert pass_at_k(5, c, 1) == pytest.approx(c / 5)  # k = 1 is the success fraction
    assert pass_at_k(5, c, 5) == pytest.approx([0, 1, 1, 1])  # k = n: any of the n passes
    assert pass_hat_k(5, c, 5) == pytest.approx([0, 0, 0, 1])  # k = n: all n pass
    rng = np.random.default_rng(3)
    for n, k in ((10, 3), (100, 7), (200, 100)):  # Chen et al.'s n = 200 included
        cs = rng.integers(0, n + 1, 50)
        want_at = [1 - math.comb(n - x, k) / math.comb(n, k) for x in cs]
        want_hat = [math.comb(int(x), k) / math.comb(n, k) for x in cs]
        assert pass_at_k(n, cs, k) == pytest.approx(want_at, abs=1e-12)
        assert pass_hat_k(n, cs, k) == pytest.approx(want_hat, abs=1e-12)
    with pytest.raises(ValueError, match="k=6 exceeds"):
        pass_at_k(5, c, 6)


# --- intervals and tests --------------------------------------------------------------------------


def _beta_binomial(rng, draws, cases, n, a, b):
    p = rng.beta(a, b, size=(draws, cases))
    return rng.binomial(n, p)


def test_the_cluster_interval_covers_the_truth_at_its_nominal_level():
    """2,000 simulated suites of 40 cases × 5 samples; each case's pass probability is drawn from
    Beta(2, 1), so a case's samples are correlated (the truth is the mean over cases)."""
    rng = np.random.default_rng(13)
    draws, cases, n, a, b = 2000, 40, 5, 2.0, 1.0
    c = _beta_binomial(rng, draws, cases, n, a, b)
    truth = {
        "success@1": a / (a + b),
        "pass@2": 1 - (b / (a + b)) * ((b + 1) / (a + b + 1)),  # 1 - E[(1-p)^2]
        "pass^2": (a / (a + b)) * ((a + 1) / (a + b + 1)),  # E[p^2]
    }
    values = {"success@1": c / n, "pass@2": pass_at_k(n, c, 2), "pass^2": pass_hat_k(n, c, 2)}
    for name, v in values.items():
        covered = 0
        for row in v:
            lo, hi = cluster_interval(row, 0.95, max_effective=cases * n)
            covered += lo <= truth[name] <= hi
        assert covered / draws >= 0.93, (name, covered / draws)
    # The naive interval, which counts 200 samples as independent, does not hold its level.
    naive = np.mean(
        [lo <= truth["success@1"] <= hi for lo, hi in (wilson_interval(int(x), cases * n) for x in c.sum(1))]
    )
    assert naive < 0.90, naive


def test_the_sign_flip_test_is_exact_mcnemar_with_one_sample_and_exact_on_a_lattice():
    rng = np.random.default_rng(5)
    for _ in range(100):
        b, c, same = (int(x) for x in rng.integers(0, 40, 3))
        d = np.array([-1.0] * b + [1.0] * c + [0.0] * same)
        assert sign_flip_pvalue(d, lattice=1) == pytest.approx(mcnemar_exact(b, c), abs=1e-12)
    # Differences of success fractions over 3 samples: the exact distribution, against brute force.
    d = np.array([1, 2, -1, 3, 1, -2, 1, 1, 0, 2]) / 3
    signs = np.array(np.meshgrid(*[[-1, 1]] * d.size)).reshape(d.size, -1).T
    brute = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))
    assert sign_flip_pvalue(d, lattice=3) == pytest.approx(brute, abs=1e-12)
    # Without the lattice, the Monte Carlo estimate is close to it, and the same every time (fixed seed).
    assert sign_flip_pvalue(d) == sign_flip_pvalue(d)
    assert sign_flip_pvalue(d) == pytest.approx(brute, abs=0.01)
    assert sign_flip_pvalue(np.zeros(5), lattice=3) == 1.0


def test_the_sign_flip_test_holds_alpha_when_the_per_sample_test_does_not():
    """Candidate and baseline are equally good on average but differ per case: the per-sample
    McNemar (n·k pairs as if independent) promotes far too often; the case-level test does not."""
    rng = np.random.default_rng(11)
    releases, cases, n = 400, 60, 10
    promoted_naive = promoted_cases = 0
    for _ in range(releases):
        p_b = rng.beta(1.0, 1.0, cases)
        p_c = np.where(rng.random(cases) < 0.3, p_b, rng.beta(1.0, 1.0, cases))  # exchangeable pair
        cand = rng.random((cases, n)) < p_c[:, None]
        base = rng.random((cases, n)) < p_b[:, None]
        b, c = int(np.sum(base & ~cand)), int(np.sum(~base & cand))
        promoted_naive += c > b and mcnemar_exact(b, c) < 0.05
        d = cand.mean(1) - base.mean(1)
        promoted_cases += d.mean() > 0 and sign_flip_pvalue(d, lattice=n) < 0.05
    assert promoted_cases / releases <= 0.05
    assert promoted_naive / releases > 0.10


# --- replay ----------------------------------------------------------------------------------------


def sampled_manifest(example_repo: Path, n: int = 3, temperature: str = "0.7") -> Path:
    m = example_repo / "releases" / "v1.3.yaml"
    text = m.read_text()
    text = text.replace("  temperature: 0.0\n", f"  temperature: {temperature}\n  n: {n}\n")
    m.write_text(text)
    return m


def test_replay_with_n_3_writes_every_sample_with_its_derived_seed(example_repo, tmp_path):
    loaded = load_manifest(sampled_manifest(example_repo))
    engine = FakeEngine(batch_size=None)
    summary = run_replay(loaded, tmp_path / "r", limit=1, engine_instance=engine)
    rows = read_results(tmp_path / "r" / "results.jsonl")
    ids = sorted({r["case_id"] for r in rows})
    assert len(rows) == 3 * len(ids) == 21
    assert [(r["case_id"], r["sample"]) for r in rows] == [(i, s) for i in ids for s in range(3)]
    for r in rows:
        assert r["seed"] == sample_seed(1234, r["case_id"], r["sample"])
    assert sorted(s for call in engine.seeds_seen for s in call) == sorted(r["seed"] for r in rows)
    outputs = {}
    for r in rows:
        outputs.setdefault(r["case_id"], set()).add(r["output"])
    assert all(len(v) == 3 for v in outputs.values())  # each sample its own seed, its own output
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["sampling"] == {"n": 3, "temperature": 0.7, "seed_derivation": "sha256-uint32-v1"}
    assert run["cases"] == 7 and run["generations"] == 21 and summary.run["cases"] == 7
    assert all(s["samples"] == 3 * s["cases"] for s in summary.slices.values())


@pytest.mark.parametrize("batch_size", [2, None])
def test_sampled_shards_and_resume_equal_one_run(example_repo, tmp_path, batch_size):
    loaded = load_manifest(sampled_manifest(example_repo))
    one = run_replay(loaded, tmp_path / "one", limit=1, engine_instance=FakeEngine(batch_size=batch_size))
    for i in range(2):
        run_replay(
            loaded,
            tmp_path / f"s{i}",
            limit=1,
            shard=Shard(i, 2),
            engine_instance=FakeEngine(batch_size=batch_size),
        )
    merged = merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    assert merged.run["output_digest"] == one.run["output_digest"] and merged.run["generations"] == 21
    out = tmp_path / "partial"
    run_replay(loaded, out, limit=1, engine_instance=FakeEngine(batch_size=batch_size))
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:8]) + lines[8][:30])  # killed mid-write
    (out / "run.json").unlink()
    resumed = run_replay(loaded, out, limit=1, resume=True, engine_instance=FakeEngine(batch_size=batch_size))
    assert resumed.run["output_digest"] == one.run["output_digest"]


def test_one_sample_runs_keep_their_seeds_and_digests(example_repo, tmp_path):
    """n: 1 (the default) replays exactly as before: batch seeds, one row per case."""
    loaded = load_manifest(example_repo / "releases" / "v1.3.yaml")
    engine = FakeEngine(batch_size=3)
    run_replay(loaded, tmp_path / "r", limit=1, engine_instance=engine)
    assert engine.seeds_seen[:3] == [[1234] * 3, [1235] * 3, [1236]]
    rows = read_results(tmp_path / "r" / "results.jsonl")
    assert {r["sample"] for r in rows} == {0} and [r["seed"] for r in rows] == [1234] * 3 + [1235] * 3 + [
        1236
    ]
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["sampling"]["n"] == 1 and run["cases"] == run["generations"] == 7


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ("  n: 3\n", "at temperature 0"),
        ("  n: 0\n", "greater than or equal to 1"),
        ("  n: 101\n", "less than or equal to 100"),
        ('  n: "3"\n', "valid integer"),
        ("  n: true\n", "valid integer"),
    ],
)
def test_a_bad_sampling_n_is_exit_2_at_its_line(cli, example_repo, sampling, message):
    m = example_repo / "releases" / "v1.3.yaml"
    m.write_text(m.read_text().replace("  seed: 1234\n", "  seed: 1234\n" + sampling))
    result = cli("validate", "releases/v1.3.yaml", cwd=example_repo)
    assert result.code == 2, result.output
    line = m.read_text().splitlines().index(sampling.rstrip("\n")) + 1
    assert f"v1.3.yaml:{line}" in result.stderr and message in result.stderr, result.stderr


# --- the gate ------------------------------------------------------------------------------------


def sampled_rows(slice_name: str, passes: list[int], n: int, *, prefix: str = "") -> list[dict]:
    """Rows of cases with `passes[i]` of `n` samples passing (samples 0..passes[i]-1 pass)."""
    rows = []
    for i, c in enumerate(passes):
        for s in range(n):
            row = case_row(f"{prefix}{slice_name}-{i:03d}", slice_name, {"ok": (s < c, "correctness")})
            rows.append({**row, "sample": s, "seed": 100 * i + s})
    return rows


def rules_file(tmp_path: Path, *rules: str) -> Path:
    path = tmp_path / "policy.rules"
    path.write_text("\n".join(rules) + "\n")
    return path


def gate(cli, tmp_path: Path, run: Path, rules: Path, baseline: Path | None = None, fmt: str = "json"):
    """(result, gate.json) of `releasectl gate`; errors are read from text output (fmt="text")."""
    out = tmp_path / "gate.json"
    args = ["gate", "--run", str(run), "--rules", str(rules), "--out", str(out), "--format", fmt]
    if baseline is not None:
        args += ["--baseline-run", str(baseline)]
    result = cli(*args)
    assert "Traceback" not in result.output, result.output
    return result, (json.loads(out.read_text()) if out.exists() and result.code in (0, 1) else None)


def test_the_gate_evaluates_pass_at_k_rules_on_a_sampled_replay(cli, example_repo, tmp_path):
    loaded = load_manifest(sampled_manifest(example_repo))
    run_replay(loaded, tmp_path / "r", engine_instance=FakeEngine(batch_size=None))
    rows = read_results(tmp_path / "r" / "results.jsonl")
    per_case: dict[str, list[bool]] = {}
    for r in rows:
        per_case.setdefault(r["case_id"], []).append(r["passed"])
    c = np.array([sum(v) for v in per_case.values()])
    want = {
        "pass@k": np.mean([1 - math.comb(3 - x, 2) / math.comb(3, 2) for x in c]),
        "pass^k": np.mean([math.comb(int(x), 2) / math.comb(3, 2) for x in c]),
        "success@1": np.mean(c / 3),
    }
    policy = rules_file(
        tmp_path,
        "aggregate.pass@k(k=2).point >= 0",
        "aggregate.pass^k(k=2).upper_ci <= 1",
        "aggregate.success@1.point >= 0",
        "pass@k(k=3).lower_ci >= 0",
    )
    result, doc = gate(cli, tmp_path, tmp_path / "r", policy)
    assert doc is not None, result.output
    observed = {r["rule"]: r for r in doc["rules"]}
    assert observed["aggregate.pass@k(k=2).point >= 0"]["observed"] == pytest.approx(want["pass@k"])
    assert observed["aggregate.pass^k(k=2).upper_ci <= 1"]["n"] == len(per_case)  # n counts cases
    assert observed["aggregate.success@1.point >= 0"]["observed"] == pytest.approx(want["success@1"])
    aggregate = doc["aggregate"]["candidate"]
    assert aggregate["n"] == len(per_case) and aggregate["samples_per_case"] == 3
    assert aggregate["pass_at_k"]["point"] == pytest.approx(np.mean(c > 0))  # pass@3: any of 3
    assert aggregate["pass_hat_k"]["point"] == pytest.approx(np.mean(c == 3))  # pass^3: all 3


def test_sampled_gate_on_constructed_runs_is_per_case(cli, tmp_path):
    # 30 cases × 4 samples: passes per case 0..4 in a fixed pattern; the baseline a little worse.
    cand_c = [4, 4, 3, 2, 0, 1, 4, 3, 4, 2] * 3
    base_c = [4, 3, 2, 2, 0, 0, 4, 3, 3, 2] * 3
    cand = write_run(tmp_path / "c", "v1.3", sampled_rows("s", cand_c, 4), sampling={"n": 4})
    base = write_run(tmp_path / "b", "v1.2", sampled_rows("s", base_c, 4), sampling={"n": 4})
    policy = rules_file(
        tmp_path,
        "delta.success@1(s).point > 0",
        "delta.success@1(s).p_value < 0.05",
        "delta.pass@k(s, k=2).point >= 0",
        "pass^k(s, k=4).point >= baseline.pass^k(s, k=4).point",
    )
    result, doc = gate(cli, tmp_path, cand, policy, baseline=base)
    assert doc is not None, result.output
    rules = {r["rule"]: r for r in doc["rules"]}
    d = (np.array(cand_c) - np.array(base_c)) / 4
    assert rules["delta.success@1(s).point > 0"]["observed"] == pytest.approx(d.mean())
    p = rules["delta.success@1(s).p_value < 0.05"]["observed"]
    assert p == pytest.approx(sign_flip_pvalue(d, lattice=4))  # one slice: Holm leaves it alone
    assert rules["delta.pass@k(s, k=2).point >= 0"]["observed"] == pytest.approx(
        np.mean(pass_at_k(4, np.array(cand_c), 2) - pass_at_k(4, np.array(base_c), 2))
    )
    row = next(s for s in doc["slices"] if s["slice"] == "s")
    assert row["n_paired"] == 30 and row["discordant"] == {"b": 0, "c": 12}  # cases ahead per side
    assert row["paired_test"] == "sign-flip" and row["p_value"] == pytest.approx(p)


@pytest.mark.parametrize(
    ("damage", "line", "message"),
    [
        (lambda rows: rows.__setitem__(2, {**rows[2], "sample": 1}), 3, "duplicate sample 1 of case"),
        (lambda rows: rows.pop(4), 4, "lacks sample(s) 1 of 0..2"),
        (lambda rows: rows.__setitem__(1, {**rows[1], "sample": True}), 2, "sample"),
        (lambda rows: rows.__setitem__(1, {**rows[1], "sample": "1"}), 2, "sample"),
        (lambda rows: rows.__setitem__(1, {**rows[1], "sample": None}), 2, "sample is null"),
        (lambda rows: rows.__setitem__(5, {**rows[5], "sample": 3}), 6, "sample 3 of case"),
        (lambda rows: rows.__setitem__(4, {**rows[4], "slice": "t"}), 5, "in another slice"),
    ],
)
@pytest.mark.parametrize("reader", ["python", "duckdb"])
def test_malformed_sample_rows_are_exit_2_at_file_and_line(
    cli, tmp_path, monkeypatch, damage, line, message, reader
):
    monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
    rows = sampled_rows("s", [3, 1, 2, 0, 3, 2, 1, 1], 3)
    damage(rows)
    run = write_run(tmp_path / "r", "v1.3", rows, sampling={"n": 3})
    result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, "success@1(s).point >= 0"), fmt="text")
    assert result.code == 2, result.output
    assert f"results.jsonl:{line}" in result.stderr and message in result.stderr, result.stderr


def test_samples_per_case_come_from_run_json_when_it_says(cli, tmp_path):
    rows = sampled_rows("s", [2, 1, 2, 0], 2)  # two samples per case, but run.json says three
    run = write_run(tmp_path / "r", "v1.3", rows, sampling={"n": 3})
    result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, "success@1(s).point >= 0"), fmt="text")
    assert result.code == 2 and "lacks sample(s) 2 of 0..2" in result.stderr, result.stderr
    assert "results.jsonl:1:" in result.stderr and "run.json sampling.n" in result.stderr


def test_k_above_the_samples_per_case_is_a_policy_error(cli, tmp_path):
    run = write_run(tmp_path / "r", "v1.3", sampled_rows("s", [2, 1, 3, 0] * 6, 3), sampling={"n": 3})
    policy = rules_file(tmp_path, "# pass@k needs n >= k", "pass@k(s, k=5).lower_ci >= 0.6")
    result, _ = gate(cli, tmp_path, run, policy, fmt="text")
    assert result.code == 2, result.output
    assert "policy.rules:2:1" in result.stderr and "k=5 needs at least 5 samples" in result.stderr
    one = write_run(
        tmp_path / "one", "v1.3", [case_row(f"c{i}", "s", {"ok": (True, "rule")}) for i in range(20)]
    )
    result, _ = gate(
        cli, tmp_path, one, rules_file(tmp_path, "success@1.point >= 0", "pass^k(k=2).point >= 0"), fmt="text"
    )
    assert result.code == 2 and "policy.rules:2:1" in result.stderr and "has 1 (sampling.n)" in result.stderr
    for rule, expected in (
        ("pass@k(s).point >= 0", "needs k"),
        ("pass@3(s).point >= 0", "write pass@k(s, k=3)"),
    ):
        result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, rule), fmt="text")
        assert result.code == 2 and expected in result.stderr, result.stderr


def test_old_results_without_sample_read_as_one_sample_per_case(cli, tmp_path):
    """Rows without `sample` (results from before repeated sampling, or another harness) and the
    same rows with sample 0 gate identically, with the exact Wilson interval and McNemar test."""
    plain = [case_row(f"c{i:02d}", "s", {"ok": (i % 3 != 0, "correctness")}) for i in range(30)]
    base = [case_row(f"c{i:02d}", "s", {"ok": (i % 4 != 0, "correctness")}) for i in range(30)]
    policy = rules_file(
        tmp_path,
        "success@1(s).lower_ci >= 0.3",
        "delta.success@1(s).p_value < 1.1",
        "pass@k(s, k=1).point >= 0",
    )
    docs = []
    for name, rows in (("old", plain), ("new", [{**r, "sample": 0, "seed": 7} for r in plain])):
        c = write_run(tmp_path / name, "v1.3", rows)
        b = write_run(tmp_path / f"{name}-base", "v1.2", base)
        _, doc = gate(cli, tmp_path, c, policy, baseline=b)
        docs.append(doc)
    old, new = ([(r["observed"], r["lower_ci"], r["upper_ci"], r["n"]) for r in d["rules"]] for d in docs)
    assert old == new
    lo, _ = wilson_interval(20, 30)
    assert docs[0]["rules"][0]["lower_ci"] == pytest.approx(lo)
    assert docs[0]["rules"][2]["observed"] == pytest.approx(20 / 30)  # pass@1 is success@1
    # baseline ahead on 3, 6, 9, 15, 18, 21, 27; candidate ahead on 4, 8, 16, 20, 28
    assert docs[0]["slices"][0]["p_value"] == pytest.approx(mcnemar_exact(7, 5))
    assert "samples_per_case" not in docs[0]["aggregate"]["candidate"]


def test_the_report_shows_pass_at_k_for_sampled_runs(cli, tmp_path):
    cand = write_run(tmp_path / "c", "v1.3", sampled_rows("s", [4, 3, 0, 2] * 6, 4), sampling={"n": 4})
    base = write_run(tmp_path / "b", "v1.2", sampled_rows("s", [4, 2, 0, 2] * 6, 4), sampling={"n": 4})
    _, doc = gate(cli, tmp_path, cand, rules_file(tmp_path, "pass@k(s, k=2).point >= 0.5"), baseline=base)
    assert doc is not None
    result = cli("report", str(tmp_path / "gate.json"))
    assert result.code == 0, result.output
    assert "pass@4" in result.stdout and "pass^4" in result.stdout and "sign-flip" in result.stdout
    assert "4 samples per case" in result.stdout


# --- the hf engine's per-row sampler ----------------------------------------------------------------


def test_the_hf_per_row_sampler_draws_from_the_pinned_distribution_by_each_rows_seed():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from releasectl.manifest.models import Sampling
    from releasectl.replay.engines.hf import seeded_sampler

    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=8, seed=1)
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0, 1.5]])

    def draws(seeds, steps, rows=None):
        sampler = seeded_sampler(seeds, sampling)
        batch = logits.repeat(len(seeds), 1) if rows is None else rows
        return torch.stack([torch.argmax(sampler(None, batch.clone()), -1) for _ in range(steps)])

    # Row independence: a row's tokens depend on its own seed, not on its neighbours'.
    assert torch.equal(draws([7, 8], 50)[:, 0], draws([7, 99], 50)[:, 0])
    assert torch.equal(draws([7], 50)[:, 0], draws([3, 7], 50)[:, 1])
    assert not torch.equal(draws([7], 50), draws([8], 50))
    # The draws follow softmax(top_p(logits / T)), as transformers' sampling would.
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    warped = TopPLogitsWarper(0.9)(None, TemperatureLogitsWarper(0.7)(None, logits.clone()))
    expected = torch.softmax(warped, -1)[0].numpy()
    counts = np.bincount(draws([2024], 6000)[:, 0].numpy(), minlength=6) / 6000
    assert counts == pytest.approx(expected, abs=0.02)
    assert counts[expected == 0].sum() == 0  # top-p cut tokens are never drawn


def test_a_bad_sample_row_is_refused_on_resume(example_repo, tmp_path):
    loaded = load_manifest(sampled_manifest(example_repo))
    out = tmp_path / "r"
    run_replay(loaded, out, limit=1, engine_instance=FakeEngine(batch_size=None))
    (out / "run.json").unlink()
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    forged = json.loads(lines[1]) | {"sample": "1"}
    (out / "results.jsonl").write_text(lines[0] + json.dumps(forged) + "\n" + "".join(lines[2:]))
    with pytest.raises(BadInput, match=r"results\.jsonl:2: not a valid results row"):
        run_replay(loaded, out, limit=1, resume=True, engine_instance=FakeEngine(batch_size=None))


def test_both_readers_read_a_sampled_run_the_same(tmp_path, monkeypatch):
    pytest.importorskip("duckdb")
    from releasectl.gate.runs import load_run

    rows = sampled_rows("s", [3, 0, 2, 1] * 5, 3) + sampled_rows("t", [1, 3] * 10, 3)
    order = np.random.default_rng(0).permutation(len(rows))  # samples of a case need not be adjacent
    run = write_run(tmp_path / "r", "v1.3", [rows[i] for i in order], sampling={"n": 3})
    read = {}
    for reader in ("python", "duckdb"):
        monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
        read[reader] = load_run(run)
    py, duck = read["python"], read["duckdb"]
    assert duck.reader == "duckdb", duck.reader_note
    assert py.samples_per_case == duck.samples_per_case == 3 and py.cases == duck.cases
    assert np.array_equal(py.sample, duck.sample) and np.array_equal(py.case_index, duck.case_index)
    assert np.array_equal(py.passed, duck.passed) and py.failing == duck.failing
    assert {e["sample"] for e in py.failing} <= {0, 1, 2}


def test_check_determinism_names_the_differing_sample(example_repo, monkeypatch):
    # A fake engine that answers one (case, sample) differently on its second run: the report
    # must name that sample, not every sample of its case (the determinism check keys on both).
    from conftest import run_cli

    sampled_manifest(example_repo, n=2)
    runs = {"n": 0}

    class Flaky(FakeEngine):
        def generate(self, prompts, sampling, *, seed, seeds=None):
            out = super().generate(prompts, sampling, seed=seed, seeds=seeds)
            if runs["n"] == 2 and seeds is not None and self.flip is None:
                self.flip = seeds[-1]
            if runs["n"] == 2 and seeds is not None and self.flip in seeds:
                i = list(seeds).index(self.flip)
                out[i] = type(out[i])(**{**out[i].__dict__, "text": out[i].text + " (changed)"})
            return out

    def engine(*a, **k):
        runs["n"] += 1
        e = Flaky(batch_size=None)
        e.flip = None
        return e

    replay_on_fake(monkeypatch, engine)
    result = run_cli(
        "replay",
        "releases/v1.3.yaml",
        "--limit",
        "1",
        "--check-determinism",
        "--format",
        "json",
        cwd=example_repo,
    )
    assert result.code == 1, result.output
    differing = result.json()["determinism"]["differing_cases"]
    assert len(differing) == 1 and differing[0].endswith("#1"), differing


# --- red team (issue 13): arguments and fields a metric does not have are exit 2 -------------------


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("success@1(s, zz).point >= 0", ["p.rules:1:14", "'zz' is one too many"]),
        ("pass@k(s, k=1, k=3).point >= 0.99", ["p.rules:1:16", "k= is given twice"]),
        ("pass@k(s, 'nonexistent', k=3).point >= 0", ["'nonexistent' is one too many"]),
        ("aggregate.pass@k(s, k=3).point >= 0", ["takes no slice"]),
        ("pass@k(s, k=0).point >= 0", ["needs k, a positive integer", "rule error"]),
        ("pass@k(s, k=3).count >= 0", ["p.rules:1:16", "pass@k has no field .count", ".lower_ci"]),
        ("delta.success@1(s).lower_ci >= 0", ["p.rules:1:20", "no field .lower_ci", ".p_value"]),
        ("latency_p95_ms(s).upper_ci <= 900", ["no field .upper_ci", "one of .point, .n"]),
    ],
)
def test_extra_arguments_and_missing_fields_are_exit_2_in_the_gate(cli, tmp_path, rule, words):
    cand = write_run(tmp_path / "c", "v1.3", sampled_rows("s", [3] * 30, 3), sampling={"n": 3})
    base = write_run(tmp_path / "b", "t-base", sampled_rows("s", [1] * 30, 3), sampling={"n": 3})
    policy = tmp_path / "p.rules"
    policy.write_text(rule + "\n")
    result, doc = gate(cli, tmp_path, cand, policy, baseline=base, fmt="text")
    assert result.code == 2 and doc is None, result.output
    for w in words:
        assert w in result.stderr, (w, result.stderr)
    assert "inconclusive" not in result.stderr and "the runs do not have" not in result.stderr


def test_validate_refuses_the_same_arguments_as_the_gate(cli, example_repo):
    """validate's checklist item 2 fails on the rule (exit 1, as every failed check), at its line."""
    policy = example_repo / "checklists" / "policies" / "dev_to_staging.rules"
    policy.write_text(policy.read_text() + "pass@k(math_basic, k=1, k=5).point >= 0.5\n")
    line = len(policy.read_text().splitlines())
    result = cli("validate", "releases/v1.3.yaml", "--format", "json", cwd=example_repo)
    assert result.code == 1, result.output
    checks = {c["id"]: c for i in result.json()["items"] for c in i["checks"]}
    assert checks["promotion_policies_parse"]["status"] == "fail"
    # twice: staging_to_production.rules includes dev_to_staging.rules
    p = next(p for p in checks["promotion_policies_parse"]["problems"] if "given twice" in p["message"])
    assert p["line"] == line and p["col"] == 25 and p["file"].endswith("dev_to_staging.rules"), p


# --- red team (issue 13): seeds, row shapes and run.json's sampling block --------------------------


def derived_rows(passes: list[int], n: int, seed: int = 1234) -> list[dict]:
    """Rows as replay writes them: every sample's seed is `sample_seed(seed, case, sample)`."""
    return [{**r, "seed": sample_seed(seed, r["case_id"], r["sample"])} for r in sampled_rows("s", passes, n)]


DERIVED = {"n": 3, "temperature": 0.7, "seed_derivation": "sha256-uint32-v1"}


@pytest.mark.parametrize("reader", ["python", "duckdb"])
def test_rows_whose_seed_is_not_the_derived_one_are_exit_2(cli, tmp_path, monkeypatch, reader):
    """Every sample with seed 42 (an engine that ignores the derivation would look the same):
    identical samples inflate pass^k, so the gate must not promote `pass^k(s, k=3)`."""
    monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
    policy = rules_file(tmp_path, "pass^k(s, k=3).point >= 0.9")
    good = write_run(tmp_path / "good", "v1.3", derived_rows([3] * 25, 3), sampling=DERIVED)
    result, doc = gate(cli, tmp_path, good, policy)
    assert result.code == 0 and doc["verdict"] == "promote", result.output  # derived seeds: accepted
    same = [{**r, "seed": 42} for r in derived_rows([3] * 25, 3)]
    run = write_run(tmp_path / "same", "v1.3", same, sampling=DERIVED)
    result, doc = gate(cli, tmp_path, run, policy, fmt="text")
    assert result.code == 2 and doc is None, result.output
    want = sample_seed(1234, "s-000", 0)
    assert "results.jsonl:1: seed: sample 0 of case 's-000' has seed 42" in result.stderr, result.stderr
    assert f"expected {want}; found 42" in result.stderr
    one_off = derived_rows([3] * 25, 3)
    one_off[7] = {**one_off[7], "seed": one_off[7]["seed"] + 1}  # a single wrong seed, line 8
    missing = derived_rows([3] * 25, 3)
    del missing[4]["seed"]  # line 5
    for name, rows, line in (("off", one_off, 8), ("missing", missing, 5)):
        run = write_run(tmp_path / name, "v1.3", rows, sampling=DERIVED)
        result, _ = gate(cli, tmp_path, run, policy, fmt="text")
        assert result.code == 2 and f"results.jsonl:{line}: seed:" in result.stderr, result.stderr


def test_a_seed_derivation_without_a_run_seed_or_unknown_is_exit_2(cli, tmp_path):
    policy = rules_file(tmp_path, "success@1(s).point >= 0")
    run = write_run(tmp_path / "r", "v1.3", derived_rows([2] * 20, 3), sampling=DERIVED)
    doc = json.loads((run / "run.json").read_text())
    del doc["seed"]
    (run / "run.json").write_text(json.dumps(doc, indent=2))
    result, _ = gate(cli, tmp_path, run, policy, fmt="text")
    assert result.code == 2 and "records no run seed" in result.stderr, result.stderr
    assert "run.json:" in result.stderr
    for derivation in ("sha256-uint32-v2", "none", ""):
        run = write_run(
            tmp_path / f"d{derivation}",
            "v1.3",
            derived_rows([2] * 20, 3),
            sampling={**DERIVED, "seed_derivation": derivation},
        )
        result, _ = gate(cli, tmp_path, run, policy, fmt="text")
        assert result.code == 2 and "sampling.seed_derivation" in result.stderr, result.stderr
        assert "sha256-uint32-v1" in result.stderr and "batch" in result.stderr


@pytest.mark.parametrize("reader", ["python", "duckdb"])
@pytest.mark.parametrize("which", ["first_without", "first_with"])
def test_rows_with_and_without_sample_in_one_file_are_exit_2(cli, tmp_path, monkeypatch, reader, which):
    monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
    rows = sampled_rows("s", [3, 1, 2, 0, 3, 2, 1, 1], 3)
    if which == "first_without":
        rows[0] = {k: v for k, v in rows[0].items() if k != "sample"}  # reads as sample 0 of s-000
        line = 2
    else:
        rows[5] = {k: v for k, v in rows[5].items() if k != "sample"}
        line = 6
    run = write_run(tmp_path / "r", "v1.3", rows, sampling={"n": 3})
    result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, "success@1(s).point >= 0"), fmt="text")
    assert result.code == 2, result.output
    assert f"results.jsonl:{line}: sample:" in result.stderr and "the first row (line 1)" in result.stderr


def test_both_readers_refuse_a_mixed_file_identically(tmp_path, monkeypatch):
    pytest.importorskip("duckdb")
    from releasectl.gate.runs import load_run

    rows = sampled_rows("s", [3, 1, 2, 0] * 5, 3)
    rows[9] = {k: v for k, v in rows[9].items() if k != "sample"}
    run = write_run(tmp_path / "r", "v1.3", rows, sampling={"n": 3})
    messages = []
    for reader in ("python", "duckdb"):
        monkeypatch.setenv("RELEASECTL_GATE_READER", reader)
        with pytest.raises(BadInput) as err:
            load_run(run)
        messages.append([p.render() for p in err.value.problems])
    assert messages[0] == messages[1] and "results.jsonl:10:" in messages[0][0]


@pytest.mark.parametrize("extra", [{"evil": 1}, {"seed_derivaton": "sha256-uint32-v1"}, {"N": 3}])
def test_an_unknown_key_in_run_json_sampling_is_exit_2(cli, tmp_path, extra):
    run = write_run(tmp_path / "r", "v1.3", sampled_rows("s", [2] * 20, 3), sampling={"n": 3, **extra})
    result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, "success@1(s).point >= 0"), fmt="text")
    key = next(iter(extra))
    assert result.code == 2 and f"sampling.{key}: Extra inputs are not permitted" in result.stderr, (
        result.stderr
    )


@pytest.mark.parametrize(("top_k", "refused"), [("1", True), ("2", False), ("-1", False)])
def test_top_k_1_with_several_samples_is_refused_as_greedy(cli, example_repo, top_k, refused):
    """top_k: 1 keeps only the most likely token: n samples are one greedy completion n times,
    at any temperature, exactly as temperature 0 (refused for n > 1)."""
    m = example_repo / "releases" / "v1.3.yaml"
    text = m.read_text().replace("  temperature: 0.0\n", f"  temperature: 0.7\n  top_k: {top_k}\n")
    m.write_text(text.replace("  seed: 1234\n", "  seed: 1234\n  n: 3\n"))
    result = cli("validate", "releases/v1.3.yaml", cwd=example_repo)
    line = m.read_text().splitlines().index("  n: 3") + 1
    if refused:
        assert result.code == 2, result.output
        assert f"v1.3.yaml:{line}" in result.stderr and "top_k: 1" in result.stderr, result.stderr
    else:
        assert "top_k" not in result.stderr and "greedy" not in result.stderr, result.output


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("sample", "1" + "0" * 30, ["integer in range", "expected an integer in 0..999; found 1" + "0" * 30]),
        ("sample", "1000", ["less than 1000", "expected an integer in 0..999; found 1000"]),
        ("sample", "-1", ["greater than or equal to 0", "expected an integer in 0..999; found -1"]),
        ("sample", "1.5", ["valid integer", "expected an integer in 0..999; found 1.5"]),
        ("seed", "1" + "0" * 40, ["integer in range", "0..1000000000000000; found 1" + "0" * 40]),
        (
            "completion_tokens",
            "1" + "0" * 30,
            ["integer in range", "0..1000000000000000; found 1" + "0" * 30],
        ),
    ],
)
def test_an_integer_out_of_range_says_the_bound_and_the_number_as_written(cli, tmp_path, field, value, words):
    rows = sampled_rows("s", [3, 1, 2, 0], 3)
    run = write_run(tmp_path / "r", "v1.3", rows, sampling={"n": 3})
    lines = (run / "results.jsonl").read_text().splitlines()
    doc = json.loads(lines[1])
    doc[field] = 0
    lines[1] = json.dumps(doc).replace(f'"{field}": 0', f'"{field}": {value}')
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    result, _ = gate(cli, tmp_path, run, rules_file(tmp_path, "success@1(s).point >= 0"), fmt="text")
    assert result.code == 2 and f"results.jsonl:2: {field}:" in result.stderr, result.output
    for w in words:
        assert w in result.stderr, (w, result.stderr)
    assert "e+" not in result.stderr  # never the float the JSON reader made of it


def test_no_regressions_counts_cases_not_samples(cli, tmp_path):
    cand = write_run(tmp_path / "c", "v1.3", sampled_rows("s", [3] * 30, 5), sampling={"n": 5})
    base = write_run(tmp_path / "b", "t-base", sampled_rows("s", [3] * 30, 5), sampling={"n": 5})
    result, doc = gate(cli, tmp_path, cand, rules_file(tmp_path, "no_regressions_on: [s]"), baseline=base)
    assert doc is not None, result.output
    assert doc["rules"][0]["n"] == 30 and doc["rules"][0]["outcome"] == "pass"
