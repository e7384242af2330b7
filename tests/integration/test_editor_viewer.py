"""A viewer's editor is read-only on the server too: of the editor's event handlers a viewer may call
only those that change nothing saved, and the socket's guard refuses the rest before they run."""

from __future__ import annotations

import asyncio

from reflex.event import Event
from reflex_base.registry import RegistrationContext

import app.app as reflex_app
from app.auth.guard import EventGuard, access_of
from app.auth.policy import allows
from tests.integration.test_auth_routes import FakeState, cookie_for

# Editor handlers a viewer may call: they open dialogs, select, focus, validate, export, read runs,
# or change only the tab's own view. A handler that changes the graph or anything saved needs editor
# (or operator, to run); add one here only if it changes neither.
READ_ONLY_EDITOR_HANDLERS = {
    "EditorState.load", "EditorState.select", "EditorState.shortcut", "EditorState.set_panel_tab",
    "EditorState.set_palette_query",
    "EditorTools.run_validation", "EditorTools.set_issues_open", "EditorTools.focus_node", "EditorTools.focus_issue",
    "EditorTools.fit_view", "EditorTools.copy", "EditorTools.set_import_open", "EditorTools.set_import_text",
    "EditorTools.set_export_open", "EditorTools.set_export_format", "EditorTools.download_export",
    "EditorTools.set_versions_open",
    "EditorRun.follow_run", "EditorRun.open_run", "EditorRun.clear_run",
    "EditorDiff.set_diff_open", "EditorDiff.set_diff_from", "EditorDiff.set_diff_to", "EditorDiff.show_diff",
    "EditorDiff.close_diff", "EditorDiff.focus_diff_item",
    "EditorTriggers.trig_select", "EditorTriggers.trig_set_new_kind", "EditorTriggers.trig_refresh",
    "EditorTriggers.trig_hide_token",
    "EditorReview.close_review",
}  # fmt: skip
# What a viewer's canvas would send if it were not read-only: each must be refused.
CANVAS_EDITS = [
    "EditorState.add_node", "EditorState.move_nodes", "EditorState.connect", "EditorState.delete_items",
    "EditorState.set_field", "EditorState.save",
]  # fmt: skip


def editor_handlers() -> dict[str, str]:
    """Event name -> qualname of every handler of the editor's states."""
    found = {}
    for name, registered in RegistrationContext.get().event_handlers.items():
        fn = registered.handler.fn
        if fn.__module__.startswith("app.pages.editor."):
            found[name] = fn.__qualname__
    return found


def test_of_the_editors_handlers_a_viewer_may_call_only_the_read_only_ones() -> None:
    handlers = RegistrationContext.get().event_handlers
    open_to_viewers = {
        qualname
        for name, qualname in editor_handlers().items()
        if access_of(handlers[name].handler.fn) is not None
        and allows("viewer", access_of(handlers[name].handler.fn))
    }
    unexpected = sorted(open_to_viewers - READ_ONLY_EDITOR_HANDLERS)
    assert not unexpected, (
        "these editor handlers are open to viewers; give them requires(Role.EDITOR) if they change the "
        f"workflow, else list them in READ_ONLY_EDITOR_HANDLERS: {unexpected}"
    )
    assert len(editor_handlers()) > len(READ_ONLY_EDITOR_HANDLERS)  # most of the editor needs editor


def test_the_guard_refuses_a_viewers_canvas_edits_and_lets_an_editors_through(make_user) -> None:
    by_qualname = {qualname: name for name, qualname in editor_handlers().items()}
    viewer, editor = cookie_for(make_user, "viewer"), cookie_for(make_user, "editor")
    for qualname in CANVAS_EDITS:
        event = Event(name=by_qualname[qualname])
        refused = asyncio.run(EventGuard().preprocess(reflex_app.app, FakeState(viewer), event))
        assert refused is not None, qualname
        assert asyncio.run(EventGuard().preprocess(reflex_app.app, FakeState(editor), event)) is None, (
            qualname
        )
