"""Load a frozen suite directory: `suite.yaml` (slices, verifier instances) + `slices/<id>.jsonl`.

```
suites/core/
  suite.yaml              name, version, slices: {id: {behaviour, verifiers: {instance: {verifier, kind?, settings}}}}
  slices/<slice>.jsonl    one case per line: {"id", "input": {"prompt": ...}, "expected": {...}}
  fixtures/               frozen tool fixtures (pinned separately by the manifest's tools.*.fixtures)
```
A verifier *instance* (the key, e.g. `urgent_referral`) names a registered verifier family (e.g.
`must_contain`) with its settings; results are reported per instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from releasectl import safeio
from releasectl.errors import BadInput, Problem
from releasectl.manifest.digests import dvc_md5
from releasectl.manifest.yaml_positions import dotted, load_yaml_with_positions

SUITE_FILE = "suite.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceSpec(_Strict):
    verifier: str
    kind: Literal["rule", "format", "correctness", "tool", "quality"] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class SliceSpec(_Strict):
    behaviour: str
    kind: str = "general"
    steps: Literal["numbered_lines", "tool_calls"] | None = None
    verifiers: dict[str, InstanceSpec]


class SuiteSpec(_Strict):
    name: str
    version: str
    description: str = ""
    slices: dict[str, SliceSpec]


class CaseSpec(_Strict):
    id: str
    input: dict[str, Any]
    expected: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class VerifierSpec:
    name: str  # the instance name reported in results
    verifier: str  # the registered family
    kind: str | None
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    slice: str
    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    verifiers: tuple[VerifierSpec, ...]
    steps: str | None = None  # how to count steps-to-solve: numbered_lines | tool_calls | None


@dataclass(frozen=True)
class SliceInfo:
    id: str
    behaviour: str
    kind: str
    verifiers: tuple[str, ...]
    cases: int
    steps: str | None = None


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    version: str
    digest: str
    slices: dict[str, SliceInfo]
    cases: list[Case]

    @property
    def fixtures_dir(self) -> Path:
        return self.path / "fixtures"


def _positions_problem(display: str, src: Any, err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        line, col = src.locate(loc)
        problems.append(Problem(str(e["msg"]), file=display, line=line, col=col, field=dotted(loc)))
    return problems


def load_suite(path: Path) -> Suite:
    """Load and check a suite; BadInput (exit 2) names the file and line of anything malformed."""
    path = Path(path)
    spec_path = path / SUITE_FILE
    display = spec_path.as_posix()
    if not (spec_path.exists() or spec_path.is_symlink()):  # FIFOs, loops: safeio names them
        raise BadInput(
            f"{display} not found", hint="a suite is a directory with suite.yaml and slices/<slice>.jsonl"
        )
    src = load_yaml_with_positions(spec_path, display)
    try:
        spec = SuiteSpec.model_validate(src.data)
    except ValidationError as e:
        raise BadInput(f"{display} is not a valid suite", _positions_problem(display, src, e)) from None
    from releasectl.suite.registry import installed_verifiers

    installed = installed_verifiers()
    problems: list[Problem] = []
    for slice_id, sl in spec.slices.items():
        for inst, v in sl.verifiers.items():
            if v.verifier not in installed:
                line, col = src.locate(("slices", slice_id, "verifiers", inst, "verifier"))
                problems.append(
                    Problem(
                        f"unknown verifier '{v.verifier}'",
                        file=display,
                        line=line,
                        col=col,
                        hint="installed: " + ", ".join(sorted(installed)),
                    )
                )
    cases: list[Case] = []
    slices: dict[str, SliceInfo] = {}
    seen: dict[str, str] = {}
    for slice_id, sl in spec.slices.items():
        rel = f"slices/{slice_id}.jsonl"
        file = path / rel
        case_display = (path / rel).as_posix()
        if not (file.exists() or file.is_symlink()):
            problems.append(Problem(f"slice '{slice_id}' has no cases file {rel}", file=display))
            continue
        vspecs = tuple(VerifierSpec(inst, v.verifier, v.kind, v.settings) for inst, v in sl.verifiers.items())
        count = 0
        # safeio: regular file, size cap, strict UTF-8, bounded JSON (depth, digits, finite).
        body = safeio.read_text(file, what="cases file", name=case_display)
        for lineno, text in enumerate(body.splitlines(), start=1):
            if not text.strip():
                continue
            try:
                case = CaseSpec.model_validate(safeio.loads_json(text, source=case_display, line=lineno))
            except BadInput as e:
                problems.extend(e.problems or [Problem(e.message, file=case_display, line=lineno)])
                continue
            except ValidationError as e:
                msg = e.errors(include_url=False)[0]["msg"]
                problems.append(Problem(f"invalid case: {msg}", file=case_display, line=lineno))
                continue
            if "prompt" not in case.input:
                problems.append(
                    Problem(
                        "case input has no 'prompt'", file=case_display, line=lineno, field="input.prompt"
                    )
                )
            if case.id in seen:
                problems.append(
                    Problem(
                        f"duplicate case id '{case.id}' (first in {seen[case.id]})",
                        file=case_display,
                        line=lineno,
                        field="id",
                    )
                )
                continue
            seen[case.id] = f"{rel}:{lineno}"
            cases.append(Case(case.id, slice_id, case.input, case.expected, vspecs, sl.steps))
            count += 1
        slices[slice_id] = SliceInfo(slice_id, sl.behaviour, sl.kind, tuple(sl.verifiers), count, sl.steps)
    if problems:
        raise BadInput(f"suite {path} is not valid", problems)
    cases.sort(key=lambda c: c.id)
    return Suite(
        path=path, name=spec.name, version=spec.version, digest=dvc_md5(path), slices=slices, cases=cases
    )
