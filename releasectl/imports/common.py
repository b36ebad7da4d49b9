"""What every harness importer shares: one imported case, the choices a user makes (slices,
thresholds), located errors, and reading the harness's files through `releasectl.safeio`.

An importer turns a harness's own output into an `ImportedRun`; `writer.write_run` turns that
into a run directory (SPEC §5.1) through the run and results contracts.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasectl.errors import BadInput, Problem

MAX_SOURCE_BYTES = 1 << 30  # a harness log of a big suite is large; a gigabyte is still a log
HASH_CHARS = 16  # hex digits of the content hash kept in a case id (64 bits)
SYNTHESIZED = ("prompt_tokens", "completion_tokens", "latency_ms")


@dataclass(frozen=True)
class Verdict:
    """One scorer, metric or assertion on one case, already decided."""

    passed: bool
    kind: str
    detail: str


@dataclass
class ImportedCase:
    """One case of a harness run, with `case_id` = key + '#' + the harness's content hash."""

    key: str
    content_hash: str
    slice: str
    verifiers: dict[str, Verdict]
    output: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    where: str = ""  # file:line or file:$.json.path, for messages

    @property
    def case_id(self) -> str:
        return f"{self.key}#{self.content_hash[:HASH_CHARS]}"

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifiers.values())


@dataclass
class ImportedRun:
    """A harness run as releasectl needs it, plus what the harness recorded about itself."""

    harness: str
    harness_version: str | None
    format: str  # the harness format version this was read as, e.g. "samples-jsonl (doc_hash)"
    sources: list[Path]
    cases: list[ImportedCase]
    model: dict[str, Any]
    device: str | None = None
    seed: int | None = None
    generation_seconds: float | None = None
    started_at: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # harness-specific provenance
    unmapped: list[str] = field(default_factory=list)  # what the format has no place for


@dataclass(frozen=True)
class Choices:
    """How the user maps harness scores to releasectl verdicts (the `import` command's flags)."""

    slice_from: str | None = None  # "task", "group", "metadata.KEY", "vars.KEY"
    scorers: tuple[str, ...] = ()  # metrics / scorers / assertion metrics to keep; () = all
    thresholds: dict[str, float] = field(default_factory=dict)  # name (or "*") -> pass if >= value
    select: dict[str, str] = field(default_factory=dict)  # e.g. {"prompt": "plain", "filter": "none"}

    def threshold(self, name: str) -> float | None:
        return self.thresholds.get(name, self.thresholds.get("*"))


def bad(
    message: str, where: str, *, expected: str | None = None, found: Any = None, hint: str | None = None
) -> BadInput:
    """BadInput located at `where` ("file:line" or "file:$.path")."""
    file, _, rest = where.partition(":")
    line: int | None = None
    field_path: str | None = None
    if rest.isdigit():
        line = int(rest)
    elif rest:
        field_path = rest
    shown = None if found is None else describe(found)
    problem = Problem(message, file=file or None, line=line, field=field_path, expected=expected, found=shown)
    return BadInput(f"{where}: {message}", [problem], hint=hint)


def describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def need(
    obj: Any, key: str, types: type | tuple[type, ...], where: str, *, expected: str | None = None
) -> Any:
    """obj[key] of one of `types` (a bool is never a number), or BadInput at `where`.key."""
    path = f"{where}.{key}"
    if not isinstance(obj, dict):
        raise bad("expected an object", where, found=obj)
    if key not in obj:
        raise bad(f"missing '{key}'", where, expected=expected)
    value = obj[key]
    if not _is(value, types):
        raise bad("wrong type", path, expected=expected or _names(types), found=value)
    return value


def optional(obj: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """obj[key] when present and not null, checked like `need`; otherwise None."""
    if obj.get(key) is None:
        return None
    return need(obj, key, types, where)


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is an object, else an empty one (for optional provenance fields)."""
    return value if isinstance(value, dict) else {}


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    wanted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in wanted:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, wanted)


def _names(types: type | tuple[type, ...]) -> str:
    wanted = types if isinstance(types, tuple) else (types,)
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }
    return " or ".join(names.get(t, t.__name__) for t in wanted)


def score_passes(name: str, value: Any, choices: Choices, where: str) -> tuple[bool, str]:
    """Decide one score: booleans and 0/1 are binary; anything else needs `--threshold NAME=X`."""
    threshold = choices.threshold(name)
    if isinstance(value, bool):
        return value, f"{name}={str(value).lower()}"
    if not _is(value, (int, float)):
        raise bad(f"score '{name}' is not a number", where, expected="a number or a boolean", found=value)
    if threshold is not None:
        return value >= threshold, f"{name}={value:g} (pass if >= {threshold:g})"
    if value in (0, 1):
        return value == 1, f"{name}={value:g}"
    raise bad(
        f"score '{name}' is not binary ({value:g}), so pass/fail needs a threshold",
        where,
        hint=f"give --threshold {name}=X (a case passes when {name} >= X)",
    )


def keep_scorer(name: str, choices: Choices) -> bool:
    return not choices.scorers or name in choices.scorers


def check_scorers_seen(seen: set[str], choices: Choices, source: str, what: str) -> None:
    """A --metric/--scorer the harness never produced is a typo, not an empty verifier set."""
    missing = [s for s in choices.scorers if s not in seen]
    if missing:
        raise BadInput(
            f"{source}: no {what} named {', '.join(repr(m) for m in missing)}",
            [
                Problem(
                    f"unknown {what}",
                    file=source,
                    expected=", ".join(sorted(seen)) or "none",
                    found=missing[0],
                )
            ],
        )


def content_hash(value: Any) -> str:
    """sha256 of a canonical JSON rendering, for harnesses that record no content hash."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def read_json_source(path: Path, what: str) -> Any:
    from releasectl import safeio

    return safeio.read_json(path, max_bytes=MAX_SOURCE_BYTES, what=what)


def iter_json_lines(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line of a JSON-lines file."""
    from releasectl import safeio

    source = str(path)
    for number, raw in safeio.iter_lines(path, what=what):
        if raw.strip():
            safeio.decode_text(raw, source=source, line=number)
            yield number, safeio.loads_json(raw.rstrip(b"\r\n"), source=source, line=number)


def sha256_of(path: Path) -> str:
    from releasectl.manifest.digests import sha256_file

    return sha256_file(path)


def slice_for(choice: str, candidates: dict[str, Any], where: str, allowed: tuple[str, ...]) -> str:
    """The slice name `choice` selects from `candidates` ({"task": ..., "metadata": {...}}...)."""
    head, _, key = choice.partition(".")
    if head not in allowed:
        raise BadInput(
            f"--slice-from {choice!r} is not available here",
            [
                Problem(
                    "unknown slice source", field="--slice-from", expected=", ".join(allowed), found=choice
                )
            ],
        )
    value = candidates.get(head)
    if key:
        if not isinstance(value, dict) or key not in value:
            raise bad(f"no {head}.{key} to take the slice from", where, expected=f"a '{key}' entry in {head}")
        value = value[key]
    if not isinstance(value, str) or not value:
        raise bad(f"the slice from {choice} is not a non-empty string", where, found=value)
    return value
