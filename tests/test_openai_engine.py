"""The `openai` engine through the CLI against a fault-injecting OpenAI-compatible server on 127.0.0.1.

The server is real HTTP (`ThreadingHTTPServer` in a thread) and plays vLLM's `/v1/models`,
`/version`, `/v1/chat/completions` and `/v1/completions` (streamed as server-sent events, or
whole), so the engine's retries, deadline, concurrency, identity checks and token accounting run
over a socket. No model is involved: an answer is a deterministic function of the prompt.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from releasectl.manifest.loader import load_manifest

VERSION = "0.32.0"
BASE_NAME = "smollm2"
ADAPTER = "lora_math_v1"


class FakeOpenAI:
    """Faults are queued per route ("chat", "models") and each answers one request:
    "500", "503", "429" (Retry-After: retry_after), "drip" (one byte every `delay` s),
    "json" (a 200 that is not JSON)."""

    def __init__(self, root: str, adapter_root: str | None, *, stream_delay: float = 0.0) -> None:
        self.root = root
        self.adapter_root = adapter_root
        self.faults: dict[str, deque[str]] = {"chat": deque(), "models": deque()}
        self.retry_after = 1
        self.delay = 0.2
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.attempts = 0
        self.hold = 0.05  # each completion takes this long, so requests overlap
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def models(self) -> dict[str, Any]:
        data = [
            {"id": BASE_NAME, "object": "model", "root": self.root, "parent": None, "max_model_len": 2048}
        ]
        if self.adapter_root is not None:
            data.append({"id": ADAPTER, "object": "model", "root": self.adapter_root, "parent": BASE_NAME})
        return {"object": "list", "data": data}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes, ctype: str = "application/json", **headers: str
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, json.dumps(fake.models()).encode())
                elif self.path == "/version":
                    self._send(200, json.dumps({"version": VERSION}).encode())
                else:
                    self._send(404, b'{"detail": "Not Found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with fake.lock:
                    fake.attempts += 1
                    fault = fake.faults["chat"].popleft() if fake.faults["chat"] else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._complete(body, fault)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _complete(self, body: dict[str, Any], fault: str | None) -> None:
                if fault in ("500", "503"):
                    return self._send(int(fault), b'{"error": "overloaded"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', Retry_After=str(fake.retry_after))
                if fault == "json":
                    return self._send(200, b"<html>proxy error</html>")
                if fault == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "4000")
                    self.end_headers()
                    try:
                        for _ in range(4000):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(fake.delay)
                    except OSError:
                        pass
                    return None
                with fake.lock:
                    fake.requests.append(body)
                chat = "messages" in body
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                # An answer and a delay that depend on the prompt: latencies differ per case.
                words = ["ANSWER:", *re.findall(r"\w+", prompt)[:5]]
                hold = fake.hold * (1 + len(prompt) % 3)
                usage = {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(words) + 1,  # vLLM counts the EOS token
                    "total_tokens": len(prompt.split()) + len(words) + 1,
                }
                if not body.get("stream"):
                    time.sleep(hold)
                    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "stop_reason": None}
                    choice.update(
                        {"message": {"role": "assistant", "content": " ".join(words)}}
                        if chat
                        else {"text": " ".join(words)}
                    )
                    return self._send(
                        200, json.dumps({"id": "x", "choices": [choice], "usage": usage}).encode()
                    )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                time.sleep(hold / 2)
                for i, word in enumerate(words):
                    text = word if i == 0 else " " + word
                    part = {"delta": {"content": text}} if chat else {"text": text}
                    chunk = {"id": "x", "choices": [{"index": 0, **part, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(hold / (2 * len(words)))
                last = {
                    "id": "x",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                self.wfile.write(
                    f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\n".encode()
                )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True
                return None

        return Handler


@pytest.fixture
def snapshot_dir(tmp_path: Path, example_repo: Path) -> Path:
    """A directory that is, as far as the sidecar proves, the converted snapshot of v1.3's GGUF."""
    from releasectl.manifest.snapshot import write_sidecar

    sha = load_manifest(example_repo / "releases" / "v1.3.yaml").manifest.model.sha256 or ""
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "config.json").write_text('{"model_type": "llama"}\n')
    write_sidecar(snap, sha, {"format": "1"})
    return snap


@pytest.fixture
def repo(example_repo: Path) -> Path:
    """v1.3 pinning the openai engine's version and an endpoint (the URL is overridden per test)."""
    path = example_repo / "releases" / "v1.3.yaml"
    text = path.read_text()
    text = text.replace(
        '    vllm: "0.32.0"',
        f'    vllm: "0.32.0"\n    openai: "{VERSION}"',
    ).replace(
        "  batch_size: 8\n",
        "  batch_size: 8\n  endpoint:\n    base_url: http://127.0.0.1:9/v1\n"
        "    served_model_name: smollm2\n    concurrency: 3\n    timeout_s: 1.5\n    stream: true\n",
    )
    path.write_text(text)
    return example_repo


