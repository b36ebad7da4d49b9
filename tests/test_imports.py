"""`releasectl import`: real lm-eval, inspect_ai and promptfoo output becomes a run the gate pairs.

The fixtures under tests/fixtures/imports/ are what the harnesses really wrote
(scripts/make_import_fixtures.py, versions in VERSIONS.json); one test per harness runs it live.
The gate's McNemar p-values and Wilson bounds are checked against scipy computed from each
harness's own per-sample scores, read here independently of the importers.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run_cli

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "imports"
sys.path.insert(0, str(ROOT / "scripts"))
import make_import_fixtures as harnesses  # noqa: E402

COST = ("--gpus", "1", "--gpu-hourly-usd", "2.5")
RULES = "aggregate.success@1.lower_ci >= 0.0\n"


def _import(harness: str, src: Path, out: Path, *extra: str) -> dict[str, Any]:
    r = run_cli("import", harness, str(src), "--out", str(out), *COST, *extra, "--format", "json")
    assert r.code == 0, r.output
    return r.json()


def _gate(tmp: Path, cand: Path, base: Path, *extra: str) -> dict[str, Any]:
    rules = tmp / "rules.txt"
    rules.write_text(RULES)
    r = run_cli(
        "gate",
        "--run",
        str(cand),
        "--baseline-run",
        str(base),
        "--rules",
        str(rules),
        *extra,
        "--format",
        "json",
    )
    assert r.code in (0, 1), r.output
    return json.loads((cand / "gate.json").read_text())


def _check_stats(
    gate: dict[str, Any], cand: dict[str, dict[str, bool]], base: dict[str, dict[str, bool]]
) -> None:
    """gate.json's per-slice Wilson bounds and exact McNemar p-values equal scipy's, computed from
    {slice: {case key: passed}} as the harness scored it."""
    from scipy.stats import binomtest

    assert {s["slice"] for s in gate["slices"]} == set(cand)
    for row in gate["slices"]:
        c, b = cand[row["slice"]], base[row["slice"]]
        assert set(c) == set(b) and row["n_paired"] == len(c)
        k = sum(c.values())
        ci = binomtest(k, len(c)).proportion_ci(confidence_level=0.95, method="wilson")
        assert row["candidate"]["success_at_1"] == pytest.approx(k / len(c))
        assert row["candidate"]["lower_ci"] == pytest.approx(ci.low, abs=1e-9)
        assert row["candidate"]["upper_ci"] == pytest.approx(ci.high, abs=1e-9)
        only_c = sum(c[key] and not b[key] for key in c)
        only_b = sum(b[key] and not c[key] for key in c)
        expected_p = 1.0 if only_c + only_b == 0 else binomtest(only_c, only_c + only_b, 0.5).pvalue
        assert row["p_value"] == pytest.approx(expected_p, abs=1e-12)
        assert sorted(row["discordant"].values()) == sorted([only_c, only_b])


# ---- lm-eval ---------------------------------------------------------------------------------


def _lm_eval_scores(folder: Path) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for f in folder.glob("samples_*.jsonl"):
        for line in f.read_text().splitlines():
            s = json.loads(line)
            task = f.name.removeprefix("samples_").rsplit("_", 1)[0]
            out.setdefault(task, {})[f"{s['doc_id']}:{s['doc_hash']}"] = s["acc"] == 1.0
    return out


def test_lm_eval_two_models_gate_matches_scipy(tmp_path: Path) -> None:
    a = _import("lm-eval", FIX / "lm_eval/smollm2", tmp_path / "a")
    b = _import("lm-eval", FIX / "lm_eval/dummy", tmp_path / "b")
    assert a["format"] == b["format"] == "lm-eval samples with doc_hash"
    assert a["cases"] == b["cases"] == 16
    gate = _gate(tmp_path, tmp_path / "a", tmp_path / "b")
    _check_stats(gate, _lm_eval_scores(FIX / "lm_eval/smollm2"), _lm_eval_scores(FIX / "lm_eval/dummy"))
    run = json.loads((tmp_path / "a/run.json").read_text())
    assert run["engine"] == {"name": "lm-eval", "version": "0.4.13"}
    assert run["import"]["source"]["files"][0]["sha256"]
    assert "latency_ms (written as 0)" in run["import"]["unmapped"]
    assert run["model"]["args"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_lm_eval_samples_without_doc_hash_pair_with_new_ones(tmp_path: Path) -> None:
    """Early 0.4 lines (no doc_hash, prompt_hash, filter, metrics; arguments as a list) import to
    the same case ids: the hash is computed the way lm-eval computes doc_hash."""
    old = tmp_path / "old"
    old.mkdir()
    for f in (FIX / "lm_eval/smollm2").glob("samples_*.jsonl"):
        lines = []
        for line in f.read_text().splitlines():
            s = json.loads(line)
            for key in ("doc_hash", "prompt_hash", "target_hash", "filter", "metrics"):
                s.pop(key)
            s["arguments"] = [[a["arg_0"], a["arg_1"]] for a in s["arguments"].values()]
            lines.append(json.dumps(s))
        (old / f.name).write_text("\n".join(lines) + "\n")
    new = _import("lm-eval", FIX / "lm_eval/smollm2", tmp_path / "new")
    legacy = _import("lm-eval", old, tmp_path / "legacy")
    assert "without doc_hash" in legacy["format"] and new["cases"] == legacy["cases"]
    rows = [
        [json.loads(x) for x in (tmp_path / d / "results.jsonl").read_text().splitlines()]
        for d in ("new", "legacy")
    ]
    assert [(r["case_id"], r["passed"], r["output"]) for r in rows[0]] == [
        (r["case_id"], r["passed"], r["output"]) for r in rows[1]
    ]
    check = run_cli("import", "check", str(tmp_path / "new"), str(tmp_path / "legacy"))
    assert check.code == 0, check.output


def test_lm_eval_live_dummy_model(tmp_path: Path) -> None:
    folder = harnesses.run_lm_eval("dummy", tmp_path / "live", limit=3)
    summary = _import("lm-eval", folder, tmp_path / "run", "--metric", "acc")
    assert summary["cases"] == 6 and summary["harness_version"] == "0.4.13"


# ---- inspect ---------------------------------------------------------------------------------


def _inspect_scores(log: Path) -> dict[str, dict[str, bool]]:
    from inspect_ai.log import read_eval_log

    out: dict[str, dict[str, bool]] = {}
    for s in read_eval_log(str(log)).samples or []:
        ok = all(score.value == "C" for score in (s.scores or {}).values())
        out.setdefault(str((s.metadata or {})["slice"]), {})[f"{s.id}/{s.epoch}"] = ok
    return out


def test_inspect_two_models_gate_matches_scipy(tmp_path: Path) -> None:
    for name in ("careful", "hasty"):
        _import("inspect", FIX / f"inspect/{name}.eval", tmp_path / name, "--slice-from", "metadata.slice")
    gate = _gate(tmp_path, tmp_path / "careful", tmp_path / "hasty")
    _check_stats(
        gate, _inspect_scores(FIX / "inspect/careful.eval"), _inspect_scores(FIX / "inspect/hasty.eval")
    )
    row = json.loads((tmp_path / "hasty/results.jsonl").read_text().splitlines()[0])
    assert set(row["verifiers"]) == {"pattern", "includes"}
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["latency_ms"] > 0
    assert row["case_id"].startswith("core_two_slices/division_hard-001/epoch1#")
    one = _import("inspect", FIX / "inspect/hasty.eval", tmp_path / "one", "--select", "epoch=2")
    assert one["cases"] == 12


def test_inspect_direct_reader_equals_inspect_api(tmp_path: Path) -> None:
    """The .eval zip (zstd) and the older .json log read without inspect_ai give what
    inspect's own read_eval_log gives."""
    from releasectl.imports import inspectai
    from releasectl.imports.common import Choices

    choices = Choices(slice_from="metadata.slice")
    for log in (FIX / "inspect/hasty.eval", FIX / "inspect/hasty.json"):
        api = inspectai.read(log, choices)
        direct = inspectai.read(log, choices, use_inspect=False)

        def key(run: Any) -> list[tuple[Any, ...]]:
            return sorted(
                (c.case_id, c.slice, c.passed, c.output, c.prompt_tokens, c.latency_ms) for c in run.cases
            )

        assert key(api) == key(direct) and len(api.cases) == 24
    eval_run = inspectai.read(FIX / "inspect/hasty.eval", choices)
    json_run = inspectai.read(FIX / "inspect/hasty.json", choices)
    assert [c.case_id for c in eval_run.cases] != [] and sorted(c.case_id for c in eval_run.cases) == sorted(
        c.case_id for c in json_run.cases
    )


