"""A real Prometheus (Debian's 2.42) scraping a tiny exporter that replays vLLM's real /metrics.

`tests/fixtures/prometheus/vllm-0.32.0-cpu.prom` is what a real `vllm serve` (vLLM 0.32.0's CPU
build, the embedded SmolLM2, 6 chat completions and one 404) exposed on /metrics. Starting vLLM
for every Prometheus test would cost minutes of CI, so the exporter serves that recorded
exposition instead, per release (a `release` label on every sample, as Prometheus relabelling of
the pod label `releasectl/release` gives in a cluster), with counters growing at the recorded
totals per `seconds_per_batch`, and knobs to inject an incident: latency scaled up, 5xx errors.
Prometheus itself is never mocked: it scrapes, stores and evaluates the PromQL.
Everything binds to 127.0.0.1 and stops itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

RECORDED = Path(__file__).parent / "fixtures" / "prometheus" / "vllm-0.32.0-cpu.prom"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LATENCY = "vllm:e2e_request_latency_seconds_bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReleaseTraffic:
    """One release's simulated traffic: the recorded batch repeated, with incident knobs."""

    latency_factor: float = 1.0
    error_fraction: float = 0.0  # share of completion requests answered 5xx
    volume: float = 1.0  # traffic relative to the recorded batch per `seconds_per_batch` (0.02: a trickle)
    started: float = field(default_factory=time.monotonic)


def _counter_like(name: str) -> bool:
    return name.endswith(("_total", "_bucket", "_count", "_sum"))


def _le(labels: str) -> float | None:
    m = re.search(r'le="([^"]+)"', labels)
    return float(m.group(1)) if m else None


class RecordedExporter:
    def __init__(self, releases: dict[str, ReleaseTraffic], seconds_per_batch: float = 2.0) -> None:
        self.releases = releases
        self.seconds_per_batch = seconds_per_batch
        self.lines = RECORDED.read_text().splitlines()
        self.latency = [
            (_le(m["labels"] or ""), float(m["value"]))
            for line in self.lines
            if (m := SAMPLE.match(line)) and m["name"] == LATENCY
        ]
        self.port = free_port()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _shifted_cumulative(self, le: float, factor: float) -> float:
        """Cumulative count at `le` when every latency is `factor` times the recorded one."""
        target = le / factor
        prev_le, prev_c = 0.0, 0.0
        for bound, count in self.latency:
            if bound is None:
                continue
            if target <= bound:
                if bound == float("inf"):
                    return count
                span = bound - prev_le
                return prev_c + (count - prev_c) * ((target - prev_le) / span if span else 1.0)
            prev_le, prev_c = bound, count
        return self.latency[-1][1]

    def exposition(self) -> str:
        out = []
        for line in self.lines:
            if line.startswith("#"):
                out.append(line)
        now = time.monotonic()
        for release, traffic in self.releases.items():
            batches = (now - traffic.started) / self.seconds_per_batch * traffic.volume
            for line in self.lines:
                m = SAMPLE.match(line)
                if not m:
                    continue
                name, labels, value = m["name"], m["labels"] or "", float(m["value"])
                if name.endswith("_created"):
                    continue
                if name == LATENCY and traffic.latency_factor != 1.0:
                    le = _le(labels)
                    if le is not None and le != float("inf"):
                        value = self._shifted_cumulative(le, traffic.latency_factor)
                if name == "vllm:e2e_request_latency_seconds_sum":
                    value *= traffic.latency_factor
                if name == "http_requests_total" and 'status="5xx"' in labels:
                    continue  # written below from the error fraction
                if _counter_like(name):
                    value *= batches
                tagged = f'release="{release}"' + (f",{labels}" if labels else "")
                out.append(f"{name}{{{tagged}}} {value}")
            ok = next(
                float(m["value"])
                for line in self.lines
                if (m := SAMPLE.match(line))
                and m["name"] == "http_requests_total"
                and "/v1/chat/completions" in (m["labels"] or "")
                and 'status="2xx"' in (m["labels"] or "")
            )
            f = traffic.error_fraction
            errors = ok * f / (1 - f) * batches if f < 1 else ok * batches
            if f > 0:  # as vLLM's instrumentation: no status="5xx" series before the first 5xx
                out.append(
                    f'http_requests_total{{release="{release}",handler="/v1/chat/completions",method="POST",status="5xx"}} {errors}'
                )
        return "\n".join(out) + "\n"

    def __enter__(self) -> RecordedExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def prometheus(targets: list[str], workdir: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """Start Debian's prometheus on 127.0.0.1 scraping `targets` every second; yield its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: vllm\n    static_configs:\n"
        f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {proc.returncode}: {proc.stderr.read()[-2000:]!r}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready in time")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=20)


def wait_for_series(url: str, query: str, timeout: float = 30.0) -> None:
    """Block until `query` returns a non-empty vector (the scrapes have landed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()["data"]["result"]:
                return
        time.sleep(0.5)
    raise RuntimeError(f"no series for {query} after {timeout} s")
