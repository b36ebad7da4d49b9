"""`validate --resolve`: check that every hf:// revision exists, via huggingface_hub.

huggingface_hub reads `HF_ENDPOINT` and `HF_HUB_OFFLINE` when it is imported, so they take effect
for the CLI process as set in its environment. Offline, the local cache is checked instead
(`snapshots/<sha>` of the repo) and the result says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.loader import LoadedManifest, iter_artifacts

RETRIES = 2


@dataclass(frozen=True)
class RevisionCheck:
    field: str
    uri: str
    revision: str
    ok: bool
    message: str


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _in_cache(repo_id: str, revision: str) -> bool:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return False
    for repo in cache.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            return any(r.commit_hash == revision for r in repo.revisions)
    return False


def _is_transport_error(e: Exception) -> bool:
    """Connection failures from whichever HTTP stack huggingface_hub uses (httpx, httpx2, requests)."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    module = type(e).__module__.split(".")[0]
    return isinstance(e, OSError | OfflineModeIsEnabled | TimeoutError) or module in {
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "requests",
        "urllib3",
    }


def resolve_revisions(loaded: LoadedManifest) -> list[RevisionCheck]:
    """One check per hf:// artifact. An unreachable Hub is an EnvironmentFailure (exit 3)."""
    hub = [(f, a) for f, a in iter_artifacts(loaded.manifest) if a.uri and a.uri.startswith("hf://")]
    if not hub:
        return []
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if _offline():
        out = []
        for field_name, art in hub:
            repo_id, rev = art.uri.removeprefix("hf://"), art.revision or ""  # type: ignore[union-attr]
            ok = _in_cache(repo_id, rev)
            msg = (
                f"{art.uri}@{rev[:12]} is in the local cache (HF_HUB_OFFLINE: the Hub was not asked)"
                if ok
                else f"{art.uri}@{rev} is not in the local cache and HF_HUB_OFFLINE is set"
            )
            out.append(RevisionCheck(field_name, art.uri or "", rev, ok, msg))
        return out
    from releasectl.retry import RetriesExhausted, Retryable, RetryPolicy

    api = HfApi(endpoint=constants.ENDPOINT)
    checks = []
    policy = RetryPolicy(attempts=RETRIES + 1, base_delay=0.5, max_delay=10.0)
    for field_name, art in hub:
        repo_id, rev = (art.uri or "").removeprefix("hf://"), art.revision or ""

        def ask(repo_id: str = repo_id, rev: str = rev) -> Any:
            """One attempt; a 5xx or a transport error may clear up, so it is retried."""
            try:
                return api.model_info(repo_id, revision=rev, timeout=10)
            except (RevisionNotFoundError, RepositoryNotFoundError, GatedRepoError):
                raise
            except HfHubHTTPError as e:
                status = getattr(e.response, "status_code", 0)
                if status >= 500:
                    raise Retryable(f"HTTP {status}") from None
                raise
            except Exception as e:
                if _is_transport_error(e):
                    raise Retryable(f"{type(e).__name__}: {e}") from None
                raise

        try:
            info = policy.run(ask)
        except RetriesExhausted as e:
            raise EnvironmentFailure(
                f"could not reach the Hugging Face Hub at {constants.ENDPOINT}: {e}",
                hint="retry later, or check HF_ENDPOINT; HF_HUB_OFFLINE=1 checks the local cache only",
            ) from None
        except RevisionNotFoundError:
            checks.append(
                RevisionCheck(
                    field_name, art.uri or "", rev, False, f"revision {rev} does not exist in {art.uri}"
                )
            )
            continue
        except RepositoryNotFoundError:
            message = f"repository {art.uri} does not exist (or the token cannot see it)"
            checks.append(RevisionCheck(field_name, art.uri or "", rev, False, message))
            continue
        except GatedRepoError:
            message = f"{art.uri} is gated: set HF_TOKEN to a token with access"
            checks.append(RevisionCheck(field_name, art.uri or "", rev, False, message))
            continue
        except HfHubHTTPError as e:
            status = getattr(e.response, "status_code", 0)
            checks.append(
                RevisionCheck(field_name, art.uri or "", rev, False, f"{art.uri}@{rev}: HTTP {status}")
            )
            continue
        ok = info.sha == rev
        msg = f"{art.uri}@{rev[:12]} exists" if ok else f"{art.uri}: the Hub resolved {rev} to {info.sha}"
        checks.append(RevisionCheck(field_name, art.uri or "", rev, ok, msg))
    return checks
