"""The one reader of user and stage files: regular files only, bounded, strictly decoded.

Every input a command reads (manifests, rules, suites, run and gate artifacts, logs) goes through
here, so the failure classes are closed once:

- only a regular file is read: a FIFO, socket, device (`/dev/zero`) or directory is refused
  *before* it is opened for reading, and the open itself is non-blocking and re-checked with
  `fstat`, so a file swapped for a FIFO between the check and the open cannot hang us;
- symlinks are resolved by the OS, which reports loops (ELOOP); over-long names (ENAMETOOLONG)
  are refused;
- the size is capped before reading (`fstat`) and while reading (at most cap + 1 bytes), gzip
  output included;
- gzip is detected by its magic bytes and verified to the end (CRC and length): a torn or
  corrupt stream is an error, never an early "end of data";
- text is strict UTF-8 (no lone surrogates, no NUL), located by line and column;
- JSON is orjson with a nesting bound (200), an integer-digit bound (100) and finite numbers only.

Every failure is `BadInput` (exit 2) naming the file (as `name=` says, else the path as given). `"-"` means standard input where a caller
declares it accepts a stream (`allow_stdin=True`).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from releasectl.errors import BadInput, Problem

DEFAULT_MAX_BYTES = 64 << 20  # manifests, rules, suites, artifacts: far below this
MAX_DEPTH = 200
MAX_INT_DIGITS = 100
MAX_LINE_BYTES = 16 << 20
STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_LONG_INT = re.compile(rb"[0-9]{%d}" % (MAX_INT_DIGITS + 1))

PathLike = str | os.PathLike[str]


def _name(path: PathLike) -> str:
    text = os.fspath(path)
    return text if len(text) <= 200 else f"{text[:120]}...({len(text)} characters)"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _os_error(path: PathLike, e: OSError, what: str, name: str | None = None) -> BadInput:
    name = name or _name(path)
    code = e.errno
    if code == errno.ENOENT:
        return BadInput(f"{name}: {what} not found", [Problem(f"{what} not found", file=name)])
    if code == errno.ELOOP:
        reason = "symlink loop (too many levels of symbolic links)"
    elif code == errno.ENAMETOOLONG:
        reason = "file name too long for the operating system"
    elif code == errno.ENOTDIR:
        reason = "a component of the path is not a directory"
    elif code in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    else:
        reason = e.strerror or str(e)
    return BadInput(f"{name}: cannot read {what}: {reason}", [Problem(reason, file=name)])


def _check_name(path: PathLike, what: str, name: str | None = None) -> None:
    text = os.fspath(path)
    if "\x00" in text:
        raise BadInput(f"{name or _name(path)}: cannot read {what}: the name holds a NUL character")
    try:
        name_max = os.pathconf(os.path.dirname(text) or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(text) > 4096 or any(len(os.fsencode(p)) > name_max for p in text.split(os.sep)):
        raise _os_error(path, OSError(errno.ENAMETOOLONG, "File name too long"), what, name)


def _stat(path: PathLike, what: str, name: str | None = None) -> os.stat_result:
    name = name or _name(path)
    _check_name(path, what, name)
    try:
        st = os.stat(path)  # follows symlinks; the OS reports loops as ELOOP
    except OSError as e:
        raise _os_error(path, e, what, name) from None
    except ValueError as e:  # e.g. embedded NUL
        raise BadInput(f"{name}: cannot read {what}: {e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(
            f"{name}: cannot read {what}: it is {_kind(st.st_mode)}, not a regular file",
            [Problem(f"{_kind(st.st_mode)}, not a regular file", file=name)],
        )
    return st


def present(path: PathLike, *, what: str = "file", name: str | None = None) -> bool:
    """Whether an optional input is there: False when nothing is at `path`, True for a regular
    file (symlinks followed). Anything else there (a FIFO, a device, a directory, a dangling or
    looping link) is BadInput naming it, never read as "absent"."""
    try:
        if not os.path.lexists(path):
            return False
    except ValueError:  # an embedded NUL: _stat says so
        pass
    _stat(path, what, name)
    return True


def regular_file(path: PathLike, *, what: str = "file", name: str | None = None) -> Path:
    """`path` resolved (symlinks followed, loops refused) when it names a regular file.
    `name` is how messages name it (default: the path as given)."""
    _stat(path, what, name)
    try:
        return Path(os.path.realpath(path))
    except (OSError, RuntimeError) as e:
        raise BadInput(f"{name or _name(path)}: cannot read {what}: {e}") from None


def open_fd(path: PathLike, *, what: str = "file", name: str | None = None) -> tuple[int, os.stat_result]:
    """A read-only descriptor on the regular file `path`, and its `fstat`. Checked before the
    open (so a FIFO is never opened for read), opened non-blocking, and checked again on the
    descriptor (so a swap between check and open is caught)."""
    name = name or _name(path)
    _stat(path, what, name)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _os_error(path, e, what, name) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{name}: cannot read {what}: it is {_kind(st.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_binary(path: PathLike, *, what: str = "file", name: str | None = None) -> IO[bytes]:
    """A buffered binary reader on the regular file `path` (not decompressed; see `open_stream`)."""
    fd, _ = open_fd(path, what=what, name=name)
    return os.fdopen(fd, "rb")


def _too_large(path: str, size: int | str, cap: int, what: str) -> BadInput:
    return BadInput(
        f"{path}: {what} too large ({size} bytes; the limit is {cap:,})",
        [Problem("too large", file=path, expected=f"at most {cap:,} bytes", found=f"{size} bytes")],
    )


def _gunzip(data: bytes, source: str, cap: int, what: str) -> bytes:
    """All members of a gzip stream, CRC and length verified, at most `cap` bytes."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=31)
        buf = rest
        try:
            while True:
                out += d.decompress(buf, cap + 1 - len(out))  # never 0, which means "no limit"
                if len(out) > cap:
                    raise _too_large(source, f"more than {cap:,} (decompressed)", cap, what)
                if d.eof or not d.unconsumed_tail:
                    break
                buf = d.unconsumed_tail
        except zlib.error as e:
            raise _bad_gzip(source, str(e)) from None
        if not d.eof:
            raise _bad_gzip(source, "truncated stream (the end-of-stream marker is missing)")
        rest = d.unused_data.lstrip(b"\x00")  # trailing zero padding is allowed by gzip(1)
        if rest and not rest.startswith(GZIP_MAGIC):
            raise _bad_gzip(source, "trailing garbage after the gzip stream")
    return bytes(out)


