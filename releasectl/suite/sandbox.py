"""Run model-written code against unit tests in a locked-down subprocess.

Layers, outermost first:
- kernel: a fresh network namespace (no interfaces but a down loopback); a pids cgroup capping
  the number of processes when the cgroup tree is writable (root ignores RLIMIT_NPROC), else
  RLIMIT_NPROC; rlimits on CPU seconds, address space, file size and open files; its own
  session so a wall-clock timeout kills the whole process group;
- interpreter: `python -I -B` (no env, no user site) and audit hooks installed before the
  model's code is imported, refusing writes outside the temp dir, sockets, fork/exec/subprocess
  and ctypes;
- files: an empty temp dir as cwd, holding only the solution, the test module and a copy of the
  frozen fixtures; an empty environment.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")
MAX_PROCESSES = 32

RUNNER = r"""
import sys, os
ROOT = os.path.realpath(os.getcwd())
sys.path[:0] = [ROOT, os.path.join(ROOT, "packages")]
_BLOCKED = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
            "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg", "ctypes.dlopen", "ctypes.dlsym",
            "os.kill", "os.killpg", "pty.spawn"}
_WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
                 "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree"}

def _inside(path):
    try:
        p = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return p == ROOT or p.startswith(ROOT + os.sep)

def _hook(event, args):
    if event in _BLOCKED:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and args and args[0] in ("ctypes", "_ctypes", "multiprocessing"):
        raise PermissionError(f"sandbox: import {args[0]} is not allowed")
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
        if writing and isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the sandbox is not allowed")
    if event in _WRITE_EVENTS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                raise PermissionError(f"sandbox: {event} on {a!r} outside the sandbox is not allowed")

sys.addaudithook(_hook)
import traceback
failures = 0
ran = 0
try:
    import test_solution
except BaseException as e:
    print(f"ERROR importing tests/solution: {type(e).__name__}: {e}")
    sys.exit(2)
for name in sorted(dir(test_solution)):
    if name.startswith("test_") and callable(getattr(test_solution, name)):
        ran += 1
        try:
            getattr(test_solution, name)()
            print(f"PASS {name}")
        except BaseException as e:
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}")
print(f"{ran - failures} passed, {failures} failed")
sys.exit(1 if failures or not ran else 0)
"""


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    detail: str


def _limits(timeout_s: float, memory_mb: int, max_file_mb: int, nproc: int | None) -> None:
    cpu = max(1, int(timeout_s) + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _user_process_count(uid: int) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _make_pids_cgroup() -> Path | None:
    """A v1 pids cgroup with pids.max set, when we may create one (root in this container)."""
    if os.geteuid() != 0 or not PIDS_CGROUP_ROOT.is_dir():
        return None
    path = PIDS_CGROUP_ROOT / f"releasectl-sandbox-{os.getpid()}-{time.monotonic_ns()}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(MAX_PROCESSES))
    except OSError:
        return None
    return path


def _remove_cgroup(path: Path) -> None:
    for _ in range(50):
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.02)


def _preexec(
    timeout_s: float, memory_mb: int, max_file_mb: int, cgroup: Path | None, nproc: int | None
) -> None:
    os.setsid()
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            os._exit(97)  # refuse to run without network isolation
    if cgroup is not None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    _limits(timeout_s, memory_mb, max_file_mb, nproc)


def run_sandboxed(
    code: str,
    *,
    test_code: str,
    fixtures_dir: Path | None = None,
    timeout_s: float = 5.0,
    memory_mb: int = 256,
    max_file_mb: int = 1,
) -> SandboxResult:
    """Run `test_code` (which imports `solution`) against `code`; pass when every test_* passes."""
    work = Path(tempfile.mkdtemp(prefix="releasectl-sandbox-"))
    cgroup: Path | None = None
    try:
        (work / "solution.py").write_text(code, encoding="utf-8")
        (work / "test_solution.py").write_text(test_code, encoding="utf-8")
        (work / "_runner.py").write_text(RUNNER, encoding="utf-8")
        if fixtures_dir is not None and Path(fixtures_dir).is_dir():
            shutil.copytree(fixtures_dir, work / "packages")
        cgroup = _make_pids_cgroup()
        nproc = (
            None
            if cgroup is not None or os.geteuid() == 0
            else _user_process_count(os.getuid()) + MAX_PROCESSES
        )
        cmd = [sys.executable, "-I", "-B", "_runner.py"]
        if os.geteuid() != 0 and shutil.which("unshare"):
            cmd = ["unshare", "-rn", *cmd]
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: _preexec(timeout_s, memory_mb, max_file_mb, cgroup, nproc),
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        stdout = out.decode("utf-8", "replace")[-4000:]
        stderr = err.decode("utf-8", "replace")[-4000:]
        rc = proc.returncode
        if timed_out:
            detail = f"timed out after {timeout_s:g} s (killed)"
        elif rc == -signal.SIGXCPU or rc == -signal.SIGKILL:
            detail = f"killed by a resource limit (signal {-rc})"
        elif rc == 97:
            detail = "sandbox could not isolate the network; refusing to run"
        else:
            last = [ln for ln in stdout.splitlines() if ln.strip()]
            fails = [ln for ln in last if ln.startswith(("FAIL", "ERROR"))]
            detail = (
                fails[0]
                if fails
                else (last[-1] if last else (stderr.strip().splitlines() or ["no output"])[-1])
            )[:300]
        return SandboxResult(
            rc == 0 and not timed_out, rc if rc is not None else -1, timed_out, stdout, stderr, detail
        )
    finally:
        if cgroup is not None:
            _remove_cgroup(cgroup)
        shutil.rmtree(work, ignore_errors=True)
