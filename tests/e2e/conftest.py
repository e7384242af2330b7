"""Browser fixtures: Chromium through Playwright, and the whole app started with `flowloom up`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from engine.celery_app import celery_for
from engine.ops.services import find_free_port
from engine.settings import get_settings
from tests.conftest import LaunchedFlowloom
from tests.fixtures.scripted_llm import ScriptedLLM
from tests.fixtures.scripted_llm import serve as scripted_llm_server
from tests.oidc import provider as oidc

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_SECRET_KEY = "e2e-secret-key-for-flowloom-sessions-0123456789abcdef"
ARTIFACTS = REPO_ROOT / "test-artifacts"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
# Quiet on a closed network: no update checks, sync, QUIC or first-run work.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is marked `e2e` (deselect with -m 'not e2e')."""
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item so `page` can screenshot failures."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# Package scope, not session: the sync driver keeps an asyncio loop running in the main thread, which
# breaks asyncio.run() in any test after it; it ends with the last browser test.
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    """The Playwright driver for the browser tests."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Headless Chromium: Debian's /usr/bin/chromium when present, else Playwright's own download."""
    executable = str(DEBIAN_CHROMIUM) if DEBIAN_CHROMIUM.exists() else None
    browser = playwright_instance.chromium.launch(
        headless=True, executable_path=executable, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


def _artifact_path(node_name: str, label: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{node_name}-{label}")
    return ARTIFACTS / f"{safe}.png"


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page (1280x800); a failing test leaves a screenshot in test-artifacts/."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(_artifact_path(request.node.name, "failed")), full_page=True)
    context.close()


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """screenshot(label) saves the page to test-artifacts/<test>-<label>.png and returns the path."""

    def take(label: str) -> Path:
        path = _artifact_path(request.node.name, label)
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="package")
def app_data_dir(service_dir: Callable[[str], Path]) -> Path:
    """The data dir of `app_server` (its models/ folder is what the Models page lists)."""
    return service_dir("app-data")


@pytest.fixture(scope="package")
def e2e_queue() -> Iterator[str]:
    """A step and job queue of the browser tests' own, for `app_server`'s workers and this process.

    The session's other workers (engine_worker, ...) live on as long as the session and listen on
    the session's queue with another data dir: sharing it, a Models-page job taken by one of them
    looked for the model in the wrong folder and failed (the flaky compression test).
    """
    with pytest.MonkeyPatch.context() as patch:
        queue = f"flowloom-e2e-{os.getpid()}"
        patch.setenv("FLOWLOOM_QUEUE", queue)
        get_settings.cache_clear()
        celery_for.cache_clear()  # its apps send to the queue they were made with
        yield queue
    get_settings.cache_clear()
    celery_for.cache_clear()


@pytest.fixture(scope="package")  # its workers share the session's Redis: gone before other tests run
def app_server(
    e2e_queue: str,
    launch_flowloom: Callable[..., LaunchedFlowloom],
    pg_url: str,
    redis_url: str,
    app_data_dir: Path,
    app_port: int,
    oidc_provider: oidc.OIDCProviderProcess,
    generator_llm: ScriptedLLM,
) -> Iterator[str]:
    """The whole app (`flowloom up`) on a free port, on the session's database and Redis (its own
    queue, `e2e_queue`); yields its base URL.

    Sign-in: the local OpenID provider of `oidc_provider` (alice@example.test is an admin), and the
    fixed E2E_SECRET_KEY, so `login_as` can hand a browser a session cookie directly.
    """
    port = app_port
    flowloom = launch_flowloom(
        data_dir=app_data_dir,
        database_url=pg_url,
        redis_url=redis_url,
        host="127.0.0.1",
        port=port,
        secret_key=E2E_SECRET_KEY,
        oidc_providers=json.dumps([oidc_provider.settings("test")]),
        admin_emails=json.dumps(["alice@example.test"]),
        sweep_interval_s=1,
        generator_model="scripted",  # the editor's "Describe your workflow" asks `generator_llm`
        generator_base_url=generator_llm.base_url,
    )
    flowloom.wait_ready(timeout=300)
    yield f"http://127.0.0.1:{port}"
    flowloom.stop()


@pytest.fixture(scope="session")
def generator_llm() -> Iterator[ScriptedLLM]:
    """The scripted OpenAI-compatible server `app_server` generates workflows with (tests script it)."""
    with scripted_llm_server() as server:
        yield server


@pytest.fixture(scope="session")
def app_port() -> int:
    """The port `app_server` listens on (chosen first: the OpenID provider must know the callback URL)."""
    return find_free_port()


@pytest.fixture(scope="session")
def oidc_provider(app_port: int, service_dir: Callable[[str], Path]) -> Iterator[oidc.OIDCProviderProcess]:
    """A real OpenID provider (node-oidc-provider) that sends browsers back to `app_server`."""
    running = oidc.start([f"http://127.0.0.1:{app_port}/auth/callback/test"], service_dir("oidc"))
    yield running
    running.stop()


@pytest.fixture
def login_as(app_server: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """login_as(page, role="operator", email=None) -> e-mail: a user with `role`, signed in in `page`.

    The user row is created in the database and the browser gets a session cookie signed with the
    app's key, as a sign-in would leave it (tests of the sign-in itself use the real provider).
    """
    import uuid

    from app.auth import sessions
    from app.db import db_session
    from engine.settings import get_settings
    from models.auth import User

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", E2E_SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()

    def login(page: Page, role: str = "operator", email: str | None = None) -> str:
        email = email or f"{role}-{uuid.uuid4().hex[:6]}@example.test"
        with db_session() as session:
            user = User(
                issuer="https://idp.example.test", subject=email, email=email, name=email, role=role,
                email_verified=True,  # as the test provider says
            )  # fmt: skip
            session.add(user)
            session.flush()
            token, _ = sessions.issue(str(user.id))
        page.context.add_cookies(
            [
                {
                    "name": sessions.COOKIE_NAME,
                    "value": token,
                    "url": app_server,
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )
        return email

    yield login
    get_settings.cache_clear()
