"""Browser fixtures: Chromium through Playwright, and the whole app started with `flowloom up`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from engine.services import find_free_port
from tests.conftest import LaunchedFlowloom

REPO_ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    """The Playwright driver for the session."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def app_server(
    launch_flowloom: Callable[..., LaunchedFlowloom],
    pg_url: str,
    redis_url: str,
    service_dir: Callable[[str], Path],
) -> Iterator[str]:
    """The whole app (`flowloom up`) on a free port, on the session's database and Redis; yields its base URL."""
    port = find_free_port()
    flowloom = launch_flowloom(
        data_dir=service_dir("app-data"),
        database_url=pg_url,
        redis_url=redis_url,
        host="127.0.0.1",
        port=port,
    )
    flowloom.wait_ready(timeout=300)
    yield f"http://127.0.0.1:{port}"
    flowloom.stop()