def test_inspect_live_mockllm(tmp_path: Path) -> None:
    log = harnesses.run_inspect(tmp_path / "logs", careful=True, limit=2, epochs=1)
    summary = _import(
        "inspect", log, tmp_path / "run", "--slice-from", "metadata.slice", "--scorer", "pattern"
    )
    assert summary["cases"] == 4 and summary["slices"] == {
        "division_hard": {"n": 2, "passed": 2},
        "math_basic": {"n": 2, "passed": 2},
    }


# ---- promptfoo -------------------------------------------------------------------------------


def _promptfoo_scores(results: Path, prompt: str) -> dict[str, dict[str, bool]]:
    doc = json.loads(results.read_text())
    out: dict[str, dict[str, bool]] = {}
    labels = [p["label"] for p in doc["results"]["prompts"]]
    for r in doc["results"]["results"]:
        if labels[r["promptIdx"]] == prompt:
            out.setdefault(r["testCase"]["metadata"]["slice"], {})[str(r["testIdx"])] = r["success"]
    return out


def test_promptfoo_two_templates_gate_matches_scipy(tmp_path: Path) -> None:
    results = FIX / "promptfoo/results.json"
    for label in ("safety", "plain"):
        _import(
            "promptfoo",
            results,
            tmp_path / label,
            "--select",
            f"prompt={label}",
            "--slice-from",
            "metadata.slice",
        )
    gate = _gate(tmp_path, tmp_path / "safety", tmp_path / "plain")
    _check_stats(gate, _promptfoo_scores(results, "safety"), _promptfoo_scores(results, "plain"))
    headache = next(s for s in gate["slices"] if s["slice"] == "headache_redflags")
    assert headache["p_value"] < 0.05  # the safety template helps on this slice, and the gate sees it
    report = run_cli("report", str(tmp_path / "safety/gate.json"))
    assert report.code == 0 and "headache_redflags" in report.stdout, report.output


