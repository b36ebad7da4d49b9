"""A GGUF-pinned model, prepared for vLLM as a converted local safetensors snapshot.

vLLM's core no longer loads GGUF files (vllm-project/vllm#39612, from 0.24), so the pinned GGUF
is de-quantized once by transformers (`from_pretrained(gguf_file=…)` then `save_pretrained`)
into a cache directory whose key covers everything that decides the converted bytes: the GGUF's
sha256 and the versions of the converter (transformers, torch, gguf) and of this format.

```
$RELEASECTL_CACHE/vllm-snapshots/<key>/
  config.json, model.safetensors, tokenizer.json, chat_template.jinja, …
  releasectl-snapshot.json   source sha256, converter versions, sha256 of every file
```
A snapshot is verified against the manifest's pin and its own file digests before every load;
a converted directory is written beside the cache and renamed into place, under a file lock,
so concurrent shards on one machine convert once and never see half a snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from releasectl.errors import EnvironmentFailure

FORMAT = 1
SIDECAR = "releasectl-snapshot.json"


def cache_root() -> Path:
    base = os.environ.get("RELEASECTL_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "releasectl"


def converter_versions() -> dict[str, str]:
    """Versions of what writes the converted bytes; part of the cache key."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"format": str(FORMAT)}
    for dist in ("transformers", "torch", "gguf", "safetensors"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            raise EnvironmentFailure(
                f"converting a GGUF model for vLLM needs '{dist}', which is not installed",
                hint="install the locked environment: make install (or pip install -r requirements/cpu.lock)",
            ) from None
    return out


def snapshot_key(gguf_sha256: str, versions: dict[str, str]) -> str:
    import hashlib

    blob = json.dumps({"gguf_sha256": gguf_sha256, **versions}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def vllm_snapshot(
    gguf: Path, gguf_sha256: str, *, dtype: str = "float32", on_status: Callable[[str], None] | None = None
) -> Path:
    """The verified converted snapshot of `gguf` (pinned by `gguf_sha256`), converting once."""
    from filelock import FileLock

    versions = converter_versions()
    target = cache_root() / "vllm-snapshots" / snapshot_key(gguf_sha256, {**versions, "dtype": dtype})
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():
            problem = verify_snapshot(target, gguf_sha256)
            if problem is None:
                return target
            if on_status:
                on_status(f"re-converting: the cached snapshot is damaged ({problem})")
            shutil.rmtree(target)
        if on_status:
            on_status(f"converting {gguf.name} to safetensors for vLLM (once per pin; about 30 s)")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            convert_gguf(gguf, staging, dtype=dtype)
            write_sidecar(staging, gguf_sha256, versions)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    problem = verify_snapshot(target, gguf_sha256)
    if problem is not None:  # pragma: no cover - a freshly written snapshot that fails is a disk fault
        raise EnvironmentFailure(f"the converted snapshot {target} does not verify: {problem}")
    return target


def convert_gguf(gguf: Path, out: Path, *, dtype: str) -> None:
    """De-quantize `gguf` with transformers and save model and tokenizer as safetensors."""
    import functools
    import gc

    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)  # ours is the replay's bar
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch_dtype = getattr(torch, "float32" if dtype == "auto" else dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise EnvironmentFailure(
            f"vLLM cannot serve {gguf.name}: transformers could not convert it ({e})",
            hint="pin a safetensors snapshot (hf://org/repo + revision) for the vllm engine, or replay with --engine hf",
        ) from None
    # A GGUF-loaded model is marked quantized and refuses save_pretrained; its weights are plain
    # de-quantized tensors by now, so drop the quantizer's marks.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False  # type: ignore[assignment]
    out.mkdir(parents=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    del model
    gc.collect()


def _file_digests(root: Path) -> dict[str, str]:
    from releasectl.manifest.digests import sha256_file

    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != SIDECAR
    }


def write_sidecar(root: Path, gguf_sha256: str, versions: dict[str, str]) -> None:
    from releasectl.fsutil import atomic_write_text

    doc = {"source_sha256": gguf_sha256, "converter": versions, "files": _file_digests(root)}
    atomic_write_text(root / SIDECAR, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_sidecar(root: Path) -> dict[str, Any] | None:
    from releasectl.errors import BadInput
    from releasectl.safeio import read_json

    try:
        doc = read_json(root / SIDECAR, what="snapshot record")
    except BadInput:
        return None
    return doc if isinstance(doc, dict) else None


def verify_snapshot(root: Path, gguf_sha256: str) -> str | None:
    """None when `root` is the conversion of exactly the pinned GGUF, byte for byte; else why not."""
    doc = read_sidecar(root)
    if doc is None:
        return f"{SIDECAR} is missing or unreadable"
    if doc.get("source_sha256") != gguf_sha256:
        return f"converted from {doc.get('source_sha256')}, the manifest pins {gguf_sha256}"
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        return "no file digests recorded"
    actual = _file_digests(root)
    if actual != files:
        changed = sorted(set(actual) ^ set(files) | {k for k in files if actual.get(k) != files[k]})
        return f"files differ from the recorded digests: {', '.join(changed[:5])}"
    return None
