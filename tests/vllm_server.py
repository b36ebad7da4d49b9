"""A real `vllm serve` (the OpenAI server of vLLM's CPU build) on 127.0.0.1, for tests and benchmarks.

`VllmServer.start()` converts the embedded GGUF into the verified safetensors snapshot
(`releasectl.manifest.snapshot.vllm_snapshot`, cached), starts

    python -m vllm.entrypoints.openai.api_server --model SNAPSHOT --host 127.0.0.1 --port P
        --enforce-eager --no-enable-prefix-caching --seed 1234 --served-model-name smollm2
        --enable-lora --lora-modules lora_math_v1=adapters/lora_math_v1 --max-lora-rank 8
        --dtype float32 --max-model-len 2048

in its own process group with VLLM_CPU_KVCACHE_SPACE=1, and waits (bounded) for `/v1/models`.
`stop()` sends SIGTERM to the group, then SIGKILL after a grace period, so no child outlives it.
The `vllm_server` fixture is session-scoped: one server for every test that needs it.

(`vllm serve` itself fails under the `vllm-cpu` distribution name: PackageNotFoundError.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVED_NAME = "smollm2"
ADAPTER = "lora_math_v1"
START_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_snapshot() -> Path:
    """The embedded GGUF converted for vLLM (cached by sha256 and converter versions)."""
    from releasectl.manifest.artifacts import EMBEDDED_URI, package_file
    from releasectl.manifest.loader import load_manifest
    from releasectl.manifest.snapshot import vllm_snapshot

    sha = load_manifest(REPO_ROOT / "releases" / "v1.3.yaml").manifest.model.sha256 or ""
    return vllm_snapshot(package_file(EMBEDDED_URI), sha, dtype="float32")


@dataclass
class VllmServer:
    model_dir: Path
    adapter_dir: Path = REPO_ROOT / "adapters" / ADAPTER
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--enforce-eager",
            "--no-enable-prefix-caching",
            "--seed",
            "1234",
            "--served-model-name",
            SERVED_NAME,
            "--enable-lora",
            "--lora-modules",
            f"{ADAPTER}={self.adapter_dir}",
            "--max-lora-rank",
            "8",
            "--dtype",
            "float32",
            "--max-model-len",
            "2048",
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> VllmServer:
        import httpx

        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        log = tempfile.NamedTemporaryFile(prefix="vllm-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(log.name)
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"vllm serve exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/models", timeout=2.0, trust_env=False).status_code == 200:
                    return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vllm serve did not answer /v1/models within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the whole process group, SIGKILL after `grace` seconds; always reaps."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # children that ignored SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


@contextlib.contextmanager
def running_server(timeout: float = START_TIMEOUT_S) -> Iterator[VllmServer]:
    server = VllmServer(embedded_snapshot())
    try:
        yield server.start(timeout)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[VllmServer]:
    pytest.importorskip("vllm")
    with running_server() as server:
        yield server