def test_promptfoo_results_v2_pairs_with_v3(tmp_path: Path) -> None:
    """A v2 document (no testIdx/promptIdx; each result names its prompt) imports to the same
    case ids, the test index then being the order in which a test's vars first appear."""
    doc = json.loads((FIX / "promptfoo/results.json").read_text())
    prompts = doc["results"]["prompts"]
    for r in doc["results"]["results"]:
        prompt = prompts[r.pop("promptIdx")]
        r["prompt"] = {"raw": prompt["raw"], "label": prompt["label"]}
        r.pop("testIdx")
    doc["results"]["version"] = 2
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps(doc))
    _import("promptfoo", FIX / "promptfoo/results.json", tmp_path / "v3run", "--select", "prompt=plain")
    summary = _import("promptfoo", v2, tmp_path / "v2run", "--select", "prompt=plain")
    assert summary["format"] == "promptfoo results v2"
    check = run_cli("import", "check", str(tmp_path / "v3run"), str(tmp_path / "v2run"), "--format", "json")
    assert check.code == 0, check.output


@pytest.mark.skipif(
    not harnesses.PROMPTFOO.exists(), reason="promptfoo not installed (npm ci in tests/harness)"
)
def test_promptfoo_live_echo(tmp_path: Path) -> None:
    results = harnesses.run_promptfoo(tmp_path / "pf", limit=2)
    summary = _import(
        "promptfoo", results, tmp_path / "run", "--select", "prompt=safety", "--slice-from", "metadata.slice"
    )
    assert (
        summary["cases"] == 4
        and summary["harness_version"] == json.loads((FIX / "VERSIONS.json").read_text())["promptfoo"]
    )


