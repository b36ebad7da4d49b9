"""Check runs: the gate verdict as one check run per release on the PR's head commit.

A check run carries what a commit status cannot: a Markdown summary (the report) and line
annotations (failing rules on the policy file's lines, validation errors on the manifest's).

One check run per release and SHA, found by `external_id` (else by name). As with the sticky
comment, the create is the one write that is not safe to repeat, so every attempt lists first and
creates only when none exists. GitHub appends a PATCH's annotations to the ones already there, so
annotations are sent only when the check run does not carry them yet: a retry after an uncertain
PATCH, or a re-run of the job, never duplicates one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from releasectl.errors import BadInput, Problem
from releasectl.github.client import GitHubClient
from releasectl.github.limits import (
    ANNOTATIONS_PER_REQUEST,
    CHECK_ANNOTATION_MESSAGE_LIMIT,
    CHECK_ANNOTATION_TITLE_LIMIT,
    CHECK_TEXT_LIMIT,
    CHECK_TITLE_LIMIT,
)
from releasectl.github.statuses import SHA_RE, describe_gate

VERDICT_CONCLUSION = {"promote": "success", "block": "failure", "hold": "neutral"}
CONCLUSIONS = ("success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required")


@dataclass(frozen=True)
class Annotation:
    """One line annotation as the checks API takes it."""

    path: str
    line: int
    level: str  # notice | warning | failure
    message: str
    title: str

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": self.level,
            "message": fit(self.message, CHECK_ANNOTATION_MESSAGE_LIMIT),
            "title": fit(self.title, CHECK_ANNOTATION_TITLE_LIMIT),
        }

    def key(self) -> tuple[str, int, str, str]:
        p = self.payload()
        return (p["path"], p["start_line"], p["annotation_level"], p["message"])


@dataclass
class CheckResult:
    """What happened to the check run, and how many annotations were added."""

    action: str  # created | updated | unchanged
    check_run_id: int
    url: str | None
    name: str
    external_id: str
    conclusion: str
    annotations_sent: int
    annotations_total: int
    requests: int = 0
    attempts: int = 1
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit(text: str, limit: int, note: str = "…") -> str:
    """`text` cut to at most `limit` characters (UTF-16 units, as GitHub counts), ending in `note`."""
    from releasectl.github.limits import comment_length

    if comment_length(text) <= limit:
        return text
    keep = limit - comment_length(note)
    cut = text[:keep]
    while comment_length(cut) > keep:
        cut = cut[:-1]
    return cut + note


def summary_text(text: str, limit: int = CHECK_TEXT_LIMIT) -> str:
    """The report cut at a line boundary to fit the checks API's 65,535-character summary."""
    note = "\n\n… the report is cut here to fit GitHub's check-run summary; the job summary has all of it.\n"
    fitted = fit(text, limit, note)
    if fitted == text:
        return text
    body = fitted[: -len(note)]
    return (body.rsplit("\n", 1)[0] if "\n" in body else body) + note


def rule_annotations(gate: dict[str, Any]) -> list[Annotation]:
    """Failing rules as failures and inconclusive rules as warnings, on the policy file's lines."""
    source = str((gate.get("policy") or {}).get("source") or "")
    found: list[Annotation] = []
    if not source:
        return found
    for rule in gate.get("rules") or []:
        outcome = rule.get("outcome")
        line = rule.get("line")
        if outcome not in ("fail", "inconclusive") or not isinstance(line, int) or line < 1:
            continue
        detail = str(rule.get("detail") or "").strip()
        observed = rule.get("observed")
        message = f"{rule.get('rule')}: {outcome}" + (f" ({detail})" if detail else "")
        if observed is not None and not detail:
            message += f"; observed {observed}"
        found.append(
            Annotation(
                path=source,
                line=line,
                level="failure" if outcome == "fail" else "warning",
                message=message,
                title=f"releasectl gate {gate.get('release', '')}: rule {'fails' if outcome == 'fail' else 'inconclusive'}",
            )
        )
    return found


def problem_annotations(problems: list[Problem]) -> list[Annotation]:
    """Validation problems with a file as failures on their lines (line 1 when unknown)."""
    return [
        Annotation(
            path=p.file,
            line=p.line if p.line and p.line > 0 else 1,
            level="failure",
            message=replace(p, file=None, line=None, col=None).render(),
            title=f"releasectl validate: {p.field}" if p.field else "releasectl validate",
        )
        for p in problems
        if p.file
    ]


@dataclass(frozen=True)
class CheckRun:
    """The check run to create or update."""

    sha: str
    name: str
    external_id: str
    conclusion: str
    title: str
    summary: str
    details_url: str | None
    annotations: list[Annotation]

    def output(self, batch: list[Annotation]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": fit(self.title, CHECK_TITLE_LIMIT),
            "summary": summary_text(self.summary),
        }
        if batch:
            out["annotations"] = [a.payload() for a in batch]
        return out

    def fields(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "external_id": self.external_id,
            "status": "completed",
            "conclusion": self.conclusion,
        }
        if self.details_url:
            body["details_url"] = self.details_url
        return body


