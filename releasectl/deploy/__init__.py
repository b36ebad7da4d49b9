"""Deploy: turn the release a channel holds into what serves it (vllm serve, Kubernetes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from releasectl.errors import BadInput
from releasectl.fsutil import atomic_write_text

if TYPE_CHECKING:
    from releasectl.manifest.loader import LoadedManifest

TARGETS = ("vllm", "kubernetes")
DEFAULT_OUT = "deploy/rendered"


def render_release(
    loaded: LoadedManifest,
    channel: str,
    targets: tuple[str, ...],
    *,
    image: str | None = None,
    releasectl_image: str | None = None,
    namespace: str | None = None,
) -> dict[str, str]:
    """Relative path -> file text for each target (pure: the same pins give the same bytes)."""
    from releasectl.deploy.render import render_kubernetes, render_vllm, serve_spec

    spec = serve_spec(loaded)
    files: dict[str, str] = {}
    for target in targets:
        if target == "vllm":
            files.update(render_vllm(spec, channel))
        elif target == "kubernetes":
            engine_version = loaded.manifest.runtime.pinned_version("vllm")
            if image is None and engine_version is None:
                raise BadInput(
                    f"{loaded.display} pins no vLLM version, so the server image cannot be chosen",
                    hint="pin runtime.engine_versions.vllm, or pass --image",
                )
            files.update(
                render_kubernetes(
                    spec,
                    channel,
                    image=image or f"vllm/vllm-openai:v{engine_version}",
                    releasectl_image=releasectl_image
                    or f"ghcr.io/releasectl/releases:{loaded.manifest.code.repo_sha}",
                    namespace=namespace,
                )
            )
        else:
            raise BadInput(f"unknown deploy target '{target}'", hint="targets: " + ", ".join(TARGETS))
    return files


def write_rendered(out_dir: Path, channel: str, files: dict[str, str]) -> list[Path]:
    """Write the rendered files under out_dir/channel, atomically; unchanged files are not rewritten."""
    written = []
    for rel, text in sorted(files.items()):
        path = out_dir / channel / rel
        try:
            if path.is_file() and path.read_bytes() == text.encode("utf-8"):
                continue
            atomic_write_text(path, text)
            if path.suffix == ".sh":
                path.chmod(0o755)
        except OSError as e:
            raise BadInput(
                f"cannot write the rendered config {path}: {e.strerror or e}",
                hint="choose a writable directory with --out",
            ) from None
        written.append(path)
    return written
