"""`flowloom validate` and `flowloom run` as a user runs them: subprocesses with real services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello.yaml"


def flowloom(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_validate_prints_the_plan_of_a_valid_file():
    result = flowloom("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "Phase 4 [shout, whisper]" in result.stdout


def test_validate_lists_every_issue_with_node_ids_and_exits_1(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x", "name": "x", "nodes": [{"id": "a", "type": "nope"}]}')
    result = flowloom("validate", str(bad))
    assert result.returncode == 1
    assert 'node "a": type: unknown node type' in result.stdout
    assert 'no "start" node' in result.stdout and 'no "end" node' in result.stdout


def test_validate_reports_a_yaml_syntax_error_with_its_line_and_no_traceback(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [\n  {id: a\n")
    result = flowloom("validate", str(bad))
    assert result.returncode == 1  # the command failed (2 is a usage error, 3 a configuration error)
    assert "line 3" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.usefixtures("worker")
def test_run_prints_each_step_and_the_outputs(pg_url: str, redis_url: str):
    env = {"FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url}
    result = flowloom("run", str(EXAMPLE), "--input", "x=20", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok   shout (tool.python)") for line in lines)
    assert any(line.startswith("skip whisper") for line in lines)
    assert '"out": "big: 22"' in result.stdout

    failed = flowloom("run", str(EXAMPLE), env=env)  # x is required by the inputs schema
    assert failed.returncode == 1
    assert "input" in failed.stderr and "'x' is a required property" in failed.stderr
