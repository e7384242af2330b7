"""`tool.code` in its sandbox: what it computes, and each way out that code might try, stopped with a
clear error while the worker lives on. Needs bubblewrap (`python3 dev.py test` installs it)."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
from typing import Any

import pytest

from engine.contract import StepContext, get_node_type
from engine.errors import ErrorCode, PolicyViolation, StepError
from engine.runs import start_run
from engine.validate import validate
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow


def run_code(code: str, value: Any = None, **config: Any) -> dict[str, Any]:
    """Run one tool.code node the way a worker does."""
    assert shutil.which("bwrap"), "bubblewrap (bwrap) is needed: python3 dev.py test installs it"
    node_type = get_node_type("tool.code")
    assert node_type is not None
    cfg = node_type.config_model.model_validate({"code": code, **config})
    ctx = StepContext(run_id="run-1", step_id="step-1", node_id="c", node_type="tool.code")

    async def call() -> Any:
        try:
            result = node_type.run(ctx, cfg, {"in": value})
            return await result if inspect.isawaitable(result) else result
        finally:
            await ctx.aclose()

    return asyncio.run(call())


def test_code_computes_from_its_input_and_args_and_its_prints_are_the_logs() -> None:
    code = "def main(data):\n    print('adding', len(data['in']))\n    return {'sum': sum(data['in']) + data['k']}"
    out = run_code(code, [1, 2, 3], args={"k": 10})
    assert out == {"out": {"sum": 16}, "logs": "adding 3\n"}
    assert run_code("result = [x * 2 for x in range(3)]")["out"] == [0, 2, 4]


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("import socket\nsocket.create_connection(('127.0.0.1', 5432))", "importing socket is not allowed"),
        ("import _socket", "importing _socket is not allowed"),
        ("import ctypes\nctypes.CDLL(None)", "importing ctypes is not allowed"),
        ("import os\nwhile True:\n    os.fork()", "starting processes is not allowed"),
        ("import os\nos.system('id')", "starting processes is not allowed"),
        ("import subprocess", "importing subprocess is not allowed"),
        ("def f(): pass\nf.__code__ = compile('1', 'x', 'eval')", "changing a function's __code__"),
    ],
    ids=["socket", "raw-socket", "ctypes", "fork-bomb", "os-system", "subprocess", "swap-code"],
)
def test_ways_out_are_refused_as_policy_violations(code: str, words: str) -> None:
    with pytest.raises(PolicyViolation, match=words):
        run_code(code)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("result = open('/proc/1/environ').read()", "No such file or directory: '/proc/1/environ'"),
        (f"import os\nresult = os.listdir({os.getcwd()!r})", "No such file or directory"),
        ("result = open('/etc/passwd').read()", "No such file or directory"),
        ("open('/usr/flowloom-was-here', 'w')", "Read-only file system"),
    ],
    ids=["proc-environ", "data-dir", "etc", "write-system"],
)
def test_the_apps_files_and_the_system_do_not_exist_or_are_read_only(code: str, words: str) -> None:
    with pytest.raises(StepError, match=words) as raised:
        run_code(code)
    assert raised.value.code == ErrorCode.CODE_FAILED


def test_the_environment_is_empty() -> None:
    env = run_code("import os\nresult = dict(os.environ)")["out"]
    assert not [k for k in env if k.startswith(("FLOWLOOM", "PG", "REDIS", "HOME", "PATH"))], env


@pytest.mark.parametrize(
    ("code", "config", "code_expected", "words"),
    [
        ("x = bytearray(10 * 1024**3)", {"memory_mb": 128}, ErrorCode.SANDBOX_LIMIT, "ran out of its 128 MB"),
        ("while True:\n    pass", {"cpu_s": 1}, ErrorCode.SANDBOX_LIMIT, "more than its 1 s of CPU time"),
        (
            "import time\ntime.sleep(60)",
            {"timeout_s": 1},
            ErrorCode.STEP_TIMEOUT,
            "longer than its timeout of 1 s",
        ),
        (
            "result = 'x' * (3 * 1024 * 1024)",
            {"max_output_kb": 64},
            ErrorCode.SANDBOX_LIMIT,
            "larger than 65536",
        ),
        ("def main(data):\n    raise ValueError('boom')", {}, ErrorCode.CODE_FAILED, "ValueError: boom"),
        ("result = {1, 2}", {}, ErrorCode.CODE_FAILED, "not JSON serializable"),
    ],
    ids=["10GB", "loop-forever", "sleep-forever", "output", "raises", "not-json"],
)
def test_limits_stop_the_code_with_their_own_error(
    code: str, config: dict[str, Any], code_expected: ErrorCode, words: str
) -> None:
    with pytest.raises(StepError, match=words) as raised:
        run_code(code, **config)
    assert raised.value.code == code_expected and raised.value.retryable is False


def test_code_that_does_not_compile_is_a_validation_issue_on_its_node_and_field() -> None:
    defn = workflow(
        [node("start", "start"), node("c", "tool.code", code="def main(:\n  pass"), node("end", "end")],
        [("start", "c"), ("c", "end")],
    )
    issues = [i for i in validate(defn).issues if i.node_id == "c"]
    assert issues and issues[0].field == "config.code" and "line 1" in issues[0].message, issues


@pytest.mark.usefixtures("engine_env")
def test_on_real_workers_a_memory_bomb_fails_its_step_and_the_workers_live_on(engine_worker) -> None:
    bomb = workflow(
        [
            node("start", "start"),
            node("c", "tool.code", code="x = bytearray(10 * 1024**3)"),
            node("end", "end"),
        ],
        [("start", "c"), ("c", "end")],
    )
    view = wait_for_run(start_run(bomb, {}))
    assert view.status == "failed"
    assert "ran out of its 256 MB" in steps_by_node(view)["c"]["error"]
    assert engine_worker.process.poll() is None  # the worker did not die with the code

    sums = workflow(
        [
            node("start", "start"),
            node(
                "c",
                "tool.code",
                code="def main(data):\n    return sum(data['xs'])",
                args={"xs": "{{ input.xs }}"},
            ),
            node("end", "end"),
        ],
        [("start", "c"), ("c", "end")],
        outputs={"total": "{{ steps.c.outputs.out }}"},
    )
    after = wait_for_run(start_run(sums, {"xs": [4, 5, 6]}))
    assert after.status == "succeeded", after.error
    assert after.outputs == {"total": 15}