@pytest.fixture
def fake(snapshot_dir: Path, repo: Path):  # type: ignore[no-untyped-def]
    server = FakeOpenAI(str(snapshot_dir), str(repo / "adapters" / ADAPTER))
    yield server
    server.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry policy's sleeps, recorded instead of slept (the policy computes them for real)."""
    import releasectl.retry

    slept: list[float] = []
    monkeypatch.setattr(releasectl.retry, "sleep_seconds", slept.append)
    return slept


def replay(cli: Any, repo: Path, base_url: str, *extra: str) -> Any:
    return cli(
        "replay",
        str(repo / "releases" / "v1.3.yaml"),
        "--engine",
        "openai",
        "--base-url",
        base_url,
        "--limit",
        "1",
        "--out",
        str(repo / "runs" / "openai"),
        "--format",
        "json",
        *extra,
    )


def rows(repo: Path) -> list[dict[str, Any]]:
    lines = (repo / "runs" / "openai" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def assert_clean_exit3(result: Any, *needles: str) -> None:
    assert result.code == 3, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def test_replay_records_the_server_and_per_request_timing(cli, repo, fake) -> None:
    result = replay(cli, repo, fake.base_url)
    assert result.code == 0, result.output
    run = json.loads((repo / "runs" / "openai" / "run.json").read_text())
    runtime = run["runtime"]
    assert (runtime["engine"], runtime["engine_version"], runtime["device_class"]) == (
        "openai",
        VERSION,
        "remote",
    )
    assert runtime["extra"]["base_url"] == fake.base_url
    assert [m["id"] for m in runtime["extra"]["models"]] == [BASE_NAME, ADAPTER]
    assert (
        runtime["extra"]["identity"]["sha256"]
        == load_manifest(repo / "releases" / "v1.3.yaml").manifest.model.sha256
    )
    assert run["drift"] == {"engine": None, "device": None}
    got = rows(repo)
    assert len(got) == 7 and len(fake.requests) == 7
    # The LoRA release asks for the adapter by its served name, with the pinned sampling.
    for body in fake.requests:
        assert body["model"] == ADAPTER
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.0, 1.0, 96, 1234)
        assert body["stream_options"] == {"include_usage": True}
    for row in got:
        words = row["output"].split()
        assert words[0] == "ANSWER:"
        assert row["completion_tokens"] == len(words)  # vLLM's EOS is not counted
        assert 0 < row["ttft_ms"] < row["latency_ms"]
    # Each case's own time: the fake holds 50, 100 or 150 ms by prompt, and latencies follow.
    latencies = sorted(r["latency_ms"] for r in got)
    assert latencies[0] >= 45 and latencies[-1] - latencies[0] > 40
    assert 1 < fake.max_in_flight <= 3  # concurrency 3 from runtime.endpoint


def test_concurrency_is_bounded_without_streaming(cli, repo, fake) -> None:
    path = repo / "releases" / "v1.3.yaml"
    path.write_text(
        path.read_text().replace("concurrency: 3", "concurrency: 2").replace("stream: true", "stream: false")
    )
    result = replay(cli, repo, fake.base_url)
    assert result.code == 0, result.output
    assert fake.max_in_flight == 2
    got = rows(repo)
    assert all(r.get("ttft_ms") is None for r in got)
    assert all(r["completion_tokens"] == len(r["output"].split()) for r in got)


def test_5xx_then_success_is_retried(cli, repo, fake, waits) -> None:
    fake.faults["chat"].extend(["500", "503", "500"])
    result = replay(cli, repo, fake.base_url)
    assert result.code == 0, result.output
    assert fake.attempts == 7 + 3 and len(rows(repo)) == 7
    assert len(waits) == 3 and all(w > 0 for w in waits)


def test_429_honours_retry_after(cli, repo, fake, waits) -> None:
    fake.retry_after = 7
    fake.faults["chat"].append("429")
    result = replay(cli, repo, fake.base_url)
    assert result.code == 0, result.output
    assert len(waits) == 1 and 7 <= waits[0] <= 8


def test_5xx_forever_is_exit_3_after_the_retries(cli, repo, fake, waits) -> None:
    fake.faults["chat"].extend(["503"] * 50)
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, fake.base_url, "503", "after 5 attempts")


def test_a_dripping_server_is_cut_off_at_the_whole_request_deadline(cli, repo, fake) -> None:
    fake.faults["chat"].extend(["drip"] * 7)  # 0.2 s a byte: each read is fast, the body never ends
    t0 = time.monotonic()
    result = replay(cli, repo, fake.base_url)
    elapsed = time.monotonic() - t0
    assert_clean_exit3(result, fake.base_url, "did not finish within", "1.5 s")
    assert elapsed < 10, elapsed  # timeout_s 1.5: not 4000 bytes x 0.2 s, and no retry of a timeout


def test_connection_refused_is_exit_3_naming_the_url(cli, repo) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    result = replay(cli, repo, url)
    assert_clean_exit3(result, f"{url}/models")


