"""The editor's snippets, pasted fragments, notes, groups and version diff on real states and real
PostgreSQL: a snippet saved in one workflow is inserted into another with fresh ids; personal
snippets stay personal; pasted clipboard text is checked; notes and groups are saved with the
definition; the diff of two saved versions marks what changed."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.db import db_session
from app.pages.editor.diff_state import EditorDiff
from app.pages.editor.notes_state import EditorNotes
from app.pages.editor.snippets_state import EditorSnippets
from app.pages.editor.state import EditorState
from app.pages.editor.tools_state import EditorTools
from engine import snippets, workflows
from engine.fragments import fragment_text
from engine.workflows import create_workflow
from models.snippets import Snippet
from tests.security.test_authorization import cookie_of, reflex_tab


def _definition(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
            {
                "id": "fetch",
                "type": "tool.http",
                "config": {"url": "https://a.example/x"},
                "position": {"x": 300, "y": 0},
            },
            {"id": "wait", "type": "delay", "config": {"seconds": 1}, "position": {"x": 600, "y": 0}},
            {"id": "done", "type": "end", "position": {"x": 900, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "fetch"},
            {"id": "e2", "source": "fetch", "target": "wait"},
            {"id": "e3", "source": "wait", "target": "done"},
        ],
    }


def _saved(name: str) -> str:
    with db_session() as session:
        return str(create_workflow(session, name, definition=_definition(name)).id)


def _open(user, workflow_id: str) -> EditorState:
    tab = reflex_tab(EditorState, cookie_of(user), f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
    asyncio.run(EditorState.load.fn(tab))
    assert tab.loaded, tab.load_error
    return tab


def _sub(tab: EditorState, cls):
    return asyncio.run(tab.get_state(cls))


def _latest(workflow_id: str) -> dict[str, Any]:
    with db_session() as session:
        found = workflows.load_workflow(session, uuid.UUID(workflow_id))
    assert found is not None
    return found.definition


def test_a_snippet_saved_in_one_workflow_is_inserted_into_another_with_fresh_ids(make_user) -> None:
    alice, bob = make_user("editor"), make_user("editor")
    source = _open(alice, _saved("Source"))
    asyncio.run(EditorState.select.fn(source, ["fetch", "wait"], []))
    snips = _sub(source, EditorSnippets)
    EditorSnippets.set_snippets_open.fn(snips, True)
    EditorSnippets.set_snippet_name.fn(snips, "Fetch then wait")
    EditorSnippets.save_snippet.fn(snips)
    assert snips.snippet_error == ""
    (row,) = [r for r in snips.snippet_rows if r.name == "Fetch then wait"]
    assert (row.nodes, row.shared, row.mine) == (2, False, True)
    with db_session() as session:
        stored = session.get(Snippet, uuid.UUID(row.id))
        assert stored is not None
        assert [e["id"] for e in stored.fragment["edges"]] == ["e2"]  # only the edge between them

    # A personal snippet: Bob does not see it and cannot insert it by id.
    target_id = _saved("Target")
    bobs = _sub(_open(bob, target_id), EditorSnippets)
    EditorSnippets.set_snippets_open.fn(bobs, True)
    assert row.id not in {r.id for r in bobs.snippet_rows}
    EditorSnippets.insert_snippet.fn(bobs, row.id)
    assert bobs.snippet_error == "This snippet no longer exists."
    EditorSnippets.delete_snippet.fn(bobs, row.id)
    assert "owner" in bobs.snippet_error

    # Alice inserts it into the other workflow (which already has fetch and wait): fresh ids.
    target = _open(alice, target_id)
    mine = _sub(target, EditorSnippets)
    EditorSnippets.insert_snippet.fn(mine, row.id)
    ids = [n["id"] for n in target.canvas_nodes]
    assert ids == ["start", "fetch", "wait", "done", "fetch_2", "wait_2"]
    assert target.selected_nodes == ["fetch_2", "wait_2"]
    assert {(e["source"], e["target"]) for e in target.canvas_edges} >= {("fetch_2", "wait_2")}
    assert target.dirty
    EditorState.save.fn(target)
    saved = _latest(target_id)
    assert [n["id"] for n in saved["nodes"]][-2:] == ["fetch_2", "wait_2"]

    # Shared snippets are seen by everyone; only the owner deletes them.
    EditorSnippets.set_snippet_name.fn(snips, "Shared step")
    EditorSnippets.set_snippet_shared.fn(snips, True)
    EditorSnippets.save_snippet.fn(snips)
    EditorSnippets.set_snippets_open.fn(bobs, True)
    shared = [r for r in bobs.snippet_rows if r.name == "Shared step"]
    assert len(shared) == 1 and shared[0].shared and not shared[0].mine
    EditorSnippets.delete_snippet.fn(snips, shared[0].id)
    EditorSnippets.set_snippets_open.fn(bobs, True)
    assert "Shared step" not in {r.name for r in bobs.snippet_rows}


def test_a_snippet_without_a_name_or_selection_is_refused_and_a_broken_one_is_not_inserted(make_user) -> None:
    user = make_user("editor")
    tab = _open(user, _saved("Naming"))
    snips = _sub(tab, EditorSnippets)
    EditorSnippets.set_snippet_name.fn(snips, "no selection")
    EditorSnippets.save_snippet.fn(snips)
    assert snips.snippet_error == "Select the nodes to save first."
    asyncio.run(EditorState.select.fn(tab, ["fetch"], []))
    EditorSnippets.set_snippet_name.fn(snips, "   ")
    EditorSnippets.save_snippet.fn(snips)
    assert "needs a name" in snips.snippet_error
    # A stored fragment that no longer holds up (edited in the database) is refused on insert.
    with db_session() as session:
        row = snippets.save_snippet(
            session,
            name="tampered",
            fragment={"nodes": [{"id": "a", "type": "end"}]},
            owner_id=uuid.UUID(str(user.id)),
        )
        row.fragment = {"nodes": [{"id": "a", "type": "end", "config": {}, "evil": True}], "edges": []}
        session.add(row)
        snippet_id = str(row.id)
    before = list(tab.canvas_nodes)
    EditorSnippets.insert_snippet.fn(snips, snippet_id)
    assert "cannot be inserted" in snips.snippet_error and "evil" in snips.snippet_error
    assert tab.canvas_nodes == before


def test_copied_nodes_paste_into_another_tab_and_bad_clipboard_text_is_refused(make_user) -> None:
    user = make_user("editor")
    source = _open(user, _saved("Copy from"))
    asyncio.run(EditorState.select.fn(source, ["fetch", "wait"], []))
    events = EditorTools.copy.fn(_sub(source, EditorTools))
    assert isinstance(events, list) and len(events) == 2  # set the system clipboard, and a toast
    text = fragment_text(source._g().fragment(["fetch", "wait"]))

    other = _open(user, _saved("Paste into"))  # another tab: its own state, nothing copied there
    snips = _sub(other, EditorSnippets)
    EditorSnippets.paste_fragment.fn(snips, text)
    assert [n["id"] for n in other.canvas_nodes][-2:] == ["fetch_2", "wait_2"]
    before = list(other.canvas_nodes)
    refusal = EditorSnippets.paste_fragment.fn(
        snips, json.dumps({"flowloom": "fragment", "version": 1, "nodes": [{"id": "x"}]})
    )
    assert "Cannot paste" in str(refusal) and "type" in str(refusal)
    assert other.canvas_nodes == before
    EditorSnippets.set_fragment_text.fn(snips, '{"flowloom": "fragment", "version": 1, "nodes": "lots"}')
    EditorSnippets.insert_fragment_text.fn(snips)
    assert "at least one node" in snips.fragment_error and other.canvas_nodes == before


def test_notes_and_groups_are_saved_and_the_diff_marks_what_changed(make_user) -> None:
    user = make_user("editor")
    workflow_id = _saved("Notes")
    tab = _open(user, workflow_id)
    notes = _sub(tab, EditorNotes)
    EditorNotes.annotate.fn(notes, "add_note", "", {"x": 10, "y": -200})
    EditorNotes.annotate.fn(notes, "update", "note:note_1", {"text": "# Why\nbecause"})
    EditorNotes.annotate.fn(
        notes, "group", "", {"nodes": ["fetch", "wait"], "x": 300, "y": 0, "width": 524, "height": 120}
    )
    refused = EditorNotes.annotate.fn(notes, "update", "group:group_1", {"color": "mauve"})
    assert "colour" in str(refused)
    EditorNotes.annotate.fn(notes, "update", "group:group_1", {"title": "Work", "color": "pink"})
    assert [g["title"] for g in tab.canvas_annotations["groups"]] == ["Work"]
    # A group drag sends the group and its nodes at drag stop.
    EditorState.move_nodes.fn(
        tab, [{"id": "group:group_1", "x": 300, "y": 100}, {"id": "fetch", "x": 332, "y": 168}]
    )
    EditorState.save.fn(tab)
    saved = _latest(workflow_id)
    assert saved["annotations"]["notes"][0]["text"] == "# Why\nbecause"
    group = saved["annotations"]["groups"][0]
    assert (group["title"], group["color"], group["nodes"], group["position"]) == (
        "Work", "pink", ["fetch", "wait"], {"x": 300.0, "y": 100.0},
    )  # fmt: skip
    assert next(n for n in saved["nodes"] if n["id"] == "fetch")["position"] == {"x": 332.0, "y": 168.0}

    # Version 3 changes the fetch URL and drops the wait: the diff of v2 -> v3 says so.
    asyncio.run(EditorState.select.fn(tab, ["wait"], []))
    EditorTools.delete_selection.fn(_sub(tab, EditorTools))
    asyncio.run(EditorState.select.fn(tab, ["fetch"], []))
    EditorState.set_field.fn(tab, "url", "https://b.example/y")
    EditorState.save.fn(tab)
    assert tab.version == 3
    diff = _sub(tab, EditorDiff)
    EditorDiff.set_diff_open.fn(diff, True)
    assert (diff.diff_from, diff.diff_to) == ("2", "3")
    EditorDiff.show_diff.fn(diff)
    marks = {n["id"]: n.get("d") for n in diff.canvas_diff["nodes"]}
    assert marks == {"start": None, "fetch": "changed", "done": None, "wait": "removed"}
    edge_marks = {e["id"]: e.get("d") for e in diff.canvas_diff["edges"]}
    assert edge_marks["e2"] == "removed" and edge_marks["e3"] == "removed"
    fetch_row = next(r for r in diff.diff_rows if r.item_id == "fetch")
    assert fetch_row.fields == ["config.url: https://a.example/x → https://b.example/y"]
    assert "group:group_1" in {r.item_id for r in diff.diff_rows}  # the group lost "wait"
    assert [(g["id"], g.get("d")) for g in diff.canvas_diff["annotations"]["groups"]] == [
        ("group:group_1", "changed")
    ]
    assert [(n["id"], n.get("d")) for n in diff.canvas_diff["annotations"]["notes"]] == [
        ("note:note_1", None)
    ]
    assert diff.diff_workflow == tab.wf_id and diff.diff_title == "v2 → v3"
    EditorDiff.close_diff.fn(diff)
    assert diff.canvas_diff == {} and diff.diff_rows == []
