"""The screenshots the README and docs show, taken by the browser tests.

By default they go to test-artifacts/docs/ (ignored by git), so a test run never changes the
tracked images; with FLOWLOOM_UPDATE_SCREENSHOTS=1 they replace the ones in docs/.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
UPDATE_SETTING = "FLOWLOOM_UPDATE_SCREENSHOTS"


def screenshot_dir() -> Path:
    """docs/ when FLOWLOOM_UPDATE_SCREENSHOTS=1, else test-artifacts/docs/ (created either way)."""
    update = os.environ.get(UPDATE_SETTING, "").strip().lower() in ("1", "true", "yes")
    folder = REPO_ROOT / "docs" if update else REPO_ROOT / "test-artifacts" / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_doc_screenshot(page: Page, name: str) -> Path:
    """Save `page` as the docs image `name` (e.g. "screenshot-editor.png") where screenshot_dir() says."""
    path = screenshot_dir() / name
    page.screenshot(path=str(path))
    return path
