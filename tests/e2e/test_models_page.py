"""The Models page in Chromium: an admin compresses a model; a worker does it while the page shows progress."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.fixtures.models import EMBEDDER, built_models


def test_admin_compresses_a_model_and_the_page_follows_the_workers_progress_to_the_new_folder(
    page: Page, app_server: str, app_data_dir: Path, login_as
) -> None:
    models = app_data_dir / "models"
    models.mkdir(exist_ok=True)
    if not (models / EMBEDDER).exists():
        (models / EMBEDDER).symlink_to(built_models().embedder, target_is_directory=True)
    login_as(page, "admin")
    page.goto(f"{app_server}/models")
    rows = page.get_by_test_id("model-row")
    expect(rows).to_have_count(1, timeout=30_000)
    expect(rows.first).to_contain_text("fp32")

    rows.first.get_by_role("button", name="Compress to INT8").click()
    job = page.locator("#model-job")
    expect(job).to_contain_text(f"Compressing {EMBEDDER} to INT8", timeout=10_000)
    # Read back from the worker: its progress message, and the bar moved off zero.
    expect(page.locator("#model-job-message")).to_contain_text(f"compressing {EMBEDDER}", timeout=60_000)
    expect(page.locator("#model-job-progress")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9][0-9]*$")
    )

    expect(job).to_have_count(0, timeout=240_000)
    expect(rows).to_have_count(2, timeout=30_000)  # the list is re-read after the job ends
    expect(rows.filter(has_text=f"{EMBEDDER}-int8")).to_contain_text("int8")
    expect(page.get_by_text(f"compressed {EMBEDDER} into {EMBEDDER}-int8")).to_be_visible()
