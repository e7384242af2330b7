"""Sticky notes, groups, snippets, copy/paste between workflows and the version diff, in Chromium
against `flowloom up`."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e import test_editor
from tests.e2e.test_editor import Editor, _definition, _node, latest_definition

# The editor tests' fixtures: a page signed in as an editor, a workflow row to open.
editor_page = test_editor.editor_page
new_workflow = test_editor.new_workflow

TIMEOUT_MS = 20_000

LINE = _definition(
    [
        _node("start", "start", 0, 0),
        _node("work", "delay", 320, 0, seconds=1),
        _node("done", "end", 640, 0),
    ],
    [("start", "out", "work", "in"), ("work", "out", "done", "in")],
)


def _note(page: Page):
    return page.get_by_test_id("canvas-note")


def _group(page: Page):
    return page.get_by_test_id("canvas-group")


def _box(locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box, "not on screen"
    return box


def test_notes_and_groups_are_saved_reloaded_and_a_group_moves_its_nodes(
    editor_page: Page, app_server: str, pg_url: str, new_workflow: Callable[..., str]
) -> None:
    page = editor_page
    ed = Editor(page, app_server, new_workflow("Notes and groups", LINE)).open()

    # A note, written in Markdown: headings and bold render; HTML and scripts do not.
    page.click("#toolbar-add-note")
    expect(_note(page)).to_have_count(1)
    _note(page).dblclick()
    page.get_by_test_id("note-editor").fill(
        "## Checklist\n\n- **retry** the fetch\n\n<script>window.__pwned = 1</script>"
        '\n\n<img src="x" onerror="window.__pwned = 2">\n\n[bad](javascript:window.__pwned=3)'
    )
    ed.click_canvas()
    body = _note(page).get_by_test_id("note-body")
    expect(body.locator("h2")).to_have_text("Checklist")
    expect(body.locator("strong")).to_have_text("retry")
    expect(body.locator("script, img, [onerror]")).to_have_count(0)
    expect(body.locator("a")).to_have_text("bad")
    assert "javascript:" not in (body.locator("a").get_attribute("href") or "")
    assert page.evaluate("window.__pwned") is None

    # A group around two selected nodes, renamed and coloured.
    ed.select("work")
    ed.node("done").locator(".fl-head").click(modifiers=["Control"])
    expect(page.locator(".react-flow__node.selected")).to_have_count(2)
    page.click("#toolbar-group")
    expect(_group(page)).to_have_count(1)
    expect(_group(page)).to_have_attribute("data-members", "work,done")
    # The frame lets clicks through: the edge inside it can still be selected.
    a, b = _box(ed.handle("work", "out")), _box(ed.handle("done", "in"))
    page.mouse.click(
        (a["x"] + b["x"] + b["width"]) / 2, a["y"] + a["height"] / 2
    )  # on the edge, inside the frame
    expect(page.locator('.react-flow__edge.selected[data-id="work__done"]')).to_have_count(1)
    expect(page.locator(".react-flow__node-flgroup.selected")).to_have_count(0)
    page.get_by_test_id("group-title").dblclick()
    page.get_by_test_id("group-title-input").fill("Tail")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("group-title")).to_have_text("Tail")
    page.get_by_test_id("group-title").click()
    page.locator('[data-testid=annotation-toolbar] button[data-color="green"]').click()
    expect(_group(page)).to_have_attribute("data-color", "green")
    ed.save()

    _, saved = latest_definition(pg_url, ed.workflow_id)
    (note,) = saved["annotations"]["notes"]
    assert note["text"].startswith("## Checklist")
    (group,) = saved["annotations"]["groups"]
    assert (group["title"], group["color"], group["nodes"]) == ("Tail", "green", ["work", "done"])

    # Reloaded, they are still there.
    page.reload()
    ed.wait_loaded()
    expect(_note(page).get_by_test_id("note-body").locator("h2")).to_have_text("Checklist")
    expect(page.get_by_test_id("group-title")).to_have_text("Tail")
    expect(_group(page)).to_have_attribute("data-color", "green")

    # Dragging the group by its title moves its nodes with it, and only them.
    before = {n: _box(ed.node(n)) for n in ("start", "work", "done")}
    title = _box(page.get_by_test_id("group-title"))
    page.mouse.move(title["x"] + 10, title["y"] + 5)
    page.mouse.down()
    page.mouse.move(title["x"] + 90, title["y"] + 85, steps=10)
    page.mouse.move(title["x"] + 170, title["y"] + 165, steps=10)
    page.mouse.up()
    after = {n: _box(ed.node(n)) for n in ("start", "work", "done")}
    dx, dy = after["work"]["x"] - before["work"]["x"], after["work"]["y"] - before["work"]["y"]
    assert dx > 50 and dy > 50
    assert abs((after["done"]["x"] - before["done"]["x"]) - dx) < 1
    assert abs((after["done"]["y"] - before["done"]["y"]) - dy) < 1
    assert after["start"] == before["start"]
    expect(page.locator("#unsaved-indicator")).to_be_visible()
    ed.save()
    _, moved = latest_definition(pg_url, ed.workflow_id)
    position = {n["id"]: n["position"] for n in moved["nodes"]}
    old_position = {n["id"]: n["position"] for n in saved["nodes"]}
    shift = (
        position["work"]["x"] - old_position["work"]["x"],
        position["work"]["y"] - old_position["work"]["y"],
    )
    assert shift[0] > 0 and shift[1] > 0
    assert (
        position["done"]["x"] - old_position["done"]["x"],
        position["done"]["y"] - old_position["done"]["y"],
    ) == shift
    new_group = moved["annotations"]["groups"][0]["position"]
    assert (new_group["x"] - group["position"]["x"], new_group["y"] - group["position"]["y"]) == shift
    assert position["start"] == old_position["start"]


def test_diff_of_two_versions_highlights_the_changes_on_the_canvas(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    page = editor_page
    ed = Editor(page, app_server, new_workflow("Diffed", LINE)).open()
    # Version 2: a longer wait, a new node, the end node gone.
    ed.configure("work")
    ed.fill("seconds", "5")
    ed.click_canvas()
    ed.drop("merge", 500, 420)
    page.click("#toolbar-add-note")
    expect(_note(page)).to_have_count(1)
    ed.select("done")
    page.keyboard.press("Delete")
    expect(ed.node("done")).to_have_count(0)
    assert ed.save() == 2

    page.click("#toolbar-diff")
    expect(page.locator("#diff-from")).to_have_text("1")
    expect(page.locator("#diff-to")).to_have_text("2")
    page.click("#diff-show")
    panel = page.locator("#diff-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#diff-title")).to_have_text("Comparing v1 → v2")
    expect(ed.node("work")).to_have_attribute("data-diff", "changed")
    expect(ed.node("merge")).to_have_attribute("data-diff", "added")
    expect(ed.node("done")).to_have_attribute("data-diff", "removed")  # drawn where it was
    expect(ed.node("start")).not_to_have_attribute("data-diff", "changed")
    expect(page.locator(".react-flow__edge.fl-diff-removed")).to_have_count(1)
    expect(_note(page)).to_have_attribute("data-diff", "added")
    row = panel.locator('[data-testid=diff-row][data-item-id="work"]')
    expect(row.get_by_test_id("diff-field")).to_have_text(re.compile(r"^config\.seconds: 1 → 5(\.0)?$"))
    expect(panel.locator('[data-testid=diff-row][data-kind="removed"]')).to_have_count(2)  # done and its edge
    # While the diff is shown the canvas is read-only: Delete removes nothing.
    ed.node("merge").locator(".fl-head").click()
    page.keyboard.press("Delete")
    expect(ed.node("merge")).to_have_count(1)
    expect(page.locator("#saved-indicator")).to_be_visible()

    page.click("#diff-close")
    expect(panel).to_have_count(0)
    expect(ed.node("done")).to_have_count(0)
    expect(page.locator("[data-testid=flow-node][data-diff]")).to_have_count(0)
    expect(_note(page)).not_to_have_attribute("data-diff", "added")


def test_snippets_and_copy_paste_between_workflows(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    page = editor_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server)
    source = Editor(page, app_server, new_workflow("Snippet source", LINE)).open()
    source.select("work")
    page.click("#toolbar-snippets")
    page.fill("#snippet-name", "Wait a bit")
    page.click("#snippet-save")
    expect(page.locator('[data-testid=snippet-row][data-name="Wait a bit"]')).to_have_count(1)
    page.keyboard.press("Escape")

    # Another workflow that already has a "work" node: the snippet comes in as work_2.
    target_id = new_workflow("Snippet target", LINE)
    target = Editor(page, app_server, target_id).open()
    page.click("#toolbar-snippets")
    page.locator('[data-testid=snippet-row][data-name="Wait a bit"]').get_by_test_id("insert-snippet").click()
    expect(target.node("work_2")).to_be_visible()
    expect(target.nodes()).to_have_count(4)

    # Copy two nodes in the source, paste them in the target opened in another tab: the clipboard
    # carries them (this tab's own copy buffer is empty).
    source.open()
    source.select("start")
    source.node("work").locator(".fl-head").click(modifiers=["Control"])
    page.keyboard.press("Control+c")
    expect(source.toast().filter(has_text="Copied 2 nodes")).to_be_visible()
    other = page.context.new_page()
    pasted = Editor(other, app_server, target_id).open()
    other.locator(".react-flow__pane").click(position={"x": 12, "y": 12})
    other.keyboard.press("Control+v")
    expect(pasted.node("start_2")).to_be_visible()
    expect(pasted.node("work_2")).to_be_visible()
    expect(other.locator('.react-flow__edge[data-id^="start_2__work_2"]')).to_have_count(1)

    # Clipboard text that claims to be nodes but is not valid is refused, and nothing is added.
    count = pasted.nodes().count()
    other.evaluate(
        """() => { const data = new DataTransfer();
        data.setData('text/plain', '{"flowloom": "fragment", "version": 1, "nodes": [{"id": "x"}]}');
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true })); }"""
    )
    expect(pasted.toast().filter(has_text="Cannot paste")).to_be_visible()
    expect(pasted.nodes()).to_have_count(count)
    other.close()
