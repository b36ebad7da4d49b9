"""The unit-test sandbox contains hostile model-written code (each attack is tried for real)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from releasectl.suite.sandbox import run_sandboxed

FIXTURES = Path(__file__).resolve().parent.parent / "suites" / "core" / "fixtures"
TEST = "import solution\n\ndef test_add():\n    assert solution.add(2, 3) == 5\n"


def test_correct_solution_passes_and_wrong_one_fails():
    ok = run_sandboxed("def add(a, b):\n    return a + b\n", test_code=TEST)
    assert ok.passed, ok
    bad = run_sandboxed("def add(a, b):\n    return a - b\n", test_code=TEST)
    assert not bad.passed
    assert "FAIL test_add" in bad.detail


def test_cannot_write_outside_the_temp_dir(tmp_path):
    target = tmp_path / "pwned.txt"
    os.chmod(tmp_path, 0o777)  # even a world-writable directory outside the sandbox stays untouched
    code = f"def add(a, b):\n    open({str(target)!r}, 'w').write('x')\n    return a + b\n"
    result = run_sandboxed(code, test_code=TEST)
    assert not result.passed
    assert not target.exists()
    assert "outside the sandbox" in result.stdout


def test_cannot_write_outside_even_via_os_level_calls(tmp_path):
    target = tmp_path / "pwned2.txt"
    os.chmod(tmp_path, 0o777)
    code = (
        "import os\n"
        "def add(a, b):\n"
        f"    fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n"
        "    os.write(fd, b'x')\n"
        "    return a + b\n"
    )
    result = run_sandboxed(code, test_code=TEST)
    assert not result.passed
    assert not target.exists()


def test_cannot_open_a_socket():
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        server.settimeout(3)
        try:
            conn, _ = server.accept()
            accepted.append(conn)
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    code = (
        "import socket\n"
        "def add(a, b):\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    return a + b\n"
    )
    result = run_sandboxed(code, test_code=TEST)
    t.join()
    server.close()
    assert not result.passed
    assert accepted == []


def test_fork_bomb_is_contained():
    code = "import os\ndef add(a, b):\n    while True:\n        os.fork()\n"
    started = time.monotonic()
    result = run_sandboxed(code, test_code=TEST, timeout_s=3)
    assert not result.passed
    assert time.monotonic() - started < 15


def test_runaway_code_is_killed_at_the_limit():
    started = time.monotonic()
    result = run_sandboxed("def add(a, b):\n    while True:\n        pass\n", test_code=TEST, timeout_s=1.5)
    elapsed = time.monotonic() - started
    assert not result.passed
    assert result.timed_out or result.returncode < 0
    assert elapsed < 10


def test_memory_limit_is_enforced():
    result = run_sandboxed(
        "def add(a, b):\n    x = bytearray(2_000_000_000)\n    return a + b\n", test_code=TEST, memory_mb=256
    )
    assert not result.passed
    assert "MemoryError" in result.stdout


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="suite fixtures not generated")
def test_frozen_sdk_fixture_is_importable_and_deprecated_api_fails():
    test = (FIXTURES / "tests" / "test_healthcheck.py").read_text()
    good = "def healthcheck(client):\n    return bool(client.query('healthcheck'))\n"
    legacy = "def healthcheck(client):\n    return bool(client.legacy_lookup('healthcheck'))\n"
    assert run_sandboxed(good, test_code=test, fixtures_dir=FIXTURES / "packages").passed
    bad = run_sandboxed(legacy, test_code=test, fixtures_dir=FIXTURES / "packages")
    assert not bad.passed and "deprecated" in bad.detail
