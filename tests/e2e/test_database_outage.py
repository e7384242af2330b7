"""The UI while PostgreSQL is down, in Chromium against a web process on a PostgreSQL of this test's
own, which it stops and starts again.

An open page whose next event meets the database down shows the banner "The database is
unavailable (...). Retrying every 5 s." (app/db_outage.py), and reloads by itself once the
database is back. A page requested while it is down is the 503 page that refreshes itself
(app/error_html.py), and shows the app once it is back. Neither is a traceback or a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.launcher import stop_process_group
from engine.ops.migrate import upgrade_to_head
from engine.ops.services import find_free_port
from engine.settings import get_settings
from tests.conftest import REPO_ROOT

SECRET_KEY = "outage-secret-key-for-flowloom-sessions-0123456789abcdef"
TIMEOUT_MS = 60_000


@dataclass
class OwnWeb:
    url: str
    pg: EmbeddedPostgres
    pg_url: str


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/api/health/ready", trust_env=False, timeout=10)
            if ready.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


@pytest.fixture
def own_web(redis_url: str, service_dir: Callable[[str], Path], tmp_path: Path) -> Iterator[OwnWeb]:
    """`flowloom web` on a PostgreSQL of its own (never the session's, which other tests use)."""
    pg = EmbeddedPostgres(service_dir("outage-pg") / "postgres", find_free_port())
    pg_url = pg.start()
    process = None
    try:
        upgrade_to_head(pg_url)
        port = find_free_port()
        base = Path(os.environ.get("REFLEX_WEB_WORKDIR", str(tmp_path / "web")))
        env = {
            **os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
            "FLOWLOOM_SECRET_KEY": SECRET_KEY, "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": "",
            "FLOWLOOM_HOST": "127.0.0.1", "FLOWLOOM_DATA_DIR": str(service_dir("outage-data")),
            "REFLEX_WEB_WORKDIR": f"{base}-db-outage", "REFLEX_STATES_WORKDIR": str(tmp_path / "states"),
        }  # fmt: skip
        log = tmp_path / "web.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.ops.cli", "web", "--port", str(port)],
                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        _wait_ready(process, port, log)
        yield OwnWeb(f"http://127.0.0.1:{port}", pg, pg_url)
    finally:
        if process is not None:
            stop_process_group(process, signal.SIGINT, 15)
        pg.stop()


def _sign_in(page: Page, web: OwnWeb, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.auth import sessions
    from app.db import db_session
    from models.auth import User

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", web.pg_url)
    get_settings.cache_clear()
    email = f"outage-{uuid.uuid4().hex[:6]}@example.test"
    with db_session() as session:
        user = User(issuer="https://idp.example.test", subject=email, email=email, name=email,
                    role="viewer", email_verified=True)  # fmt: skip
        session.add(user)
        session.flush()
        token, _ = sessions.issue(str(user.id))
    page.context.add_cookies(
        [{"name": sessions.COOKIE_NAME, "value": token, "url": web.url, "httpOnly": True, "sameSite": "Lax"}]
    )


def test_with_the_database_down_pages_say_so_and_retry_until_it_is_back(
    own_web: OwnWeb, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.auth.principal import SESSION_CACHE_S

    _sign_in(page, own_web, monkeypatch)
    page.goto(f"{own_web.url}/workflows")
    expect(page.get_by_role("heading", level=1)).to_have_text("Workflows", timeout=TIMEOUT_MS)

    own_web.pg.stop()
    # The web process remembers a session for SESSION_CACHE_S; after that its next event looks the
    # caller up in the database, which is down.
    page.wait_for_timeout((SESSION_CACHE_S + 1) * 1000)
    page.locator("#nav-runs").click()
    banner = page.locator("#db-unavailable")
    expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("The database is unavailable (")
    expect(banner).to_contain_text("Retrying every 5 s.")
    expect(page.get_by_text("Traceback")).to_have_count(0)

    # A page asked for now is the 503 page that refreshes itself.
    second = page.context.new_page()
    response = second.goto(f"{own_web.url}/dashboard")
    assert response is not None and response.status == 503
    assert response.headers["retry-after"] == "5"
    expect(second.locator("#error-page")).to_have_attribute("data-status", "503")
    expect(second.locator("#error-detail")).to_contain_text("The database is unavailable (")
    expect(second.locator("#error-retry")).to_contain_text("Retrying every 5 s")

    own_web.pg.start()  # the same port and data
    # The banner's tab reloads once /api/health/ready answers; the 503 page on its next refresh.
    expect(page.get_by_role("heading", level=1)).to_have_text("Runs", timeout=TIMEOUT_MS)
    expect(page.locator("#db-unavailable")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(second.locator("#error-page")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(second.get_by_role("heading", level=1, name="Dashboard", exact=True)).to_be_visible()
