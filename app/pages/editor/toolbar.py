"""The editor's top bar: the workflow's name and save state, and the toolbar's buttons."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.pages.editor.canvas_tools import canvas_tools
from app.pages.editor.generate_state import EditorGenerate as G
from app.pages.editor.run_state import EditorRun as R
from app.pages.editor.state import EditorState as S
from app.pages.editor.tools_state import EditorTools as T
from components.shortcuts import shortcuts_help


def _tool(icon: str, tip: str, on_click, element_id: str, disabled=False) -> rx.Component:
    return rx.tooltip(
        rx.icon_button(rx.icon(icon, size=16), variant="ghost", color_scheme="gray", size="2",
                       on_click=on_click, disabled=disabled, id=element_id, aria_label=tip),
        content=tip,
    )  # fmt: skip


def _divider() -> rx.Component:
    return rx.separator(orientation="vertical", size="1", height="1.25rem")


def _title() -> rx.Component:
    return rx.hstack(
        rx.tooltip(
            rx.icon_button(rx.link(rx.icon("arrow-left", size=16), href=routes.WORKFLOWS, aria_label="All workflows"),
                           as_child=True, variant="ghost", color_scheme="gray", id="back-to-workflows"),
            content="All workflows",
        ),
        rx.image(src="/logo.svg", width="22px", height="22px", alt=""),
        rx.heading(S.wf_name, size="3", weight="bold", as_="h1", id="workflow-title", trim="end", max_width="16rem"),
        rx.badge(rx.cond(S.version > 0, f"v{S.version}", "Draft"), variant="soft", id="version-badge"),
        rx.tooltip(
            rx.badge(rx.cond(S.mode == "state_machine", "State machine", "DAG"), variant="outline",
                     color_scheme=rx.cond(S.mode == "state_machine", "violet", "gray"), id="mode-badge",
                     cursor="pointer", on_click=S.set_panel_tab("workflow")),
            content="The workflow's mode; change it on the Workflow tab",
        ),
        rx.cond(
            S.dirty,
            rx.hstack(
                rx.box(width="8px", height="8px", border_radius="50%", background=rx.color("amber", 9)),
                rx.text("Unsaved changes", size="1", color=rx.color("amber", 11)),
                align="center", spacing="1", id="unsaved-indicator",
            ),
            rx.text("All changes saved", size="1", color=rx.color("gray", 11), id="saved-indicator"),
        ),
        align="center",
        spacing="2",
    )  # fmt: skip


def toolbar() -> rx.Component:
    return rx.hstack(
        _title(),
        rx.spacer(),
        # Viewers see the workflow read-only: no editing tool is offered (the server refuses them too).
        rx.cond(
            S.can_edit,
            rx.fragment(
                _tool("undo-2", "Undo (Ctrl+Z)", T.undo, "toolbar-undo", ~S.can_undo),
                _tool("redo-2", "Redo (Ctrl+Shift+Z)", T.redo, "toolbar-redo", ~S.can_redo),
                _divider(),
            ),
            rx.tooltip(rx.badge(rx.icon("eye", size=12), "Read only", color_scheme="gray", variant="surface",
                                id="read-only-badge"),
                       content="You can look at this workflow, run it if you are an operator, and export it; "
                               "changing it needs the editor role"),
        ),
        _tool("copy", "Copy (Ctrl+C)", T.copy, "toolbar-copy"),
        rx.cond(
            S.can_edit,
            rx.fragment(
                _tool("clipboard-paste", "Paste (Ctrl+V)", T.paste, "toolbar-paste"),
                _tool("copy-plus", "Duplicate (Ctrl+D)", T.duplicate, "toolbar-duplicate"),
                _tool("trash-2", "Delete (Delete)", T.delete_selection, "toolbar-delete"),
                _divider(),
                _tool("network", "Auto-layout", T.auto_layout, "toolbar-layout"),
            ),
        ),
        _tool("maximize", "Fit view", T.fit_view, "toolbar-fit"),
        canvas_tools(),  # sticky note, group, compare versions (app/pages/editor/canvas_tools.py)
        _divider(),
        rx.cond(
            S.can_edit,
            rx.fragment(
                _tool("sparkles", "Describe your workflow", G.set_gen_open(True), "toolbar-generate"),
                _tool("file-input", "Import JSON or YAML", T.set_import_open(True), "toolbar-import"),
            ),
        ),
        _tool("file-output", "Export as JSON, YAML or Python", T.set_export_open(True), "toolbar-export"),
        _tool("history", "Version history", T.set_versions_open(True), "toolbar-versions"),
        shortcuts_help(size="2"),
        _divider(),
        rx.button(rx.icon("shield-check", size=15), "Validate", variant="soft", color_scheme="gray",
                  on_click=T.run_validation, id="validate-button"),
        rx.cond(S.can_edit, rx.button(rx.icon("save", size=15), "Save", variant=rx.cond(S.dirty, "solid", "soft"),
                                      on_click=S.save, id="save-button")),
        # A shared workflow runs in its own workspace only (engine/shares.py): no Run button here.
        rx.cond(
            S.share_permission == "",
            rx.button(rx.icon("play", size=15), "Run", color_scheme="green", high_contrast=True,
                      on_click=R.run_workflow, id="run-button", loading=R.run_active),
            rx.tooltip(rx.badge(rx.icon("share-2", size=12), "Shared with you: ", S.share_permission,
                                color_scheme="blue", variant="surface", id="shared-badge"),
                       content="Another workspace shared this workflow with you. Read: look, compare and export; "
                               "edit: also save versions. Only its own workspace runs it."),
        ),
        align="center",
        spacing="2",
        padding="0.5rem 0.75rem",
        height="3.25rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        background="var(--color-panel-solid)",
        width="100%",
        id="editor-toolbar",
    )  # fmt: skip
