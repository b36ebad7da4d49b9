"""Load a manifest file into a validated `Manifest`, with every error located at file:line:col."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from releasectl import safeio
from releasectl.errors import BadInput, Problem
from releasectl.manifest.models import Artifact, Manifest
from releasectl.manifest.yaml_positions import FieldPath, Positioned, dotted, load_yaml_with_positions

_HF_URI = re.compile(r"^hf://[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PKG_URI = re.compile(r"^pkg://[A-Za-z0-9][\w.-]*/[^\s]+$")


@dataclass(frozen=True)
class LoadedManifest:
    manifest: Manifest
    path: Path
    root: Path
    source: Positioned

    @property
    def display(self) -> str:
        return self.source.file

    @property
    def digest(self) -> str:
        return manifest_digest(self.manifest)

    def locate(self, field: FieldPath) -> tuple[int, int]:
        return self.source.locate(field)

    def problem(self, field: FieldPath, message: str, **kw: Any) -> Problem:
        line, col = self.locate(field)
        return Problem(message, file=self.display, line=line, col=col, field=dotted(field), **kw)

    def resolve(self, rel: str) -> Path:
        return self.root / rel


def manifest_digest(manifest: Manifest) -> str:
    """sha256 of the canonical JSON of the validated manifest: comments and key order do not count."""
    canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def find_root(manifest_path: Path) -> Path:
    """The releases repository a manifest belongs to (`releasectl.repo.find_repo_root`), or the
    manifest's own folder when it is outside any."""
    from releasectl.repo import find_repo_root

    return find_repo_root(manifest_path) or manifest_path.resolve().parent


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as the user should see it: relative to the cwd (or the root) when inside it."""
    p = path.resolve()
    for base in (Path.cwd().resolve(), root.resolve() if root else None):
        if base is not None:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                pass
    return str(path)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}" if not isinstance(value, str) else text


_EXPECTED = {
    "missing": "a value",
    "extra_forbidden": None,
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "literal_error": None,
}


def _problems_from_validation(err: ValidationError, source: Positioned) -> list[Problem]:
    problems = []
    errors = err.errors(include_url=False)
    # A typo shows up twice (unknown 'temprature', missing 'temperature'); report it once.
    suggested = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            parent = tuple(e["loc"][:-1])
            import difflib

            for name in difflib.get_close_matches(
                str(e["loc"][-1]), _model_fields_at(parent), n=2, cutoff=0.6
            ):
                suggested.add((*parent, name))
    for e in errors:
        if e["type"] == "missing" and tuple(e["loc"]) in suggested:
            continue
        loc: FieldPath = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = e["type"]
        line, col = source.locate_key(loc) if kind == "extra_forbidden" else source.locate(loc)
        field = dotted(loc)
        if kind == "missing":
            problems.append(
                Problem(
                    "missing required field",
                    file=source.file,
                    line=line,
                    col=col,
                    field=field,
                    expected="a value",
                    found="nothing",
                )
            )
        elif kind == "extra_forbidden":
            parent = loc[:-1]
            problems.append(
                Problem(
                    f"unknown key '{loc[-1]}'",
                    file=source.file,
                    line=line,
                    col=col,
                    field=field,
                    hint=_suggest_keys(str(loc[-1]), parent),
                )
            )
        elif kind == "value_error":
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(Problem(msg, file=source.file, line=line, col=col, field=field))
        else:
            expected = _EXPECTED.get(kind) or str(e["msg"]).lower()
            problems.append(
                Problem(
                    str(e["msg"]),
                    file=source.file,
                    line=line,
                    col=col,
                    field=field,
                    expected=expected,
                    found=_describe(e.get("input")),
                )
            )
    return problems


def _model_fields_at(parent: FieldPath) -> list[str]:
    """Field names allowed at a path of the manifest (for 'did you mean' hints)."""
    from pydantic import BaseModel

    model: Any = Manifest
    for part in parent:
        if isinstance(part, int):
            continue
        field = (
            model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if field is None:
            return []
        ann = field.annotation
        model = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        if model is None:
            inner = getattr(ann, "__args__", ())
            model = next(
                (
                    a
                    for a in inner
                    for a in getattr(a, "__args__", (a,))
                    if isinstance(a, type) and issubclass(a, BaseModel)
                ),
                None,
            )
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _suggest_keys(key: str, parent: FieldPath) -> str:
    import difflib

    known = _model_fields_at(parent)
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return "allowed keys: " + ", ".join(known) if known else "remove it"


def _artifacts(manifest: Manifest) -> list[tuple[FieldPath, Artifact]]:
    found: list[tuple[FieldPath, Artifact]] = [
        (("model",), manifest.model),
        (("tokenizer",), manifest.tokenizer),
        (("input", "template"), manifest.input.template),
        (("data", "suite"), manifest.data.suite),
        (("data", "training_snapshot"), manifest.data.training_snapshot),
        (("training", "config"), manifest.training.config),
    ]
    found += [(("adapters", i), a) for i, a in enumerate(manifest.adapters)]
    if manifest.reward_model is not None:
        found.append((("reward_model",), manifest.reward_model))
    found += [
        (("tools", name, "fixtures"), t.fixtures)
        for name, t in manifest.tools.items()
        if t.fixtures is not None
    ]
    return found


def iter_artifacts(manifest: Manifest) -> list[tuple[str, Artifact]]:
    """Every pinned artifact with its dotted field path, in manifest order."""
    return [(dotted(path), art) for path, art in _artifacts(manifest)]


def _check_pins(loaded: LoadedManifest) -> list[Problem]:
    problems: list[Problem] = []
    root = loaded.root.resolve()
    for path, art in _artifacts(loaded.manifest):
        if art.uri is None and art.path is None:
            problems.append(
                loaded.problem(
                    path,
                    "no artifact reference",
                    expected="'uri' (hf:// or pkg://) or 'path'",
                    found="neither",
                )
            )
            continue
        if art.uri is not None and art.path is not None:
            problems.append(loaded.problem((*path, "path"), "give either 'uri' or 'path', not both"))
        if art.uri is not None:
            if art.uri.startswith("hf://"):
                if not _HF_URI.match(art.uri):
                    problems.append(
                        loaded.problem(
                            (*path, "uri"),
                            f"'{art.uri}' is not a Hub reference",
                            expected="hf://<org>/<repo>",
                        )
                    )
                if art.revision is None:
                    problems.append(
                        loaded.problem(
                            (*path, "revision"),
                            "missing revision: hf:// artifacts must pin a 40-hex commit SHA",
                            expected="revision: <40-hex commit SHA>",
                            found="no revision",
                        )
                    )
            elif art.uri.startswith("pkg://"):
                if not _PKG_URI.match(art.uri):
                    problems.append(
                        loaded.problem(
                            (*path, "uri"),
                            f"'{art.uri}' is not a package reference",
                            expected="pkg://<distribution>/<file>",
                        )
                    )
                if art.sha256 is None:
                    problems.append(
                        loaded.problem(
                            (*path, "sha256"),
                            "package files must be pinned by sha256",
                            expected="sha256: <64 hex>",
                            found="no sha256",
                        )
                    )
            else:
                problems.append(
                    loaded.problem(
                        (*path, "uri"),
                        f"unsupported scheme in '{art.uri}'",
                        expected="hf://<org>/<repo> or pkg://<distribution>/<file>",
                    )
                )
        if art.path is not None:
            if art.sha256 is None and art.md5 is None:
                problems.append(
                    loaded.problem(
                        path,
                        "repository paths must be pinned by a digest",
                        expected="'sha256' (file) or 'md5' (DVC data)",
                        found="neither",
                    )
                )
            target = (loaded.root / art.path).resolve()
            if target != root and root not in target.parents:
                problems.append(
                    loaded.problem(
                        (*path, "path"),
                        f"'{art.path}' resolves outside the repository (through a symlink)",
                        expected=f"a path inside {root}",
                        found=str(target),
                    )
                )
    return problems


def _readable(path: Path) -> None:
    """Refuse, before anything resolves the path, what `safeio` refuses: symlink loops, names too
    long, FIFOs, devices, directories; a missing file is "no such file"."""
    try:
        safeio.regular_file(path, what="manifest")
    except BadInput as e:
        if "not found" in e.message:
            raise BadInput(
                f"{path}: no such file", hint="check the path; releases live in releases/vX.Y.yaml"
            ) from None
        raise


def load_manifest(path: str | Path, root: Path | None = None) -> LoadedManifest:
    """Parse, validate and check the pins of one manifest. Raises `BadInput` (exit 2) on any error."""
    path = Path(path)
    _readable(path)
    root = (root or find_root(path)).resolve()
    display = display_path(path, root)
    source = load_yaml_with_positions(path, display)
    try:
        manifest = Manifest.model_validate(source.data)
    except ValidationError as e:
        raise BadInput(
            f"{display} is not a valid manifest",
            sorted(_problems_from_validation(e, source), key=lambda p: (p.line or 0, p.col or 0)),
            hint="`releasectl schema` prints every field with its type",
        ) from None
    loaded = LoadedManifest(manifest=manifest, path=path, root=root, source=source)
    problems = []
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if manifest.release != stem:
        problems.append(
            loaded.problem(
                ("release",),
                "release name differs from the file name",
                expected=f"'{stem}' (the file stem)",
                found=f"'{manifest.release}'",
            )
        )
    problems += _check_pins(loaded)
    if problems:
        raise BadInput(
            f"{display} is not a valid manifest", sorted(problems, key=lambda p: (p.line or 0, p.col or 0))
        )
    return loaded


def release_path(root: Path, release: str) -> Path:
    """`releases/<release>.yaml` under `root`, or a clear error naming the known releases."""
    candidate = root / "releases" / f"{release}.yaml"
    if safeio.present(candidate, what="release manifest"):
        return candidate
    known = sorted(p.stem for p in (root / "releases").glob("v*.yaml"))
    import difflib

    close = difflib.get_close_matches(release, known, n=3, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else (f"known releases: {', '.join(known)}" if known else "no releases found")
    )
    raise BadInput(f"unknown release '{release}': {display_path(candidate, root)} does not exist", hint=hint)