# ---- pairing, binding, bad input -------------------------------------------------------------


def test_changed_case_content_does_not_pair(tmp_path: Path) -> None:
    doc = json.loads((FIX / "promptfoo/results.json").read_text())
    for r in doc["results"]["results"]:
        if r["testIdx"] == 0:
            r["vars"]["prompt"] += " (edited)"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    _import("promptfoo", FIX / "promptfoo/results.json", tmp_path / "a", "--select", "prompt=plain")
    _import("promptfoo", edited, tmp_path / "b", "--select", "prompt=plain")
    check = run_cli("import", "check", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json")
    assert check.code == 1 and [d["case"] for d in check.json()["content_differs"]] == ["test0"]
    rules = tmp_path / "r.txt"
    rules.write_text(RULES)
    gate = run_cli(
        "gate", "--run", str(tmp_path / "a"), "--baseline-run", str(tmp_path / "b"), "--rules", str(rules)
    )
    assert gate.code == 2 and "different suites" in gate.output


def test_manifest_binding(example_repo: Path, tmp_path: Path) -> None:
    from releasectl.manifest.digests import sha256_file

    evidence = example_repo / "evals" / "results.json"
    evidence.parent.mkdir()
    shutil.copy2(FIX / "promptfoo/results.json", evidence)
    unpinned = run_cli(
        "import", "promptfoo", str(evidence), "--out", str(tmp_path / "x"), "--select", "prompt=plain",
        "--manifest", str(example_repo / "releases/v1.3.yaml"), cwd=example_repo,
    )  # fmt: skip
    assert unpinned.code == 2 and "does not pin" in unpinned.output and "v1.3.yaml" in unpinned.output
    manifest = example_repo / "releases/v1.3.yaml"
    text = manifest.read_text()
    start = text.index("  suite:\n")
    end = text.index("  training_snapshot:")
    manifest.write_text(
        text[:start]
        + f"  suite:\n    path: evals/results.json\n    sha256: {sha256_file(evidence)}\n"
        + text[end:]
    )
    bound = run_cli(
        "import", "promptfoo", str(evidence), "--out", str(tmp_path / "bound"), "--select", "prompt=plain",
        "--manifest", str(manifest), "--format", "json", cwd=example_repo,
    )  # fmt: skip
    assert bound.code == 0, bound.output
    run = json.loads((tmp_path / "bound/run.json").read_text())
    assert run["release"] == "v1.3" and run["manifest_digest"].startswith("sha256:")
    assert run["import"]["binding"]["field"] == "data.suite" and run["gpus"] >= 1
    _import("promptfoo", evidence, tmp_path / "unbound", "--select", "prompt=plain", "--release", "v1.3")
    rules = tmp_path / "r.txt"
    rules.write_text(RULES)
    ok = run_cli(
        "gate", str(manifest), "--run", str(tmp_path / "bound"), "--rules", str(rules), cwd=example_repo
    )
    assert ok.code in (0, 1), ok.output
    refused = run_cli(
        "gate", str(manifest), "--run", str(tmp_path / "unbound"), "--rules", str(rules), cwd=example_repo
    )
    assert refused.code == 2 and "different manifest" in refused.output
    # promote relies on the bound run's gate; an unbound run's gate (made without the manifest) is refused
    assert json.loads((tmp_path / "bound/gate.json").read_text())["verdict"] == "promote"
    git(example_repo, "commit", "-qam", "v1.3 pins its evidence")
    unbound_gate = run_cli(
        "gate", "--run", str(tmp_path / "unbound"), "--rules", str(rules), cwd=example_repo
    )
    assert unbound_gate.code == 0, unbound_gate.output
    no = run_cli(
        "promote", "v1.3", "--to", "staging", "--gate", str(tmp_path / "unbound/gate.json"), cwd=example_repo
    )
    assert no.code != 0 and "unbound:promptfoo" in no.output
    yes = run_cli(
        "promote", "v1.3", "--to", "staging", "--gate", str(tmp_path / "bound/gate.json"), cwd=example_repo
    )
    assert yes.code == 0, yes.output


def _bad(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("harness", "name", "content", "needle"),
    [
        ("promptfoo", "r.json", '{"results": {"version": 4, "results": []}}', "version 2 or 3"),
        ("promptfoo", "r.json", '{"results": {"version": 3, "results": [{"testIdx": "0", "vars": {}}]}}', "$.results.results[0].testIdx"),
        ("promptfoo", "r.json", '{"results": [1, 2]}', "$.results"),
        ("promptfoo", "r.json", '{"results": {"version": 3, "results": []}', "r.json:1"),
        ("inspect", "log.json", '{"version": 7, "status": "success"}', "format versions 1 and 2"),
        ("inspect", "log.json", '{"version": 2, "status": "started", "eval": {}}', "status"),
        ("lm-eval", "samples_t_2026-01-01T00-00-00.000000.jsonl", '{"doc_id": 0, "filtered_resps": ["x"], "acc": 1.0}\n{"doc_id": 1\n', ":2:"),
        ("lm-eval", "samples_t_2026-01-01T00-00-00.000000.jsonl", '{"doc_id": 0, "filtered_resps": ["x"], "bleu": 0.4}\n', "--threshold bleu="),
        ("lm-eval", "samples_t_2026-01-01T00-00-00.000000.jsonl", '{"doc_id": 0, "filtered_resps": ["x"], "acc": true, "metrics": "acc"}\n', ".metrics"),
        ("lm-eval", "samples_t_2026-01-01T00-00-00.000000.jsonl", '["not", "a", "sample"]\n', "0.4"),
    ],
)  # fmt: skip
def test_bad_input_is_exit_2_with_location(
    tmp_path: Path, harness: str, name: str, content: str, needle: str
) -> None:
    src = _bad(tmp_path, name, content)
    r = run_cli("import", harness, str(src), "--out", str(tmp_path / "out"), *COST)
    assert r.code == 2, r.output
    assert needle in r.output and name in r.output
    assert "Traceback" not in r.output and not (tmp_path / "out/run.json").exists()


def test_thresholds_decide_non_binary_scores(tmp_path: Path) -> None:
    src = _bad(
        tmp_path,
        "samples_t_2026-01-01T00-00-00.000000.jsonl",
        '{"doc_id": 0, "filtered_resps": ["x"], "bleu": 0.4}\n{"doc_id": 1, "filtered_resps": ["y"], "bleu": 0.7}\n',
    )
    summary = _import("lm-eval", src, tmp_path / "out", "--threshold", "bleu=0.5")
    assert summary["slices"] == {"t": {"n": 2, "passed": 1}}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--gpus", "1"), "--gpu-hourly-usd"),
        (("--gpus", "0", "--gpu-hourly-usd", "1"), "at least 1"),
        (("--gpus", "1", "--gpu-hourly-usd", "nan"), "finite"),
        (("--gpus", "1", "--gpu-hourly-usd", "1", "--metric", "acc_typo"), "acc_typo"),
        (("--gpus", "1", "--gpu-hourly-usd", "1", "--threshold", "acc=x"), "NAME=NUMBER"),
        (("--gpus", "1", "--gpu-hourly-usd", "1", "--slice-from", "vars.x"), "--slice-from"),
        (("--gpus", "1", "--gpu-hourly-usd", "1", "--select", "filter=strict"), "no filter named"),
        (("--gpus", "1", "--gpu-hourly-usd", "1", "--select", "prompt=plain"), "means nothing"),
    ],
)
def test_bad_arguments_are_exit_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    r = run_cli("import", "lm-eval", str(FIX / "lm_eval/dummy"), "--out", str(tmp_path / "o"), *args)
    assert r.code == 2 and needle in r.output, r.output


