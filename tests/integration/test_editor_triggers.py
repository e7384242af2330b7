"""The editor and triggers (Reflex event handlers on a real state, real PostgreSQL): the definition's
`triggers` survive save, export, import and restore; the Triggers tab adds, edits, removes, shows the
saved state (next runs, webhook path), pauses and resumes, and follows undo."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import yaml

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.db import db_session
from app.pages.editor.state import EditorState
from app.pages.editor.tools_state import EditorTools
from app.pages.editor.triggers_state import EditorTriggers
from engine import triggers, workflows
from engine.settings import get_settings
from engine.workflows import create_workflow
from models.db import get_engine
from tests.integration.engine_helpers import node, workflow
from tests.security.test_authorization import cookie_of, reflex_tab

HOOK = {"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}, "enabled": True}
TICK = {
    "id": "nightly", "kind": "schedule", "enabled": True,
    "config": {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "missed": "catch_up", "catch_up_max": 2,
               "inputs": {"report": "daily"}},
}  # fmt: skip


def _definition(trigger_list: list[dict]) -> dict[str, Any]:
    defn = workflow(
        [node("START", "start"), node("DONE", "end")], [("START", "DONE")], name="triggered"
    ).to_dict()
    defn["triggers"] = trigger_list
    return defn


def _saved(trigger_list: list[dict]) -> str:
    with db_session() as session:
        return str(create_workflow(session, "Triggered", definition=_definition(trigger_list)).id)


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
    return found.definition


def _specs(definition: dict[str, Any]) -> list[dict]:
    return [{k: t[k] for k in ("id", "kind", "config", "enabled")} for t in definition.get("triggers", [])]


def test_saving_exporting_importing_and_restoring_keep_the_definitions_triggers(make_user):
    workflow_id = _saved([HOOK, TICK])
    tab = _open(make_user("editor"), workflow_id)
    EditorState.move_nodes.fn(tab, [{"id": "DONE", "x": 400, "y": 200}])  # an edit of the canvas only
    EditorState.save.fn(tab)
    assert tab.version == 2
    assert _specs(_latest(workflow_id)) == _specs(_definition([HOOK, TICK]))

    tools = _sub(tab, EditorTools)
    EditorTools.set_export_open.fn(tools, True)
    assert _specs(json.loads(tools.export_text)) == _specs(_definition([HOOK, TICK]))
    EditorTools.set_export_format.fn(tools, "yaml")
    assert _specs(yaml.safe_load(tools.export_text)) == _specs(_definition([HOOK, TICK]))

    # Importing a definition with another trigger list replaces the triggers, and saving syncs them.
    imported = _definition([{"id": "every_hour", "kind": "schedule", "config": {"cron": "0 * * * *"}}])
    tools.import_text = yaml.safe_dump(imported)
    EditorTools.import_definition.fn(tools)
    assert tools.import_error == ""
    EditorState.save.fn(tab)
    with get_engine(get_settings().database_url).connect() as conn:
        saved = {t.key: t for t in triggers.list_for_workflow(conn, workflow_id)}
    assert saved["every_hour"].live and not saved["hook"].active and not saved["nightly"].active

    # Restoring version 1 brings its triggers back.
    EditorTools.restore_version.fn(tools, 1)
    assert _specs(tab._g().defn) == _specs(_definition([HOOK, TICK]))


def _rows(tab: EditorState) -> dict[str, Any]:
    return {row.key: row for row in _sub(tab, EditorTriggers).trig_rows}


def test_the_triggers_tab_adds_edits_and_shows_the_saved_state(make_user):
    workflow_id = _saved([HOOK])
    tab = _open(make_user("editor"), workflow_id)
    trig = _sub(tab, EditorTriggers)
    rows = _rows(tab)
    assert (
        rows["hook"].status == "live" and rows["hook"].webhook_path == f"/api/hooks/{rows['hook'].trigger_id}"
    )

    trig.trig_new_kind = "schedule"
    EditorTriggers.trig_add.fn(trig)
    assert trig.trig_sel == "schedule" and tab.dirty
    # A bad cron expression: the field says why and the row is invalid.
    EditorTriggers.trig_set_field.fn(trig, "cron", "61 * * * *")
    cron = next(f for f in trig.trig_fields if f.name == "cron")
    assert "cron" in cron.error and _rows(tab)["schedule"].status == "invalid"
    EditorTriggers.trig_set_field.fn(trig, "cron", "30 2 * * *")
    EditorTriggers.trig_set_field.fn(trig, "timezone", "Europe/Berlin")
    EditorTriggers.trig_set_field.fn(trig, "catch_up_max", "x")  # not a number: kept as typed, flagged
    assert next(f for f in trig.trig_fields if f.name == "catch_up_max").error == "enter a number"
    row = _rows(tab)["schedule"]
    assert row.status == "unsaved" and row.fires_are_preview and len(row.next_fires) == 5
    assert all(
        "02:30" in t or "03:00" in t for t in row.next_fires
    )  # local time (a DST night jumps to 03:00)

    EditorState.save.fn(tab)
    row = _rows(tab)["schedule"]
    assert row.status == "live" and not row.fires_are_preview and len(row.next_fires) == 5 and row.trigger_id
    assert _specs(_latest(workflow_id))[1] == {
        "id": "schedule", "kind": "schedule", "enabled": True,
        "config": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    }  # fmt: skip

    # Pause and resume act on the saved trigger at once.
    EditorTriggers.trig_pause.fn(trig, "schedule")
    assert _rows(tab)["schedule"].status == "paused" and triggers.get_now(row.trigger_id).paused
    EditorTriggers.trig_resume.fn(trig, "schedule")
    assert _rows(tab)["schedule"].status == "live" and triggers.get_now(row.trigger_id).live

    # Disabling, renaming and removing are edits of the definition (undoable).
    EditorTriggers.trig_set_enabled.fn(trig, "hook", False)
    assert _rows(tab)["hook"].status == "disabled"
    EditorTriggers.trig_remove.fn(trig, "schedule")
    assert set(_rows(tab)) == {"hook"}
    tools = _sub(tab, EditorTools)
    EditorTools.undo.fn(tools)
    assert set(_rows(tab)) == {"hook", "schedule"}  # the tab follows the graph
    EditorTools.undo.fn(tools)
    assert _rows(tab)["hook"].status == "live"


def test_a_forms_token_is_shown_once_and_viewers_change_nothing(make_user):
    workflow_id = _saved([HOOK, {"id": "ask", "kind": "form", "config": {"public": True}}])
    editor_tab = _open(make_user("editor"), workflow_id)
    trig = _sub(editor_tab, EditorTriggers)
    EditorTriggers.trig_rotate_token.fn(trig, "ask")
    ask = _rows(editor_tab)["ask"]
    assert trig.trig_token_key == "ask" and ask.has_token and ask.page_path == f"/forms/{ask.trigger_id}"
    with get_engine(get_settings().database_url).connect() as conn:
        assert triggers.token_matches(conn, ask.trigger_id, trig.trig_token)
    EditorTriggers.trig_hide_token.fn(trig)
    assert trig.trig_token == ""

    viewer_tab = _open(make_user("viewer"), workflow_id)
    viewer = _sub(viewer_tab, EditorTriggers)
    refusals = [
        EditorTriggers.trig_add.fn(viewer),
        EditorTriggers.trig_remove.fn(viewer, "hook"),
        EditorTriggers.trig_pause.fn(viewer, "hook"),
        EditorTriggers.trig_rotate_token.fn(viewer, "ask"),
    ]
    assert all("role" in str(r) for r in refusals)
    assert set(_rows(viewer_tab)) == {"hook", "ask"} and not viewer_tab.dirty
    assert triggers.get_now(_rows(viewer_tab)["hook"].trigger_id).live
