"""What the release-gate workflow runs for a pull request: the changed manifests, each one's
baseline, and the replay legs (release × shard). One command (`releasectl github matrix`) instead
of `mapfile`, `git diff` plumbing and inline Python in the workflow."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from releasectl.errors import BadInput, EnvironmentFailure

MANIFEST_RE = re.compile(r"releases/(v\d+\.\d+(?:\.\d+)?)\.yaml")
MAX_SHARDS = 64


@dataclass(frozen=True)
class GatePlan:
    releases: list[str]
    baselines: dict[str, str | None]
    shards: int

    def legs(self) -> list[dict[str, str]]:
        return [
            {"release": r, "shard": f"{i}/{self.shards}", "index": str(i)}
            for r in self.releases
            for i in range(self.shards)
        ]

    def outputs(self) -> dict[str, str]:
        """$GITHUB_OUTPUT values: JSON for `fromJSON`, and a space-separated manifest list for shell."""
        return {
            "releases": json.dumps(self.releases),
            "manifests": " ".join(f"releases/{r}.yaml" for r in self.releases),
            "baselines": json.dumps(self.baselines, sort_keys=True),
            "legs": json.dumps({"include": self.legs()}),
            "shards": str(self.shards),
        }


def changed_releases(root: Path, base: str, head: str) -> list[str]:
    """Releases whose manifest (releases/vX.Y[.Z].yaml) was added, modified or renamed in base..head."""
    try:
        out = subprocess.run(
            ["git", "diff", "--name-only", "--diff-filter=AMR", base, head, "--", "releases/v*.yaml"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except FileNotFoundError:
        raise EnvironmentFailure("git is not installed") from None
    except subprocess.CalledProcessError as e:
        raise BadInput(
            f"git diff {base}..{head} failed in {root}: {e.stderr.strip()}",
            hint="check out with fetch-depth: 0 so the base commit is present, and pass --base-sha",
        ) from None
    found = [m.group(1) for line in out.splitlines() if (m := MANIFEST_RE.fullmatch(line.strip()))]
    return sorted(dict.fromkeys(found), key=_version_key)


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release[1:].split("."))


def baseline_for(root: Path, release: str, channel: str) -> str | None:
    """The release `gate` compares against: the channel's release, then production's, then the
    manifest's parent; never the candidate itself."""
    from releasectl.channels.state import read_state
    from releasectl.manifest.loader import load_manifest

    channels = read_state(root).channels
    for name in (channel, "production"):
        found = channels.get(name)
        if found and found != release:
            return found
    parent = load_manifest(root / "releases" / f"{release}.yaml", root).manifest.parent
    return parent if parent and parent != release else None


def plan(root: Path, base: str, head: str, channel: str, shards: int) -> GatePlan:
    if not 1 <= shards <= MAX_SHARDS:
        raise BadInput(f"--shards {shards}: need 1 to {MAX_SHARDS}")
    releases = changed_releases(root, base, head)
    return GatePlan(releases, {r: baseline_for(root, r, channel) for r in releases}, shards)
