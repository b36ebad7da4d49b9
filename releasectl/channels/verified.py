"""Remember which manifests validated, so a rollback to an unchanged one skips pydantic.

An entry is keyed by the manifest's bytes, its resolved path and the validator's own source files,
and lists every local artifact file with its stat (size, mtime, ctime, inode) and resolved path —
the idea of git's index and of releasectl's digest cache. Any change to any of them is a miss, and
a miss runs the full `load_manifest` + digest check, so the cache can only skip work, never a
refusal. It lives beside the digest cache (`$XDG_CACHE_HOME/releasectl/`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_MAX_FILES = 2000  # directory artifacts with more files than this are simply not remembered
_MAX_ENTRIES = 256


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "releasectl" / "verified.json"


def _code_signature() -> str:
    # The validator's own code is part of the key: a stricter releasectl must re-check everything.
    pkg = Path(__file__).resolve().parent.parent
    parts = []
    for folder in (pkg / "manifest", pkg / "channels"):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                st = entry.stat()
                parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _key(manifest: Path) -> str:
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return f"{manifest.resolve()}:{digest}:{_code_signature()}"


def _files(target: Path) -> list[Path] | None:
    if not target.is_dir():
        return [target]
    found = [Path(d) / f for d, _, names in os.walk(target) for f in names]
    return found if len(found) <= _MAX_FILES else None


def _signature(path: Path) -> list[object] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load() -> dict[str, list[list[object]]]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_verified(manifest: Path) -> bool:
    """True when `manifest` validated before and nothing it depends on changed since."""
    entry = _load().get(_key(manifest))
    if entry is None:
        return False
    return all(_signature(Path(str(sig[0]))) == sig[1:] for sig in entry)


def remember(manifest: Path, artifacts: list[Path]) -> None:
    """Record that `manifest` (with these local artifact files or folders) just validated."""
    files: list[Path] = []
    for target in artifacts:
        found = _files(target)
        if found is None:
            return
        files += found
    entry = []
    for f in files:
        sig = _signature(f)
        if sig is None:
            return
        entry.append([str(f), *sig])
    cache = _load()
    cache[_key(manifest)] = entry
    try:
        from releasectl.fsutil import atomic_write_text

        atomic_write_text(_cache_file(), json.dumps(dict(list(cache.items())[-_MAX_ENTRIES:])))
    except OSError:
        pass  # a read-only home must not break a rollback


# --- gate.json, re-checked before a promotion ------------------------------------------------


def verified_gate(path: Path) -> tuple[dict[str, object], str]:
    """gate.json re-validated against `GateRecord`, with every pass/fail rule re-derived from its
    observed value, comparator and threshold, and the verdict re-derived from the rules.

    Returns (document, sha256 of its bytes). A record that disagrees with itself, or whose `rules`
    are missing or mistyped, is `BadInput` (exit 2) naming the file, line and field: it never
    promotes. An interval-decided rule (sequential, or `no_regressions_on` with a margin) is
    re-derived from its bounds, and a sequential record must be decided and on the policy the
    replay stopped on (`GateRecord.derived`). This catches inconsistency, not a consistent forgery; docs/trust.md says what does.
    """
    from releasectl.contracts.gate import GateRecord
    from releasectl.errors import BadInput

    try:
        record, digest = GateRecord.read(path)
    except BadInput as e:
        raise BadInput(
            f"refusing to promote on {path}: {e.message}",
            e.problems,
            hint="a gate.json is only trusted when it is consistent; regenerate it with `releasectl gate` (docs/trust.md)",
        ) from None
    seq = record.sequential
    if seq is not None and not seq.same_policy:
        raise BadInput(
            f"refusing to promote on {path}: the sequential replay stopped on another policy"
            f" ({seq.policy}, sha256 {seq.policy_sha256[:12]}…) than the one gated"
            f" ({record.policy.get('source')}, sha256 {str(record.policy.get('sha256'))[:12]}…)",
            hint="gate the run with the policy it stopped on, or replay it with --sequential on this policy (docs/sequential.md)",
        )
    return record.model_dump(mode="json"), digest
