"""The release manifest (SPEC §3) as pydantic v2 models.

Every field that decides the model's behaviour is pinned by an immutable reference. Shape and
format are checked here; checks that need the file system (digests match, paths stay inside the
repo) live in `loader.py` and the checklist.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

RELEASE_NAME = re.compile(r"^v\d+\.\d+(\.\d+)?$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_EXACT_VERSION = re.compile(r"^v?\d+(\.\d+)*([.-]?(a|b|rc|post|dev)\d+)?$")


def _commit_sha(value: str) -> str:
    if _HEX40.match(value):
        return value
    if _HEX.match(value) and len(value) == 40:
        raise ValueError(
            f"'{value}' has uppercase hex; the Hub treats it as a branch name. Pin the lowercase 40-hex commit SHA"
        )
    if _HEX.match(value) and len(value) < 40:
        raise ValueError(
            f"'{value}' is a short SHA ({len(value)} hex digits); pin the full 40-hex commit SHA"
        )
    kind = "tag" if re.match(r"^v?\d", value) else "branch"
    raise ValueError(f"'{value}' is a {kind} name, which can move; pin a 40-hex commit SHA")


def _sha256(value: str) -> str:
    v = value.removeprefix("sha256:")
    if not _SHA256.match(v):
        raise ValueError(f"'{value}' is not a sha256 digest; expected 64 lowercase hex digits")
    return v


def _md5(value: str) -> str:
    v = value.removeprefix("md5:")
    if not _MD5.match(v):
        raise ValueError(
            f"'{value}' is not a DVC md5; expected 32 lowercase hex digits (plus '.dir' for a directory)"
        )
    return v


def _exact_version(value: str) -> str:
    if not _EXACT_VERSION.match(value):
        raise ValueError(
            f"'{value}' is not an exact version; pin one release such as \"3.2.1\" (no ranges, no 'latest')"
        )
    return value


def _repo_path(value: str) -> str:
    if not value:
        raise ValueError("empty path")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError(f"'{value}' is absolute; paths must be relative to the releases repository")
    if ".." in re.split(r"[\\/]", value):
        raise ValueError(f"'{value}' escapes the repository with '..'; paths must stay inside it")
    return value


def _release_name(value: str) -> str:
    if not RELEASE_NAME.match(value):
        raise ValueError(f"'{value}' is not a release name; expected v<major>.<minor>[.<patch>], e.g. v1.3")
    return value


CommitSha = Annotated[
    str, AfterValidator(_commit_sha), Field(description="A full 40-hex lowercase commit SHA.")
]
Sha256 = Annotated[str, AfterValidator(_sha256), Field(description="sha256 hex digest of the file's bytes.")]
Md5 = Annotated[
    str, AfterValidator(_md5), Field(description="DVC-compatible md5 ('.dir' suffix for directories).")
]
ExactVersion = Annotated[
    str, AfterValidator(_exact_version), Field(description="An exact version, e.g. '3.2.1'.")
]
RepoPath = Annotated[
    str, AfterValidator(_repo_path), Field(description="Path relative to the releases repository.")
]
ReleaseName = Annotated[str, AfterValidator(_release_name), Field(description="v<major>.<minor>[.<patch>]")]


class Strict(BaseModel):
    # strict: YAML's `true` is not a number and "5" is not 5; numbers must be finite (`.inf`,
    # `.nan` and 1e309 are refused with file:line by the loader and again here).
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=False, strict=True, allow_inf_nan=False
    )


class Artifact(Strict):
    """An immutable reference: `hf://org/repo` + revision, `pkg://dist/file` + sha256, or a repo path + digest."""

    uri: str | None = Field(None, description="hf://<org>/<repo> or pkg://<distribution>/<file>.")
    revision: CommitSha | None = Field(None, description="Commit SHA for hf:// artifacts.")
    file: str | None = Field(None, description="A file inside an hf:// repo (e.g. a GGUF file).")
    path: RepoPath | None = Field(None, description="A file or directory in this repository.")
    sha256: Sha256 | None = None
    md5: Md5 | None = None


# Names that reach vLLM's command line as one token (`--served-model-name NAME`, `--lora-modules
# NAME=PATH`) and the OpenAI API's `model` field: they must not start with "-" (vLLM would read an
# option, e.g. an adapter named "--api-key=x"), nor hold "=", whitespace, quotes or control characters.
SERVED_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,255}")
ADAPTER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _name_check(pattern: re.Pattern[str], what: str, allowed: str, example: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid {what}: expected a letter or digit, then letters, digits or "
                f"{allowed}, e.g. {example}"
            )
        return value

    return AfterValidator(check)


ServedName = Annotated[
    str,
    _name_check(SERVED_NAME_RE, "served model name", ". _ : / + - (256 at most)", "SmolLM2-135M-Instruct"),
]
AdapterName = Annotated[
    str, _name_check(ADAPTER_NAME_RE, "adapter name", ". _ - (128 at most)", "lora_math_v1")
]


class ModelSpec(Artifact):
    name: ServedName = Field(
        description="Model name, e.g. SmolLM2-135M-Instruct; also the name `deploy render` serves it under."
    )
    format: Literal["safetensors", "gguf"] = "safetensors"


class Adapter(Artifact):
    name: AdapterName
    rank: int | None = Field(None, ge=1)


class InputSpec(Strict):
    """The prompt template (a Jinja2 file rendering the case into the user/system messages)."""

    template: Artifact
    chat_template: bool = Field(
        True, description="Wrap the rendered prompt with the tokenizer's chat template."
    )


MAX_SAMPLES = 100  # samples per case a replay makes; more costs more than it tells


class Sampling(Strict):
    temperature: float = Field(ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1)
    max_tokens: int = Field(gt=0, le=32768)
    seed: int = Field(ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    stop: list[str] = Field(default_factory=list)
    n: int = Field(
        1,
        ge=1,
        le=MAX_SAMPLES,
        description="Samples per case. Each has its own seed, derived from `seed`, the case id and the "
        "sample index (docs/repeated_sampling.md); with n > 1 the gate treats the case as the unit "
        "and offers pass@k and pass^k.",
    )

    @field_validator("n")
    @classmethod
    def _n_needs_temperature(cls, n: int, info: ValidationInfo) -> int:
        if n > 1 and info.data.get("temperature") == 0:
            raise ValueError(
                f"{n} samples at temperature 0 are one greedy completion {n} times (replay is "
                "deterministic); set a temperature > 0 to sample, or n: 1"
            )
        # top_k: 1 keeps only the most likely token at every step: greedy decoding whatever the
        # temperature. (A small top_p is not refused: how many tokens it keeps depends on the
        # distribution at each step, so it is not greedy by construction.)
        if n > 1 and info.data.get("top_k") == 1:
            raise ValueError(
                f"{n} samples at top_k: 1 are one greedy completion {n} times (top_k: 1 keeps only the"
                " most likely token, at any temperature); set top_k > 1 (or -1, no limit) to sample, or n: 1"
            )
        return n

    @model_serializer(mode="wrap")
    def _omit_one_sample(self, handler: SerializerFunctionWrapHandler) -> Any:
        # n: 1 is left out of the dump, so manifests that do not sample keep their digests.
        data = handler(self)
        if self.n == 1 and isinstance(data, dict):
            data.pop("n", None)
        return data


class Tool(Strict):
    version: ExactVersion
    fixtures: Artifact | None = None


class DataSpec(Strict):
    suite: Artifact
    training_snapshot: Artifact


class CodeSpec(Strict):
    repo_sha: CommitSha
    repository: str | None = None


class Training(Strict):
    method: str
    config: Artifact
    hyperparameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)


EngineName = Literal["hf", "vllm", "openai"]


class Endpoint(Strict):
    """A served OpenAI-compatible deployment (`vllm serve`, SGLang, TGI) for the `openai` engine."""

    base_url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$", description="e.g. http://127.0.0.1:8000/v1", max_length=2048
    )
    served_model_name: ServedName | None = Field(
        None, description="The name the server serves the base model under."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the key."
    )
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="Deadline for one request, in seconds.")
    stream: bool = Field(True, description="Stream completions to measure time to first token.")


class Runtime(Strict):
    engine: EngineName
    engine_version: ExactVersion
    engine_versions: dict[EngineName, ExactVersion] = Field(
        default_factory=dict,
        description="Other engines this release may be replayed on, each pinned to an exact version "
        "(e.g. {hf: '5.19.0'} beside engine: vllm). Replay on an engine pinned nowhere is drift.",
    )
    enforce_eager: bool | None = Field(
        None, description="vLLM: skip torch.compile. Default: eager on CPU, compiled on GPUs."
    )
    endpoint: Endpoint | None = Field(None, description="Where the `openai` engine sends requests.")
    dtype: Literal["float32", "float16", "bfloat16", "auto"]
    device: str = Field(
        description="'cpu', or the GPU model vLLM results are reproducible on, e.g. 'NVIDIA H100 80GB HBM3'."
    )
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(gt=0)
    batch_size: int = Field(8, ge=1, description="Prompts per generate() call on the hf engine.")

    def pinned_version(self, engine: str) -> str | None:
        """The exact version pinned for `engine`, or None when this release pins none for it."""
        if engine == self.engine:
            return self.engine_version
        return self.engine_versions.get(engine)  # type: ignore[call-overload, no-any-return]


class Alert(Strict):
    """A condition in the rules language that must hold; when it does not, the alert fires."""

    name: str
    family: Literal["performance", "cost", "reliability", "quality"]
    rule: str
    rollback: bool = Field(False, description="Firing this alert is a rollback trigger.")
    description: str = ""


# --- policy.prometheus: what a manifest may map, and the grammar of what it maps ---------------

# The metrics a manifest may map to PromQL: vLLM's mapping (releasectl.monitoring.prometheus.
# VLLM_QUERIES) and the metrics vLLM does not export (OPTIONAL_METRICS there).
PROMETHEUS_METRICS = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p95_ms",
    "requests",
    "error_rate",
    "tokens_per_request",
    "generation_tokens_per_s",
    "truncation_rate",
    "errors",
    "completion_requests",
    "span_seconds",
    "latency_seconds_buckets",
    "abandon_rate",
    "safety_incidents",
    "cost_per_1k_tokens_usd",
    "avg_satisfaction",
)
PROMQL_PLACEHOLDERS = ("{sel}", "{w}")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# name op "string": Prometheus' label matcher, the string double-quoted with Go's escapes.
_MATCHER = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\\x00-\x1f]|\\[abfnrtv\\"])*)"\s*'
)
# Anything str.format would have read as a field: {name}, {0}, {name.attr}, {name[i]}, {name!r},
# {name:spec}; a PromQL matcher ({job="x"}, {job!="x"}) is not one.
_FORMAT_FIELD = re.compile(r"\{\s*(?:[A-Za-z_][A-Za-z0-9_]*|\d+)\s*(?:\}|[.\[:]|!(?![=~]))")
_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def _near(name: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}? " if close else ""


def _prometheus_metric(name: str) -> str:
    if name not in PROMETHEUS_METRICS:
        raise ValueError(
            f"no Prometheus query maps to {name}: {_near(name, PROMETHEUS_METRICS)}"
            f"expected one of {', '.join(PROMETHEUS_METRICS)}"
        )
    return name


def promql_template_problem(template: str) -> str | None:
    """Why `template` is not a query template releasectl can fill, or None. It is filled by plain
    replacement of the literal `{sel}` (the release's label matchers) and `{w}` (the range), so
    PromQL's own braces are written once; anything else str.format would have read is refused."""
    for m in _FORMAT_FIELD.finditer(template):
        end = template.find("}", m.start())
        field = template[m.start() : end + 1 if end >= 0 else m.start() + 40]
        if field not in PROMQL_PLACEHOLDERS:
            return f"expected only the placeholders {{sel}} and {{w}}, found {field!r}"
    if "{sel}" not in template:
        return (
            "expected a PromQL template selecting the release's series with {sel} "
            "(e.g. sum(increase(vllm:request_success_total{{sel}}[{w}]))), found none in it"
        )
    rest = _PROMQL_STRING.sub('""', template.replace("{sel}", "S").replace("{w}", "W"))
    if "{{" in rest or "}}" in rest:
        return (
            "expected PromQL braces written once (x{{sel}} is the selector x{…} around {sel}), "
            "found doubled braces: templates are no longer str.format strings"
        )
    return None


def _promql_template(template: str) -> str:
    problem = promql_template_problem(template)
    if problem:
        raise ValueError(problem)
    return template


def _label_name(name: str) -> str:
    if not LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, e.g. release), found {name!r}"
        )
    return name


