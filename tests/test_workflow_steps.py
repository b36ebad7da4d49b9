"""Execute the workflows' own shell: every `run:` step of release-gate.yml, promote.yml,
rollback.yml and monitor.yml, in order, in a temp clone, as the runner would.

What is real: each `run:` step's bash (`bash --noprofile --norc -eo pipefail`, as Actions runs
it), the `${{ }}` expressions in `if:`, `env:`, `matrix` and outputs, GITHUB_OUTPUT /
GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY files, a pull_request event payload in
GITHUB_EVENT_PATH, git (a bare `origin` the jobs push to), releasectl itself, and the GitHub API
(tests/fakegithub.py on 127.0.0.1).

What is a local stand-in, and only for these:
- `uses:` steps: checkout = a fresh clone of the PR's repository at the ref; setup-python = the
  venv already on PATH; upload/download-artifact = a directory per artifact; cache/restore and
  cache/save = a directory per key; attest-build-provenance = a record of the subject's sha256.
- steps that only install releasectl (`pip install`): the venv already has it.
- the GPU: `releasectl replay` is answered by a shim that writes a run built by tests/runfactory.py
  (test_gate.seed_runs' rates, so the gate promotes), with the key fields replay would record,
  and never loads a model; `run-key` gets fixed engine-version/device values for the GPU facts.
- `gh` (GitHub CLI, used by promote.yml): a shim that lists the gate run, downloads its artifact
  from the artifact directory and verifies an attestation against the stand-in's records.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakegithub import TOKEN, FakeGitHub

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
REPO = "acme/model-releases"
CANDIDATE, BASELINE = "v1.3", "v1.2"
STANDIN_ENGINE_VERSION, STANDIN_DEVICE = "0.33.0-standin", "Stand-in GPU 80GB"

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None, reason="the workflows use jq, as GitHub's runners have it"
)

# ---------------------------------------------------------------------------------------------
# Expressions: ${{ ... }} translated to Python over the contexts (null reads as '').


class Null(str):
    """GitHub's null: '' when compared or printed, and null again for any property of it."""

    def __getattr__(self, name: str) -> Null:
        return NULL

    def __getitem__(self, key: Any) -> Null:  # type: ignore[override]
        return NULL


NULL = Null("")


class Ctx(dict):  # type: ignore[type-arg]
    """A context object: missing keys read as '' (GitHub's null compares and prints as empty)."""

    def __getattr__(self, name: str) -> Any:
        value = self.get(name, self.get(name.replace("_", "-")))
        return wrap(value)

    def __getitem__(self, name: Any) -> Any:
        return wrap(self.get(name))

    def star(self, name: str) -> list[Any]:
        return []


class Items(list):  # type: ignore[type-arg]
    def star(self, name: str) -> list[Any]:
        return [item.get(name, "") if isinstance(item, dict) else "" for item in self]


def wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Ctx):
        return Ctx(value)
    if isinstance(value, list) and not isinstance(value, Items):
        return Items(value)
    return NULL if value is None or value == "" else value


def _from_json(text: Any) -> Any:
    return wrap(json.loads(text)) if text else ""


def _to_json(value: Any) -> str:
    return json.dumps(value)


def evaluate(expr: str, contexts: dict[str, Any]) -> Any:
    code = expr.strip()
    code = re.sub(r"\.\*\.(\w+)", r".star('\1')", code)
    code = re.sub(r"(?<![=!<>])!(?!=)", " not ", code)
    code = code.replace("&&", " and ").replace("||", " or ")
    code = code.replace("fromJSON(", "_from_json(").replace("toJSON(", "_to_json(")
    # names with dashes (steps.cache.outputs.cache-hit, inputs.github-token)
    code = re.sub(r"\.([A-Za-z_][\w]*(?:-[\w]+)+)", lambda m: f"[{m.group(1)!r}]", code)
    scope = {k: wrap(v) for k, v in contexts.items()}
    scope.update(
        _from_json=_from_json,
        _to_json=_to_json,
        cancelled=lambda: False,
        always=lambda: True,
        success=lambda: True,
        failure=lambda: False,
        true=True,
        false=False,
        null="",
    )
    return eval(code, {"__builtins__": {}}, scope)  # noqa: S307 - the workflows are ours


def substitute(text: str, contexts: dict[str, Any]) -> str:
    def one(m: re.Match[str]) -> str:
        value = evaluate(m.group(1), contexts)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text, flags=re.S)


