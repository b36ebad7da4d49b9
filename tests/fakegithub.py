"""A fake GitHub REST API on 127.0.0.1 that plays the endpoints releasectl uses and injects faults.

It is a real HTTP server (`ThreadingHTTPServer` in a thread), so the client's headers, timeouts,
Link pagination and retries are exercised over a socket. It plays:

    GET   /repos/{o}/{r}/issues/{n}/comments   (paginated: per_page, page, Link header)
    POST  /repos/{o}/{r}/issues/{n}/comments
    PATCH /repos/{o}/{r}/issues/comments/{id}
    POST  /repos/{o}/{r}/statuses/{sha}
    GET   /repos/{o}/{r}/commits/{sha}/check-runs      (check_name filter, paginated)
    POST  /repos/{o}/{r}/check-runs                    (≤ 50 annotations, 65,535-char summary)
    PATCH /repos/{o}/{r}/check-runs/{id}               (annotations are appended, as GitHub does)
    GET   /repos/{o}/{r}/check-runs/{id}/annotations   (paginated)

Faults are queued per endpoint (`list`, `create`, `update`, `status`, `checks-list`,
`check-create`, `check-update`, `check-annotations`) and each answers one request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-token"

# A fault's kind says what the server does instead of (or after) handling the request:
#   "500"            answer 500 without applying the request
#   "502-after"      apply the request, then answer 502 (the client cannot know it worked)
#   "429"            answer 429 with Retry-After: <retry_after>
#   "403-secondary"  answer 403 "You have exceeded a secondary rate limit" with Retry-After
#   "403-reset"      answer 403 with x-ratelimit-remaining: 0 and x-ratelimit-reset
#   "timeout"        sleep <delay> s before handling (the client times out first), not applied
#   "timeout-after"  apply the request, then sleep <delay> s before answering
#   "404", "401", "403"  a plain error
#   "drip"           answer correctly, but one byte every <delay> s (headers and body)
#   "html"           answer 200 with an HTML page (a proxy or a wrong GITHUB_API_URL)
#   "wrong-json"     answer 200 with JSON of the wrong shape (a string)
#   "loop-link"      answer a list page whose Link rel="next" points back at the same page
KINDS = {
    "drip",
    "html",
    "wrong-json",
    "loop-link",
    "500",
    "502-after",
    "429",
    "403-secondary",
    "403-reset",
    "timeout",
    "timeout-after",
    "404",
    "401",
    "403",
}


@dataclass
class Fault:
    kind: str
    retry_after: float = 0
    delay: float = 1.0

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


@dataclass
class FakeGitHub:
    """State of the fake: comments per PR, statuses per SHA, queued faults and a request log."""

    repo: str = "acme/model-releases"
    per_page_max: int = 100
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_creates_applied: int = 0
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, endpoint)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    creates_applied: int = 0
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- test API -----------------------------------------------------------------------------
    def inject(self, endpoint: str, *faults: Fault | str) -> None:
        for f in faults:
            self.faults[endpoint].append(f if isinstance(f, Fault) else Fault(f))

    def add_comment(self, pr: int, body: str, user: str = "someone") -> dict[str, Any]:
        with self._lock:
            return self._create(pr, body, user)

    def sticky(self, pr: int, marker: str) -> list[dict[str, Any]]:
        return [c for c in self.comments[pr] if c["body"].startswith(marker)]

    def count(self, endpoint: str) -> int:
        return sum(1 for _, _, e in self.log if e == endpoint)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the API ------------------------------------------------------------------------------
    def _create(self, pr: int, body: str, user: str = "github-actions[bot]") -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": {"login": user, "type": "Bot" if user.endswith("[bot]") else "User"},
            "created_at": f"2026-11-23T08:{self._next_id // 60 % 60:02d}:{self._next_id % 60:02d}Z",
            "html_url": f"https://github.example/{self.repo}/pull/{pr}#issuecomment-{self._next_id}",
        }
        self.comments[pr].append(comment)
        return comment

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        prefix = f"/repos/{self.repo}/"
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix) :]
        for endpoint, m, pattern in (
            ("list", "GET", r"issues/(?P<pr>\d+)/comments"),
            ("create", "POST", r"issues/(?P<pr>\d+)/comments"),
            ("update", "PATCH", r"issues/comments/(?P<id>\d+)"),
            ("status", "POST", r"statuses/(?P<sha>[0-9a-f]+)"),
            ("checks-list", "GET", r"commits/(?P<sha>[0-9a-f]+)/check-runs"),
            ("check-create", "POST", r"check-runs"),
            ("check-update", "PATCH", r"check-runs/(?P<id>\d+)"),
            ("check-annotations", "GET", r"check-runs/(?P<id>\d+)/annotations"),
        ):
            match = re.fullmatch(pattern, rest)
            if match and m == method:
                return endpoint, match.groupdict()
        return None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        # GitHub Enterprise Server serves the same API under /api/v3.
        prefix = "/api/v3" if parts.path.startswith("/api/v3/") else ""
        path = parts.path[len(prefix) :]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        route = self._route(method, path)
        endpoint = route[0] if route else "unknown"
        with self._lock:
            self.log.append((method, parts.path, endpoint))  # with any prefix, to check GHE
            self.headers_seen.append({k.lower(): v for k, v in h.headers.items()})
            fault = self.faults[endpoint].popleft() if self.faults[endpoint] else None
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(h, 401, {"message": "Bad credentials"})
        if route is None:
            return self._send(h, 404, {"message": "Not Found"})
        if fault is not None:
            if fault.kind in ("500", "404", "401", "403"):
                return self._send(h, int(fault.kind), {"message": f"injected {fault.kind}"})
            if fault.kind == "429":
                return self._send(
                    h, 429, {"message": "Too Many Requests"}, {"Retry-After": f"{fault.retry_after:g}"}
                )
            if fault.kind == "403-secondary":
                msg = {
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                }
                return self._send(h, 403, msg, {"Retry-After": f"{fault.retry_after:g}"})
            if fault.kind == "403-reset":
                reset = {
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": f"{time.time() + fault.retry_after:.0f}",
                }
                return self._send(h, 403, {"message": "API rate limit exceeded"}, reset)
            if fault.kind == "timeout":
                time.sleep(fault.delay)
                return self._send(h, 504, {"message": "too late"})
            if fault.kind == "html":
                page = b"<!DOCTYPE html><html><body>Sign in to the corporate proxy</body></html>"
                return self._send_raw(h, 200, page, "text/html; charset=utf-8")
            if fault.kind == "wrong-json":
                return self._send(h, 200, "this is a string, not an object or a list")
        if fault is not None and fault.kind == "loop-link":
            status, data, _ = self._apply(
                endpoint, route[1], raw, parts.query, f"http://{h.headers['Host']}{prefix}"
            )
            here = (
                f"http://{h.headers['Host']}{parts.path}?{parts.query}"
                if parts.query
                else f"http://{h.headers['Host']}{parts.path}"
            )
            return self._send(h, status, data, {"Link": f'<{here}>; rel="next"'})
        status, data, headers = self._apply(
            endpoint, route[1], raw, parts.query, f"http://{h.headers['Host']}{prefix}"
        )
        if fault is not None and fault.kind == "502-after":
            return self._send(h, 502, {"message": "Bad Gateway"})
        if fault is not None and fault.kind == "timeout-after":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "drip":
            return self._drip(h, status, data, headers, fault.delay)
        return self._send(h, status, data, headers)

    def _apply(
        self, endpoint: str, params: dict[str, str], raw: bytes, query: str, root: str
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if endpoint == "list":
                pr = int(params["pr"])
                q = parse_qs(query)
                per_page = min(self.per_page_max, int(q.get("per_page", ["30"])[0]))
                page = int(q.get("page", ["1"])[0])
                items = self.comments[pr]
                chunk = items[(page - 1) * per_page : page * per_page]
                last = max(1, -(-len(items) // per_page))
                base = f"{root}/repos/{self.repo}/issues/{pr}/comments?per_page={per_page}"
                links = []
                if page < last:
                    links.append(f'<{base}&page={page + 1}>; rel="next"')
                    links.append(f'<{base}&page={last}>; rel="last"')
                return 200, chunk, {"Link": ", ".join(links)} if links else {}
            body = json.loads(raw or b"{}") if endpoint not in ("checks-list", "check-annotations") else {}
            if endpoint == "create":
                self.creates_applied += 1
                return 201, self._create(int(params["pr"]), body["body"]), {}
            if endpoint == "update":
                for comments in self.comments.values():
                    for c in comments:
                        if c["id"] == int(params["id"]):
                            c["body"] = body["body"]
                            return 200, c, {}
                return 404, {"message": "Not Found"}, {}
            if endpoint.startswith("check"):
                return self._checks(
                    endpoint,
                    params,
                    body if endpoint != "checks-list" and endpoint != "check-annotations" else {},
                    query,
                    root,
                )
            if endpoint == "status":
                if (
                    body.get("state") not in ("success", "failure", "pending", "error")
                    or len(body.get("description", "")) > 140
                ):
                    return 422, {"message": "Validation Failed"}, {}
                self.statuses[params["sha"]].append(body)
                return 201, {"id": len(self.statuses), **body}, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, items: list[Any], query: str, base: str) -> tuple[list[Any], dict[str, str]]:
        q = parse_qs(query)
        per_page = min(self.per_page_max, int(q.get("per_page", ["30"])[0]))
        page = int(q.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        sep = "&" if "?" in base else "?"
        links = []
        if page < last:
            links.append(f'<{base}{sep}per_page={per_page}&page={page + 1}>; rel="next"')
        return items[(page - 1) * per_page : page * per_page], {"Link": ", ".join(links)} if links else {}

    def _checks(
        self, endpoint: str, params: dict[str, str], body: dict[str, Any], query: str, root: str
    ) -> tuple[int, Any, dict[str, str]]:
        """The check-run endpoints, validated as GitHub does (called with the lock held)."""
        if endpoint == "checks-list":
            name = parse_qs(query).get("check_name", [None])[0]
            runs = [
                {k: v for k, v in r.items() if k != "annotations"}
                for r in self.check_runs.values()
                if r["head_sha"] == params["sha"] and (name is None or r["name"] == name)
            ]
            base = f"{root}/repos/{self.repo}/commits/{params['sha']}/check-runs" + (
                f"?check_name={name}" if name else ""
            )
            chunk, headers = self._page(runs, query, base)
            return 200, {"total_count": len(runs), "check_runs": chunk}, headers
        if endpoint == "check-annotations":
            run = self.check_runs.get(int(params["id"]))
            if run is None:
                return 404, {"message": "Not Found"}, {}
            base = f"{root}/repos/{self.repo}/check-runs/{run['id']}/annotations"
            chunk, headers = self._page(run["annotations"], query, base)
            return 200, chunk, headers
        problem = self._check_problem(body, creating=endpoint == "check-create")
        if problem:
            return 422, {"message": "Validation Failed", "errors": [problem]}, {}
        output = body.get("output") or {}
        if endpoint == "check-create":
            self.check_creates_applied += 1
            self._next_id += 1
            run = {
                "id": self._next_id,
                "head_sha": body["head_sha"],
                "annotations": [],
                "html_url": f"https://github.example/{self.repo}/runs/{self._next_id}",
            }
            self.check_runs[run["id"]] = run
        else:
            found = self.check_runs.get(int(params["id"]))
            if found is None:
                return 404, {"message": "Not Found"}, {}
            run = found
        for key in ("name", "external_id", "status", "conclusion", "details_url"):
            if key in body:
                run[key] = body[key]
        if output:
            run["output"] = {k: output.get(k) for k in ("title", "summary", "text")}
            run["annotations"].extend(output.get("annotations") or [])
        return (
            (201 if endpoint == "check-create" else 200),
            {k: v for k, v in run.items() if k != "annotations"},
            {},
        )

    @staticmethod
    def _check_problem(body: dict[str, Any], creating: bool) -> str | None:
        if creating and (not body.get("name") or not body.get("head_sha")):
            return "name and head_sha are required"
        if body.get("conclusion") not in (
            None,
            "success",
            "failure",
            "neutral",
            "cancelled",
            "skipped",
            "timed_out",
            "action_required",
        ):
            return f"conclusion {body.get('conclusion')!r}"
        output = body.get("output") or {}
        for key in ("summary", "text"):
            if len(str(output.get(key) or "").encode("utf-16-le")) // 2 > 65535:
                return f"output.{key} is longer than 65535 characters"
        if output and not output.get("title"):
            return "output.title is required"
        annotations = output.get("annotations") or []
        if len(annotations) > 50:
            return "at most 50 annotations per request"
        for a in annotations:
            if a.get("annotation_level") not in ("notice", "warning", "failure"):
                return "annotation_level"
            if not a.get("path") or not isinstance(a.get("start_line"), int) or not a.get("message"):
                return "annotation path, start_line and message are required"
        return None

    @staticmethod
    def _drip(
        h: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str], delay: float
    ) -> None:
        payload = json.dumps(data).encode()
        head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            for byte in head.encode() + payload:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(data).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point of the fault
