"""The side panel's picker of a sub-workflow node on real states and real PostgreSQL: the workflow is
chosen from the saved workflows of the caller's workspace (not the open one, none of another
workspace), its version from that workflow's versions (pinned at its newest when it is picked);
the choice is saved, and a pick that would recurse is still refused by validation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.db import db_session
from app.pages.editor.state import EditorState
from app.pages.editor.tools_state import EditorTools
from components.config_form import FormField
from engine import workflows, workspaces
from engine.errors import ErrorCode
from tests.security.test_authorization import cookie_of, reflex_tab

NUMBER_IN = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}


def _definition(name: str, middle: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    nodes = middle or [
        {"id": "calc", "type": "tool.python", "config": {"tool": "echo", "args": {"value": 1}}}
    ]
    return {
        "name": name,
        "nodes": [{"id": "start", "type": "start"}, *nodes, {"id": "end", "type": "end"}],
        "edges": [
            {"id": "e1", "source": "start", "target": nodes[0]["id"]},
            {"id": "e2", "source": nodes[0]["id"], "target": "end"},
        ],
        **extra,
    }


def _saved(name: str, definition: dict[str, Any] | None = None, workspace_id: str | None = None) -> str:
    with db_session() as session:
        made = workflows.create_workflow(session, name, definition=definition, workspace_id=workspace_id)
        return str(made.id)


def _open(user, workflow_id: str) -> EditorState:
    tab = reflex_tab(EditorState, cookie_of(user), f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
    asyncio.run(EditorState.load.fn(tab))
    assert tab.loaded, tab.load_error
    return tab


def _field(tab: EditorState, name: str) -> FormField:
    return next(f for f in tab.form_fields if f.name == name)


def _config(tab: EditorState, node_id: str) -> dict[str, Any]:
    return dict(tab._g().node(node_id)["config"])


def _add_call(tab: EditorState) -> str:
    assert EditorState.add_node.fn(tab, "subworkflow", 300, 0) is None
    (node_id,) = tab.selected_nodes
    assert tab.sel_type == "subworkflow"
    return node_id


def test_a_workflow_and_a_version_are_picked_from_lists_and_saved(make_user) -> None:
    alice = make_user("editor")
    child = _saved("Doubler", _definition("Doubler", inputs=NUMBER_IN))
    with db_session() as session:
        workflows.save_version(session, uuid.UUID(child), _definition("Doubler", inputs=NUMBER_IN), "second")
    empty = _saved("Never saved")  # no version: nothing to call
    with db_session() as session:
        other_ws = str(workspaces.create_workspace(
            session, slug=f"pick-{uuid.uuid4().hex[:8]}", name="Other", actor="test"
        ).id)  # fmt: skip
    foreign = _saved("Foreign", _definition("Foreign"), workspace_id=other_ws)
    parent = _saved("Parent", _definition("Parent"))
    tab = _open(alice, parent)
    call = _add_call(tab)

    picker = _field(tab, "workflow_id")
    assert picker.kind == "choice" and picker.value == ""
    offered = dict(tuple(c) for c in picker.choices)
    assert offered[child] == "Doubler (v2)"
    assert parent not in offered and empty not in offered and foreign not in offered
    assert _field(tab, "version").kind == "choice" and _field(tab, "version").choices == []

    # Picking the workflow pins its newest version and gives the node the workflow's ports.
    EditorState.set_field.fn(tab, "workflow_id", child)
    assert _config(tab, call) == {"workflow_id": child, "version": 2}
    versions = _field(tab, "version")
    assert [c[0] for c in versions.choices] == ["2", "1"] and versions.value == "2"
    assert versions.choices[0][1] == "v2 · published · second"
    canvas = next(n for n in tab.canvas_nodes if n["id"] == call)
    assert "x" in canvas["ins"]  # the called version's input port

    # An older version picked from the list: stored as a number, and saved with the workflow.
    EditorState.set_field.fn(tab, "version", "1")
    assert _config(tab, call) == {"workflow_id": child, "version": 1}
    assert _field(tab, "version").value == "1" and _field(tab, "version").error == ""
    EditorState.save.fn(tab)
    with db_session() as session:
        found = workflows.load_workflow(session, uuid.UUID(parent))
    assert found is not None
    saved = next(n for n in found.definition["nodes"] if n["id"] == call)
    assert saved["config"] == {"workflow_id": child, "version": 1}

    # A workflow of another workspace is never listed; its id, had it been typed, shows as such
    # and offers no versions.
    EditorState.set_field.fn(tab, "workflow_id", foreign)
    assert _config(tab, call)["version"] == 1  # not pinned: it is not the caller's workspace's
    assert [foreign, f"{foreign} (not in the list)"] in _field(tab, "workflow_id").choices
    assert _field(tab, "version").choices == [["1", "1 (not in the list)"]]  # none of its versions


def test_a_picked_workflow_that_calls_back_is_refused_as_recursion(make_user) -> None:
    alice = make_user("editor")
    a = _saved("A", _definition("A"))
    b_calls_a = [{"id": "call", "type": "subworkflow", "config": {"workflow_id": a, "version": 1}}]
    b = _saved("B", _definition("B", b_calls_a))
    tab = _open(alice, a)
    call = _add_call(tab)
    assert b in {c[0] for c in _field(tab, "workflow_id").choices}
    EditorState.set_field.fn(tab, "workflow_id", b)
    assert _config(tab, call) == {"workflow_id": b, "version": 1}

    tools = asyncio.run(tab.get_state(EditorTools))
    EditorTools.run_validation.fn(tools)
    recursion = [i for i in tab._report if i["code"] == ErrorCode.SUBWORKFLOW_RECURSION.value]
    assert [(i["node_id"], i["field"]) for i in recursion] == [(call, "config.workflow_id")]
