"""The workflow editor page: toolbar, palette, canvas and side panel (node config, workflow, runs)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page
from app.pages.editor.canvas_tools import canvas_diff, diff_dialog, diff_panel, snippets_dialog
from app.pages.editor.dialogs import export_dialog, import_dialog, run_inputs_dialog, versions_dialog
from app.pages.editor.generate_view import generate_dialog, generated_banner
from app.pages.editor.notes_state import EditorNotes as N
from app.pages.editor.panel import side_panel
from app.pages.editor.plan_view import plan_view
from app.pages.editor.review_view import review_bar
from app.pages.editor.run_state import EditorRun as R
from app.pages.editor.snippets_state import EditorSnippets as P
from app.pages.editor.state import EditorState as S
from app.pages.editor.toolbar import toolbar
from app.pages.editor.tools_state import EditorTools as T
from app.pages.editor.tools_state import IssueRow
from components.flow_canvas import flow_canvas
from components.palette import canvas_icons, canvas_types, palette
from components.status_badge import status_badge
from components.unsaved_guard import unsaved_guard


def _issue(issue: IssueRow) -> rx.Component:
    return rx.hstack(
        rx.icon(rx.cond(issue.level == "error", "circle-x", "triangle-alert"), size=14,
                color=rx.cond(issue.level == "error", rx.color("red", 10), rx.color("amber", 10)), flex_shrink="0"),
        rx.text(rx.text.strong(issue.where), " — ", issue.message, size="1"),
        align="start",
        spacing="2",
        padding="0.3rem 0.4rem",
        border_radius="var(--radius-2)",
        cursor=rx.cond((issue.node_id != "") | (issue.edge_id != ""), "pointer", "default"),
        _hover={"background": rx.color("gray", 3)},
        on_click=T.focus_issue(issue.node_id, issue.edge_id, issue.field),
        data_testid="issue-row",
        data_node_id=issue.node_id,
        data_edge_id=issue.edge_id,
        data_field=issue.field,
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
            plan_view(),
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
            phases=S.node_phases,
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
            annotations=S.canvas_annotations,
            diff=canvas_diff(S.wf_id),
            readonly=~S.can_edit,  # viewers: select and look, never move, join, drop or delete
            on_annotate=N.annotate,
            on_paste_text=P.paste_fragment,
            id="flow-canvas",
        ),
        issues_panel(),
        diff_panel(S.wf_id),
        review_bar(S.wf_id),
        generated_banner(),
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


LEAVE_UNSAVED = "This workflow has unsaved changes. Leave without saving?"


@page(route=routes.WORKFLOW_EDITOR, title="Editor", on_load=S.load, bare=True)
def editor_page() -> rx.Component:
    """The editor of one workflow."""
    return rx.cond(
        S.load_error != "",
        _missing(),
        rx.vstack(
            toolbar(),
            rx.hstack(
                rx.cond(S.can_edit, palette(S.palette_query, S.set_palette_query)),  # viewers add nothing
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
            diff_dialog(),
            snippets_dialog(),
            run_inputs_dialog(),
            generate_dialog(),
            unsaved_guard(dirty=S.dirty & S.can_edit, message=LEAVE_UNSAVED),
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
