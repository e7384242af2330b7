"""The Knowledge page in Chromium: an editor creates a collection, uploads documents, a worker indexes
them with the local embedder while the page follows, an agent's answer cites them on its run page,
and a document can be removed after asking."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engine.runs import start_run
from engine.settings import get_settings
from tests.fixtures.models import EMBEDDER, built_models
from tests.fixtures.scripted_llm import answer
from tests.integration.engine_helpers import node, wait_for_run, workflow


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()


def test_an_editor_uploads_documents_sees_them_indexed_and_an_agent_cites_them(
    page: Page, app_server: str, app_data_dir: Path, login_as, tmp_path: Path, engine_here, generator_llm
) -> None:
    models = app_data_dir / "models"
    models.mkdir(exist_ok=True)
    if not (models / EMBEDDER).exists():
        (models / EMBEDDER).symlink_to(built_models().embedder, target_is_directory=True)
    guide = tmp_path / "returns.md"
    guide.write_text("# Returns\n\nCustomers may return any item within 30 days for a full refund.\n")
    notes = tmp_path / "notes.html"
    notes.write_text(
        "<html><body><h1>Office</h1><p>Open from nine to six.</p><script>x()</script></body></html>"
    )
    collection = f"kb-{uuid.uuid4().hex[:6]}"

    login_as(page, "editor")
    page.goto(f"{app_server}/knowledge")
    page.get_by_label("Name of a new collection").fill(collection)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_test_id("knowledge-collection").filter(has_text=collection)).to_be_visible()
    expect(page.locator("#knowledge-empty")).to_be_visible()

    page.locator("#knowledge-chunk-size").fill("300")
    page.locator("#knowledge-chunk-size").press("Tab")  # the setting is taken when the field is left
    page.locator("#knowledge-upload input[type=file]").set_input_files([str(guide), str(notes)])
    rows = page.get_by_test_id("knowledge-document")
    expect(rows).to_have_count(2, timeout=30_000)
    expect(rows.filter(has_text="returns.md")).to_contain_text("ready", timeout=240_000)
    expect(rows.filter(has_text="notes.html")).to_contain_text("ready", timeout=60_000)
    expect(rows.filter(has_text="returns.md")).to_contain_text("300 / 100")

    # An agent answering from the collection cites the uploaded document; the run page shows it.
    generator_llm.script(answer("You may return it within 30 days [returns.md#0]."))
    agent = node("answer", "agent", model="scripted", base_url=generator_llm.base_url, prompt="{{ input.q }}",
                 memory_collection=collection, memory_top_k=2, memory_min_score=-1)  # fmt: skip
    defn = workflow(
        [node("START", "start"), agent, node("END", "end")],
        [("START", "answer"), ("answer", "END")],
        name=f"cite {collection}",
        policy={"egress": {"allowed_hosts": [generator_llm.host]}},
    )
    run_id = start_run(defn, {"q": "How long can I return an item?"}, started_via="cli")
    assert wait_for_run(run_id, timeout=240).status == "succeeded"
    page.goto(f"{app_server}/runs/{run_id}")
    outputs = page.locator('[data-testid="run-step"][data-node-id="answer"]').get_by_test_id("step-outputs")
    expect(outputs).to_contain_text('"id": "returns.md#0"', timeout=30_000)
    expect(outputs).to_contain_text('"cited": true')
    expect(outputs).to_contain_text("[returns.md#0]")
    page.goto(f"{app_server}/knowledge")
    page.get_by_test_id("knowledge-collection").filter(has_text=collection).click()

    rows.filter(has_text="notes.html").get_by_role("button", name="Remove notes.html").click()
    page.get_by_role("button", name="Remove", exact=True).click()
    expect(rows).to_have_count(1, timeout=30_000)
    expect(page.get_by_text("Removed notes.html and its chunks")).to_be_visible()


def test_a_viewer_sees_collections_but_cannot_upload(page: Page, app_server: str, login_as) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/knowledge")
    expect(page.get_by_role("heading", name="Knowledge")).to_be_visible()
    expect(page.get_by_label("Name of a new collection")).to_have_count(0)
    expect(page.locator("#knowledge-upload")).to_have_count(0)
