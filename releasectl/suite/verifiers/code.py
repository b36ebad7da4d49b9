"""Code and API use: `api_version_match`, `no_deprecated_api`, `unit_tests` (sandboxed)."""

from __future__ import annotations

import re

from releasectl.suite.registry import Settings, Verdict, VerifyContext, verifier
from releasectl.suite.verifiers._extract import code_blocks


class ApiVersionSettings(Settings):
    package: str = "search-sdk"
    """The package whose version must be pinned."""
    version: str = "3.2.1"
    """The version the answer must cite and pin."""


@verifier("api_version_match", "1.0", kind="tool", settings=ApiVersionSettings)
def api_version_match(output: str, s: ApiVersionSettings, ctx: VerifyContext) -> Verdict:
    """Cites the API version, every `pip install` of the package pins `==version`, no other version."""
    pkg = re.escape(s.package)
    ver = re.escape(s.version)
    if not re.search(rf"(?<![\d.])v?{ver}(?![\d])", output):
        return Verdict(False, f"does not cite {s.version}")
    for m in re.finditer(rf"pip\s+install\s+[^\n`]*?\b{pkg}\b([^\s`]*)", output, flags=re.IGNORECASE):
        if m.group(1) != f"=={s.version}":
            return Verdict(False, f"unpinned install: {m.group(0).strip()[:60]!r}")
    other = re.search(rf"\b{pkg}\s*==\s*(?!{ver}(?![\d.]))[\d.]+", output, flags=re.IGNORECASE)
    if other:
        return Verdict(False, f"pins another version: {other.group(0)!r}")
    return Verdict(True, f"cites and pins {s.package}=={s.version}")


class DeprecatedApiSettings(Settings):
    names: list[str]
    """Deprecated functions or methods that must not be used, e.g. `legacy_lookup`."""


@verifier("no_deprecated_api", "1.0", kind="rule", settings=DeprecatedApiSettings)
def no_deprecated_api(output: str, s: DeprecatedApiSettings, ctx: VerifyContext) -> Verdict:
    """Never calls a deprecated API (e.g. `SearchClient.legacy_lookup()`, deprecated in 3.2)."""
    for name in s.names:
        if re.search(rf"\b{re.escape(name)}\s*\(", output) or re.search(rf"\.{re.escape(name)}\b", output):
            return Verdict(False, f"uses deprecated {name}()")
    return Verdict(True, "no deprecated API")


class UnitTestSettings(Settings):
    test_file: str | None = None
    """Test module under the fixtures directory; default: the case's `expected.test_file`."""
    timeout_s: float = 5.0
    """Wall-clock limit for the whole test run."""
    memory_mb: int = 256
    """Address-space limit of the test process."""


_STEP = re.compile(r"^\s*(?:\d+[.)]|step\s+\d+\b)", re.IGNORECASE | re.MULTILINE)


def count_steps(output: str) -> int:
    """Steps of a plan: numbered lines (`1.`, `2)`, `Step 3`)."""
    return len(_STEP.findall(output))


@verifier("unit_tests", "1.0", kind="tool", settings=UnitTestSettings)
def unit_tests(output: str, s: UnitTestSettings, ctx: VerifyContext) -> Verdict:
    """The output's Python code passes the case's unit tests against the frozen tool fixtures, sandboxed."""
    from releasectl.suite.sandbox import run_sandboxed

    steps = count_steps(output)
    blocks = code_blocks(output)
    if not blocks:
        return Verdict(False, "no ```python code block in the output", steps=steps)
    rel = s.test_file or str(ctx.expected.get("test_file", ""))
    if not rel or ctx.fixtures_dir is None or not (ctx.fixtures_dir / rel).is_file():
        return Verdict(False, f"test file {rel!r} not found in the fixtures", steps=steps)
    from releasectl.safeio import read_text

    test_code = read_text(ctx.fixtures_dir / rel, what="frozen test file")
    result = run_sandboxed(
        "\n\n".join(blocks),
        test_code=test_code,
        fixtures_dir=ctx.fixtures_dir / "packages",
        timeout_s=s.timeout_s,
        memory_mb=s.memory_mb,
    )
    return Verdict(result.passed, result.detail, steps=steps)
