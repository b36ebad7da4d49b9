"""The `openai` engine: replay the frozen suite against a served OpenAI-compatible endpoint.

`vllm serve` (and SGLang, TGI) expose `/v1/chat/completions` and `/v1/completions`. This engine
sends the suite there with a bounded pool of concurrent requests and the pinned sampling, so
staging and shadow evaluation measure the server that actually serves traffic.

**Provenance.** `probe_runtime` asks the server about itself and loads nothing: `GET
{base_url}/models` (the served models and adapters, with their `root`), vLLM's `GET /version`
(else TGI's `GET /info`). The engine version is what the server reports (vLLM's version); a server
that reports none has version "unknown", which the runtime pin then refuses as drift.
`run.json` records the base URL, the models list and the server version, never the API key
(read from the variable `endpoint.api_key_env`; absent is fine for a local server).

**Identity: the served model must be the pinned model, or the replay is refused (exit 3).**
- The served model is the `/models` entry whose `id` is `endpoint.served_model_name` (without a
  name: the only base model listed).
- Its `root` (what the server loaded) must prove the pin:
  - an `hf://org/repo` pin: `root` is `org/repo` (the revision is not visible over the API; the
    pinned revision is recorded, unverified, in run.json `runtime.extra.identity`);
  - a GGUF pin (`pkg://`, repo path) with sha256: `root` is a local directory converted by
    releasectl (`releasectl.manifest.snapshot.vllm_snapshot`) whose sidecar names the pinned sha256
    and whose files still match their recorded digests, or `root` is the GGUF file itself with
    that sha256;
  - a local directory pin: `root` is that directory, or a directory whose DVC md5 / sha256 tree
    equals the pin.
- Anything else is refused: a mismatch, and also a `root` this machine cannot read (a remote
  server hides what it loaded), since nothing then proves the pin. To replay such a server
  anyway, set `RELEASECTL_TRUST_SERVED_MODEL` to the exact `root` the server reports; the trust is
  recorded in run.json (`runtime.extra.identity.trusted`).
- Each pinned LoRA adapter must be listed by name with `parent` = the served model (vLLM:
  `--enable-lora --lora-modules NAME=PATH`), and its `root` must be the pinned adapter directory
  or a directory with the same DVC md5; an adapter that is not served is refused.

**Requests.** Chat completions when `Prompt.chat_template`, else completions of the plain text;
the pinned temperature, top_p, max_tokens, seed (every request uses the plan's seed, as vLLM
offline does), stop, and vLLM's extra `top_k` / `repetition_penalty`. 5xx, 429 and dropped
connections are retried through `releasectl.retry.RetryPolicy` (exponential backoff with jitter,
a server's Retry-After wins). `endpoint.timeout_s` bounds the WHOLE request, body included: a
server that drips bytes is cut off at the deadline (exit 3), and a timed-out request is not
retried (each attempt would cost the full deadline).

**Timing.** `latency_ms` is each request's own wall time, from sending it to its last byte (the
successful attempt; waiting for a pool slot or a backoff is not the server's latency).
With `endpoint.stream`, `ttft_ms` is the time to the first chunk that carries text.
`completion_tokens` means what it means on the offline engines: generated tokens without the
end-of-sequence token. vLLM's usage counts EOS; a choice that stopped on EOS has finish_reason
"stop" and `stop_reason` null, and one token is taken off for it (stop strings and extra stop
token ids give a non-null `stop_reason` and count as vLLM offline counts them). A server that
sends no `stop_reason` key (not vLLM) has its usage taken as it is.
Before the response headers arrive, httpx's own timeout (`timeout_s` per connect / write / read)
applies; from the headers on, a timer closes the response at the deadline.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasectl.errors import EnvironmentFailure
from releasectl.manifest.models import Endpoint, Sampling
from releasectl.replay.engines.base import Adapter, Generation, Prompt, Runtime
from releasectl.retry import RetriesExhausted, Retryable, RetryPolicy

if TYPE_CHECKING:
    import httpx

    from releasectl.manifest.loader import LoadedManifest

TRUST_ENV = "RELEASECTL_TRUST_SERVED_MODEL"
PROBE_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # one completion's answer; a runaway server is cut off


class _Deadline(Exception):
    """The whole-request deadline passed."""


@dataclass(frozen=True)
class Served:
    """What the server said about itself."""

    models: list[dict[str, Any]]
    version: str
    server: str
    info: dict[str, Any]


def server_root(base_url: str) -> str:
    """`http://h:p/v1` -> `http://h:p`: where vLLM's /version and TGI's /info live."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _headers(endpoint: Endpoint) -> dict[str, str]:
    key = os.environ.get(endpoint.api_key_env, "")
    headers = {"Accept": "application/json", "User-Agent": "releasectl-replay"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _client(endpoint: Endpoint, *, timeout: float, pool: int = 1) -> httpx.Client:
    import httpx

    return httpx.Client(
        headers=_headers(endpoint),
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment must not stand between us and the server
    )


def _json_answer(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        snippet = body[:80].decode("utf-8", "replace")
        raise EnvironmentFailure(
            f"{url} answered with something that is not JSON ({e}): {snippet!r}",
            hint="is --base-url an OpenAI-compatible endpoint (e.g. http://HOST:PORT/v1)?",
        ) from None


def _get(client: httpx.Client, url: str) -> tuple[int, Any]:
    import httpx

    try:
        response = client.get(url)
    except httpx.TimeoutException:
        raise EnvironmentFailure(
            f"{url} did not answer within {PROBE_TIMEOUT_S:g} s",
            hint="is the server up and reachable from here?",
        ) from None
    except httpx.HTTPError as e:
        raise EnvironmentFailure(
            f"cannot reach {url}: {e or type(e).__name__}",
            hint="start the server (e.g. python -m vllm.entrypoints.openai.api_server …) or fix --base-url",
        ) from None
    if response.status_code != 200:
        return response.status_code, None
    return 200, _json_answer(response.content, url)


def ask_server(endpoint: Endpoint) -> Served:
    """`GET /models`, then the version where the server exposes it (vLLM /version, TGI /info)."""
    base = endpoint.base_url.rstrip("/")
    with _client(endpoint, timeout=PROBE_TIMEOUT_S) as client:
        status, doc = _get(client, f"{base}/models")
        if status != 200:
            hint = "check the key in $" + endpoint.api_key_env if status in (401, 403) else "check --base-url"
            raise EnvironmentFailure(f"{base}/models answered HTTP {status}", hint=hint)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
        ):
            raise EnvironmentFailure(
                f"{base}/models did not answer an OpenAI models list ({{'data': [{{'id': …}}]}})",
                hint="is --base-url an OpenAI-compatible endpoint (e.g. http://HOST:PORT/v1)?",
            )
        root = server_root(base)
        version, server, info = "unknown", "unknown", {}
        status, doc = _get(client, f"{root}/version")
        if status == 200 and isinstance(doc, dict) and isinstance(doc.get("version"), str):
            version, server, info = doc["version"], "vllm", doc
        else:
            status, doc = _get(client, f"{root}/info")  # TGI
            if status == 200 and isinstance(doc, dict) and isinstance(doc.get("version"), str):
                version, server = doc["version"], "text-generation-inference"
                info = {k: v for k, v in doc.items() if isinstance(v, str | int | float | bool)}
    return Served(data, version, server, info)


def _served_model(endpoint: Endpoint, models: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [m["id"] for m in models]
    if endpoint.served_model_name is not None:
        for m in models:
            if m["id"] == endpoint.served_model_name:
                return m
        raise EnvironmentFailure(
            f"{endpoint.base_url} does not serve '{endpoint.served_model_name}' (it serves: {', '.join(ids) or 'nothing'})",
            hint="pass the server's --served-model-name with --served-model-name",
        )
    bases = [m for m in models if not m.get("parent")]
    if len(bases) != 1:
        raise EnvironmentFailure(
            f"{endpoint.base_url} serves {len(bases)} base models ({', '.join(m['id'] for m in bases) or 'none'}); which one is the release?",
            hint="pass --served-model-name (or set runtime.endpoint.served_model_name)",
        )
    return bases[0]


def _local(root: object) -> Path | None:
    if not isinstance(root, str) or not root or "://" in root:
        return None
    path = Path(root)
    return path if path.is_absolute() and path.exists() else None


def _trusted(root: object) -> bool:
    trust = os.environ.get(TRUST_ENV)
    return bool(trust) and trust == root


def model_identity(loaded: LoadedManifest, endpoint: Endpoint, model: dict[str, Any]) -> dict[str, Any]:
    """Proof that the served model is the manifest's pinned model, or EnvironmentFailure."""
    from releasectl.manifest.artifacts import local_path
    from releasectl.manifest.digests import dvc_md5, sha256_file, sha256_tree
    from releasectl.manifest.snapshot import read_sidecar, verify_snapshot

    pin = loaded.manifest.model
    root = model.get("root")
    served = f"{endpoint.base_url} serves '{model['id']}' from {root!r}"
    pinned = pin.uri or pin.path or ""
    refuse_hint = (
        f"serve the pinned model (e.g. the converted snapshot of {pinned}), or, for a server whose "
        f"files this machine cannot read, set {TRUST_ENV} to the exact root it reports"
    )
    if _trusted(root):
        return {"root": root, "trusted": TRUST_ENV, "pinned": pinned}
    if pin.uri and pin.uri.startswith("hf://"):
        repo = pin.uri.removeprefix("hf://").strip("/")
        local = _local(root)
        if root == repo or (local is not None and pin.revision and pin.revision in local.parts):
            return {
                "root": root,
                "pinned": pin.uri,
                "revision": pin.revision,
                "revision_verified": root != repo,
            }
        raise EnvironmentFailure(f"{served}, but {loaded.display} pins {pin.uri}", hint=refuse_hint)
    local = _local(root)
    if local is None:
        raise EnvironmentFailure(
            f"{served}, which this machine cannot read, so nothing proves it is the pinned {pinned}",
            hint=refuse_hint,
        )
    if pin.format == "gguf" and pin.sha256:
        if local.is_dir():
            sidecar = read_sidecar(local)
            problem = verify_snapshot(local, pin.sha256)
            if problem is None:
                return {
                    "root": root,
                    "pinned": pinned,
                    "sha256": pin.sha256,
                    "snapshot": sidecar and sidecar.get("converter"),
                }
            raise EnvironmentFailure(f"{served}: it is not the pinned model ({problem})", hint=refuse_hint)
        if sha256_file(local) == pin.sha256:
            return {"root": root, "pinned": pinned, "sha256": pin.sha256}
        raise EnvironmentFailure(f"{served}: its sha256 is not the pinned {pin.sha256}", hint=refuse_hint)
    expected = local_path(pin, loaded.root)
    if expected is not None and expected.exists() and expected.resolve() == local.resolve():
        return {"root": root, "pinned": pinned}
    found = {"md5": dvc_md5(local) if pin.md5 else None, "sha256": sha256_tree(local) if pin.sha256 else None}
    if (pin.md5 and found["md5"] == pin.md5) or (pin.sha256 and found["sha256"] == pin.sha256):
        return {"root": root, "pinned": pinned, **{k: v for k, v in found.items() if v}}
    raise EnvironmentFailure(f"{served}: its files do not match the pin of {pinned}", hint=refuse_hint)


def adapter_identity(
    endpoint: Endpoint,
    base_id: str,
    served: list[dict[str, Any]],
    adapters: Sequence[Adapter],
    pins: dict[str, str],
) -> dict[str, Any]:
    """Each pinned adapter is served by name on top of the served base model, from its pinned files."""
    from releasectl.manifest.digests import dvc_md5

    out: dict[str, Any] = {}
    by_id = {m["id"]: m for m in served}
    for adapter in adapters:
        entry = by_id.get(adapter.name)
        if entry is None or entry.get("parent") not in (None, base_id):
            raise EnvironmentFailure(
                f"{endpoint.base_url} does not serve the pinned adapter '{adapter.name}' on '{base_id}' "
                f"(it serves: {', '.join(by_id) or 'nothing'})",
                hint=f"start the server with --enable-lora --lora-modules {adapter.name}={adapter.path}",
            )
        root = entry.get("root")
        local = _local(root)
        if _trusted(root):
            out[adapter.name] = {"root": root, "trusted": TRUST_ENV}
        elif local is not None and local.resolve() == adapter.path.resolve():
            out[adapter.name] = {"root": root}
        elif (
            local is not None
            and local.is_dir()
            and pins.get(adapter.name)
            and dvc_md5(local) == pins[adapter.name]
        ):
            out[adapter.name] = {"root": root, "md5": pins[adapter.name]}
        else:
            raise EnvironmentFailure(
                f"{endpoint.base_url} serves adapter '{adapter.name}' from {root!r}, which is not the pinned {adapter.path}",
                hint=f"serve --lora-modules {adapter.name}={adapter.path}, or set {TRUST_ENV} to the exact root it reports",
            )
    return out


def pinned_adapters(loaded: LoadedManifest) -> tuple[list[Adapter], dict[str, str]]:
    """The manifest's adapters as local paths (no download), with their DVC md5 pins."""
    adapters, pins = [], {}
    for a in loaded.manifest.adapters:
        path = loaded.resolve(a.path) if a.path else Path(a.uri or a.name)
        adapters.append(Adapter(a.name, path, a.rank or 8))
        if a.md5:
            pins[a.name] = a.md5
    return adapters, pins


def probe_runtime(loaded: LoadedManifest, endpoint: Endpoint) -> Runtime:
    """What the endpoint serves, asked over HTTP; refuses a server that does not serve the pins."""
    served = ask_server(endpoint)
    model = _served_model(endpoint, served.models)
    identity = model_identity(loaded, endpoint, model)
    adapters, pins = pinned_adapters(loaded)
    identity["adapters"] = adapter_identity(endpoint, model["id"], served.models, adapters, pins)
    return Runtime(
        engine="openai",
        engine_version=served.version,
        device="remote",
        device_class="remote",
        vllm=served.version if served.server == "vllm" else None,
        extra={
            "base_url": endpoint.base_url,
            "served_model": model["id"],
            "server": served.server,
            "server_version": served.version,
            "server_info": served.info,
            "models": [
                {k: m.get(k) for k in ("id", "root", "parent", "owned_by", "max_model_len") if k in m}
                for m in served.models
            ],
            "identity": identity,
        },
    )


def request_body(
    prompt: Prompt, sampling: Sampling, *, model: str, seed: int, stream: bool, vllm: bool = False
) -> dict[str, Any]:
    """The pinned sampling as an OpenAI request (with vLLM's extra top_k / repetition_penalty)."""
    body: dict[str, Any] = {
        "model": model,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": seed,
        "n": 1,
        "stream": stream,
    }
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    # vLLM fills parameters a request leaves out from the model's generation_config.json
    # (`--generation-config auto`), so a vLLM server gets every one explicitly; another server
    # gets vLLM's extra parameters only when the pin sets them (OpenAI's own API rejects them).
    if vllm or sampling.top_k > 0:
        body["top_k"] = sampling.top_k if sampling.top_k > 0 else -1
    if vllm or sampling.repetition_penalty != 1.0:
        body["repetition_penalty"] = sampling.repetition_penalty
    if stream:
        body["stream_options"] = {"include_usage": True}
    if prompt.chat_template:
        body["messages"] = prompt.messages
    else:
        body["prompt"] = prompt.plain_text()
    return body


@dataclass
class _Answer:
    text: str = ""
    finish_reason: str | None = None
    stop_reason: object = None
    stop_reason_given: bool = False  # vLLM always sends the key (null: stopped on EOS)
    usage: dict[str, Any] | None = None
    ttft_ms: float | None = None


def _choice_text(choice: dict[str, Any]) -> str:
    if "text" in choice and isinstance(choice["text"], str):
        return choice["text"]
    for key in ("delta", "message"):
        part = choice.get(key)
        if isinstance(part, dict) and isinstance(part.get("content"), str):
            return str(part["content"])
    return ""


def _absorb(answer: _Answer, doc: Any, url: str) -> bool:
    """Fold one answer object (a whole response or one stream chunk) in; True if it carried text."""
    if not isinstance(doc, dict):
        raise EnvironmentFailure(f"{url} answered JSON that is not an OpenAI completion: {str(doc)[:80]!r}")
    if isinstance(doc.get("error"), dict | str):
        raise EnvironmentFailure(f"{url} answered an error: {str(doc['error'])[:300]}")
    if isinstance(doc.get("usage"), dict):
        answer.usage = doc["usage"]
    choices = doc.get("choices")
    if not isinstance(choices, list):
        raise EnvironmentFailure(f"{url} answered an object without 'choices': {json.dumps(doc)[:120]}")
    carried = False
    for choice in choices:
        if not isinstance(choice, dict):
            raise EnvironmentFailure(f"{url} answered a choice that is not an object")
        text = _choice_text(choice)
        if text:
            answer.text += text
            carried = True
        if choice.get("finish_reason") is not None:
            answer.finish_reason = str(choice["finish_reason"])
            answer.stop_reason = choice.get("stop_reason")
            answer.stop_reason_given = "stop_reason" in choice
    return carried


def _tokens(value: object, what: str, url: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvironmentFailure(f"{url} answered usage.{what} = {value!r}, expected a count")
    return value


def to_generation(answer: _Answer, latency_ms: float, url: str) -> Generation:
    """The answer as a Generation: completion_tokens without EOS, as on the offline engines."""
    if answer.usage is None:
        raise EnvironmentFailure(
            f"{url} answered no token usage",
            hint="token counts decide cost; the server must report usage (vLLM: stream_options include_usage)",
        )
    completion = _tokens(answer.usage.get("completion_tokens"), "completion_tokens", url)
    prompt = _tokens(answer.usage.get("prompt_tokens"), "prompt_tokens", url)
    eos = answer.finish_reason == "stop" and answer.stop_reason_given and answer.stop_reason is None
    if eos and completion > 0:
        completion -= 1  # stopped on EOS, which vLLM's usage counts and the offline engines do not
    return Generation(
        text=answer.text,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=round(latency_ms, 3),
        ttft_ms=None if answer.ttft_ms is None else round(answer.ttft_ms, 3),
        finish_reason=answer.finish_reason,
    )


class OpenAIEngine:
    """Replays prompts against a served endpoint, `endpoint.concurrency` requests at a time."""

    name = "openai"
    batch_size: int | None = None  # a request's output depends only on its own prompt and seed

    def __init__(
        self,
        loaded: LoadedManifest,
        endpoint: Endpoint,
        adapters: Sequence[Adapter],
        *,
        runtime: Runtime,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._runtime = runtime
        self.base = endpoint.base_url.rstrip("/")
        self.base_model = str(runtime.extra.get("served_model") or endpoint.served_model_name or "")
        self._model = self.base_model
        self._retry = retry or RetryPolicy()
        self._vllm = runtime.extra.get("server") == "vllm"
        models = runtime.extra.get("models")
        self._served = (
            {str(m.get("id")) for m in models if isinstance(m, dict)} if isinstance(models, list) else set()
        )
        self._client = _client(endpoint, timeout=endpoint.timeout_s, pool=endpoint.concurrency)
        self.retries = 0

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def settings(self) -> dict[str, object]:
        return {
            "base_url": self.endpoint.base_url,
            "served_model_name": self.base_model,
            "concurrency": self.endpoint.concurrency,
            "timeout_s": self.endpoint.timeout_s,
            "stream": self.endpoint.stream,
            "retry": {
                "attempts": self._retry.attempts,
                "base_delay": self._retry.base_delay,
                "max_delay": self._retry.max_delay,
            },
            "api_key_env": self.endpoint.api_key_env,  # the variable's name, never its value
        }

    @contextmanager
    def use_adapters(self, adapters: Sequence[Adapter]) -> Iterator[None]:
        if len(adapters) > 1:
            raise EnvironmentFailure(
                f"the openai engine replays one adapter at a time; the release pins {len(adapters)}"
            )
        for adapter in adapters:
            if adapter.name not in self._served:
                raise EnvironmentFailure(
                    f"{self.endpoint.base_url} does not serve the pinned adapter '{adapter.name}'",
                    hint=f"start the server with --enable-lora --lora-modules {adapter.name}={adapter.path}",
                )
        self._model = adapters[0].name if adapters else self.base_model
        try:
            yield
        finally:
            self._model = self.base_model

    def close(self) -> None:
        self._client.close()

    def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling, *, seed: int, seeds: Sequence[int] | None = None
    ) -> list[Generation]:
        """One request per prompt, at most `concurrency` in flight; results in input order.
        With `seeds` (repeated sampling) each request carries its own seed."""
        if not prompts:
            return []
        workers = min(self.endpoint.concurrency, len(prompts))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-engine")
        try:
            own = list(seeds) if seeds is not None else [seed] * len(prompts)
            futures = [pool.submit(self._one, p, sampling, s) for p, s in zip(prompts, own, strict=True)]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                failure = future.exception() if future.done() else None
                if failure is not None:
                    for f in futures:
                        f.cancel()  # the ones not started; those in flight end by their deadline
                    raise failure
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, prompt: Prompt, sampling: Sampling, seed: int) -> Generation:
        url = f"{self.base}/{'chat/completions' if prompt.chat_template else 'completions'}"
        body = request_body(
            prompt, sampling, model=self._model, seed=seed, stream=self.endpoint.stream, vllm=self._vllm
        )
        policy = RetryPolicy(
            attempts=self._retry.attempts,
            base_delay=self._retry.base_delay,
            max_delay=self._retry.max_delay,
            sleep=self._retry.sleep,
        )
        try:
            generation = policy.run(lambda: self._attempt(url, body))
        except RetriesExhausted as e:
            raise EnvironmentFailure(
                f"POST {url} failed: {e}",
                hint="the server is overloaded or failing; check its logs, or lower runtime.endpoint.concurrency",
            ) from None
        self.retries += len(policy.waits)
        return generation

    def _attempt(self, url: str, body: dict[str, Any]) -> Generation:
        """One request under the whole-request deadline: a Generation, Retryable, or a failure."""
        import httpx

        deadline = self.endpoint.timeout_s
        answer = _Answer()
        t0 = time.perf_counter()
        timer: threading.Timer | None = None
        try:
            with self._client.stream("POST", url, json=body) as response:
                # The deadline covers the body too: close the socket when it passes.
                timer = threading.Timer(max(0.0, deadline - (time.perf_counter() - t0)), response.close)
                timer.daemon = True
                timer.start()
                self._check_deadline(t0)  # the headers came after the deadline
                if response.status_code != 200:
                    self._refuse_status(url, response, t0)
                if self.endpoint.stream and "text/event-stream" in response.headers.get("content-type", ""):
                    self._read_stream(url, response, answer, t0)
                else:
                    data = self._read_body(response, t0)
                    _absorb(answer, _json_answer(data, url), url)
        except _Deadline:
            raise self._timed_out(url) from None
        except httpx.TimeoutException:
            raise self._timed_out(url) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            if time.perf_counter() - t0 >= deadline:
                raise self._timed_out(url) from None
            raise Retryable(f"the connection to {url} broke: {e or type(e).__name__}") from None
        except httpx.ConnectError as e:
            raise Retryable(f"cannot connect to {url}: {e or type(e).__name__}") from None
        except httpx.StreamClosed:
            raise self._timed_out(url) from None
        except httpx.HTTPError as e:
            raise EnvironmentFailure(f"POST {url} failed: {e or type(e).__name__}") from None
        finally:
            if timer is not None:
                timer.cancel()
        return to_generation(answer, (time.perf_counter() - t0) * 1000, url)

    def _timed_out(self, url: str) -> EnvironmentFailure:
        return EnvironmentFailure(
            f"POST {url} did not finish within runtime.endpoint.timeout_s = {self.endpoint.timeout_s:g} s",
            hint="the deadline covers the whole request; raise runtime.endpoint.timeout_s or check the server",
        )

    def _check_deadline(self, t0: float) -> None:
        if time.perf_counter() - t0 >= self.endpoint.timeout_s:
            raise _Deadline

    def _read_body(self, response: httpx.Response, t0: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_raw():
            self._check_deadline(t0)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise EnvironmentFailure(f"{response.url} answered more than {MAX_ANSWER_BYTES} bytes")
            chunks.append(chunk)
        self._check_deadline(t0)
        return b"".join(chunks)

    def _read_stream(self, url: str, response: httpx.Response, answer: _Answer, t0: float) -> None:
        finished = False
        for line in response.iter_lines():
            self._check_deadline(t0)
            if not line.startswith("data:"):
                continue  # comments, event names, keep-alives
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                finished = True
                break
            if _absorb(answer, _json_answer(data.encode(), url), url) and answer.ttft_ms is None:
                answer.ttft_ms = (time.perf_counter() - t0) * 1000
        if not finished:
            raise Retryable(f"the stream from {url} ended before [DONE]")

    def _refuse_status(self, url: str, response: httpx.Response, t0: float) -> None:
        from releasectl.retry import http_transient

        status = response.status_code
        response.read()
        transient = http_transient(status, response.reason_phrase, response.headers)
        if transient is not None:
            raise transient
        message = response.text[:300].strip()
        raise EnvironmentFailure(
            f"POST {url} answered HTTP {status}: {message}",
            hint="a 400 usually means a prompt longer than the served max_model_len, or a model name the server does not serve",
        )
