"""Content digests: `sha256` for files, DVC-compatible `md5` for data files and directories.

DVC 3.x (`hash: md5`) hashes a file as the plain md5 of its bytes. A directory's hash is the md5
of the JSON listing `[{"md5": ..., "relpath": ...}, ...]` sorted by relpath and dumped with
`sort_keys=True`, plus the suffix `.dir`, which is how it appears in `.dvc` files and `dvc.lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CHUNK = 1 << 20

# Directories DVC never includes in a directory hash.
_SKIP_DIRS = {".git", ".dvc", "__pycache__"}


def _file_digest(path: Path, algorithm: str) -> str:
    """The digest of a regular file; a FIFO, device or socket (inside a pinned directory too) is
    bad input naming it, never a hang."""
    from releasectl.safeio import open_binary

    h = hashlib.new(algorithm)
    with open_binary(path, what="pinned file") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    return _file_digest(path, "sha256")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5_file(path: Path) -> str:
    return _file_digest(path, "md5")


def dir_listing(path: Path) -> list[dict[str, str]]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            if name.endswith(".pyc") or name == ".dvcignore":
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(path).as_posix()
            entries.append({"md5": md5_file(full), "relpath": rel})
    return sorted(entries, key=lambda e: e["relpath"])


def dvc_md5(path: Path) -> str:
    """The md5 DVC records for `path`: a file's md5, or a directory's listing md5 + '.dir'."""
    if path.is_dir():
        listing = json.dumps(dir_listing(path), sort_keys=True).encode("utf-8")
        return hashlib.md5(listing).hexdigest() + ".dir"
    return md5_file(path)


def sha256_tree(path: Path) -> str:
    """A sha256 over a directory (relpaths and file sha256s), for directories pinned by sha256."""
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(".pyc"):
                continue
            full = Path(dirpath) / name
            h.update(full.relative_to(path).as_posix().encode() + b"\0" + sha256_file(full).encode() + b"\n")
    return h.hexdigest()
