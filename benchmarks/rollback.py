"""`releasectl rollback` end to end vs `gto assign` (GTO, the GitOps model registry), same run.

Builds a releases repository with 500 releases and 1,000 history events, and a GTO repository
with the same 500 versions and stage tags. Times the console scripts as subprocesses, including
releasectl's git commit. Target: >= 30x faster than `gto assign`, about a second absolute.

    python benchmarks/rollback.py [--releases 500] [--events 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV_GIT = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "b@x",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "b@x",
}


def git(cwd: Path, *args: str) -> None:
    import os

    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **ENV_GIT})


def name(i: int) -> str:
    return f"v{i // 100 + 1}.{i % 100}"


def build_ours(work: Path, releases: int, events: int) -> Path:
    from releasectl.channels.state import render_view

    repo = work / "ours"
    for part in ("checklists", "suites", "prompts", "adapters", "data", "training"):
        shutil.copytree(ROOT / part, repo / part)
    (repo / "releases").mkdir(parents=True)
    template = (ROOT / "releases" / "v1.3.yaml").read_text()
    for i in range(releases):
        text = template.replace("release: v1.3", f"release: {name(i)}").replace(
            "parent: v1.2", f"parent: {name(max(i - 1, 0))}"
        )
        (repo / "releases" / f"{name(i)}.yaml").write_text(text)
    hist = []
    prev = None
    for e in range(events):
        to = name((e * 7) % releases)
        if to == prev:
            to = name((e * 7 + 1) % releases)
        hist.append(
            {
                "revision": e + 1,
                "time": "2026-11-01T00:00:00Z",
                "actor": "bench",
                "action": "promote",
                "channel": "production",
                "from": prev,
                "to": to,
                "reason": "bench",
                "forced": True,
                "gate": None,
            }
        )
        prev = to
    (repo / "releases" / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    (repo / "releases" / "channels.yaml").write_text(
        render_view({"staging": None, "canary": None, "production": prev}, events)
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench repo")
    return repo


def build_gto(work: Path, releases: int) -> Path:
    repo = work / "gto"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "model.txt").write_text("weights\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    # GTO allows one version per commit: one commit and one registration tag per version, and a
    # stage tag on every other version, as a registry with 500 promoted releases would have.
    for i in range(releases):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"model {i}")
        git(repo, "tag", "-a", f"model@v{i // 100 + 1}.{i % 100}.0", "-m", "Registering version")
        if i % 2 == 0:
            git(repo, "tag", "-a", f"model#prod#{i // 2 + 1}", "-m", "Assigning stage prod")
    return repo


def timed(cmd: list[str], cwd: Path) -> float:
    import os

    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV_GIT})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    try:
        # A fresh validation cache: the first rollback to each of the two releases validates its
        # manifest in full (pydantic + digests); later ones find it unchanged and skip that.
        ENV_GIT["XDG_CACHE_HOME"] = str(work / "cache")
        ours = build_ours(work, args.releases, args.events)
        gto_repo = build_gto(work, args.releases)
        releasectl = [str(Path(sys.executable).parent / "releasectl")]
        gto = [str(Path(sys.executable).parent / "gto")]
        # Helm-like rollback toggles between the last two releases, so every run is a real move.
        ours_times = [
            timed([*releasectl, "rollback", "--reason", f"bench {i}"], ours) for i in range(args.runs)
        ]
        gto_times = [
            timed(
                [
                    *gto,
                    "assign",
                    "model",
                    "--version",
                    f"v{(2 * i + 1) // 100 + 1}.{(2 * i + 1) % 100}.0",
                    "--stage",
                    "prod",
                ],
                gto_repo,
            )
            for i in range(max(1, args.runs // 2))
        ]
        cold, warm = ours_times[:2], ours_times[2:] or ours_times
        a, b = statistics.median(warm), statistics.median(gto_times)
        print(f"{args.releases} releases, {args.events} history events")
        print(f"releasectl rollback, cold (full validation)  max    {max(cold):6.3f} s  (n={len(cold)})")
        print(f"releasectl rollback (incl. git commit)       median {a:6.3f} s  (n={len(warm)})")
        print(f"gto assign                                   median {b:6.3f} s  (n={len(gto_times)})")
        print(
            f"ratio                                        {b / a:6.1f}x faster  (target >= 30x, ~1 s absolute)"
        )
        print(f"ratio, cold                                  {b / max(cold):6.1f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