def check_from_gate(
    gate: dict[str, Any],
    sha: str,
    *,
    name: str | None,
    summary: str | None,
    details_url: str | None,
    problems: list[Problem],
) -> CheckRun:
    """The check run for a gate result: conclusion from the verdict, annotations from rules and problems."""
    if not SHA_RE.fullmatch(sha):
        raise BadInput(
            f"--sha {sha!r} is not a full commit SHA",
            hint="pass the 40-hex head SHA, e.g. ${{ github.event.pull_request.head.sha }}",
        )
    release = str(gate.get("release") or "")
    _, title = describe_gate(gate)
    if summary is None:
        rows = "\n".join(
            f"| `{r.get('rule')}` | {r.get('outcome')} | {r.get('observed')} |"
            for r in gate.get("rules") or []
        )
        summary = f"**{title}**\n\n| rule | outcome | observed |\n|---|---|---|\n{rows}\n"
    return CheckRun(
        sha=sha,
        name=name or f"releasectl gate {release}",
        external_id=f"releasectl:gate:{release}",
        conclusion=VERDICT_CONCLUSION[str(gate["verdict"])],
        title=title,
        summary=summary,
        details_url=details_url,
        annotations=rule_annotations(gate) + problem_annotations(problems),
    )


def find_check_runs(client: GitHubClient, run: CheckRun) -> list[dict[str, Any]]:
    """This release's check runs on the SHA (by external_id, else by name), oldest first."""
    found: list[dict[str, Any]] = []
    for page in client.paginate_pages(
        client.repo_path(f"commits/{run.sha}/check-runs"), {"check_name": run.name, "filter": "all"}
    ):
        items = page.get("check_runs") if isinstance(page, dict) else None
        if not isinstance(items, list):
            from releasectl.errors import EnvironmentFailure

            raise EnvironmentFailure(
                f"the GitHub API listing check runs for {run.sha[:12]} answered without a `check_runs` list"
            )
        found += [c for c in items if isinstance(c, dict)]
    by_id = [c for c in found if c.get("external_id") == run.external_id]
    chosen = by_id or [c for c in found if c.get("name") == run.name]
    return sorted(chosen, key=lambda c: int(c.get("id") or 0))


def existing_annotation_keys(client: GitHubClient, check_id: int) -> set[tuple[str, int, str, str]]:
    keys: set[tuple[str, int, str, str]] = set()
    for a in client.paginate(client.repo_path(f"check-runs/{check_id}/annotations")):
        if isinstance(a, dict):
            keys.add(
                (
                    str(a.get("path")),
                    int(a.get("start_line") or 0),
                    str(a.get("annotation_level")),
                    str(a.get("message")),
                )
            )
    return keys


def upsert_check_run(client: GitHubClient, run: CheckRun) -> CheckResult:
    """Create the release's check run on the SHA, or update it; add missing annotations 50 at a time."""
    attempts = 0
    requests = 0

    def attempt() -> CheckResult:
        nonlocal attempts, requests
        attempts += 1
        existing = find_check_runs(client, run)
        wanted = list(dict.fromkeys(run.annotations))  # no duplicates within one gate either
        if existing:
            current = existing[-1]
            check_id = int(current["id"])
            have = existing_annotation_keys(client, check_id)
            missing = [a for a in wanted if a.key() not in have]
            action = "updated"
        else:
            first, rest = wanted[:ANNOTATIONS_PER_REQUEST], wanted[ANNOTATIONS_PER_REQUEST:]
            # Not retried inside: a failed create may have been applied, so the retry lists again first.
            requests += 1
            response = client.send_once(
                "POST",
                client.repo_path("check-runs"),
                json={**run.fields(), "head_sha": run.sha, "output": run.output(first)},
            )
            current = client.json(response, dict)
            check_id = int(current["id"])
            missing = rest
            action = "created"
        batches = [
            missing[i : i + ANNOTATIONS_PER_REQUEST] for i in range(0, len(missing), ANNOTATIONS_PER_REQUEST)
        ]
        if action == "updated" or batches:
            for batch in batches or [[]]:
                # Each batch is its own attempt unit: a PATCH that failed is retried by the outer
                # loop, which lists the annotations again and sends only what is still missing.
                requests += 1
                response = client.send_once(
                    "PATCH",
                    client.repo_path(f"check-runs/{check_id}"),
                    json={**run.fields(), "output": run.output(batch)},
                )
                current = client.json(response, dict)
        sent = len(wanted) if action == "created" else len(missing)
        return CheckResult(
            action,
            check_id,
            current.get("html_url"),
            run.name,
            run.external_id,
            run.conclusion,
            sent,
            len(wanted),
            requests,
            attempts,
        )

    return client.retrying(f"check run {run.name!r} on {run.sha[:12]}", attempt)