def test_promptfoo_needs_a_selection_and_refuses_a_fifo(tmp_path: Path) -> None:
    import os

    r = run_cli(
        "import", "promptfoo", str(FIX / "promptfoo/results.json"), "--out", str(tmp_path / "o"), *COST
    )
    assert r.code == 2 and "prompt=plain provider=echo" in r.output
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    r = run_cli("import", "promptfoo", str(fifo), "--out", str(tmp_path / "o"), *COST)
    assert r.code == 2 and "fifo.json" in r.output


@pytest.mark.skipif(importlib.util.find_spec("zstandard") is None, reason="zstandard missing")
def test_truncated_eval_log_is_exit_2(tmp_path: Path) -> None:
    data = (FIX / "inspect/hasty.eval").read_bytes()
    cut = _bad(tmp_path, "cut.eval", "")
    cut.write_bytes(data[: len(data) // 2])
    r = run_cli("import", "inspect", str(cut), "--out", str(tmp_path / "o"), *COST)
    assert r.code == 2 and "cut.eval" in r.output


def test_reimport_drops_the_stale_gate_and_out_must_be_a_folder(tmp_path: Path) -> None:
    results = FIX / "promptfoo/results.json"
    _import("promptfoo", results, tmp_path / "a", "--select", "prompt=plain")
    _import("promptfoo", results, tmp_path / "b", "--select", "prompt=safety")
    _gate(tmp_path, tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a/gate.json").exists()
    _import("promptfoo", results, tmp_path / "a", "--select", "prompt=safety")
    assert not (tmp_path / "a/gate.json").exists()
    (tmp_path / "file").write_text("x")
    r = run_cli(
        "import",
        "promptfoo",
        str(results),
        "--select",
        "prompt=plain",
        "--out",
        str(tmp_path / "file"),
        *COST,
    )
    assert r.code == 2 and "not a folder" in r.output


def test_lm_eval_samples_must_be_the_ones_results_json_counts(tmp_path: Path) -> None:
    """A missing, truncated or compressed samples file imported as a smaller suite (exit 0)."""
    import gzip

    src = FIX / "lm_eval" / "smollm2"
    for damage in ("drop a line", "remove a file", "gzip a file"):
        d = tmp_path / damage.replace(" ", "_")
        shutil.copytree(src, d)
        victim = sorted(d.glob("samples_*.jsonl"))[0]
        if damage == "drop a line":
            victim.write_bytes(b"".join(victim.read_bytes().splitlines(keepends=True)[:-1]))
        elif damage == "remove a file":
            victim.unlink()
        else:
            victim.with_suffix(".jsonl.gz").write_bytes(gzip.compress(victim.read_bytes()))
            victim.unlink()
        r = run_cli(
            "import", "lm-eval", str(d), "--out", str(tmp_path / "o"), "--gpus", "1", "--gpu-hourly-usd", "1"
        )
        assert r.code == 2 and "n-samples." in r.stderr and ".effective" in r.stderr, (damage, r.output)
        assert ("gunzip" in r.stderr) == (damage == "gzip a file")
        assert not (tmp_path / "o" / "run.json").exists()


def test_import_refuses_to_write_into_its_own_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FIX / "lm_eval" / "smollm2", src)
    before = sorted(p.name for p in src.iterdir())
    r = run_cli("import", "lm-eval", str(src), "--out", str(src), "--gpus", "1", "--gpu-hourly-usd", "1")
    assert r.code == 2 and "--out" in r.stderr, r.output
    assert sorted(p.name for p in src.iterdir()) == before
