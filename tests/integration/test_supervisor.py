"""`flowloom up` supervises what it starts: a worker whose main process is SIGKILLed comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from engine.ops import launcher
from engine.ops.health import ping_workers
from engine.ops.launcher import Child, Launcher, describe_exit, restart_delay
from engine.ops.services import find_free_port
from engine.settings import Settings
from tests.conftest import REPO_ROOT, LaunchedFlowloom
from tests.integration.test_foundation import run_cli


def test_restart_delay_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    no_jitter = [restart_delay(n, rng=lambda: 0.0) for n in range(1, 8)]
    assert no_jitter == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert restart_delay(1, rng=lambda: 1.0) == 1.25
    assert restart_delay(30, rng=lambda: 1.0) == launcher.RESTART_MAX_S


def test_describe_exit_names_the_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def _child(command: list[str]) -> Child:
    env = dict(os.environ)
    return Child("probe", launcher._popen(command, env), signal.SIGTERM, 5.0, command, env, time.monotonic())


def _look_until(supervisor: Launcher, child: Child, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"supervisor did not get there: {child}"
        supervisor._look_after(child)
        time.sleep(0.05)


def test_a_dead_child_is_started_again_and_its_group_cleared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(launcher, "RESTART_INITIAL_S", 0.01)
    # The child leaves a grandchild in its process group, as Celery's pool does when its master dies.
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid));"
        "time.sleep(600)"
    )
    supervisor = Launcher(Settings(data_dir=str(tmp_path)))
    child = _child([sys.executable, "-c", script])
    try:
        _look_until(supervisor, child, lambda: marker.exists() and marker.read_text() != "")
        grandchild = psutil.Process(int(marker.read_text()))
        first_pid = child.process.pid
        marker.unlink()
        os.kill(first_pid, signal.SIGKILL)
        with caplog.at_level("INFO", logger="engine.ops.launcher"):
            _look_until(supervisor, child, lambda: child.restarts == 1)
        assert child.process.pid != first_pid and child.process.poll() is None
        assert child.crashes_in_a_row == 1
        gone, alive = psutil.wait_procs([grandchild], timeout=10)
        assert alive == [], "the dead child's group was not cleared"
        messages = [r.getMessage() for r in caplog.records]
        assert any(f"probe (pid {first_pid}) was killed by SIGKILL" in m for m in messages), messages
        assert any(f"restarted probe as pid {child.process.pid} (restart 1)" in m for m in messages), messages
        # A second crash in a row waits longer: the count goes on until the child stays up.
        os.kill(child.process.pid, signal.SIGKILL)
        _look_until(supervisor, child, lambda: child.restarts == 2)
        assert child.crashes_in_a_row == 2
    finally:
        launcher.stop_process_group(child.process, signal.SIGKILL, 5.0)


def _worker_master(flowloom: LaunchedFlowloom) -> psutil.Process:
    for proc in flowloom.descendants():
        try:
            cmdline = " ".join(proc.cmdline())
            if "engine.ops.cli worker" in cmdline and os.getpgid(proc.pid) == proc.pid:
                return proc
        except (psutil.Error, OSError):
            continue
    raise AssertionError("no worker master under the launcher")


def test_flowloom_up_restarts_a_sigkilled_worker_and_runs_work_after(
    launch_flowloom: Callable[..., LaunchedFlowloom],
    service_dir: Callable[[str], Path],
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    settings = {
        "data_dir": service_dir("supervised"),
        "database_url": pg_url,
        "redis_url": redis_url,
        "host": "127.0.0.1",
        "port": find_free_port(),
        "kafka_bootstrap_servers": "",
    }
    flowloom = launch_flowloom(**settings, workers=1)
    flowloom.wait_ready()
    worker = _worker_master(flowloom)
    pool = worker.children(recursive=True)
    assert pool, "the worker has no pool processes"
    os.kill(worker.pid, signal.SIGKILL)  # the main process only: its pool is orphaned

    deadline = time.monotonic() + 120
    while True:
        assert flowloom.process.poll() is None, flowloom.output()[-3000:]
        assert time.monotonic() < deadline, flowloom.output()[-3000:]
        try:
            new_worker = _worker_master(flowloom)
        except AssertionError:
            new_worker = None
        if new_worker is not None and new_worker.pid != worker.pid:
            names = ping_workers(redis_url, 1.0, limit=5)
            if any(name.startswith(f"flowloom{new_worker.pid}@") for name in names):
                break
        time.sleep(0.5)
    assert f"worker (pid {worker.pid}) was killed by SIGKILL" in flowloom.output()
    assert f"restarted worker as pid {new_worker.pid}" in flowloom.output()
    _, alive = psutil.wait_procs(pool, timeout=30)
    assert alive == [], "the killed worker's pool processes outlived it"

    result = run_cli(["run", str(REPO_ROOT / "examples" / "hello.yaml"), "-i", "x=20"], tmp_path, **settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no worker is running" not in result.stderr  # the restarted worker ran it, not a stand-in
    assert "big: 22" in result.stdout
    assert flowloom.stop() == 0, flowloom.output()[-3000:]


def test_flowloom_web_serves_the_app_alone_and_stops_on_sigint(
    service_dir: Callable[[str], Path], pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = find_free_port()
    env = {
        **os.environ,
        "FLOWLOOM_DATA_DIR": str(service_dir("web-alone")),
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": "",
        "FLOWLOOM_HOST": "127.0.0.1",
    }
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log_file:
        web = subprocess.Popen(
            [sys.executable, "-m", "engine.ops.cli", "web", "--port", str(port)],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        ready = None
        while ready is None or ready.status_code != 200:
            assert web.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/api/health/ready", trust_env=False, timeout=10)
            except httpx.HTTPError:
                time.sleep(1)
        # The process became Reflex (exec): same pid, no `flowloom` wrapper in between.
        assert "reflex" in " ".join(psutil.Process(web.pid).cmdline())
        assert httpx.get(f"http://127.0.0.1:{port}/api/health/live", trust_env=False).status_code == 200
        page = httpx.get(f"http://127.0.0.1:{port}/login", trust_env=False, timeout=10, follow_redirects=True)
        assert page.status_code == 200 and "<html" in page.text.lower()
        os.killpg(web.pid, signal.SIGINT)
        assert web.wait(60) is not None
    finally:
        launcher.stop_process_group(web, signal.SIGKILL, 5.0)


def test_flowloom_web_refuses_a_wildcard_host_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWLOOM_DATA_DIR": str(tmp_path), "FLOWLOOM_ALLOWED_HOSTS": '["*"]'}
    result = subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", "web"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "FLOWLOOM_ALLOWED_HOSTS" in result.stderr