def value_of(raw: Any, contexts: dict[str, Any]) -> Any:
    """A YAML value: a whole `${{ }}` keeps its type (for matrix and if), else a string."""
    if isinstance(raw, str):
        whole = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", raw, flags=re.S)
        if whole and "${{" not in whole.group(1):
            return evaluate(whole.group(1), contexts)
        return substitute(raw, contexts)
    if isinstance(raw, dict):
        return {k: value_of(v, contexts) for k, v in raw.items()}
    if isinstance(raw, list):
        return [value_of(v, contexts) for v in raw]
    return raw


def condition(raw: Any, contexts: dict[str, Any]) -> bool:
    if raw is None:
        return True
    if isinstance(raw, bool):
        return raw
    text = raw.strip()
    inner = re.fullmatch(r"\$\{\{(.*)\}\}", text, flags=re.S)
    return bool(evaluate(inner.group(1) if inner else text, contexts))


# ---------------------------------------------------------------------------------------------
# Shims for the GPU (replay) and the GitHub CLI.

RELEASECTL_SHIM = f'''#!{sys.executable}
"""releasectl with the GPU played by a tiny run (tests/runfactory.py); everything else is real."""
import json, os, sys, tempfile
from pathlib import Path

args = sys.argv[1:]
if args[:1] == ["run-key"] and "--device" not in args:
    args += ["--engine-version", "{STANDIN_ENGINE_VERSION}", "--device", "{STANDIN_DEVICE}"]
if args[:1] == ["replay"]:
    import click
    from releasectl.replay.cache import key_for
    from releasectl.replay.writer import output_digest
    from test_gate import seed_runs

    @click.command()
    @click.argument("manifest")
    @click.option("--engine", default="hf")
    @click.option("--out", required=True)
    @click.option("--shard", default=None)
    @click.option("--limit", type=int, default=None)
    @click.option("--resume", is_flag=True)
    def replay(manifest, engine, out, shard, limit, resume):
        key = key_for(Path(manifest), engine=engine, engine_version="{STANDIN_ENGINE_VERSION}",
                      device="{STANDIN_DEVICE}", limit=limit, shard=shard)
        cand, base = seed_runs(Path(tempfile.mkdtemp()))
        src = cand if key.release == os.environ["STANDIN_CANDIDATE"] else base
        rows = [json.loads(l) for l in (src / "results.jsonl").read_text().splitlines()]
        run = json.loads((src / "run.json").read_text())
        total = len(rows)
        if key.shard:
            i, n = (int(x) for x in key.shard.split("/"))
            rows = [r for k, r in enumerate(sorted(rows, key=lambda r: r["case_id"])) if k % n == i]
        run.update(release=key.release, manifest_digest=key.manifest_digest, suite_digest=key.suite_digest,
                   engine={{"name": engine, "version": key.engine_version}}, device=key.device,
                   limit=key.limit, shard=key.shard, batch_size=8, cases=len(rows),
                   output_digest=output_digest(rows),
                   generation_seconds=run["generation_seconds"] * len(rows) / total,
                   started_at="2026-12-01T08:00:00Z", finished_at="2026-12-01T08:10:00Z")
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "run.json").write_text(json.dumps(run))
        (Path(out) / "results.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
        with open(os.environ["STANDIN_REPLAYS"], "a") as f:
            f.write(key.release + " " + str(key.shard) + "\\n")
        print(f"stand-in replay of {{key.release}} shard {{key.shard}}: {{len(rows)}} cases (no model loaded)")

    sys.exit(replay.main(args[1:], standalone_mode=False) or 0)
from releasectl.cli import main
sys.exit(main(args))
'''

GH_SHIM = f'''#!{sys.executable}
"""gh for promote.yml: the gate run's artifact comes from the artifact directory."""
import hashlib, json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
artifacts = Path(os.environ["STANDIN_ARTIFACTS"])
if args[:2] == ["run", "list"]:
    print("4242")
elif args[:2] == ["run", "download"]:
    name = args[args.index("--name") + 1]
    dest = Path(args[args.index("--dir") + 1])
    shutil.copytree(artifacts / name, dest, dirs_exist_ok=True)
elif args[:2] == ["attestation", "verify"]:
    subject = Path(args[2])
    workflow = args[args.index("--signer-workflow") + 1]
    digest = hashlib.sha256(subject.read_bytes()).hexdigest()
    records = json.loads(Path(os.environ["STANDIN_ATTESTATIONS"]).read_text() or "[]")
    if not any(r["sha256"] == digest and workflow.endswith(r["workflow"]) for r in records):
        print(f"Error: no attestation of sha256:{{digest}} signed by {{workflow}}", file=sys.stderr)
        sys.exit(1)
    print(f"Verified sha256:{{digest}}")
else:
    print("gh stand-in: unsupported " + " ".join(args), file=sys.stderr)
    sys.exit(2)
'''


