"""`releasectl deploy render --target argo`: an Argo Rollouts Rollout, the AnalysisTemplate whose Job
runs `releasectl canary --prometheus`, and the Service, from the pins.

The objects are validated against the real schemas: Argo Rollouts' CRD schemas from its repository
(tests/fixtures/argo/, source commit in the README there) with `jsonschema`, and the Kubernetes
parts (Service, the pod template, the analysis Job) with PyPI `kubernetes-validate`. No cluster:
Argo's controller is not run here (tests/test_prometheus.py runs the rendered Job's command
against a real Prometheus).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "argo"
EXAMPLE = (
    Path(__file__).resolve().parent.parent / "deploy" / "argo" / "production" / "argo" / "llm-production.yaml"
)


def rendered(cli, repo: Path, *args: str) -> tuple[str, dict[str, Any]]:
    result = cli("deploy", "render", "--target", "argo", "--stdout", *args, "--format", "json", cwd=repo)
    assert result.code == 0, result.output
    doc = result.json()
    return doc["files"]["argo/llm-production.yaml"], doc


def objects(text: str) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in yaml.safe_load_all(text)}


def strict(schema: Any) -> Any:
    """The schema as an API server with strict field validation reads it: unknown fields refused
    wherever the structural schema lists properties and does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validators():
    import jsonschema

    validators = {}
    for name in ("rollout", "analysistemplate"):
        doc = json.loads((FIXTURES / f"{name}.schema.json").read_text())
        assert doc["group"] == "argoproj.io" and doc["version"] == "v1alpha1"
        schema = strict(doc["openAPIV3Schema"])
        jsonschema.Draft7Validator.check_schema(schema)
        validators[doc["kind"]] = jsonschema.Draft7Validator(schema)
    return validators


def test_the_committed_example_is_what_render_gives_from_the_pins(cli, repo_root):
    text, doc = rendered(cli, repo_root)
    assert EXAMPLE.read_text() == text, (
        "deploy/argo/ is stale: releasectl deploy render --channel production --target argo --out deploy/argo"
    )
    again, _ = rendered(cli, repo_root)
    assert again == text  # same pins in, the same bytes out
    assert f"releases/{doc['release']}.yaml ({doc['manifest_digest']})" in text.splitlines()[0]


def test_the_argo_objects_validate_against_the_real_schemas(cli, example_repo, crd_validators):
    import kubernetes_validate

    text, _ = rendered(cli, example_repo, "--namespace", "llm")
    found = objects(text)
    assert sorted(found) == ["AnalysisTemplate", "Rollout", "Service"] and "&id" not in text
    for kind in ("Rollout", "AnalysisTemplate"):
        errors = [e.message for e in crd_validators[kind].iter_errors(found[kind])]
        assert errors == [], (kind, errors[:5])
    kubernetes_validate.validate(found["Service"], "1.30", strict=True)
    rollout = found["Rollout"]
    pod_template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": rollout["metadata"],
        "template": rollout["spec"]["template"],
    }
    kubernetes_validate.validate(pod_template, "1.30", strict=True)  # ObjectMeta and the PodSpec
    job = found["AnalysisTemplate"]["spec"]["metrics"][0]["provider"]["job"]
    kubernetes_validate.validate(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "canary", **job["metadata"]},
            "spec": job["spec"],
        },
        "1.30",
        strict=True,
    )


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (
            lambda r: r["spec"]["strategy"]["canary"]["steps"][0].update(setWeight="5"),
            "'5' is not of type 'integer'",
        ),
        (lambda r: r["spec"]["strategy"]["canary"]["steps"].append({"setWieght": 10}), "setWieght"),
        (
            lambda r: r["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "'name' is a required property",
        ),
        (lambda r: r["spec"].update(replicas=1.5), "1.5 is not of type 'integer'"),
    ],
)
def test_the_validation_rejects_a_broken_rollout(cli, example_repo, crd_validators, break_it, expected):
    text, _ = rendered(cli, example_repo)
    rollout = copy.deepcopy(objects(text)["Rollout"])
    break_it(rollout)
    errors = [e.message for e in crd_validators["Rollout"].iter_errors(rollout)]
    assert any(expected in e for e in errors), errors


def test_the_analysis_template_is_refused_without_its_provider(cli, example_repo, crd_validators):
    text, _ = rendered(cli, example_repo)
    template = copy.deepcopy(objects(text)["AnalysisTemplate"])
    del template["spec"]["metrics"][0]["provider"]
    errors = [e.message for e in crd_validators["AnalysisTemplate"].iter_errors(template)]
    assert "'provider' is a required property" in errors


def test_seed_004_steps_each_gated_by_the_canary_job(cli, example_repo):
    text, doc = rendered(cli, example_repo)
    found = objects(text)
    steps = found["Rollout"]["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [5, 20, 50, 100]
    analyses = [s["analysis"] for s in steps if "analysis" in s]
    assert len(analyses) == 3  # after the 5, 20 and 50 % pauses
    args = {a["name"]: a["value"] for a in analyses[0]["args"]}
    assert args == {
        "release": "v1.2",
        "baseline-release": "v1.1",
    }  # the release and its parent, from the pins
    template = found["AnalysisTemplate"]
    assert analyses[0]["templates"] == [{"templateName": template["metadata"]["name"]}]
    job = template["spec"]["metrics"][0]["provider"]["job"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["releasectl", "canary", "--prometheus", "{{args.prometheus}}"]
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    declared = {a["name"] for a in template["spec"]["args"]}
    used = {part[len("{{args.") : -2] for part in container["command"] if part.startswith("{{args.")}
    assert used == declared  # every argument the Job uses is declared, and no other
    pod = found["Rollout"]["spec"]["template"]
    assert pod["metadata"]["labels"]["releasectl/release"] == "v1.2"
    assert "releasectl/release" not in found["Rollout"]["spec"]["selector"]["matchLabels"]  # immutable


def test_baseline_and_prometheus_options_and_a_release_without_parent(cli, example_repo):
    text, _ = rendered(
        cli, example_repo, "--baseline-release", "v1.0", "--prometheus", "http://prom.llm:9090"
    )
    template = objects(text)["AnalysisTemplate"]
    assert {"name": "prometheus", "value": "http://prom.llm:9090"} in template["spec"]["args"]
    assert "- name: baseline-release\n            value: v1.0" in text
    itself = cli(
        "deploy", "render", "--target", "argo", "--stdout", "--baseline-release", "v1.2", cwd=example_repo
    )
    assert itself.code == 2 and "expected another release" in itself.stderr
    m = example_repo / "releases" / "v1.2.yaml"
    m.write_text(m.read_text().replace("parent: v1.1\n", "", 1))
    orphan = cli("deploy", "render", "--target", "argo", "--stdout", cwd=example_repo)
    assert orphan.code == 2 and "has no parent" in orphan.stderr
