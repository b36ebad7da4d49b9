"""`releasectl github comment|status|check`: the sticky PR comment, the commit status, the check run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from releasectl.console import console, emit_json, format_option
from releasectl.errors import BadInput

_ENV_HELP = (
    "Environment: GITHUB_TOKEN (required), GITHUB_REPOSITORY (or --repo), GITHUB_API_URL "
    "(default https://api.github.com; set it for GitHub Enterprise Server)."
)


def _connection_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help="Seconds per request, the whole request: connect, headers and body.",
    )(f)
    f = click.option(
        "--retries",
        type=click.IntRange(min=0, max=10),
        default=4,
        show_default=True,
        help="Retries after 5xx, 429, rate limits and timeouts (exponential backoff, honouring Retry-After).",
    )(f)
    return click.option(
        "--repo", default=None, metavar="OWNER/NAME", help="Repository; default $GITHUB_REPOSITORY."
    )(f)


def _client(repo: str | None, retries: int, timeout: float):  # type: ignore[no-untyped-def]
    from releasectl.github.client import GitHubClient, GitHubSettings
    from releasectl.retry import RetryPolicy

    return GitHubClient(
        GitHubSettings.from_env(repo), retry=RetryPolicy(attempts=retries + 1), timeout=timeout
    )


@click.group(epilog=_ENV_HELP)
def github() -> None:
    """Post the gate report as one sticky PR comment, a commit status or a check run.

    \b
    In the release-gate workflow:
      releasectl report gate.json --out report.md
      releasectl github comment --pr 42 --body report.md --release v1.3
      releasectl github status --sha $HEAD_SHA --gate gate.json --target-url $RUN_URL
      releasectl github check --sha $HEAD_SHA --gate gate.json --report report.md \
        --manifest releases/v1.3.yaml
    """


@github.command(epilog=_ENV_HELP)
@click.option("--pr", "pr", type=click.IntRange(min=1), required=True, help="Pull request number.")
@click.option(
    "--body",
    "body_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    required=True,
    help="Markdown file to post (`releasectl report --out`), or - for stdin.",
)
@click.option(
    "--release",
    default=None,
    metavar="vX.Y",
    help="Keep one comment per PR and release. Default: the marker on the body's first line, else one per PR.",
)
@click.option(
    "--author",
    default=None,
    metavar="LOGIN",
    help="Whose comment is the sticky one. Default: any bot account (GITHUB_TOKEN posts as "
    "github-actions[bot]); give your login when posting with a personal token, or * for anyone.",
)
@_connection_options
@format_option()
def comment(
    pr: int,
    body_path: Path,
    release: str | None,
    author: str | None,
    repo: str | None,
    retries: int,
    timeout: float,
    fmt: str,
) -> int:
    """Create or update the one sticky comment for this PR and release.

    The comment is found by a hidden marker on its first line (`<!-- releasectl:gate
    release=v1.3 -->`), searching every page of the PR's comments, so re-runs update it instead
    of adding another. A create that failed with a 5xx or a timeout may have been applied, so it
    is never retried blindly: the comments are listed again first. Exit 3 when GitHub still
    fails after the retries.
    """
    from releasectl.github.comments import upsert_sticky_comment
    from releasectl.github.limits import GITHUB_COMMENT_LIMIT, comment_length

    body = _read_body(body_path)
    marker, body = _with_marker(body, release, body_path)
    if comment_length(body) > GITHUB_COMMENT_LIMIT:
        raise BadInput(
            f"{body_path}: {comment_length(body):,} characters; GitHub accepts at most {GITHUB_COMMENT_LIMIT:,}",
            hint="render it with `releasectl report`, which trims the report to fit",
        )
    with _client(repo, retries, timeout) as client:
        result = upsert_sticky_comment(client, pr, body, marker, author)
        where = f"{client.settings.repo}#{pr}"
    if fmt == "json":
        emit_json({"repo": where.split("#")[0], "pr": pr, **result.to_dict()})
        return 0
    out = console()
    out.print(
        f"{result.action} sticky comment {result.comment_id} on {where}: {result.url or ''}", markup=False
    )
    if result.duplicates:
        out.print(
            f"warning: {len(result.duplicates) + 1} comments carry this marker (left by an earlier run); "
            f"updated the newest and left {', '.join(map(str, result.duplicates))}; delete those by hand",
            markup=False,
        )
    return 0


@github.command(epilog=_ENV_HELP)
@click.option("--sha", required=True, help="The commit to mark: the PR's head SHA (40 hex).")
@click.option(
    "--state",
    type=click.Choice(["success", "failure", "pending", "error"]),
    default=None,
    help="Set this state (e.g. pending while the replay runs).",
)
@click.option(
    "--gate",
    "gate_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Derive state and description from gate.json: promote→success, block→failure, hold→failure.",
)
@click.option(
    "--description",
    default=None,
    help="Text next to the status (cut to 140 characters). Default from --gate.",
)
@click.option(
    "--target-url",
    default=None,
    help="Link for 'Details', e.g. the workflow run. Default: this Actions run, when run in one.",
)
@click.option(
    "--context", default="releasectl/gate", show_default=True, help="Status name; one status per context."
)
@_connection_options
@format_option()
def status(
    sha: str,
    state: str | None,
    gate_path: Path | None,
    description: str | None,
    target_url: str | None,
    context: str,
    repo: str | None,
    retries: int,
    timeout: float,
    fmt: str,
) -> int:
    """Set the commit status for SHA from the gate verdict (--gate) or an explicit --state.

    A hold (some rule inconclusive) is reported as failure, not pending: it must block the
    merge, and pending would look like a job that never finishes.
    """
    from releasectl.github.statuses import StatusUpdate, describe_gate, set_status, shorten

    if (state is None) == (gate_path is None):
        raise BadInput(
            "give exactly one of --state and --gate",
            hint="--gate gate.json derives the state from the verdict",
        )
    if gate_path is not None:
        from releasectl.report.gate_file import load_gate

        state, derived = describe_gate(load_gate(gate_path))
        description = description or derived
    assert state is not None
    update = StatusUpdate(
        sha=sha.strip().lower(),
        state=state,
        description=shorten(description or f"releasectl gate: {state}"),
        context=context,
        target_url=target_url or _run_url(),
    )
    with _client(repo, retries, timeout) as client:
        set_status(client, update)
        where = client.settings.repo
    if fmt == "json":
        emit_json({"repo": where, "sha": update.sha, **update.payload()})
    else:
        console().print(
            f"{update.context}: {update.state} on {where}@{update.sha[:12]} — {update.description}",
            markup=False,
        )
    return 0


@github.command(epilog=_ENV_HELP)
@click.option("--sha", required=True, help="The commit to check: the PR's head SHA (40 hex).")
@click.option(
    "--gate",
    "gate_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="gate.json: promote→success, block→failure, hold→neutral.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Markdown summary (`releasectl report --out`), cut to GitHub's 65,535 characters. "
    "Default: the rule table.",
)
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also annotate this manifest's validation errors on its lines (repeatable).",
)
@click.option("--name", default=None, help="Check run name. Default: 'releasectl gate <release>'.")
@click.option(
    "--details-url",
    default=None,
    help="Link for 'Details'. Default: this Actions run, when run in one.",
)
@_connection_options
@format_option()
def check(
    sha: str,
    gate_path: Path,
    report_path: Path | None,
    manifests: tuple[Path, ...],
    name: str | None,
    details_url: str | None,
    repo: str | None,
    retries: int,
    timeout: float,
    fmt: str,
) -> int:
    """Create or update the one check run for this release on SHA, from gate.json.

    Failing rules are annotated on the policy file's lines and validation errors on the
    manifest's, 50 per request. The check run is found by its external id (release), so re-runs
    update it; a create that failed with a 5xx or a timeout is never repeated blindly, and
    annotations already on the check run are not sent again. Needs `checks: write`.
    """
    from releasectl.checklist.problems import manifest_problems
    from releasectl.github.checks import check_from_gate, upsert_check_run
    from releasectl.report.gate_file import load_gate

    gate = load_gate(gate_path)
    summary = _read_body(report_path) if report_path is not None else None
    run = check_from_gate(
        gate,
        sha.strip().lower(),
        name=name,
        summary=summary,
        details_url=details_url or _run_url(),
        problems=manifest_problems(list(manifests)),
    )
    with _client(repo, retries, timeout) as client:
        result = upsert_check_run(client, run)
        where = client.settings.repo
    if fmt == "json":
        emit_json({"repo": where, "sha": run.sha, **result.to_dict()})
    else:
        console().print(
            f"{result.action} check run {result.name!r} ({result.conclusion}) on {where}@{run.sha[:12]}: "
            f"{result.annotations_sent} of {result.annotations_total} annotations sent; {result.url or ''}",
            markup=False,
        )
    return 0


@github.command()
@click.option("--base-sha", required=True, help="The PR's base commit (github.event.pull_request.base.sha).")
@click.option("--head", default="HEAD", show_default=True, help="The PR's head commit.")
@click.option("--channel", default="staging", show_default=True, help="Channel the releases are gated for.")
@click.option(
    "--shards",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Replay each candidate over this many runners (`replay --shard i/N`, joined by `merge`).",
)
@format_option()
def matrix(base_sha: str, head: str, channel: str, shards: int, fmt: str) -> int:
    """Print the release-gate plan: changed manifests, their baselines and the replay legs.

    \b
    Text output is `name=value` lines for $GITHUB_OUTPUT:
      releases=["v1.3"]   manifests=releases/v1.3.yaml   baselines={"v1.3": "v1.2"}
      legs={"include": [{"release": "v1.3", "shard": "0/2", "index": "0"}, ...]}   shards=2
    """
    from releasectl.gate.plan import plan
    from releasectl.repo import repo_root

    result = plan(repo_root(), base_sha, head, channel, shards)
    outputs = result.outputs()
    if fmt == "json":
        emit_json(
            {k: json.loads(v) if k in ("releases", "baselines", "legs") else v for k, v in outputs.items()}
        )
    else:
        for key, value in outputs.items():
            click.echo(f"{key}={value}")
    return 0


def _read_body(path: Path) -> str:
    """A Markdown body through the one safe reader (regular file or `-` for stdin, strict UTF-8)."""
    from releasectl.safeio import read_text

    return read_text(
        path, what="Markdown body (write it with `releasectl report gate.json --out FILE`)", allow_stdin=True
    )


def _with_marker(body: str, release: str | None, path: Path) -> tuple[str, str]:
    """The marker this body is sticky under, and the body starting with it."""
    from releasectl.report.marker import GENERIC_MARKER, leading_marker, marker

    present = leading_marker(body)
    if release is None:
        if present:
            return present, body
        return GENERIC_MARKER, f"{GENERIC_MARKER}\n{body}"
    wanted = marker(release)
    if present and present != wanted:
        raise BadInput(
            f"{path} is the report for another release: it starts with {present}, not {wanted}",
            hint="post each release's own report, or drop --release to use the body's marker",
        )
    return wanted, body if present else f"{wanted}\n{body}"


def _run_url() -> str | None:
    """This workflow run's page, from the variables GitHub Actions sets."""
    server, repo, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None
