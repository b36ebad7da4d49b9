"""A Hugging Face Hub stand-in on 127.0.0.1: the model-info endpoint, with known revisions."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    """`repos`: repo_id -> set of commit SHAs that exist."""

    def __init__(self, repos: dict[str, set[str]], *, fail_with: int | None = None) -> None:
        self.repos = repos
        self.fail_with = fail_with
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(self.path)
                if hub.fail_with:
                    return self._send(hub.fail_with, {"error": "down"})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/?]+)", self.path)
                if not m:
                    return self._send(404, {"error": "Not found"}, {"X-Error-Code": "RepoNotFound"})
                repo, rev = m.group(1), m.group(2)
                if repo not in hub.repos:
                    return self._send(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if rev not in hub.repos[repo]:
                    return self._send(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
                self._send(200, {"id": repo, "modelId": repo, "sha": rev, "private": False, "siblings": [{"rfilename": "config.json"}]})

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
