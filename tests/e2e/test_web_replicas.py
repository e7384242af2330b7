"""Two web replicas share page state in Redis (FLOWLOOM_WEB_STATE=redis) behind a local proxy.

The browser talks to the proxy only. It opens a dialog on replica A (the state now names the
workflow to rename); then A is stopped and the proxy sends every new connection to replica B. The
page's socket reconnects to B, and saving the dialog renames the workflow: B found the dialog's
state in Redis (with per-process memory state B would not know which workflow to rename).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from engine.ops.launcher import stop_process_group
from engine.ops.services import find_free_port
from engine.settings import get_settings
from tests.conftest import REPO_ROOT

SECRET_KEY = "replicas-secret-key-for-flowloom-sessions-0123456789abcdef"


class SwitchingProxy:
    """A TCP proxy on loopback: each new connection goes to `target`; `switch` moves new connections
    and cuts the open ones (as a load balancer does when a replica goes away)."""

    def __init__(self, target: int) -> None:
        self.port = find_free_port()
        self.target = target
        self.routed: list[int] = []  # the backend port of each connection, in order
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        self.routed.append(target)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        self._open.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open.difference_update({writer, up_writer})

    def switch(self, target: int) -> None:
        def cut() -> None:
            self.target = target
            for writer in list(self._open):
                writer.close()

        self._loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _start_replica(
    port: int, proxy_port: int, env: dict[str, str], workdir: Path, log: Path
) -> subprocess.Popen:
    replica_env = {
        **env,
        "REFLEX_WEB_WORKDIR": str(workdir),
        # Reflex's local state manager keeps states in files: each replica its own, as on two machines.
        "REFLEX_STATES_WORKDIR": str(workdir / "states"),
        # The browser's origin is the proxy's: the socket handshake must accept it, and the frontend
        # must open its socket there (Reflex bakes the backend's address into the frontend).
        "FLOWLOOM_CORS_ORIGINS": f'["http://127.0.0.1:{proxy_port}"]',
        "REFLEX_API_URL": f"http://127.0.0.1:{proxy_port}",
        "REFLEX_DEPLOY_URL": f"http://127.0.0.1:{proxy_port}",
    }
    with open(log, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.ops.cli", "web", "--port", str(port)],
            cwd=REPO_ROOT, env=replica_env, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        try:
            if (
                httpx.get(
                    f"http://127.0.0.1:{port}/api/health/ready", trust_env=False, timeout=10
                ).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


@pytest.fixture
def replicas(
    pg_url: str, redis_url: str, service_dir: Callable[[str], Path], tmp_path: Path
) -> Iterator[tuple[SwitchingProxy, dict[str, subprocess.Popen], dict[str, int]]]:
    ports = {"a": find_free_port(), "b": find_free_port()}
    proxy = SwitchingProxy(ports["a"])
    env = {
        **os.environ,
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_WEB_STATE": "redis",
        "FLOWLOOM_SECRET_KEY": SECRET_KEY,
        "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": "",
        "FLOWLOOM_HOST": "127.0.0.1",
        "FLOWLOOM_DATA_DIR": str(service_dir("replicas")),
    }
    base = Path(os.environ.get("REFLEX_WEB_WORKDIR", str(tmp_path / "web")))
    processes = {}
    try:
        for name, port in ports.items():
            log = tmp_path / f"web-{name}.log"
            processes[name] = _start_replica(port, proxy.port, env, Path(f"{base}-replica-{name}"), log)
        for name, port in ports.items():
            _wait_ready(processes[name], port, tmp_path / f"web-{name}.log")
        yield proxy, processes, ports
    finally:
        for process in processes.values():
            stop_process_group(process, signal.SIGINT, 15)
        proxy.close()


def _sign_in(page: Page, url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.auth import sessions
    from app.db import db_session
    from models.auth import User

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    email = f"replica-{uuid.uuid4().hex[:6]}@example.test"
    with db_session() as session:
        user = User(issuer="https://idp.example.test", subject=email, email=email, name=email,
                    role="editor", email_verified=True)  # fmt: skip
        session.add(user)
        session.flush()
        token, _ = sessions.issue(str(user.id))
    page.context.add_cookies(
        [{"name": sessions.COOKIE_NAME, "value": token, "url": url, "httpOnly": True, "sameSite": "Lax"}]
    )


def test_the_next_event_lands_on_the_other_replica_and_the_page_still_works(
    replicas: tuple[SwitchingProxy, dict[str, subprocess.Popen], dict[str, int]],
    page: Page,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.db import db_session
    from models.tables import Workflow

    proxy, processes, ports = replicas
    url = f"http://127.0.0.1:{proxy.port}"
    _sign_in(page, url, pg_url, monkeypatch)
    name = f"replica-{uuid.uuid4().hex[:6]}"
    with db_session() as session:
        workflow = Workflow(name=name)
        session.add(workflow)
        session.flush()
        workflow_id = workflow.id

    page.goto(f"{url}/workflows")
    page.get_by_label(f"Actions for {name}").click()
    page.get_by_role("menuitem", name="Rename").click()
    expect(page.locator("#rename-workflow-name")).to_have_value(name)  # replica A's state says which one
    assert set(proxy.routed) == {ports["a"]}

    stop_process_group(processes["a"], signal.SIGINT, 15)  # A is gone for good
    routed_before = len(proxy.routed)
    proxy.switch(ports["b"])
    page.locator("#rename-workflow-name").fill(f"{name}-renamed")  # an event, sent once the socket is back
    page.locator("#rename-workflow-submit").click()
    expect(page.get_by_text(f"{name}-renamed", exact=True)).to_be_visible(timeout=60_000)
    assert proxy.routed[routed_before:] and set(proxy.routed[routed_before:]) == {ports["b"]}
    with db_session() as session:
        assert session.get(Workflow, workflow_id).name == f"{name}-renamed"