# ---------------------------------------------------------------------------------------------
# The runner.


@dataclass
class JobResult:
    result: str  # success | failure | skipped
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    log: str = ""


@dataclass
class Runner:
    tmp: Path
    origin: Path
    fake: FakeGitHub
    event_name: str
    event: dict[str, Any]
    sha: str
    inputs: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None  # the branch a non-PR event runs on (GITHUB_REF), e.g. main
    workdir: Path | None = None  # one workspace for every job (the action test), else one per job
    secrets: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        self.artifacts = self.tmp / "artifacts"
        self.cache = self.tmp / "cache"
        self.bin = self.tmp / "bin"
        for d in (self.artifacts, self.cache, self.bin):
            d.mkdir(exist_ok=True)
        self.attestations = self.tmp / "attestations.json"
        self.attestations.write_text("[]")
        self.replays = self.tmp / "replays.txt"
        self.replays.touch()
        for name, text in (("releasectl", RELEASECTL_SHIM), ("gh", GH_SHIM)):
            shim = self.bin / name
            shim.write_text(text)
            shim.chmod(0o755)
        self.event_path = self.tmp / "event.json"
        self.event_path.write_text(json.dumps(self.event))

    def workflow(self, name: str) -> dict[str, Any]:
        wf = yaml.safe_load((WORKFLOWS / name).read_text())
        wf["on"] = wf.pop(True, wf.get("on"))
        return wf

    def github(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "event_name": self.event_name,
            "repository": REPO,
            "sha": self.sha,
            "run_id": "4242",
            "server_url": "https://github.example",
            "actor": "octocat",
            "token": TOKEN,
            "action_path": str(REPO_ROOT),
        }

    def run_job(self, wf_name: str, job_name: str, needs: dict[str, JobResult]) -> list[JobResult]:
        wf = self.workflow(wf_name)
        job = wf["jobs"][job_name]
        base_ctx: dict[str, Any] = {
            "github": self.github(),
            "inputs": self.inputs,
            "secrets": {"GITHUB_TOKEN": TOKEN, **self.secrets},
            "vars": {},
            "needs": {k: {"outputs": v.outputs, "result": v.result} for k, v in needs.items()},
        }
        wf_env = {k: str(value_of(v, {**base_ctx, "env": {}})) for k, v in (wf.get("env") or {}).items()}
        base_ctx["env"] = wf_env
        if not condition(job.get("if"), base_ctx):
            return [JobResult("skipped")]
        legs: list[dict[str, Any]] = [{}]
        matrix = (job.get("strategy") or {}).get("matrix")
        if matrix is not None:
            spec = value_of(matrix, base_ctx)
            if "include" in spec and len(spec) == 1:
                legs = [dict(x) for x in spec["include"]]
            else:
                ((key, values),) = spec.items()
                legs = [{key: v} for v in values]
        return [self._run_leg(wf_name, job_name, job, base_ctx, leg) for leg in legs]

    def _run_leg(
        self, wf_name: str, job_name: str, job: dict[str, Any], base_ctx: dict[str, Any], leg: dict[str, Any]
    ) -> JobResult:
        self.counter += 1
        work = self.workdir or self.tmp / f"job-{self.counter}-{job_name}"
        ctx = {**base_ctx, "matrix": leg, "steps": {}}
        job_env = {**ctx["env"], **{k: str(value_of(v, ctx)) for k, v in (job.get("env") or {}).items()}}
        ctx["env"] = job_env
        files = {n: self.tmp / f"{self.counter}-{n}" for n in ("output", "env", "path", "summary")}
        for f in files.values():
            f.write_text("")
        log: list[str] = []
        extra_path: list[str] = []
        for index, step in enumerate(job["steps"]):
            step_ctx = {**ctx, "env": job_env}
            step_env = {
                **job_env,
                **{k: str(value_of(v, step_ctx)) for k, v in (step.get("env") or {}).items()},
            }
            step_ctx["env"] = step_env
            if not condition(step.get("if"), step_ctx):
                log.append(f"skip {step.get('name') or step.get('uses')}")
                continue
            files["output"].write_text("")
            if "uses" in step:
                try:
                    outputs = self._uses(step, step_ctx, work)
                except FileNotFoundError as e:  # e.g. an artifact that was never uploaded
                    log.append(f"{step['uses']}: {e}")
                    return JobResult("failure", summary=files["summary"].read_text(), log="\n".join(log))
            else:
                script = substitute(step["run"], step_ctx)
                if "pip install" in script:
                    log.append(f"stand-in (already installed): {step.get('name')}")
                    continue
                env = {
                    "PATH": os.pathsep.join([str(self.bin), *extra_path, str(VENV_BIN), "/usr/bin", "/bin"]),
                    "HOME": str(self.tmp),
                    "PYTHONPATH": str(REPO_ROOT / "tests"),
                    "DVC_NO_ANALYTICS": "1",
                    "GITHUB_ACTIONS": "true",
                    "GITHUB_API_URL": self.fake.url,
                    "GITHUB_REPOSITORY": REPO,
                    "GITHUB_EVENT_NAME": self.event_name,
                    "GITHUB_EVENT_PATH": str(self.event_path),
                    "GITHUB_SHA": self.sha,
                    "GITHUB_WORKSPACE": str(work),
                    "GITHUB_RUN_ID": "4242",
                    "GITHUB_SERVER_URL": "https://github.example",
                    "GITHUB_OUTPUT": str(files["output"]),
                    "GITHUB_ENV": str(files["env"]),
                    "GITHUB_PATH": str(files["path"]),
                    "GITHUB_STEP_SUMMARY": str(files["summary"]),
                    "STANDIN_CANDIDATE": CANDIDATE,
                    "STANDIN_REPLAYS": str(self.replays),
                    "STANDIN_ARTIFACTS": str(self.artifacts),
                    "STANDIN_ATTESTATIONS": str(self.attestations),
                    **step_env,
                }
                proc = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                log.append(f"$ {step.get('name') or script[:60]}\n{proc.stdout}{proc.stderr}")
                if proc.returncode != 0:
                    return JobResult("failure", summary=files["summary"].read_text(), log="\n".join(log))
                outputs = parse_output_file(files["output"].read_text())
                for k, v in parse_output_file(files["env"].read_text()).items():
                    job_env[k] = v
                extra_path = [p for p in files["path"].read_text().splitlines() if p] + extra_path
            if step.get("id"):
                ctx["steps"][step["id"]] = {"outputs": outputs, "outcome": "success"}
            del index
        result = JobResult("success", summary=files["summary"].read_text(), log="\n".join(log))
        result.outputs = {k: str(value_of(v, ctx)) for k, v in (job.get("outputs") or {}).items()}
        return result

    def _uses(self, step: dict[str, Any], ctx: dict[str, Any], work: Path) -> dict[str, str]:
        uses = step["uses"].split("@")[0]
        w = {k: str(value_of(v, ctx)) for k, v in (step.get("with") or {}).items()}
        if uses == "actions/checkout":
            ref = w.get("ref") or self.ref or self.sha
            if work.exists():
                return {}  # the shared workspace is checked out already
            subprocess.run(["git", "clone", "-q", str(self.origin), str(work)], check=True)
            branch = subprocess.run(
                ["git", "-C", str(work), "rev-parse", "-q", "--verify", f"refs/remotes/origin/{ref}"],
                capture_output=True,
            )
            if branch.returncode == 0:  # a branch: checked out as that branch, so a job can push it
                subprocess.run(
                    ["git", "-C", str(work), "checkout", "-q", "-B", ref, f"origin/{ref}"], check=True
                )
            else:  # a SHA (pull_request events): detached, as actions/checkout leaves it
                subprocess.run(["git", "-C", str(work), "checkout", "-q", "--detach", ref], check=True)
            for k, v in {"user.name": "Test", "user.email": "t@example.invalid"}.items():
                subprocess.run(["git", "-C", str(work), "config", k, v], check=True)
            return {}
        if uses == "actions/setup-python":
            return {}
        if uses == "actions/upload-artifact":
            paths = [work / p.strip() for p in w["path"].splitlines() if p.strip()]
            existing = [p for p in paths if p.exists()]
            assert existing or w.get("if-no-files-found") != "error", f"no files for artifact {w['name']}"
            root = Path(os.path.commonpath([p if p.is_dir() else p.parent for p in existing]))
            dest = self.artifacts / w["name"]
            for p in existing:
                target = dest / p.relative_to(root)
                if p.is_dir():
                    shutil.copytree(p, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, target)
            return {}
        if uses == "actions/download-artifact":
            dest = work / w.get("path", ".")
            if "pattern" in w:
                prefix = w["pattern"].rstrip("*")
                for art in sorted(self.artifacts.iterdir()):
                    if art.name.startswith(prefix):
                        shutil.copytree(art, dest / art.name, dirs_exist_ok=True)
            else:
                shutil.copytree(self.artifacts / w["name"], dest, dirs_exist_ok=True)
            return {}
        if uses == "actions/cache/restore":
            saved = self.cache / w["key"]
            if saved.exists():
                shutil.copytree(saved, work / w["path"], dirs_exist_ok=True)
                return {"cache-hit": "true"}
            return {"cache-hit": ""}
        if uses == "actions/cache/save":
            if not (self.cache / w["key"]).exists():
                shutil.copytree(work / w["path"], self.cache / w["key"])
            return {}
        if uses == "actions/attest-build-provenance":
            subject = work / w["subject-path"]
            records = json.loads(self.attestations.read_text())
            records.append(
                {
                    "sha256": hashlib.sha256(subject.read_bytes()).hexdigest(),
                    "workflow": ".github/workflows/release-gate.yml",
                }
            )
            self.attestations.write_text(json.dumps(records))
            return {}
        raise AssertionError(f"no stand-in for `uses: {step['uses']}`")

    def run_workflow(self, wf_name: str) -> dict[str, list[JobResult]]:
        wf = self.workflow(wf_name)
        done: dict[str, list[JobResult]] = {}
        pending = list(wf["jobs"])
        while pending:
            for name in pending:
                needs = wf["jobs"][name].get("needs") or []
                needs = [needs] if isinstance(needs, str) else needs
                if all(n in done for n in needs):
                    break
            else:
                raise AssertionError(f"cycle in {pending}")
            pending.remove(name)
            merged = {n: merge_legs(done[n]) for n in needs}
            if (
                any(m.result != "success" for m in merged.values())
                and "always()" not in str(wf["jobs"][name].get("if", ""))
                and "!cancelled()" not in str(wf["jobs"][name].get("if", ""))
            ):
                done[name] = [JobResult("skipped")]
                continue
            done[name] = self.run_job(wf_name, name, merged)
        return done


