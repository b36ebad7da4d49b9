"""The machine checks behind the five checklist items, registered by id.

Each check takes a `CheckContext` plus the params from `checklists/production.yaml` and returns a
`CheckResult`. Failures carry `Problem`s located in the manifest, so `--format github` can put
them on the PR's lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from releasectl import safeio
from releasectl.checklist.result import CheckResult
from releasectl.errors import BadInput, EnvironmentFailure, Problem
from releasectl.manifest.loader import LoadedManifest, iter_artifacts
from releasectl.manifest.yaml_positions import FieldPath, load_yaml_with_positions

CheckFn = Callable[..., CheckResult]
CHECKS: dict[str, CheckFn] = {}


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    """Register a checklist check under `check_id` (the id used in production.yaml)."""

    def register(fn: CheckFn) -> CheckFn:
        CHECKS[check_id] = fn
        return fn

    return register


@dataclass
class CheckContext:
    loaded: LoadedManifest
    resolve: bool = False
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> Any:
        return self.loaded.manifest

    @property
    def root(self) -> Path:
        return self.loaded.root

    def problem(self, path: FieldPath, message: str, **kw: Any) -> Problem:
        return self.loaded.problem(path, message, **kw)

    @cached_property
    def suite(self) -> Any:
        """The suite the manifest pins, or a BadInput explaining why it cannot be loaded."""
        from releasectl.suite import load_suite

        return load_suite(self.loaded.resolve(self.manifest.data.suite.path))

    def suite_or_problem(self) -> tuple[Any, Problem | None]:
        try:
            return self.suite, None
        except BadInput as e:
            detail = e.problems[0].render() if e.problems else e.message
            return None, self.problem(("data", "suite"), f"suite cannot be loaded: {detail}")

    def policy_rules(self, stage: str) -> Any:
        """Parsed rules of one promotion stage (memoised; BadInput on a missing or broken file)."""
        key = f"rules:{stage}"
        if key not in self._memo:
            from releasectl.gate.rules import parse_rules_file

            rel = self.manifest.policy.promotion[stage]
            self._memo[key] = parse_rules_file(self.loaded.resolve(rel), display=rel)
        return self._memo[key]


def _result(
    check_id: str, problems: list[Problem], ok_message: str, fail_message: str | None = None
) -> CheckResult:
    if problems:
        return CheckResult(check_id, "fail", fail_message or problems[0].message, problems)
    return CheckResult(check_id, "pass", ok_message)


# --- 1. Reproducible configuration -------------------------------------------------------------


@check("artifacts_pinned")
def artifacts_pinned(ctx: CheckContext) -> CheckResult:
    # The loader already refuses unpinned artifacts (exit 2); this reports what is pinned.
    arts = iter_artifacts(ctx.manifest)
    hub = sum(1 for _, a in arts if a.uri and a.uri.startswith("hf://"))
    return CheckResult(
        "artifacts_pinned",
        "pass",
        f"{len(arts)} artifacts pinned by digest ({hub} hf:// at commit SHAs); code at {ctx.manifest.code.repo_sha[:12]}",
    )


@check("sampling_seed_set")
def sampling_seed_set(ctx: CheckContext) -> CheckResult:
    s = ctx.manifest.sampling
    mode = "greedy" if s.temperature == 0 else f"temperature {s.temperature}, top_p {s.top_p}"
    return CheckResult("sampling_seed_set", "pass", f"seed {s.seed}; {mode}; max_tokens {s.max_tokens}")


@check("runtime_pinned")
def runtime_pinned(ctx: CheckContext) -> CheckResult:
    rt = ctx.manifest.runtime
    problems = []
    if rt.engine == "vllm" and rt.device.lower() == "cpu":
        problems.append(
            ctx.problem(
                ("runtime", "device"),
                "vLLM results reproduce only on the GPU model they were made on",
                expected="a GPU model, e.g. 'NVIDIA H100 80GB HBM3'",
                found="'cpu'",
            )
        )
    if rt.engine == "vllm" and rt.data_parallel_size > 1:
        problems.append(
            ctx.problem(
                ("runtime", "data_parallel_size"),
                "offline vLLM refuses data_parallel_size > 1; scale out with `releasectl replay --shard i/N`",
                found=str(rt.data_parallel_size),
            )
        )
    return _result("runtime_pinned", problems, f"{rt.engine} {rt.engine_version} on {rt.device}, {rt.dtype}")


@check("verifier_versions_installed")
def verifier_versions_installed(ctx: CheckContext) -> CheckResult:
    from releasectl.suite import installed_verifiers

    installed = installed_verifiers()
    problems = []
    for name, version in ctx.manifest.verifiers.items():
        info = installed.get(name)
        if info is None:
            problems.append(
                ctx.problem(
                    ("verifiers", name),
                    f"verifier '{name}' is not installed",
                    hint="installed: " + ", ".join(sorted(installed)),
                )
            )
        elif version not in info.versions:
            problems.append(
                ctx.problem(
                    ("verifiers", name),
                    f"pinned version {version} is not one the installed verifier implements",
                    expected=" or ".join(f"'{v}'" for v in info.versions),
                    found=f"'{version}'",
                    hint="pin the installed version, or install releasectl at the version that implements it",
                )
            )
    suite, suite_problem = ctx.suite_or_problem()
    if suite_problem:
        problems.append(suite_problem)
    else:
        used = {v.verifier for case in suite.cases for v in case.verifiers}
        for name in sorted(used - set(ctx.manifest.verifiers)):
            problems.append(
                ctx.problem(
                    ("verifiers",),
                    f"the suite uses verifier '{name}' but the manifest does not pin its version",
                )
            )
    return _result(
        "verifier_versions_installed",
        problems,
        f"{len(ctx.manifest.verifiers)} verifiers pinned at the installed versions",
    )


@check("local_digests_match")
def local_digests_match(ctx: CheckContext) -> CheckResult:
    from releasectl.manifest.artifacts import check_digest

    problems = []
    checked = 0
    for field_path, art in _artifact_paths(ctx):
        result = check_digest(".".join(str(p) for p in field_path), art, ctx.root)
        if result is None:
            continue
        checked += 1
        if not result.ok:
            digest_field = (*field_path, result.algorithm)
            problems.append(
                ctx.problem(
                    digest_field if result.actual else field_path,
                    result.message,
                    expected=result.pinned,
                    found=result.actual or "no file",
                    hint=f"re-pin with `releasectl new` or fix the file; {result.algorithm} is over the file's bytes",
                )
            )
    return _result(
        "local_digests_match",
        problems,
        f"{checked} local digests match their files",
        f"{len(problems)} of {checked} local digests do not match",
    )


def _artifact_paths(ctx: CheckContext) -> list[tuple[FieldPath, Any]]:
    from releasectl.manifest.loader import _artifacts

    return list(_artifacts(ctx.manifest))


@check("hub_revisions_exist")
def hub_revisions_exist(ctx: CheckContext) -> CheckResult:
    hub = [(p, a) for p, a in _artifact_paths(ctx) if a.uri and a.uri.startswith("hf://")]
    if not hub:
        return CheckResult("hub_revisions_exist", "pass", "no hf:// artifacts to resolve")
    if not ctx.resolve:
        return CheckResult(
            "hub_revisions_exist", "skip", f"{len(hub)} hf:// revisions not checked (use --resolve)"
        )
    from releasectl.manifest.resolve import resolve_revisions

    checks = resolve_revisions(ctx.loaded)
    problems = [ctx.problem(tuple(c.field.split(".")), c.message) for c in checks if not c.ok]
    return _result("hub_revisions_exist", problems, "; ".join(c.message for c in checks))


# --- 2. Promotion rules + rollback ---------------------------------------------------------------


@check("promotion_policies_parse")
def promotion_policies_parse(ctx: CheckContext, stages: list[str]) -> CheckResult:
    problems = []
    parsed = []
    for stage in stages:
        if stage not in ctx.manifest.policy.promotion:
            problems.append(
                ctx.problem(
                    ("policy", "promotion"),
                    f"no rules for stage '{stage}'",
                    expected=f"policy.promotion.{stage}: <rules file>",
                )
            )
            continue
        try:
            rules = ctx.policy_rules(stage)
            parsed.append(f"{stage}: {len(rules)} rules")
        except BadInput as e:
            for p in e.problems or [Problem(e.message)]:
                problems.append(p)
    return _result("promotion_policies_parse", problems, "; ".join(parsed))


@check("rules_reference_known_names")
def rules_reference_known_names(ctx: CheckContext) -> CheckResult:
    from releasectl.gate.rules import validate_rules

    suite, suite_problem = ctx.suite_or_problem()
    if suite_problem:
        return CheckResult("rules_reference_known_names", "fail", suite_problem.message, [suite_problem])
    problems = []
    total = 0
    for stage in ctx.manifest.policy.promotion:
        try:
            rules = ctx.policy_rules(stage)
        except BadInput:
            continue  # reported by promotion_policies_parse
        total += len(rules)
        problems += validate_rules(rules, slices=set(suite.slices), verifiers=set(ctx.manifest.verifiers))
    return _result(
        "rules_reference_known_names",
        problems,
        f"{total} rules reference only known metrics and the suite's {len(suite.slices)} slices",
    )


@check("protected_slices_exist")
def protected_slices_exist(ctx: CheckContext) -> CheckResult:
    protected = ctx.manifest.policy.protected_slices
    if not protected:
        return CheckResult(
            "protected_slices_exist",
            "fail",
            "no protected slices",
            [
                ctx.problem(
                    ("policy", "protected_slices"), "list the safety-critical slices that may never regress"
                )
            ],
        )
    suite, suite_problem = ctx.suite_or_problem()
    if suite_problem:
        return CheckResult("protected_slices_exist", "fail", suite_problem.message, [suite_problem])
    problems = []
    for i, name in enumerate(protected):
        if name not in suite.slices:
            import difflib

            close = difflib.get_close_matches(name, list(suite.slices), n=1)
            problems.append(
                ctx.problem(
                    ("policy", "protected_slices", i),
                    f"slice '{name}' is not in the suite",
                    hint=f"did you mean '{close[0]}'?" if close else None,
                )
            )
    return _result("protected_slices_exist", problems, "protected: " + ", ".join(protected))


@check("rollback_triggers_defined")
def rollback_triggers_defined(ctx: CheckContext) -> CheckResult:
    triggers = [a.name for a in ctx.manifest.policy.alerts + ctx.manifest.policy.slos if a.rollback]
    if not triggers:
        return CheckResult(
            "rollback_triggers_defined",
            "fail",
            "no rollback triggers",
            [
                ctx.problem(
                    ("policy", "alerts"), "no alert has `rollback: true`; pre-agree what triggers a rollback"
                )
            ],
        )
    return CheckResult("rollback_triggers_defined", "pass", "rollback on: " + ", ".join(triggers))


@check("parent_release_exists")
def parent_release_exists(ctx: CheckContext) -> CheckResult:
    parent = ctx.manifest.parent
    if parent is None:
        return CheckResult("parent_release_exists", "warn", "first release: no parent to roll back to")
    path = ctx.root / "releases" / f"{parent}.yaml"
    if not safeio.present(path, what="parent manifest"):
        return CheckResult(
            "parent_release_exists",
            "fail",
            f"parent {parent} does not exist",
            [
                ctx.problem(
                    ("parent",), f"releases/{parent}.yaml does not exist, so there is no rollback target"
                )
            ],
        )
    return CheckResult("parent_release_exists", "pass", f"rollback target {parent} (releases/{parent}.yaml)")


# --- 3. Monitoring + SLOs -----------------------------------------------------------------------


@check("families_covered")
def families_covered(ctx: CheckContext, families: list[str]) -> CheckResult:
    policy = ctx.manifest.policy
    have: dict[str, list[str]] = {}
    for a in policy.slos + policy.alerts:
        have.setdefault(a.family, []).append(a.name)
    missing = [f for f in families if f not in have]
    if missing:
        return CheckResult(
            "families_covered",
            "fail",
            "no SLO or alert for " + ", ".join(missing),
            [ctx.problem(("policy", "alerts"), f"add an SLO or alert for the {f} family") for f in missing],
        )
    return CheckResult("families_covered", "pass", "; ".join(f"{f}: {', '.join(have[f])}" for f in families))


@check("alert_rules_parse")
def alert_rules_parse(ctx: CheckContext) -> CheckResult:
    from releasectl.gate.rules import parse_rule

    problems = []
    count = 0
    for kind in ("slos", "alerts"):
        for i, alert in enumerate(getattr(ctx.manifest.policy, kind)):
            count += 1
            try:
                parse_rule(alert.rule)
            except BadInput as e:
                detail = e.problems[0].message if e.problems else e.message
                problems.append(ctx.problem(("policy", kind, i, "rule"), f"alert '{alert.name}': {detail}"))
    return _result("alert_rules_parse", problems, f"{count} SLO/alert rules parse")


# --- 4. Feedback-to-data flywheel ---------------------------------------------------------------


def _dvc_yaml(ctx: CheckContext) -> dict[str, Any]:
    path = ctx.root / "dvc.yaml"
    if not safeio.present(path, what="dvc.yaml"):
        return {}
    return load_yaml_with_positions(path, "dvc.yaml").data or {}


@check("dvc_feedback_stage")
def dvc_feedback_stage(ctx: CheckContext, stage: str, command: str) -> CheckResult:
    stages = _dvc_yaml(ctx).get("stages") or {}
    spec = stages.get(stage)
    if not isinstance(spec, dict):
        return CheckResult(
            "dvc_feedback_stage",
            "fail",
            f"dvc.yaml has no '{stage}' stage",
            [Problem(f"add a '{stage}' stage that runs `{command}`", file="dvc.yaml")],
        )
    cmd = spec.get("cmd", "")
    cmd_text = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    if command not in cmd_text:
        return CheckResult(
            "dvc_feedback_stage",
            "fail",
            f"stage '{stage}' does not run `{command}`",
            [Problem(f"stage '{stage}' runs `{cmd_text}`", file="dvc.yaml")],
        )
    return CheckResult("dvc_feedback_stage", "pass", f"dvc.yaml stage '{stage}': {cmd_text}")


@check("hygiene_steps")
def hygiene_steps(ctx: CheckContext, required: list[str]) -> CheckResult:
    path = ctx.root / "params.yaml"
    params = load_yaml_with_positions(path, "params.yaml").data if path.is_file() else {}
    steps = ((params or {}).get("feedback") or {}).get("hygiene") or []
    missing = [s for s in required if s not in steps]
    if missing:
        return CheckResult(
            "hygiene_steps",
            "fail",
            "missing hygiene steps: " + ", ".join(missing),
            [Problem("feedback.hygiene lacks " + ", ".join(missing), file="params.yaml")],
        )
    return CheckResult("hygiene_steps", "pass", "hygiene: " + " → ".join(steps))


# --- 5. Infrastructure readiness ----------------------------------------------------------------


@check("capacity_plan")
def capacity_plan(ctx: CheckContext) -> CheckResult:
    from releasectl.checklist.capacity import plan

    p = plan(ctx.manifest.infrastructure)
    failed = [c for c in p.checks if not c.ok]
    summary = "; ".join(c.reason for c in p.checks)
    if failed:
        return CheckResult(
            "capacity_plan",
            "fail",
            "; ".join(c.reason for c in failed),
            [ctx.problem(("infrastructure",), c.reason) for c in failed],
        )
    return CheckResult("capacity_plan", "pass", summary)


def run_check(check_id: str, ctx: CheckContext, params: dict[str, Any]) -> CheckResult:
    """Run one check; an input error inside it becomes a failed check, not a crash."""
    try:
        return CHECKS[check_id](ctx, **params)
    except EnvironmentFailure:
        raise
    except BadInput as e:
        return CheckResult(check_id, "fail", e.message, e.problems or [Problem(e.message)])