def parse_label_matchers(text: str) -> list[tuple[str, str, str]]:
    """`name="value", name=~"regex", ...` as (name, operator, quoted value) triples; anything else
    (a closing brace, an `or`, an unquoted value) is a ValueError saying where."""
    matchers: list[tuple[str, str, str]] = []
    pos = 0
    while text.strip():
        m = _MATCHER.match(text, pos)
        if m is None:
            raise ValueError(
                'expected comma-separated label matchers name="value" (=, !=, =~ or !~, the value '
                f'double-quoted with \\" and \\\\ escaped), found {text[pos : pos + 40]!r} at character {pos + 1}'
            )
        matchers.append((m.group(1), m.group(2), f'"{m.group(3)}"'))
        pos = m.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise ValueError(f"expected ',' between label matchers, found {text[pos : pos + 40]!r}")
        pos += 1
    return matchers


def _label_matchers(text: str) -> str:
    parse_label_matchers(text)
    return text


PrometheusMetric = Annotated[str, AfterValidator(_prometheus_metric)]
PromQLTemplate = Annotated[str, Field(max_length=10_000), AfterValidator(_promql_template)]


class PrometheusSpec(Strict):
    """How `monitor --prometheus` and `canary --prometheus` read this release's serving metrics."""

    queries: dict[PrometheusMetric, PromQLTemplate] = Field(
        default_factory=dict,
        description="releasectl metric -> PromQL template, overriding vLLM's mapping "
        "(releasectl/monitoring/prometheus.py, docs/production.md); the literal {sel} is replaced by "
        "the release's label matchers and {w} by the window; PromQL's braces are written once, "
        "e.g. sum(increase(x_total{{sel}}[{w}])).",
    )
    release_label: Annotated[str, AfterValidator(_label_name)] = Field(
        "release", description="The label naming the release (a Prometheus label name)."
    )
    selector: Annotated[str, Field(max_length=2_000), AfterValidator(_label_matchers)] = Field(
        "", description='Extra label matchers for every query, comma-separated, e.g. namespace="llm".'
    )

    @field_validator("selector")
    @classmethod
    def _selector_leaves_the_release_label(cls, selector: str, info: ValidationInfo) -> str:
        label = info.data.get("release_label")
        if label and any(name == label for name, _, _ in parse_label_matchers(selector)):
            raise ValueError(
                f"expected matchers on labels other than the release label {label!r} (releasectl "
                f"selects each release by it), found a matcher on {label!r}"
            )
        return selector


