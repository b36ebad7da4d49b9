"""Deploy: turn the release a channel holds into what serves it (vllm serve, Kubernetes, Argo Rollouts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from releasectl.errors import BadInput
from releasectl.fsutil import atomic_write_text

if TYPE_CHECKING:
    from releasectl.manifest.loader import LoadedManifest

TARGETS = ("vllm", "kubernetes", "argo")
DEFAULT_OUT = "deploy/rendered"


def render_release(
    loaded: LoadedManifest,
    channel: str,
    targets: tuple[str, ...],
    *,
    image: str | None = None,
    releasectl_image: str | None = None,
    namespace: str | None = None,
    baseline: str | None = None,
    prometheus: str | None = None,
) -> dict[str, str]:
    """Relative path -> file text for each target (pure: the same pins give the same bytes).
    `baseline` and `prometheus` are for argo: the release the canary is compared against
    (default: the manifest's parent) and where the analysis Job reads metrics."""
    from releasectl.deploy.render import (
        CanaryAnalysis,
        render_argo,
        render_kubernetes,
        render_vllm,
        serve_spec,
    )

    spec = serve_spec(loaded)
    files: dict[str, str] = {}
    for target in targets:
        if target == "vllm":
            files.update(render_vllm(spec, channel))
        elif target in ("kubernetes", "argo"):
            server = image or _server_image(loaded)
            tool = releasectl_image or f"ghcr.io/releasectl/releases:{loaded.manifest.code.repo_sha}"
            if target == "kubernetes":
                files.update(
                    render_kubernetes(spec, channel, image=server, releasectl_image=tool, namespace=namespace)
                )
                continue
            infra = loaded.manifest.infrastructure
            files.update(
                render_argo(
                    spec,
                    channel,
                    image=server,
                    releasectl_image=tool,
                    namespace=namespace,
                    baseline=_baseline(loaded, baseline),
                    # The capacity plan's servers; seed 004's 5 % step needs 20 or a traffic router.
                    replicas=max(1, infra.gpus_allocated // infra.tensor_parallel_size),
                    analysis=CanaryAnalysis(prometheus=prometheus) if prometheus else None,
                )
            )
        else:
            raise BadInput(f"unknown deploy target '{target}'", hint="targets: " + ", ".join(TARGETS))
    return files


def _server_image(loaded: LoadedManifest) -> str:
    engine_version = loaded.manifest.runtime.pinned_version("vllm")
    if engine_version is None:
        raise BadInput(
            f"{loaded.display} pins no vLLM version, so the server image cannot be chosen",
            hint="pin runtime.engine_versions.vllm, or pass --image",
        )
    return f"vllm/vllm-openai:v{engine_version}"


def _baseline(loaded: LoadedManifest, baseline: str | None) -> str:
    """The release the canary analysis compares against: --baseline-release, else the parent."""
    from releasectl.manifest.models import RELEASE_NAME

    chosen = baseline or loaded.manifest.parent
    if chosen is None:
        raise BadInput(
            f"{loaded.display} has no parent, so the canary analysis has no baseline release",
            hint="set parent: in the manifest, or pass --baseline-release vX.Y",
        )
    if not RELEASE_NAME.match(chosen) or chosen == loaded.manifest.release:
        raise BadInput(f"--baseline-release {chosen!r}: expected another release name like v1.2")
    return chosen


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
