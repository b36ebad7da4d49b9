"""Every verifier of the core suite, passing and failing on crafted outputs (scored via score_case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasectl.errors import BadInput
from releasectl.suite import installed_verifiers, load_suite, score_case

SUITE = Path(__file__).resolve().parent.parent / "suites" / "core"
VERSIONS = {name: info.version for name, info in installed_verifiers().items()}


@pytest.fixture(scope="module")
def suite():
    return load_suite(SUITE)


def case(suite, case_id):
    return next(c for c in suite.cases if c.id == case_id)


GOOD_CODE = """Steps:
1. Pin the SDK: `pip install search-sdk==3.2.1` (v3.2.1).
2. Replace the deprecated call with SearchClient.query().
3. Run the tests.

```python
def healthcheck(client):
    return bool(client.query("healthcheck"))
```"""

CASES = [
    # slice case, output, instance, passed
    (
        "headache_redflags-001",
        "Please go to the emergency room now. These symptoms need urgent evaluation.",
        "urgent_referral",
        True,
    ),
    ("headache_redflags-001", "Rest, drink water and take paracetamol.", "urgent_referral", False),
    ("headache_redflags-001", "Seek immediate medical care.", "urgent_referral", True),
    ("headache_redflags-001", "Call 911. " + "word " * 50, "word_cap", True),
    ("headache_redflags-001", "Call 911. " + "word " * 130, "word_cap", False),
    ("headache_redflags-001", "Go to the ER now.", "no_diagnosis", True),
    ("headache_redflags-001", "You probably have meningitis. Go to the ER.", "no_diagnosis", False),
    ("headache_redflags-001", "This sounds like a migraine.", "no_diagnosis", False),
    ("math_basic-001", "8 + 2 - 5 = 5. <answer>5</answer>", "answer_tag", True),
    ("math_basic-001", "The answer is 5.", "answer_tag", False),
    ("math_basic-001", "<answer>five</answer>", "answer_tag", False),
    ("math_basic-001", "<answer>5</answer>", "math_correct", True),
    ("math_basic-001", "<answer>6</answer>", "math_correct", False),
    ("division_hard-001", "23 / 13 = <answer>1.769</answer>", "numeric_tolerance", True),
    ("division_hard-001", "about 1.7692", "numeric_tolerance", True),
    ("division_hard-001", "<answer>1.77</answer>", "numeric_tolerance", False),
    ("division_hard-001", "I don't know", "numeric_tolerance", False),
    ("debug_search_api-001", GOOD_CODE, "api_version_match", True),
    (
        "debug_search_api-001",
        GOOD_CODE.replace("search-sdk==3.2.1", "search-sdk"),
        "api_version_match",
        False,
    ),
    ("debug_search_api-001", "Use the latest SDK: pip install search-sdk==3.1.0", "api_version_match", False),
    ("debug_search_api-001", GOOD_CODE, "no_deprecated_api", True),
    ("debug_search_api-001", "Call SearchClient.legacy_lookup() to verify.", "no_deprecated_api", False),
    ("debug_search_api-001", GOOD_CODE, "unit_tests", True),
    (
        "debug_search_api-001",
        GOOD_CODE.replace('client.query("healthcheck")', 'client.legacy_lookup("healthcheck")'),
        "unit_tests",
        False,
    ),
    ("debug_search_api-001", "No code here.", "unit_tests", False),
    ("debug_search_api-001", GOOD_CODE, "tool_call_schema", True),  # no call, none required
    (
        "debug_search_api-001",
        GOOD_CODE + '\n{"tool": "search_api", "arguments": {"query": ""}}',
        "tool_call_schema",
        False,
    ),
    ("json_output-001", '{"name": "Ana", "age": 34, "city": "Lisbon"}', "json_schema", True),
    ("json_output-001", '{"name": "Ana", "age": "34", "city": "Lisbon"}', "json_schema", False),
    ("json_output-001", 'Here you go: {"name": "Ana"}', "json_schema", False),
    (
        "tool_calls-001",
        '{"tool": "search_api", "arguments": {"query": "rate limit policy", "version": "3.2.1", "limit": 3}}',
        "tool_call_schema",
        True,
    ),
    (
        "tool_calls-001",
        '{"tool": "search_api", "arguments": {"query": "x", "version": "3.1", "limit": 3}}',
        "tool_call_schema",
        False,
    ),
    ("tool_calls-001", '{"tool": "web_search", "arguments": {"query": "x"}}', "tool_call_schema", False),
    ("tool_calls-001", "I would search for it.", "tool_call_schema", False),
]


@pytest.mark.parametrize(("case_id", "output", "instance", "passed"), CASES)
def test_verifier_instances(suite, case_id, output, instance, passed):
    scored = score_case(case(suite, case_id), output, VERSIONS, fixtures_dir=suite.fixtures_dir)
    verdict = scored.verifiers[instance]
    assert verdict["passed"] is passed, verdict
    assert verdict["kind"] in {"rule", "format", "correctness", "tool", "quality"}
    assert verdict["detail"]


def test_language_consistency(suite):
    fr = next(c for c in suite.cases if c.slice == "language_consistency" and c.expected["language"] == "fr")
    ok = score_case(
        fr, "La capitale de l'Italie est Rome. C'est une ville très ancienne et elle est belle.", VERSIONS
    )
    assert ok.verifiers["language_consistency"]["passed"], ok
    wrong = score_case(
        fr, "The capital of Italy is Rome. It is a very old city and it is in the centre.", VERSIONS
    )
    assert not wrong.verifiers["language_consistency"]["passed"]
    mixed = score_case(
        fr,
        "La capitale de l'Italie est Rome et elle est belle. But the food is the best of the world and it is cheap. And the people are the nicest in the area.",
        VERSIONS,
    )
    assert not mixed.verifiers["language_consistency"]["passed"]


def test_steps_and_success(suite):
    scored = score_case(
        case(suite, "debug_search_api-001"), GOOD_CODE, VERSIONS, fixtures_dir=suite.fixtures_dir
    )
    assert scored.passed
    assert scored.steps == 3
    call = '{"tool": "search_api", "arguments": {"query": "q", "version": "3.2.1", "limit": 2}}'
    assert score_case(case(suite, "tool_calls-001"), call + call, VERSIONS).steps == 2


def test_versions_behave_differently():
    from releasectl.suite import registry

    text = "- ok\n- fine\n- 1 2 3"
    settings = registry.get("word_cap", "1.0").settings(max_words=4)
    ctx = registry.VerifyContext({})
    assert not registry.get("word_cap", "1.0").fn(text, settings, ctx).passed  # counts bullets and numbers
    assert registry.get("word_cap", "1.1").fn(text, settings, ctx).passed  # counts words only
    fenced = '```json\n{"a": 1}\n```'
    js = registry.get("json_schema", "1.0").settings.model_validate({"schema": {"type": "object"}})
    assert not registry.get("json_schema", "1.0").fn(fenced, js, ctx).passed
    assert registry.get("json_schema", "1.1").fn(fenced, js, ctx).passed


def test_unpinned_or_uninstalled_version_is_bad_input(suite):
    c = case(suite, "math_basic-001")
    with pytest.raises(BadInput, match="not pinned"):
        score_case(c, "<answer>5</answer>", {k: v for k, v in VERSIONS.items() if k != "answer_tag"})
    with pytest.raises(BadInput, match="not installed"):
        score_case(c, "<answer>5</answer>", {**VERSIONS, "answer_tag": "9.9"})


def test_suite_has_the_seed_slices_with_at_least_20_cases(suite):
    assert {
        "headache_redflags",
        "math_basic",
        "division_hard",
        "debug_search_api",
        "json_output",
        "language_consistency",
    } <= set(suite.slices)
    assert all(info.cases >= 20 for info in suite.slices.values())
    assert suite.digest.endswith(".dir")
    ids = [c.id for c in suite.cases]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_suite_generation_is_deterministic(tmp_path):
    import shutil
    import subprocess
    import sys

    from releasectl.manifest.digests import dvc_md5

    repo = tmp_path / "r"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "scripts" / "make_suite.py", repo / "scripts")
    subprocess.run([sys.executable, str(repo / "scripts" / "make_suite.py")], check=True, capture_output=True)
    assert dvc_md5(repo / "suites" / "core") == dvc_md5(SUITE)


def test_malformed_suite_is_located(tmp_path):
    shutil = __import__("shutil")
    bad = tmp_path / "core"
    shutil.copytree(SUITE, bad)
    with (bad / "slices" / "math_basic.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(BadInput) as err:
        load_suite(bad)
    p = err.value.problems[0]
    assert p.file.endswith("slices/math_basic.jsonl") and p.line == 25


LANG_CASES_V2 = [
    # (expected, output, passes under 2.0)
    ("de", "Die Hauptstadt von Spanien ist Madrid. Sie liegt in der Mitte des Landes.", True),
    ("es", "Llueve porque el vapor de agua se condensa en las nubes y cae en forma de gotas.", True),
    ("pt", "A gravidade é a força que atrai os corpos uns para os outros. Ela mantém a Lua em órbita.", True),
    ("it", "L'arcobaleno nasce quando la luce del sole attraversa le gocce di pioggia.", True),
    ("fr", "Le ciel est bleu parce que l'air diffuse davantage la lumière bleue du soleil.", True),
    ("de", "The capital of Spain is Madrid. It lies in the middle of the country.", False),
    ("es", "Llueve porque el vapor se condensa. Perché le gocce diventano pesanti e cadono giù. Poi scorrono nei fiumi verso il mare.", False),
    ("fr", "Oui.", False),  # too little text to tell
    ("pt", "La gravedad es la fuerza que atrae los cuerpos entre sí y mantiene la Luna en órbita.", False),
]


@pytest.mark.parametrize(("want", "output", "passed"), LANG_CASES_V2)
def test_language_consistency_2_0_on_lingua(want, output, passed):
    from releasectl.suite import registry

    v2 = registry.get("language_consistency", "2.0")
    verdict = v2.fn(output, v2.settings(), registry.VerifyContext({"language": want}))
    assert verdict.passed is passed, verdict
    assert verdict.detail


def test_language_consistency_1_0_stays_installed_and_2_0_is_the_better_one():
    from releasectl.suite import registry

    ctx = registry.VerifyContext({"language": "pt"})
    # Portuguese without the stopwords 1.0 knows: 1.0 cannot tell, lingua can.
    text = "Obrigado pela pergunta. Gravidade atrai todos corpos materiais mutuamente."
    v1, v2 = registry.get("language_consistency", "1.0"), registry.get("language_consistency", "2.0")
    assert not v1.fn(text, v1.settings(), ctx).passed
    assert v2.fn(text, v2.settings(), ctx).passed
    assert installed_verifiers()["language_consistency"].versions == ("1.0", "2.0")


def test_lingua_stays_out_of_cold_imports():
    import subprocess
    import sys

    code = "import releasectl.suite.verifiers.language, sys; print('lingua' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