def merge_legs(legs: list[JobResult]) -> JobResult:
    if all(r.result == "skipped" for r in legs):
        return JobResult("skipped")
    result = "failure" if any(r.result == "failure" for r in legs) else "success"
    outputs: dict[str, str] = {}
    for r in legs:
        outputs.update({k: v for k, v in r.outputs.items() if v})
    return JobResult(result, outputs, "".join(r.summary for r in legs), "\n".join(r.log for r in legs))


def parse_output_file(text: str) -> dict[str, str]:
    """name=value lines and name<<DELIM heredocs, as the runner reads GITHUB_OUTPUT and GITHUB_ENV."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delim = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delim:
                    break
                body.append(inner)
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# The repository: a bare origin with main, and a PR branch that changes the candidate manifest.


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Repo:
    origin: Path
    base: str
    head: str


@pytest.fixture
def repo(example_repo: Path, tmp_path: Path) -> Repo:
    base = git(example_repo, "rev-parse", "HEAD")
    git(example_repo, "branch", "-M", "main")
    manifest = example_repo / "releases" / f"{CANDIDATE}.yaml"
    manifest.write_text(manifest.read_text() + "# reviewed for staging\n")
    git(example_repo, "checkout", "-q", "-b", "release-v1.3")
    git(example_repo, "commit", "-qam", "release v1.3 for staging")
    head = git(example_repo, "rev-parse", "HEAD")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_repo), str(origin))
    return Repo(origin, base, head)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    server = FakeGitHub(repo=REPO).start()
    yield server
    server.stop()


def pr_event(repo: Repo, *, fork: bool, merged: bool = False, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    head_repo = "someone/model-releases" if fork else REPO
    return {
        "action": "closed" if merged else "synchronize",
        "number": 42,
        "pull_request": {
            "number": 42,
            "merged": merged,
            "merge_commit_sha": repo.head if merged else None,
            "merged_by": {"login": "octocat"} if merged else None,
            "labels": [{"name": n} for n in labels],
            "base": {"sha": repo.base, "ref": "main", "repo": {"full_name": REPO}},
            "head": {"sha": repo.head, "ref": "release-v1.3", "repo": {"full_name": head_repo}},
        },
        "repository": {"full_name": REPO},
    }


def runner(
    tmp_path: Path, repo: Repo, fake: FakeGitHub, event: dict[str, Any], name: str = "pull_request"
) -> Runner:
    tmp = tmp_path / f"runner-{len(list(tmp_path.glob('runner-*')))}"
    tmp.mkdir()
    return Runner(tmp, repo.origin, fake, name, event, repo.head)


def explain(jobs: dict[str, list[JobResult]]) -> str:
    return "\n\n".join(
        f"== {n}: {[r.result for r in rs]}\n" + "\n".join(r.log for r in rs) for n, rs in jobs.items()
    )


# ---------------------------------------------------------------------------------------------


def test_release_gate_on_a_pull_request_comments_sets_status_and_check(
    tmp_path: Path, repo: Repo, fake: FakeGitHub
) -> None:
    run = runner(tmp_path, repo, fake, pr_event(repo, fork=False))
    jobs = run.run_workflow("release-gate.yml")
    results = {name: [r.result for r in rs] for name, rs in jobs.items()}
    assert results == {
        "validate": ["success"],
        "replay": ["success"],
        "baseline": ["success"],
        "gate": ["success"],
        "publish": ["success"],
    }, explain(jobs)
    validate = jobs["validate"][0]
    assert validate.outputs["releases"] == '["v1.3"]'
    assert json.loads(validate.outputs["baselines"]) == {"v1.3": "v1.2"}
    # The candidate replayed once (one shard by default), the baseline once: nothing cached yet.
    assert run.replays.read_text().split("\n")[:2] == ["v1.3 0/1", "v1.2 None"]
    comments = fake.sticky(42, "<!-- releasectl:gate release=v1.3")
    assert len(comments) == 1 and "v1.3" in comments[0]["body"]
    (status,) = fake.statuses[repo.head]
    assert status["state"] == "success" and status["context"] == "releasectl/gate/v1.3"
    (check,) = fake.check_runs.values()
    assert check["head_sha"] == repo.head and check["conclusion"] == "success"
    assert (
        check["output"]["summary"]
        == (run.artifacts / "gate-v1.3" / "report.md").read_text()[: len(check["output"]["summary"])]
    )
    gate = jobs["gate"][0]
    assert "PROMOTE" in gate.summary.upper() and "reused from" not in gate.summary
    assert json.loads((run.artifacts / "gate-v1.3" / "gate.json").read_text())["verdict"] == "promote"
    assert len(json.loads(run.attestations.read_text())) == 1

    # A second gate of the same baseline (a new push) restores it from the cache, verified.
    again = runner(tmp_path, repo, fake, pr_event(repo, fork=False))
    again.cache = run.cache
    jobs = again.run_workflow("release-gate.yml")
    assert all(r.result == "success" for rs in jobs.values() for r in rs), explain(jobs)
    assert again.replays.read_text().split() == ["v1.3", "0/1"], "the baseline must not be replayed again"
    assert (
        "Baseline v1.2 was not replayed again: reused from actions/cache:releasectl-run-v1.2-vllm-"
        in jobs["gate"][0].summary
    )
    assert len(fake.sticky(42, "<!-- releasectl:gate release=v1.3")) == 1 and len(fake.check_runs) == 1


def test_release_gate_splits_the_candidate_over_shards_and_merges(
    tmp_path: Path, repo: Repo, fake: FakeGitHub
) -> None:
    run = runner(tmp_path, repo, fake, pr_event(repo, fork=False))
    original = run.workflow

    def with_shards(name: str) -> dict[str, Any]:
        wf = original(name)
        wf["env"]["REPLAY_SHARDS"] = "3"  # as the repository variable RELEASECTL_REPLAY_SHARDS would
        return wf

    run.workflow = with_shards  # type: ignore[method-assign]
    jobs = run.run_workflow("release-gate.yml")
    assert [r.result for r in jobs["replay"]] == ["success"] * 3, explain(jobs)
    assert jobs["gate"][0].result == "success", explain(jobs)
    shards = sorted(line for line in run.replays.read_text().splitlines() if line.startswith("v1.3"))
    assert shards == ["v1.3 0/3", "v1.3 1/3", "v1.3 2/3"]
    gate = json.loads((run.artifacts / "gate-v1.3" / "gate.json").read_text())
    assert gate["verdict"] == "promote"
    assert gate["provenance"]["candidate_run"]["cases"] == 2400  # all of seed_runs' cases, merged


def test_a_fork_pull_request_validates_only(tmp_path: Path, repo: Repo, fake: FakeGitHub) -> None:
    run = runner(tmp_path, repo, fake, pr_event(repo, fork=True))
    jobs = run.run_workflow("release-gate.yml")
    results = {name: [r.result for r in rs] for name, rs in jobs.items()}
    assert results["validate"] == ["success"], explain(jobs)
    assert results["replay"] == results["baseline"] == ["skipped"]
    assert results["gate"] == results["publish"] == ["skipped"]
    assert "fork" in jobs["validate"][0].log
    assert not run.replays.read_text() and not fake.log


def test_promote_verifies_the_attested_gate_then_promotes_and_pushes(
    tmp_path: Path, repo: Repo, fake: FakeGitHub
) -> None:
    gate_run = runner(tmp_path, repo, fake, pr_event(repo, fork=False))
    jobs = gate_run.run_workflow("release-gate.yml")
    assert jobs["gate"][0].result == "success", explain(jobs)
    # The merge: main moves to the PR's head (fast-forward), as GitHub's merge commit would.
    git(tmp_path, "--git-dir", str(repo.origin), "update-ref", "refs/heads/main", repo.head)
    promote = runner(
        tmp_path, repo, fake, pr_event(repo, fork=False, merged=True, labels=("promote:staging",))
    )
    promote.artifacts, promote.attestations = gate_run.artifacts, gate_run.attestations
    done = promote.run_workflow("promote.yml")
    assert done["promote"][0].result == "success", explain(done)
    assert "staging" in done["promote"][0].summary and "v1.3" in done["promote"][0].summary
    channels = git(tmp_path, "--git-dir", str(repo.origin), "show", "main:releases/channels.yaml")
    assert re.search(r"staging:\s*v1\.3", channels), channels

    # An altered gate.json (not the attested bytes) stops before promote.
    gate_file = gate_run.artifacts / "gate-v1.3" / "gate.json"
    gate_file.write_text(gate_file.read_text().replace('"staging"', '"staging" ', 1))
    forged = runner(tmp_path, repo, fake, pr_event(repo, fork=False, merged=True, labels=("promote:canary",)))
    forged.artifacts, forged.attestations = gate_run.artifacts, gate_run.attestations
    done = forged.run_workflow("promote.yml")
    assert done["promote"][0].result == "failure"
    assert (
        "no attestation" in done["promote"][0].log and "releasectl promote" not in done["promote"][0].summary
    )


def test_rollback_workflow_rolls_back_and_pushes(tmp_path: Path, repo: Repo, fake: FakeGitHub) -> None:
    run = runner(tmp_path, repo, fake, {"inputs": {}}, name="workflow_dispatch")
    run.sha, run.ref = repo.base, "main"
    run.inputs = {"version": "v1.1", "channel": "staging", "reason": "incident 7: bad answers"}
    done = run.run_workflow("rollback.yml")
    assert done["rollback"][0].result == "success", explain(done)
    assert "v1.1" in done["rollback"][0].summary
    history = git(tmp_path, "--git-dir", str(repo.origin), "show", "main:releases/history.jsonl")
    last = json.loads(history.splitlines()[-1])
    assert last["channel"] == "staging" and "incident 7" in json.dumps(last)


def test_monitor_workflow_outputs_and_issue(tmp_path: Path, repo: Repo, fake: FakeGitHub) -> None:
    logs = sorted((REPO_ROOT / "examples" / "logs").glob("*.jsonl*"))
    if not logs:
        pytest.skip("no example logs")
    run = runner(tmp_path, repo, fake, {"inputs": {}}, name="workflow_dispatch")
    run.sha, run.ref = repo.base, "main"
    run.inputs = {"logs_url": logs[0].as_uri(), "channel": "production"}
    done = run.run_workflow("monitor.yml")
    monitor = done["monitor"][0]
    assert monitor.result == "success", explain(done)
    assert set(monitor.outputs) == {"fired", "rollback", "attention"}
    assert monitor.outputs["rollback"] in ("true", "false") and monitor.outputs["attention"] in (
        "true",
        "false",
    )
    assert (run.artifacts / "monitor-report" / "monitor.json").exists()


def test_the_action_and_its_documented_consumer_workflow_pass_actionlint(tmp_path: Path) -> None:
    binary = VENV_BIN / "actionlint"
    if not binary.exists():
        pytest.skip("actionlint not installed")
    text = (REPO_ROOT / "docs" / "github.md").read_text() + (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    examples = [b for b in blocks if "releasectl@" in b]
    assert len(examples) >= 2, "docs/github.md and the README each show a consumer workflow"
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    files = []
    for i, block in enumerate(examples):
        path = tmp_path / ".github" / "workflows" / f"consumer-{i}.yml"
        path.write_text(block)
        files.append(path)
        # The same workflow against this checkout's action.yml (`uses: ./`), so actionlint checks
        # the inputs it passes against the action's declared inputs.
        local = tmp_path / ".github" / "workflows" / f"local-{i}.yml"
        local.write_text(re.sub(r"acme/releasectl@[0-9a-f]{40}", "./", block))
        files.append(local)
    shutil.copy2(REPO_ROOT / "action.yml", tmp_path / "action.yml")
    # A consumer declares its self-hosted `gpu` label as this repository does.
    shutil.copy2(REPO_ROOT / ".github" / "actionlint.yaml", tmp_path / ".github" / "actionlint.yaml")
    # A repository (actionlint finds action.yml and its config from the project root).
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    config: list[str] = []
    proc = subprocess.run(
        [str(binary), *config, *map(str, files)], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.write_text(
        examples[0]
        .replace("command: validate", "comand: validate")
        .replace("acme/releasectl@0123456789abcdef0123456789abcdef01234567", "./")
    )
    proc = subprocess.run([str(binary), *config, str(broken)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "comand" in proc.stdout


def test_the_action_pins_third_party_actions_and_declares_its_modes() -> None:
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"[\w.\-]+/[\w.\-/]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        else:
            assert step["shell"] == "bash" and "${{ inputs." not in step["run"], "inputs go through env"
    assert {"command", "manifests", "run", "baseline-run", "gate", "publish-to", "github-token"} <= set(
        action["inputs"]
    )
    assert {"verdict", "gate-json", "report", "exit-code"} <= set(action["outputs"])


def run_action(run: Runner, with_: dict[str, str], before: list[dict[str, Any]] | None = None) -> JobResult:
    """The composite action's steps as one job, `inputs` = `with_` over the declared defaults.
    Every call shares one workspace (run.workdir), as steps of one consumer job do."""
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    ctx: dict[str, Any] = {
        "github": run.github(),
        "secrets": {},
        "vars": {},
        "env": {},
        "steps": {},
        "matrix": {},
    }
    run.inputs = {
        **{k: str(value_of(v.get("default", ""), ctx)) for k, v in action["inputs"].items()},
        **with_,
    }
    steps = [{"uses": "actions/checkout@x"}, *(before or []), *action["runs"]["steps"]]
    job = {"steps": steps, "outputs": {k: v["value"] for k, v in action["outputs"].items()}}
    run.workflow = lambda name: {"on": "pull_request", "jobs": {"action": job}}  # type: ignore[method-assign]
    (result,) = run.run_job("action", "action", {})
    return result


def test_the_action_validates_gates_and_publishes(tmp_path: Path, repo: Repo, fake: FakeGitHub) -> None:
    run = runner(tmp_path, repo, fake, pr_event(repo, fork=False))
    run.workdir = tmp_path / "consumer-workspace"
    validate = run_action(run, {"command": "validate", "manifests": "releases/v1.3.yaml"})
    assert validate.result == "success", validate.log
    assert validate.outputs["exit-code"] == "0" and "releases/v1.3.yaml: checklist 1 pass" in validate.log

    # The consumer's replay (the GPU job) is the stand-in shim: runs bound to the manifests.
    replay = {
        "run": "releasectl replay releases/v1.3.yaml --engine vllm --out runs/v1.3\n"
        "releasectl replay releases/v1.2.yaml --engine vllm --out runs/v1.2"
    }
    gate = run_action(
        run,
        {
            "command": "gate",
            "manifests": "releases/v1.3.yaml",
            "run": "runs/v1.3",
            "baseline-run": "runs/v1.2",
        },
        before=[replay],
    )
    assert gate.result == "success", gate.log
    assert gate.outputs["verdict"] == "promote" and gate.outputs["exit-code"] == "0"
    assert gate.outputs["gate-json"] == "runs/v1.3/gate.json"
    assert gate.summary == (run.workdir / "runs" / "v1.3" / "report.md").read_text()

    publish = run_action(run, {"command": "publish", "gate": "runs/v1.3/gate.json"})
    assert publish.result == "success", publish.log
    assert len(fake.sticky(42, "<!-- releasectl:gate release=v1.3")) == 1
    assert [s["state"] for s in fake.statuses[repo.head]] == ["success"]
    (check,) = fake.check_runs.values()
    assert check["conclusion"] == "success" and check["head_sha"] == repo.head

    bad = run_action(
        run, {"command": "publish", "gate": "runs/v1.3/gate.json", "publish-to": "comment,tweet"}
    )
    assert bad.result == "failure" and "unknown target 'tweet'" in bad.log
