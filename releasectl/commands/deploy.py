"""`releasectl deploy render` and `releasectl deploy snapshot`: what serves a channel, from its pins."""

from __future__ import annotations

from pathlib import Path

import click

from releasectl.console import console, emit_json, format_option


@click.group()
def deploy() -> None:
    """Render the serving config of the release a channel holds."""


@deploy.command()
@click.option(
    "--channel", default="production", show_default=True, help="The channel whose release to render."
)
@click.option(
    "--target",
    "targets",
    type=click.Choice(["vllm", "kubernetes", "argo"]),
    multiple=True,
    default=("vllm",),
    show_default=True,
    help="vllm: the `vllm serve` command line (serve.sh, serve.json); kubernetes: Deployment + Service; "
    "argo: Argo Rollouts Rollout + AnalysisTemplate (releasectl canary --prometheus) + Service. Repeatable.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write <channel>/<target>/…; default deploy/rendered in the releases repository.",
)
@click.option(
    "--image",
    default=None,
    help="kubernetes: the vLLM server image (default vllm/vllm-openai:v<pinned vllm>).",
)
@click.option(
    "--releasectl-image",
    default=None,
    help="kubernetes: the image holding this releases repository and releasectl (init containers).",
)
@click.option("--namespace", default=None, help="kubernetes, argo: metadata.namespace of the objects.")
@click.option(
    "--baseline-release",
    default=None,
    help="argo: the release the canary analysis compares against (default: the manifest's parent).",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    metavar="URL",
    help="argo: the Prometheus the analysis Job queries (default http://prometheus:9090).",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the rendered files instead of writing them.")
@format_option()
def render(
    channel: str,
    targets: tuple[str, ...],
    out_dir: Path | None,
    image: str | None,
    releasectl_image: str | None,
    namespace: str | None,
    baseline_release: str | None,
    prometheus_url: str | None,
    to_stdout: bool,
    fmt: str,
) -> int:
    """Render what serves CHANNEL's release; same pins in, byte-identical files out."""
    from releasectl.channels.state import read_state
    from releasectl.deploy import DEFAULT_OUT, render_release, write_rendered
    from releasectl.errors import BadInput
    from releasectl.manifest.loader import load_manifest, release_path
    from releasectl.repo import repo_root

    root = repo_root()
    release = read_state(root).channels.get(channel)
    if not release:
        raise BadInput(
            f"channel '{channel}' holds no release, so there is nothing to render",
            hint="releasectl status lists the channels; promote a release first",
        )
    loaded = load_manifest(release_path(root, release))
    files = render_release(
        loaded,
        channel,
        targets,
        image=image,
        releasectl_image=releasectl_image,
        namespace=namespace,
        baseline=baseline_release,
        prometheus=prometheus_url,
    )
    out = out_dir or root / DEFAULT_OUT
    written = [] if to_stdout else write_rendered(out, channel, files)
    if fmt == "json":
        emit_json(
            {
                "channel": channel,
                "release": release,
                "manifest_digest": loaded.digest,
                "out": None if to_stdout else str(out / channel),
                "files": {rel: text for rel, text in sorted(files.items())} if to_stdout else sorted(files),
                "changed": [str(p) for p in written],
            }
        )
        return 0
    if to_stdout:
        for rel, text in sorted(files.items()):
            click.echo(f"# --- {rel}\n{text}", nl=False)
        return 0
    con = console()
    con.print(f"{channel} → {release} ({loaded.digest[:19]}…)", markup=False, highlight=False)
    for rel in sorted(files):
        path = out / channel / rel
        state = "written" if path in written else "unchanged"
        con.print(f"  {state:9} {path}", markup=False, highlight=False)
    return 0


@deploy.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "to_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Copy the verified snapshot into this directory (e.g. a volume shared with the server).",
)
@format_option()
def snapshot(manifest: Path, to_dir: Path | None, fmt: str) -> int:
    """Print the verified safetensors snapshot vLLM serves for MANIFEST's GGUF model (converted once)."""
    import shutil

    from releasectl.errors import BadInput
    from releasectl.manifest.artifacts import check_digest, hf_snapshot, local_path
    from releasectl.manifest.loader import load_manifest
    from releasectl.manifest.snapshot import vllm_snapshot

    loaded = load_manifest(manifest)
    m = loaded.manifest
    if m.model.format != "gguf":
        raise BadInput(
            f"{loaded.display}: model is {m.model.format}, which vLLM serves as pinned; no snapshot to prepare"
        )
    check = check_digest("model", m.model, loaded.root)
    if check is not None and not check.ok:
        raise BadInput(f"model: {check.message}")
    if m.model.uri and m.model.uri.startswith("hf://"):
        gguf = hf_snapshot(m.model.uri, m.model.revision or "") / (m.model.file or "")
    else:
        found = local_path(m.model, loaded.root)
        assert found is not None
        gguf = found
    path = vllm_snapshot(
        gguf,
        m.model.sha256 or "",
        dtype=m.runtime.dtype,
        on_status=lambda t: console(stderr=True).print(t, markup=False),
    )
    if to_dir is not None:
        shutil.copytree(path, to_dir, dirs_exist_ok=True)
        path = to_dir
    if fmt == "json":
        emit_json({"release": m.release, "snapshot": str(path), "source_sha256": m.model.sha256})
    else:
        click.echo(str(path))
    return 0
