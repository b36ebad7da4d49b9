"""The verifier registry: each verifier is a decorated function registered with name, version, kind.

A verifier family may keep several versions installed (a release pins the one it was evaluated
with), the way a package keeps old behaviour behind a version number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["rule", "format", "correctness", "tool", "quality"]


class Settings(BaseModel):
    """Base class for a verifier's typed settings (from suite.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str
    steps: int | None = None


@dataclass(frozen=True)
class VerifyContext:
    """What a verifier may look at besides the output: the case's expected values and the fixtures."""

    expected: Mapping[str, Any]
    fixtures_dir: Path | None = None


VerifierFn = Callable[[str, Any, VerifyContext], Verdict]


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    kind: Kind
    settings: type[Settings]
    fn: VerifierFn
    description: str


@dataclass(frozen=True)
class VerifierInfo:
    """An installed verifier family: its newest version, every version installed, kind and description."""

    name: str
    version: str
    kind: Kind
    description: str
    versions: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[tuple[str, str], Registered] = {}


def verifier(
    name: str, version: str, kind: Kind, settings: type[Settings]
) -> Callable[[VerifierFn], VerifierFn]:
    """Register `fn` as verifier `name` at `version`; its docstring's first line is the description."""

    def register(fn: VerifierFn) -> VerifierFn:
        key = (name, version)
        if key in _REGISTRY:
            raise RuntimeError(f"verifier {name} {version} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = Registered(name, version, kind, settings, fn, doc[0] if doc else name)
        return fn

    return register


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def _load_families() -> None:
    """Import every family module under `releasectl.suite.verifiers`; each one registers itself.

    The families are discovered, not listed: the registry depends on no family, so a family
    importing the registry's decorator is no import cycle, and a new family module needs no edit here.
    """
    global _families_loaded
    if _families_loaded:
        return
    import importlib
    import pkgutil

    from releasectl.suite import verifiers

    for module in pkgutil.iter_modules(verifiers.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{verifiers.__name__}.{module.name}")
    _families_loaded = True


_families_loaded = False


def get(name: str, version: str) -> Registered:
    _load_families()
    return _REGISTRY[(name, version)]


def installed_verifiers() -> dict[str, VerifierInfo]:
    """name -> newest installed version, every installed version, kind and description."""
    _load_families()
    out: dict[str, VerifierInfo] = {}
    names = sorted({n for n, _ in _REGISTRY})
    for name in names:
        versions = sorted((v for n, v in _REGISTRY if n == name), key=_version_key)
        newest = _REGISTRY[(name, versions[-1])]
        out[name] = VerifierInfo(name, newest.version, newest.kind, newest.description, tuple(versions))
    return out