def test_malformed_json_is_exit_3_naming_the_url(cli, repo, fake) -> None:
    fake.faults["chat"].extend(["json"] * 7)
    path = repo / "releases" / "v1.3.yaml"
    path.write_text(path.read_text().replace("stream: true", "stream: false"))
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, f"{fake.base_url}/chat/completions", "not JSON")


def test_a_served_model_that_is_not_the_pin_is_refused(cli, repo, fake, snapshot_dir) -> None:
    from releasectl.manifest.snapshot import write_sidecar

    write_sidecar(snapshot_dir, "0" * 64, {"format": "1"})  # converted from another GGUF
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, "is not the pinned model", "0" * 64)
    assert fake.attempts == 0  # refused before any completion


def test_a_damaged_snapshot_is_refused(cli, repo, fake, snapshot_dir) -> None:
    (snapshot_dir / "config.json").write_text('{"model_type": "gpt2"}\n')
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, "config.json")


def test_an_unknown_root_is_refused_unless_trusted_by_name(cli, repo, fake) -> None:
    fake.root = "HuggingFaceTB/SmolLM2-135M-Instruct"  # a remote server hides its files
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, "cannot read", "RELEASECTL_TRUST_SERVED_MODEL")
    wrong = cli_env(cli, repo, fake, "RELEASECTL_TRUST_SERVED_MODEL", "some/other-model")
    assert_clean_exit3(wrong, "cannot read")
    trusted = cli_env(cli, repo, fake, "RELEASECTL_TRUST_SERVED_MODEL", fake.root)
    assert trusted.code == 0, trusted.output
    identity = json.loads((repo / "runs" / "openai" / "run.json").read_text())["runtime"]["extra"]["identity"]
    assert identity["trusted"] == "RELEASECTL_TRUST_SERVED_MODEL" and identity["root"] == fake.root


def cli_env(cli: Any, repo: Path, fake: FakeOpenAI, name: str, value: str) -> Any:
    import os

    old = os.environ.get(name)
    os.environ[name] = value
    try:
        return replay(cli, repo, fake.base_url)
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def test_an_unserved_adapter_is_refused(cli, repo, fake) -> None:
    fake.adapter_root = None
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, f"does not serve the pinned adapter '{ADAPTER}'", "--lora-modules")


def test_an_adapter_served_from_other_files_is_refused(cli, repo, fake, tmp_path) -> None:
    other = tmp_path / "other_adapter"
    other.mkdir()
    (other / "adapter_config.json").write_text("{}\n")
    fake.adapter_root = str(other)
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, f"serves adapter '{ADAPTER}'", "not the pinned")


def test_an_unserved_model_name_is_refused(cli, repo, fake) -> None:
    result = replay(cli, repo, fake.base_url, "--served-model-name", "llama")
    assert_clean_exit3(result, "does not serve 'llama'", BASE_NAME)


def test_the_engine_version_pin_is_enforced(cli, repo, fake) -> None:
    path = repo / "releases" / "v1.3.yaml"
    path.write_text(path.read_text().replace(f'openai: "{VERSION}"', 'openai: "0.31.0"'))
    result = replay(cli, repo, fake.base_url)
    assert_clean_exit3(result, "0.31.0", VERSION)
    drifted = replay(cli, repo, fake.base_url, "--allow-engine-drift")
    assert drifted.code == 0, drifted.output
    run = json.loads((repo / "runs" / "openai" / "run.json").read_text())
    assert run["drift"]["engine"] == {"engine": "openai", "pinned": "0.31.0", "installed": VERSION}


def test_the_api_key_is_sent_and_never_recorded(cli, repo, fake) -> None:
    seen: list[str | None] = []
    handler = fake.server.RequestHandlerClass
    original = handler.do_GET

    def spy(self: Any) -> None:
        seen.append(self.headers.get("Authorization"))
        original(self)

    handler.do_GET = spy  # type: ignore[method-assign]
    result = cli_env(cli, repo, fake, "OPENAI_API_KEY", "sk-secret-123")
    assert result.code == 0, result.output
    assert "Bearer sk-secret-123" in seen
    run_dir = repo / "runs" / "openai"
    for name in ("run.json", "results.jsonl"):
        assert "sk-secret-123" not in (run_dir / name).read_text()


def test_eos_is_taken_off_only_where_the_server_says_it_stopped_on_eos() -> None:
    from releasectl.replay.engines.openai import _Answer, to_generation

    usage = {"prompt_tokens": 5, "completion_tokens": 4}
    vllm_eos = _Answer("a b c", "stop", None, True, usage)
    vllm_stop_string = _Answer("a b c d", "stop", "</answer>", True, usage)
    vllm_length = _Answer("a b c d", "length", None, True, usage)
    other_server = _Answer("a b c d", "stop", None, False, usage)
    counts = [
        to_generation(a, 1.0, "u").completion_tokens
        for a in (vllm_eos, vllm_stop_string, vllm_length, other_server)
    ]
    assert counts == [3, 4, 4, 4]
