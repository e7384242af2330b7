"""The workflow editor page: toolbar, palette, canvas and side panel (node config, workflow, runs)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page
from app.pages.editor.dialogs import export_dialog, import_dialog, run_inputs_dialog, versions_dialog
from app.pages.editor.panel import side_panel
from app.pages.editor.run_state import EditorRun as R
from app.pages.editor.state import EditorState as S
from app.pages.editor.toolbar import toolbar
from app.pages.editor.tools_state import EditorTools as T
from app.pages.editor.tools_state import IssueRow
from components.flow_canvas import flow_canvas
from components.palette import canvas_icons, canvas_types, palette
from components.status_badge import status_badge


def _issue(issue: IssueRow) -> rx.Component:
    return rx.hstack(
        rx.icon(rx.cond(issue.level == "error", "circle-x", "triangle-alert"), size=14,
                color=rx.cond(issue.level == "error", rx.color("red", 10), rx.color("amber", 10)), flex_shrink="0"),
        rx.text(rx.text.strong(issue.where), " — ", issue.message, size="1"),
        align="start",
        spacing="2",
        padding="0.3rem 0.4rem",
        border_radius="var(--radius-2)",
        cursor=rx.cond(issue.node_id != "", "pointer", "default"),
        _hover={"background": rx.color("gray", 3)},
        on_click=T.focus_node(issue.node_id),
        data_testid="issue-row",
        data_node_id=issue.node_id,
        data_level=issue.level,
    )  # fmt: skip


def issues_panel() -> rx.Component:
    return rx.cond(
        T.issues_open,
        rx.card(
            rx.hstack(
                rx.text("Validation", size="2", weight="bold"),
                rx.cond(T.issues.length() == 0, rx.badge("no problems", color_scheme="green")),
                rx.spacer(),
                rx.icon_button(rx.icon("x", size=14), size="1", variant="ghost", color_scheme="gray",
                               on_click=T.set_issues_open(False), aria_label="Close"),
                align="center", width="100%",
            ),
            rx.scroll_area(rx.vstack(rx.foreach(T.issues, _issue), spacing="0"), max_height="11rem", type="auto"),
            position="absolute", left="1rem", bottom="1rem", width="30rem", max_width="calc(100% - 2rem)",
            z_index="5", id="issues-panel",
        ),
    )  # fmt: skip


def canvas_area() -> rx.Component:
    return rx.box(
        flow_canvas(
            # Until the URL's workflow is loaded the tab may still hold the last one it showed.
            active=S.is_current,
            nodes=S.canvas_nodes,
            edges=S.canvas_edges,
            statuses=S.node_statuses,
            issues=S.node_issues,
            types=canvas_types(),
            icons=canvas_icons(),
            fit=S.fit,
            focus=S.focus,
            on_drop=S.add_node,
            on_move=S.move_nodes,
            on_connect=S.connect,
            on_select=S.select,
            on_delete=S.delete_items,
            on_shortcut=S.shortcut,
            id="flow-canvas",
        ),
        issues_panel(),
        rx.cond(
            R.run_id != "",
            rx.hstack(
                rx.text("Showing run", size="1", color=rx.color("gray", 11)),
                status_badge(R.run_status),
                position="absolute", top="0.75rem", left="50%", transform="translateX(-50%)", z_index="5",
                padding="0.3rem 0.6rem", border_radius="999px", background="var(--color-panel-solid)",
                box_shadow="0 1px 3px rgba(0,0,0,.12)", align="center", id="run-banner",
            ),
        ),
        position="relative",
        flex="1",
        min_width="0",
        height="100%",
    )  # fmt: skip


def _missing() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("file-question", size=32, color=rx.color("gray", 11)),
            rx.text(S.load_error, size="3", id="editor-load-error"),
            rx.link("Back to workflows", href=routes.WORKFLOWS),
            align="center",
        ),
        height="100vh",
    )


@page(route=routes.WORKFLOW_EDITOR, title="Editor", on_load=S.load, bare=True)
def editor_page() -> rx.Component:
    """The editor of one workflow."""
    return rx.cond(
        S.load_error != "",
        _missing(),
        rx.vstack(
            toolbar(),
            rx.hstack(
                palette(S.palette_query, S.set_palette_query),
                canvas_area(),
                side_panel(),
                spacing="0",
                width="100%",
                flex="1",
                min_height="0",
            ),
            import_dialog(),
            export_dialog(),
            versions_dialog(),
            run_inputs_dialog(),
            spacing="0",
            height="100vh",
            width="100vw",
            overflow="hidden",
            background=rx.color("gray", 2),
            role="main",
            id="editor",
            data_loaded=rx.cond(S.is_current, "true", "false"),
        ),
    )