class RolloutPolicy(Strict):
    """Seed 004's relative gate for each traffic step (`releasectl rollout analyze`); unset, the
    seed's table: completion ≥ old − 2 points, p95 ≤ old × 1.2, errors ≤ old + 0.5 points,
    satisfaction ≥ old − 5 % of the rating scale, at an overall α of 0.05.

    Each margin is bounded so that no setting quietly turns the gate off: completion and error
    margins ≤ 0.2 (20 points), p95_ratio in [1, 3], satisfaction ≤ 0.5 of the scale, α ≤ 0.2
    (docs/channels.md). `min_step_minutes` is how long a step runs before `advance` may leave
    it (0, the default: no minimum; seed 004 pauses an hour per step)."""

    completion_margin: float = Field(
        0.02, ge=0, le=0.2, description="Task completion ≥ old − this (a share, at most 0.2)."
    )
    p95_ratio: float = Field(1.2, ge=1, le=3, description="p95 latency ≤ old × this (1 to 3).")
    error_margin: float = Field(
        0.005, ge=0, le=0.2, description="Error rate ≤ old + this (a share, at most 0.2)."
    )
    satisfaction_margin: float = Field(
        0.05, ge=0, le=0.5, description="Mean satisfaction ≥ old − this share of the 1–5 scale (at most 0.5)."
    )
    alpha: float = Field(
        0.05, gt=0, le=0.2, description="A step decision's error level, over all metrics (at most 0.2)."
    )
    min_step_minutes: int = Field(
        0,
        ge=0,
        le=10_080,
        description="Minutes a step runs before `rollout advance` may leave it (0: no minimum; at most a week).",
    )