def _bad_gzip(source: str, reason: str) -> BadInput:
    return BadInput(
        f"{source}: damaged gzip file: {reason}",
        [Problem(f"damaged gzip file: {reason}", file=source)],
        hint="the file is corrupt or was cut short; re-fetch or re-compress it",
    )


def read_bytes(
    path: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "file",
    gunzip: bool = True,
    allow_stdin: bool = False,
    name: str | None = None,
) -> bytes:
    """The bytes of the regular file `path` (gzip decompressed and verified when it starts with
    the gzip magic and `gunzip`), refusing more than `max_bytes` before and while reading."""
    if allow_stdin and os.fspath(path) == STDIN:
        source = "<stdin>"
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(source, f"more than {max_bytes:,}", max_bytes, what)
    else:
        source = name or _name(path)
        fd, st = open_fd(path, what=what, name=source)
        with os.fdopen(fd, "rb", buffering=0) as f:
            if st.st_size > max_bytes:
                raise _too_large(source, st.st_size, max_bytes, what)
            chunks: list[bytes] = []
            got = 0
            try:
                while got <= max_bytes:
                    chunk = f.read(min(_CHUNK, max_bytes + 1 - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
            except OSError as e:
                raise _os_error(path, e, what, source) from None
            if got > max_bytes:
                raise _too_large(source, f"more than {max_bytes:,}", max_bytes, what)
            data = b"".join(chunks)
    if gunzip and data.startswith(GZIP_MAGIC):
        data = _gunzip(data, source, max_bytes, what)
    return data


def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, pos) + 1
    start = data.rfind(b"\n", 0, pos) + 1
    return line, pos - start + 1


def decode_text(data: bytes, *, source: str, line: int | None = None) -> str:
    """Strict UTF-8 (a BOM is dropped): invalid bytes, encoded surrogates and NUL are refused
    with line:col (`line` offsets a fragment that starts on that line of `source`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        ln, col = _line_col(data, e.start)
        ln += (line or 1) - 1
        raise BadInput(
            f"{source}:{ln}:{col}: not UTF-8 ({e.reason}, byte 0x{data[e.start]:02x})",
            [
                Problem(
                    f"not UTF-8: {e.reason}",
                    file=source,
                    line=ln,
                    col=col,
                    found=f"byte 0x{data[e.start]:02x}",
                )
            ],
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        ln, col = _line_col(data, data.find(b"\x00"))
        ln += (line or 1) - 1
        raise BadInput(
            f"{source}:{ln}:{col}: binary content (NUL character) in text",
            [Problem("binary content (NUL character)", file=source, line=ln, col=col)],
        )
    return text.removeprefix("\ufeff")


def read_text(
    path: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "file",
    allow_stdin: bool = False,
    name: str | None = None,
) -> str:
    """The strict UTF-8 text of `path` (see `read_bytes`, `decode_text`)."""
    data = read_bytes(path, max_bytes=max_bytes, what=what, allow_stdin=allow_stdin, name=name)
    source = "<stdin>" if allow_stdin and os.fspath(path) == STDIN else name or _name(path)
    return decode_text(data, source=source)


def _json_error(source: str, line: int | None, col: int | None, reason: str) -> BadInput:
    where = ":".join(str(p) for p in (source, line, col) if p is not None)
    return BadInput(
        f"{where}: invalid JSON: {reason}",
        [Problem(f"invalid JSON: {reason}", file=source, line=line, col=col)],
    )


def check_value(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a parsed JSON/YAML value breaks the bounds (depth, finite floats), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            if depth > max_depth:
                return f"nesting deeper than {max_depth} levels"
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            if depth > max_depth:
                return f"nesting deeper than {max_depth} levels"
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return "a number that is not finite"
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**MAX_INT_DIGITS:
            return f"an integer longer than {MAX_INT_DIGITS} digits"
    return None


def _long_int_reason(text: bytes) -> str | None:
    """orjson turns integers beyond 64 bits into floats; find one written with too many digits
    (outside strings) with the standard parser, whose hooks see the literal text."""
    import json

    def parse_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise OverflowError(f"an integer of {len(s.lstrip('-')):,} digits")
        return 0

    def parse_float(s: str) -> float:
        mantissa = s.lstrip("-").split("e")[0].split("E")[0]
        if len(mantissa.split(".")[0]) > MAX_INT_DIGITS:
            raise OverflowError(f"a number of {len(mantissa):,} digits")
        return 0.0

    try:
        json.loads(text, parse_int=parse_int, parse_float=parse_float)
    except OverflowError as e:
        return f"{e} (at most {MAX_INT_DIGITS})"
    except (ValueError, RecursionError):
        return None
    return None


_KEY = re.compile(rb'"(?:[^"\\]|\\.)*"\s*:')  # a JSON object key and its colon


def _entries(value: Any) -> int:
    """How many key/value pairs the parsed document's objects hold, all levels together."""
    count, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            count += len(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def duplicate_key(raw: bytes, value: Any) -> str | None:
    """A key that occurs twice in one object of `raw` (which parsed to `value`), or None. orjson
    keeps the last of duplicated keys, so `{"to": "v1.2", "to": "v1.0"}` would read as v1.0: a
    count of the keys in the text against the parsed pairs finds that cheaply, and only then does
    a second parse name the key."""
    if b":" not in raw or len(_KEY.findall(raw)) == _entries(value):
        return None
    import json

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out and not found:
                found.append(k)
            out[k] = v
        return out

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def loads_json(
    data: bytes | str,
    *,
    source: str,
    line: int | None = None,
    max_depth: int = MAX_DEPTH,
    unique_keys: bool = True,
) -> Any:
    """Parse one JSON document from `source` (a file name; `line` when `data` is one line of
    it): orjson, finite numbers only, nesting at most `max_depth`, integers at most 100 digits,
    and (`unique_keys`) no key twice in one object."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        reason = e.msg if hasattr(e, "msg") else str(e)
        if "infinity" in reason:
            reason = "a number too large for a double (more than ~1.8e308, or too many digits)"
        elif "depth limit" in reason:
            reason = f"nesting deeper than {max_depth} levels"
        elif "surrogate" in reason:
            reason = f"lone surrogate in a string ({reason})"
        ln = e.lineno if line is None else line + e.lineno - 1
        col = e.colno
        if b"\x00" in raw and "control character" in reason:
            reason = "NUL character"
        raise _json_error(source, ln, col, reason) from None
    problem = check_value(value, max_depth=max_depth)
    if problem is None and _LONG_INT.search(raw):
        problem = _long_int_reason(raw)
    if problem is None and unique_keys and (key := duplicate_key(raw, value)) is not None:
        problem = f"duplicate key {key[:80]!r} (a key may occur once in an object)"
    if problem:
        raise _json_error(source, line, None, problem)
    return value


def read_json(
    path: PathLike,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "file",
    allow_stdin: bool = False,
    max_depth: int = MAX_DEPTH,
    name: str | None = None,
) -> Any:
    """The JSON document in `path` (see `read_bytes` and `loads_json`); UTF-8 checked first, so
    a bad byte is located by line and column."""
    data = read_bytes(path, max_bytes=max_bytes, what=what, allow_stdin=allow_stdin, name=name)
    source = "<stdin>" if allow_stdin and os.fspath(path) == STDIN else name or _name(path)
    decode_text(data, source=source)
    return loads_json(data, source=source, max_depth=max_depth)


class _GzipStream(io.RawIOBase):
    """A gzip decompressor over a binary file that reports any damage as `BadInput`."""

    def __init__(self, raw: IO[bytes], source: str) -> None:
        self._raw = raw
        self._source = source
        self._d = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._done:
            self._fill()
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _fill(self) -> None:
        d = self._d
        try:
            # The end of a member first: there zlib leaves the bytes after it in `unused_data` *and*
            # in `unconsumed_tail`, and decompressing that tail again returns nothing, forever.
            if d.eof:
                rest = d.unused_data.lstrip(b"\x00") or self._raw.read(_CHUNK).lstrip(b"\x00")
                if not rest:
                    self._done = True
                    return
                if not rest.startswith(GZIP_MAGIC[: len(rest)]):
                    raise _bad_gzip(self._source, "trailing garbage after the gzip stream")
                self._d = d = zlib.decompressobj(wbits=31)
                self._pending = d.decompress(rest, _CHUNK)
                return
            if d.unconsumed_tail:
                self._pending = d.decompress(d.unconsumed_tail, _CHUNK)
                return
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                raise _bad_gzip(self._source, "truncated stream (the end-of-stream marker is missing)")
            self._pending = d.decompress(chunk, _CHUNK)
        except zlib.error as e:
            raise _bad_gzip(self._source, str(e)) from None

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_stream(
    path: PathLike, *, what: str = "file", allow_stdin: bool = False, name: str | None = None
) -> IO[bytes]:
    """A buffered binary reader on `path`, gzip decompressed when it starts with the gzip magic;
    a damaged or torn gzip stream raises `BadInput` naming the file when the reader reaches it."""
    if allow_stdin and os.fspath(path) == STDIN:
        raw: IO[bytes] = sys.stdin.buffer
        source = "<stdin>"
    else:
        source = name or _name(path)
        raw = open_binary(path, what=what, name=source)
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == GZIP_MAGIC:
        return io.BufferedReader(_GzipStream(raw, source), buffer_size=_CHUNK)
    return raw


@contextlib.contextmanager
def reading(path: PathLike, *, what: str = "file", name: str | None = None) -> Iterator[None]:
    """Turn OS and decompression errors raised while reading `path` into `BadInput`."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise _bad_gzip(name or _name(path), str(e) or "truncated stream") from None
    except OSError as e:
        raise _os_error(path, e, what, name) from None


def iter_blocks(
    path: PathLike, *, what: str = "file", max_line_bytes: int = MAX_LINE_BYTES, block_bytes: int = 4 << 20
) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, a block of whole lines) for `path`, plain or gzip: about
    `block_bytes` at a time, each block ending with a newline except a torn last line. A line
    over `max_line_bytes` raises `BadInput` as `iter_lines` does, at its number; a caller that
    reads a block line by line (`block_lines`) sees exactly what `iter_lines` yields."""
    source = name = _name(path)
    f = open_stream(path, what=what, name=source)
    number = 1
    tail = b""
    try:
        with reading(path, what=what, name=name):
            while True:
                chunk = f.read(block_bytes)
                if not chunk:
                    if tail:
                        yield number, tail
                    return
                cut = chunk.rfind(b"\n") + 1
                if not cut:
                    tail += chunk
                    if len(tail) > max_line_bytes:
                        raise BadInput(
                            f"{source}:{number}: line longer than {max_line_bytes:,} bytes",
                            [Problem("line too long", file=source, line=number)],
                        )
                    continue
                block, tail = tail + chunk[:cut], chunk[cut:]
                if len(block) > max_line_bytes:  # it may hold a line that is too long: look
                    for offset, line in enumerate(block_lines(block)):
                        if len(line) > max_line_bytes:
                            raise BadInput(
                                f"{source}:{number + offset}: line longer than {max_line_bytes:,} bytes",
                                [Problem("line too long", file=source, line=number + offset)],
                            )
                yield number, block
                number += block.count(b"\n")
    finally:
        f.close()


def block_lines(block: bytes) -> list[bytes]:
    """The lines of a block from `iter_blocks`, each with its newline (a torn last one without)."""
    lines = [line + b"\n" for line in block.split(b"\n")]
    last = lines.pop()  # after the final newline: empty, or a torn line
    if last != b"\n":
        lines.append(last[:-1])
    return lines


def iter_lines(
    path: PathLike,
    *,
    what: str = "file",
    max_line_bytes: int = MAX_LINE_BYTES,
    torn: str = "keep",
    allow_stdin: bool = False,
    name: str | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes with its terminator) for each line of `path`, plain or
    gzip. A last line without a newline is torn: `torn="keep"` yields it as it is (the caller can
    see the missing b"\\n"), `torn="error"` raises `BadInput` with its line number. A line over
    `max_line_bytes` raises `BadInput`."""
    source = "<stdin>" if allow_stdin and os.fspath(path) == STDIN else name or _name(path)
    f = open_stream(path, what=what, allow_stdin=allow_stdin, name=source)
    number = 0
    try:
        with reading(path, what=what, name=source):
            while True:
                line = f.readline(max_line_bytes + 1)
                if not line:
                    return
                number += 1
                if len(line) > max_line_bytes:
                    raise BadInput(
                        f"{source}:{number}: line longer than {max_line_bytes:,} bytes",
                        [Problem("line too long", file=source, line=number)],
                    )
                if not line.endswith(b"\n") and torn == "error":
                    raise BadInput(
                        f"{source}:{number}: torn last line (no newline at the end; a write was cut short)",
                        [Problem("torn last line", file=source, line=number)],
                    )
                yield number, line
    finally:
        if f is not sys.stdin.buffer:
            f.close()
