"""The one input reader: special files, extreme values and damaged gzip are BadInput naming
the file, never a hang, a MemoryError or a traceback."""

from __future__ import annotations

import gzip
import os
import socket
import threading
import zlib
from pathlib import Path

import pytest

from releasectl import safeio
from releasectl.errors import BadInput, ExitCode


def _bad(fn, *args, **kw) -> BadInput:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInput) as info:
        fn(*args, **kw)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return info.value


def _within(seconds: float, fn, *args, **kw):  # type: ignore[no-untyped-def]
    """Run fn in a thread; fail (instead of hanging the suite) when it does not return in time."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} hung for more than {seconds} s"
    return out


READERS = [
    safeio.read_bytes,
    safeio.read_text,
    safeio.read_json,
    safeio.regular_file,
    lambda p: list(safeio.iter_lines(p)),
]


@pytest.mark.parametrize("reader", READERS)
def test_fifo_is_refused_without_hanging(tmp_path: Path, reader) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "logs.jsonl"
    os.mkfifo(fifo)
    out = _within(5, reader, fifo)
    err = out.get("error")
    assert isinstance(err, BadInput), out
    assert str(fifo) in err.message and "FIFO" in err.message


def test_fifo_swapped_in_after_the_check_does_not_hang(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    real_stat = os.stat
    # The pre-open check sees a regular file (a race); the non-blocking open and fstat catch it.
    monkeypatch.setattr(
        safeio.os, "stat", lambda p, *a, **k: real_stat(__file__) if p == fifo else real_stat(p, *a, **k)
    )
    out = _within(5, safeio.read_bytes, fifo)
    assert isinstance(out.get("error"), BadInput) and "FIFO" in out["error"].message  # type: ignore[union-attr]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    out = _within(5, safeio.read_bytes, device)
    assert isinstance(out.get("error"), BadInput) and device in out["error"].message  # type: ignore[union-attr]
    assert "device" in out["error"].message  # type: ignore[union-attr]


def test_directory_socket_missing(tmp_path: Path) -> None:
    assert "directory" in _bad(safeio.read_text, tmp_path).message
    assert "not found" in _bad(safeio.read_text, tmp_path / "nope.yaml").message
    sock_path = tmp_path / "s"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        assert "socket" in _bad(safeio.read_bytes, sock_path).message
    finally:
        s.close()


def test_symlink_loops_and_long_names(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    err = _bad(safeio.read_text, a)
    assert str(a) in err.message and "loop" in err.message
    self_loop = tmp_path / "self"
    self_loop.symlink_to(self_loop)
    assert "loop" in _bad(safeio.regular_file, self_loop).message
    long = tmp_path / ("x" * 100_000)
    err = _bad(safeio.read_bytes, long)
    assert "too long" in err.message and len(err.message) < 400
    assert "too long" in _bad(safeio.read_bytes, tmp_path / ("y" * 300)).message


def test_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text('{"a": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert safeio.read_json(link) == {"a": 1}
    assert safeio.regular_file(link) == target.resolve()


def test_size_capped_before_and_while_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 2000)
    err = _bad(safeio.read_bytes, big, max_bytes=1000)
    assert "too large" in err.message and str(big) in err.message
    assert safeio.read_bytes(big, max_bytes=2000) == b"a" * 2000
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"\0" * 5_000_000))
    assert "too large" in _bad(safeio.read_bytes, bomb, max_bytes=1_000_000).message


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        (b"ok\nbad \xff byte\n", ":2:5", "UTF-8"),
        (b"a\nb\n\xed\xa0\x80\n", ":3:1", "UTF-8"),  # an encoded lone surrogate
        (b"line one\nx\x00y\n", ":2:2", "NUL"),
    ],
)
def test_strict_utf8_located(tmp_path: Path, text: bytes, where: str, why: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_bytes(text)
    err = _bad(safeio.read_text, f)
    assert f"{f}{where}" in err.message and why in err.message


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("[" * 5000 + "]" * 5000, "nesting"),
        ('{"a":' * 300 + "1" + "}" * 300, "nesting"),
        ("1" * 5000, "too large"),
        ('{"n": ' + "9" * 5000 + "}", "too large"),
        ('{"n": ' + "9" * 150 + "}", "digits"),
        ('{"n": -' + "9" * 150 + ".5}", "digits"),
        ('{"tokens": 1e309}', "too large"),
        ('{"tokens": -1e400}', "too large"),
        ('{"x": NaN}', "invalid JSON"),
        ('{"x": Infinity}', "invalid JSON"),
        ('{"x": -Infinity}', "invalid JSON"),
        ('{"s": "\\ud800"}', "surrogate"),
        ('{"s": "\\udc00x"}', "surrogate"),
        ('{"a": 1,}', "invalid JSON"),
    ],
)
def test_json_bounds(tmp_path: Path, doc: str, why: str) -> None:
    f = tmp_path / "run.json"
    f.write_text(doc)
    out = _within(10, safeio.read_json, f)
    err = out.get("error")
    assert isinstance(err, BadInput), out
    assert str(f) in err.message and why in err.message, err.message


def test_json_error_has_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "gate.json"
    f.write_text('{\n  "a": 1,\n  "b": tru\n}\n')
    err = _bad(safeio.read_json, f)
    assert f"{f}:3:" in err.message
    err = _bad(safeio.loads_json, b'{"a": nan}', source="logs.jsonl", line=42)
    assert err.message.startswith("logs.jsonl:42:")


def test_json_within_bounds_is_parsed(tmp_path: Path) -> None:
    doc = {"a": [1, 2.5, None, True, "x"], "big": 1e99, "deep": [[[[1]]]], "max": 1.7e308}
    assert (
        safeio.loads_json(
            b'{"a":[1,2.5,null,true,"x"],"big":' + b"1" + b"0" * 99 + b',"deep":[[[[1]]]],"max":1.7e308}',
            source="x",
        )
        == doc
    )
    assert safeio.loads_json(
        '"1000000000000000000000000000000000000000 digits in a string are fine"', source="x"
    )


def _gz(payload: bytes) -> bytes:
    return gzip.compress(payload, mtime=0)


def test_gzip_read_and_verified(tmp_path: Path) -> None:
    body = b"".join(b'{"i": %d}\n' % i for i in range(5000))
    good = tmp_path / "logs.gz"
    good.write_bytes(_gz(body[:100]) + _gz(body[100:]))  # two members
    assert safeio.read_bytes(good) == body
    assert [n for n, _ in safeio.iter_lines(good)] == list(range(1, 5001))

    raw = _gz(body)
    torn = tmp_path / "torn.jsonl"  # the name does not matter: magic bytes decide
    torn.write_bytes(raw[: len(raw) // 2])
    bad_crc = tmp_path / "crc.gz"
    bad_crc.write_bytes(raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:])
    bad_len = tmp_path / "len.gz"
    bad_len.write_bytes(raw[:-4] + b"\0\0\0\0")
    flipped = tmp_path / "flip.gz"
    flipped.write_bytes(raw[:40] + bytes([raw[40] ^ 0x55]) + raw[41:])
    header_only = tmp_path / "head.gz"
    header_only.write_bytes(raw[:10])
    for f in (torn, bad_crc, bad_len, flipped, header_only):
        err = _bad(safeio.read_bytes, f)
        assert str(f) in err.message and "gzip" in err.message, err.message
        err = _bad(lambda p: list(safeio.iter_lines(p)), f)
        assert str(f) in err.message and "gzip" in err.message, err.message


@pytest.mark.timeout(60)
def test_gzip_members_that_each_unpack_past_a_chunk_are_read_to_the_end(tmp_path: Path) -> None:
    # Log rotation concatenates members. A member whose data runs past one read chunk ends with
    # zlib holding the next member's bytes twice (unused_data and unconsumed_tail): this hung.
    rows = [b'{"i": %d, "pad": "%s"}\n' % (i, b"x" * 200) for i in range(30_000)]
    first, second = b"".join(rows[:20_000]), b"".join(rows[20_000:])
    assert len(first) > 4 << 20
    rotated = tmp_path / "rotated.gz"
    rotated.write_bytes(_gz(first) + _gz(second) + _gz(b""))
    assert safeio.read_bytes(rotated) == first + second
    assert sum(1 for _ in safeio.iter_lines(rotated)) == 30_000
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(_gz(first) + b"not gzip at all" * 10)
    err = _bad(lambda p: list(safeio.iter_lines(p)), garbage)
    assert str(garbage) in err.message and "trailing garbage" in err.message, err.message


def test_iter_lines_torn_tail(tmp_path: Path) -> None:
    f = tmp_path / "history.jsonl"
    f.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    lines = list(safeio.iter_lines(f))
    assert lines[-1] == (3, b'{"a"') and lines[0] == (1, b'{"a": 1}\n')
    err = _bad(lambda: list(safeio.iter_lines(f, torn="error")))
    assert f"{f}:3:" in err.message and "torn" in err.message
    long = tmp_path / "long.jsonl"
    long.write_bytes(b"x" * 5000 + b"\n")
    assert f"{long}:1:" in _bad(lambda: list(safeio.iter_lines(long, max_line_bytes=1000))).message


def test_declared_stdin(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import io
    import sys

    class FakeStdin:
        buffer = io.BytesIO(b'{"from": "stdin"}')

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    assert safeio.read_json("-", allow_stdin=True) == {"from": "stdin"}
    monkeypatch.chdir(tmp_path)
    assert "not found" in _bad(safeio.read_json, "-").message  # not declared: a file named "-"


def test_zlib_error_is_not_leaked(tmp_path: Path) -> None:
    f = tmp_path / "z.gz"
    f.write_bytes(b"\x1f\x8b" + os.urandom(64))
    with pytest.raises(BadInput):
        safeio.read_bytes(f)
    with pytest.raises(BadInput):
        list(safeio.iter_lines(f))
    assert zlib  # the module the reader wraps
