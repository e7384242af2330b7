"""Lint, format and type checks are part of the suite: `ruff check`, `ruff format --check` and mypy pass.

Ruff covers the whole checkout ([tool.ruff] in pyproject.toml); mypy checks engine/ and nodes/
([tool.mypy]: the pydantic plugin, stub packages from the dev extra, and a short list of
libraries that ship no types). mypy keeps its cache outside the checkout, so a second run takes
seconds instead of a minute.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MYPY_CACHE = Path(tempfile.gettempdir()) / (
    "flowloom-mypy-" + hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
)


def tool(
    name: str, *args: str, cwd: Path = REPO_ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a checker from the venv; its output is in the result for the assertion message."""
    return subprocess.run([str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def mypy(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return tool(
        "mypy", "--config-file", str(REPO_ROOT / "pyproject.toml"), "--cache-dir", str(MYPY_CACHE),
        *args, cwd=cwd, timeout=900,
    )  # fmt: skip


def test_ruff_finds_no_lint() -> None:
    result = tool("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted() -> None:
    result = tool("ruff", "format", "--check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, "run `.venv/bin/ruff format` on:\n" + result.stdout + result.stderr


def test_engine_and_nodes_type_check() -> None:
    result = mypy()  # the files come from [tool.mypy] files
    errors = [line for line in result.stdout.splitlines() if ": error:" in line or line.startswith("Found")]
    assert result.returncode == 0, "\n".join(errors) or result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_checkers_report_what_they_find(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('import os\n\n\ndef half(n: int) -> int:\n    return n / 2\n\n\nhalf("two")\n')

    typed = mypy(str(sample), cwd=tmp_path)
    linted = tool("ruff", "check", "--no-cache", "--config", str(REPO_ROOT / "pyproject.toml"), str(sample))

    assert typed.returncode == 1
    assert 'Incompatible return value type (got "float", expected "int")' in typed.stdout
    assert 'Argument 1 to "half" has incompatible type "str"' in typed.stdout
    assert linted.returncode == 1 and "F401" in linted.stdout  # `os` imported but unused
