"""Run user-written Python in a sandbox: bubblewrap namespaces, resource limits, an audit hook.

The walls (bubblewrap, Debian's `bubblewrap` package; `python3 dev.py` installs it):
- all namespaces new (`--unshare-all`): its own network namespace with no interface up, so no
  packet leaves; its own PID namespace (nothing of the worker is visible, and killing the sandbox's
  first process ends every process in it); user `nobody` inside; `--die-with-parent`, a new session;
- a read-only view of the system's libraries and of the interpreter's standard library only (its
  site-packages hidden under an empty tmpfs), an empty private /tmp, no /proc, no /sys, no
  data directory, no home: the app's files and the worker's environment do not exist in there;
- an empty environment, for bubblewrap itself and for Python (`-I -S`: isolated, no site).
Inside, before the code runs, sandbox_boot lowers its hard limits (address space, CPU seconds,
file size, open files, core dumps) and installs an audit hook that refuses sockets, new processes
and native-code modules with a clear message. The worker enforces the wall-clock timeout and the
output cap, and kills the whole sandbox when either is passed.

Not done here: a seccomp filter, and a cgroup cap on processes and memory (RLIMIT_NPROC does not
bind root's user id; a fork is refused by the audit hook instead, and the PID namespace and
`--die-with-parent` clean up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BWRAP = "bwrap"
BOOT_SOURCE = (Path(__file__).with_name("sandbox_boot.py")).read_text(encoding="utf-8")
# System folders the interpreter needs, bound read-only when present.
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin")
KILL_GRACE_S = 1.0


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here: code is never run unsandboxed."""


class SandboxFailure(RuntimeError):
    """The code failed, was refused, or passed a limit; `kind` says which."""

    def __init__(self, kind: str, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # error | refused | memory | cpu | timeout | output | crashed
        self.logs = logs


@dataclass(frozen=True)
class Limits:
    """What one run of the code may use."""

    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 5
    memory_mb: int = 256
    output_bytes: int = 256 * 1024
    file_bytes: int = 16 * 1024 * 1024  # the largest file it may write to its private /tmp


@dataclass(frozen=True)
class Outcome:
    result: Any
    logs: str


def _interpreter() -> tuple[str, str]:
    """The base interpreter (not the venv's: its packages stay outside) and its prefix."""
    prefix = sys.base_prefix
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(prefix) / "bin" / version, Path(prefix) / "bin" / "python3"):
        if candidate.exists():
            return str(candidate), prefix
    raise SandboxUnavailable(f"no {version} interpreter under {prefix}")


def bwrap_command() -> list[str]:
    """The bubblewrap command line that starts the sandboxed interpreter on sandbox_boot."""
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        raise SandboxUnavailable(
            "tool.code needs bubblewrap (the `bwrap` command; Debian/Ubuntu: apt-get install bubblewrap)"
        )
    python, prefix = _interpreter()
    command = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        "65534",
        "--gid",
        "65534",
    ]
    for folder in SYSTEM_DIRS:
        command += ["--ro-bind-try", folder, folder]
    if not any(prefix == d or prefix.startswith(d + "/") for d in SYSTEM_DIRS):
        command += ["--ro-bind", prefix, prefix]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(prefix) / "lib" / version / "site-packages"
    if site.is_dir():
        command += ["--tmpfs", str(site)]  # the base interpreter's own packages stay hidden
    command += ["--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    return [*command, python, "-I", "-S", "-B", "-c", BOOT_SOURCE]


async def run_code(code: str, inputs: Any, limits: Limits) -> Outcome:
    """Run `code` (defining `main(inputs)`, or setting `result`) in the sandbox; its JSON result."""
    request = json.dumps(
        {
            "code": code,
            "inputs": inputs,
            "limits": {
                "memory_bytes": limits.memory_mb * 1024 * 1024,
                "cpu_s": limits.cpu_s,
                "file_bytes": limits.file_bytes,
            },
        }
    ).encode()
    process = await asyncio.create_subprocess_exec(
        *bwrap_command(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},  # nothing of the worker's environment, not even for bubblewrap itself
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(
            _communicate(process, request, limits.output_bytes), limits.timeout_s
        )
    except TimeoutError:
        await _kill(process)
        raise SandboxFailure(
            "timeout", f"the code ran longer than its timeout of {limits.timeout_s:g} s"
        ) from None
    except _TooMuchOutput:
        await _kill(process)
        raise SandboxFailure(
            "output", f"the code's output is larger than {limits.output_bytes} bytes"
        ) from None
    except BaseException:
        await _kill(process)
        raise
    return _outcome(process.returncode, out, err, limits)


class _TooMuchOutput(Exception):
    pass


async def _communicate(process: asyncio.subprocess.Process, request: bytes, cap: int) -> tuple[bytes, bytes]:
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write(request)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await process.stdin.drain()
    process.stdin.close()
    chunks: list[bytes] = []
    size = 0
    while chunk := await process.stdout.read(65536):
        size += len(chunk)
        if size > cap + 64 * 1024:  # the JSON envelope's own bytes on top of the result
            raise _TooMuchOutput
        chunks.append(chunk)
    err = await process.stderr.read(8192)
    await process.wait()
    return b"".join(chunks), err


async def _kill(process: asyncio.subprocess.Process) -> None:
    """End the sandbox: its first process's group, then everything in its PID namespace with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(TimeoutError, OSError, ValueError):
        await asyncio.wait_for(process.communicate(), KILL_GRACE_S)  # drains and closes the pipes


def _outcome(returncode: int | None, out: bytes, err: bytes, limits: Limits) -> Outcome:
    if (
        returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL)
        and not out
    ):
        raise SandboxFailure("cpu", f"the code used more than its {limits.cpu_s} s of CPU time")
    try:
        answer = json.loads(out.decode("utf-8")) if out else None
    except (UnicodeDecodeError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {returncode}"]
        if "namespace" in detail[0] or "bwrap" in detail[0]:
            raise SandboxUnavailable(f"the sandbox could not start: {detail[0]}")
        raise SandboxFailure("crashed", f"the code ended without an answer ({detail[0]})")
    logs = str(answer.get("logs", ""))
    if not answer.get("ok"):
        kind = str(answer.get("kind", "error"))
        message = str(answer.get("error", "failed"))
        if kind == "memory":
            message = f"the code ran out of its {limits.memory_mb} MB of memory"
        raise SandboxFailure(kind, message, logs)
    return Outcome(answer.get("result"), logs)