class PolicySpec(Strict):
    promotion: dict[str, RepoPath] = Field(
        description="Stage name -> rules file, e.g. staging: checklists/policies/dev_to_staging.rules"
    )
    protected_slices: list[str] = Field(default_factory=list)
    min_cases_per_slice: int = Field(20, ge=1)
    confidence_level: float = Field(0.95, gt=0.5, lt=1.0)
    correction: Literal["holm", "bh", "none"] = "holm"
    slos: list[Alert] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    prometheus: PrometheusSpec | None = Field(
        None, description="Prometheus query overrides for monitor/canary --prometheus."
    )
    rollout: RolloutPolicy | None = Field(None, description="Margins of each traffic step's gate (rollout).")

    @model_serializer(mode="wrap")
    def _omit_absent_prometheus(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Unset, they are left out of the dump, so manifests without them keep their digests.
        data = handler(self)
        for optional in ("prometheus", "rollout"):
            if getattr(self, optional) is None and isinstance(data, dict):
                data.pop(optional, None)
        return data


# Bounds of the capacity inputs: far beyond any real deployment, small enough that the plan's
# arithmetic (GPUs, memory, $/month) stays finite and its integers convertible.
MAX_TOKENS = 100_000_000
MAX_COUNT_INFRA = 10_000_000


class KvCache(Strict):
    layers: int = Field(gt=0, le=100_000)
    kv_heads: int = Field(gt=0, le=100_000)
    head_dim: int = Field(gt=0, le=100_000)
    bytes_per_value: float = Field(2.0, gt=0, le=64)
    tokens_per_request: int = Field(gt=0, le=MAX_TOKENS)
    concurrent_requests: int = Field(gt=0, le=MAX_COUNT_INFRA)


class Infrastructure(Strict):
    gpu_type: str
    gpu_memory_gb: float = Field(gt=0, le=1e6)
    gpu_hourly_usd: float = Field(ge=0, le=1e6)
    gpus_allocated: int = Field(ge=0, le=MAX_COUNT_INFRA)
    tensor_parallel_size: int = Field(1, ge=1, le=4096)
    target_qps: float = Field(gt=0, le=1e9)
    avg_prompt_tokens: int = Field(ge=0, le=MAX_TOKENS)
    avg_output_tokens: int = Field(gt=0, le=MAX_TOKENS)
    p95_latency_ms_target: float = Field(gt=0, le=1e9)
    tokens_per_second_per_gpu: float = Field(
        gt=0, le=1e9, description="Generated tokens/s per GPU at the p95 target, measured."
    )
    headroom: float = Field(0.3, ge=0.0, le=5.0)
    params_b: float = Field(gt=0, le=1e6, description="Parameters, in billions.")
    precision: Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4", "nf4", "q4_1", "q8_0"]
    kv_cache: KvCache | None = None
    budget_per_1k_tokens_usd: float = Field(gt=0, le=1e6)


class Manifest(Strict):
    release: ReleaseName
    parent: ReleaseName | None = Field(
        None, description="The release this one replaces: the default baseline and rollback target."
    )
    description: str = ""
    model: ModelSpec
    tokenizer: Artifact
    adapters: list[Adapter] = Field(default_factory=list)
    input: InputSpec
    sampling: Sampling
    verifiers: dict[str, ExactVersion]
    reward_model: Artifact | None = None
    tools: dict[str, Tool] = Field(default_factory=dict)
    data: DataSpec
    code: CodeSpec
    training: Training
    runtime: Runtime
    policy: PolicySpec
    infrastructure: Infrastructure

    @field_validator("adapters")
    @classmethod
    def _adapter_names_are_unique(cls, adapters: list[Adapter]) -> list[Adapter]:
        # The served name of each adapter (`--lora-modules NAME=PATH`, the API's `model`) must
        # name one adapter.
        seen: set[str] = set()
        for adapter in adapters:
            if adapter.name in seen:
                raise ValueError(f"two adapters are named {adapter.name!r}; each adapter needs its own name")
            seen.add(adapter.name)
        return adapters
