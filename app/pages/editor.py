"""The workflow editor page: toolbar, palette, canvas and side panel (node config, workflow, runs)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page
from app.pages.editor_dialogs import export_dialog, import_dialog, run_inputs_dialog, versions_dialog
from app.pages.editor_state import EditorState as S
from app.pages.editor_tools_state import IssueRow
from components.config_form import config_form
from components.flow_canvas import flow_canvas
from components.palette import canvas_icons, canvas_types, palette
from components.run_panel import run_panel
from components.status_badge import status_badge

PANEL_WIDTH = "22rem"


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
            rx.link(rx.icon_button(rx.icon("arrow-left", size=16), variant="ghost", color_scheme="gray"),
                    href=routes.WORKFLOWS, id="back-to-workflows"),
            content="All workflows",
        ),
        rx.image(src="/logo.svg", width="22px", height="22px", alt=""),
        rx.text(S.wf_name, size="3", weight="bold", id="workflow-title", trim="end", max_width="16rem"),
        rx.badge(rx.cond(S.version > 0, f"v{S.version}", "Draft"), variant="soft", id="version-badge"),
        rx.cond(
            S.dirty,
            rx.hstack(
                rx.box(width="8px", height="8px", border_radius="50%", background=rx.color("amber", 9)),
                rx.text("Unsaved changes", size="1", color=rx.color("amber", 11)),
                align="center", spacing="1", id="unsaved-indicator",
            ),
            rx.text("All changes saved", size="1", color=rx.color("gray", 9), id="saved-indicator"),
        ),
        align="center",
        spacing="2",
    )  # fmt: skip


def toolbar() -> rx.Component:
    return rx.hstack(
        _title(),
        rx.spacer(),
        _tool("undo-2", "Undo (Ctrl+Z)", S.undo, "toolbar-undo", ~S.can_undo),
        _tool("redo-2", "Redo (Ctrl+Shift+Z)", S.redo, "toolbar-redo", ~S.can_redo),
        _divider(),
        _tool("copy", "Copy (Ctrl+C)", S.copy, "toolbar-copy"),
        _tool("clipboard-paste", "Paste (Ctrl+V)", S.paste, "toolbar-paste"),
        _tool("copy-plus", "Duplicate (Ctrl+D)", S.duplicate, "toolbar-duplicate"),
        _tool("trash-2", "Delete (Delete)", S.delete_selection, "toolbar-delete"),
        _divider(),
        _tool("network", "Auto-layout", S.auto_layout, "toolbar-layout"),
        _tool("maximize", "Fit view", S.fit_view, "toolbar-fit"),
        _divider(),
        _tool("file-input", "Import JSON or YAML", S.set_import_open(True), "toolbar-import"),
        _tool("file-output", "Export JSON or YAML", S.set_export_open(True), "toolbar-export"),
        _tool("history", "Version history", S.set_versions_open(True), "toolbar-versions"),
        _divider(),
        rx.button(rx.icon("shield-check", size=15), "Validate", variant="soft", color_scheme="gray",
                  on_click=S.run_validation, id="validate-button"),
        rx.button(rx.icon("save", size=15), "Save", variant=rx.cond(S.dirty, "solid", "soft"),
                  on_click=S.save, id="save-button"),
        rx.button(rx.icon("play", size=15), "Run", color_scheme="green", on_click=S.run_workflow,
                  id="run-button", loading=S.run_active),
        align="center",
        spacing="2",
        padding="0.5rem 0.75rem",
        height="3.25rem",
        border_bottom=f"1px solid {rx.color('gray', 4)}",
        background="var(--color-panel-solid)",
        width="100%",
        id="editor-toolbar",
    )  # fmt: skip


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
        on_click=S.focus_node(issue.node_id),
        data_testid="issue-row",
        data_node_id=issue.node_id,
        data_level=issue.level,
    )  # fmt: skip


def issues_panel() -> rx.Component:
    return rx.cond(
        S.issues_open,
        rx.card(
            rx.hstack(
                rx.text("Validation", size="2", weight="bold"),
                rx.cond(S.issues.length() == 0, rx.badge("no problems", color_scheme="green")),
                rx.spacer(),
                rx.icon_button(rx.icon("x", size=14), size="1", variant="ghost", color_scheme="gray",
                               on_click=S.set_issues_open(False), aria_label="Close"),
                align="center", width="100%",
            ),
            rx.scroll_area(rx.vstack(rx.foreach(S.issues, _issue), spacing="0"), max_height="11rem", type="auto"),
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
            S.run_id != "",
            rx.hstack(
                rx.text("Showing run", size="1", color=rx.color("gray", 11)),
                status_badge(S.run_status),
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


def _node_tab() -> rx.Component:
    header = rx.vstack(
        rx.hstack(
            rx.text(S.sel_type_label, size="3", weight="bold"),
            rx.code(S.sel_type, size="1", variant="ghost"),
            align="center", spacing="2",
        ),
        rx.text(S.sel_description, size="1", color=rx.color("gray", 10)),
        rx.hstack(
            rx.vstack(
                rx.text("Id", size="1", weight="medium"),
                rx.input(default_value=S.sel_id, key=S.sel_id, on_blur=S.rename_node, size="1", id="node-id-input"),
                spacing="1", flex="1",
            ),
            rx.vstack(
                rx.text("Label", size="1", weight="medium"),
                rx.input(value=S.sel_label, on_change=S.set_node_label, debounce_timeout=250, size="1",
                         id="node-label-input"),
                spacing="1", flex="1.4",
            ),
            width="100%", spacing="2",
        ),
        spacing="2", width="100%",
    )  # fmt: skip
    issues = rx.foreach(
        S.sel_issues,
        lambda message: rx.callout(
            message, icon="triangle-alert", color_scheme="amber", size="1", width="100%"
        ),
    )
    return rx.cond(
        S.sel_id != "",
        rx.vstack(
            header,
            rx.divider(),
            rx.cond(S.form_error != "", rx.callout(S.form_error, icon="circle-alert", color_scheme="red", size="1",
                                                   width="100%", id="form-error")),
            issues,
            rx.cond(S.form_fields.length() == 0, rx.text("This node has no settings.", size="2",
                                                          color=rx.color("gray", 10))),
            config_form(S.form_fields, "node-config-form", set=S.set_field, flag=S.set_flag, pair=S.set_pair,
                        add_pair=S.add_pair, remove_pair=S.remove_pair),
            spacing="3", width="100%",
        ),
        rx.text(
            rx.cond(S.selected_nodes.length() > 1, "Several nodes are selected; pick one to configure it.",
                    "Select a node to configure it."),
            size="2", color=rx.color("gray", 10),
        ),
    )  # fmt: skip


def _workflow_tab() -> rx.Component:
    return rx.vstack(
        rx.text("Mode", size="2", weight="medium"),
        rx.select.root(
            rx.select.trigger(width="100%"),
            rx.select.content(
                rx.select.item("DAG (no loops)", value="dag"),
                rx.select.item("State machine (loops allowed)", value="state_machine"),
            ),
            value=S.mode, on_change=S.set_mode, id="workflow-mode",
        ),
        rx.text("Run inputs (JSON Schema)", size="2", weight="medium"),
        rx.text_area(value=S.inputs_text, on_change=lambda t: S.set_workflow_field("inputs", t),
                     debounce_timeout=400, rows="8", font_family="monospace", width="100%", id="workflow-inputs"),
        rx.text("Run outputs (name → template)", size="2", weight="medium"),
        rx.text_area(value=S.outputs_text, on_change=lambda t: S.set_workflow_field("outputs", t),
                     debounce_timeout=400, rows="4", font_family="monospace", width="100%", id="workflow-outputs"),
        rx.cond(S.settings_error != "", rx.text(S.settings_error, size="1", color=rx.color("red", 11))),
        spacing="2", width="100%",
    )  # fmt: skip


def side_panel() -> rx.Component:
    def tab(value: str, label: str, icon: str) -> rx.Component:
        return rx.tabs.trigger(
            rx.hstack(rx.icon(icon, size=14), label, spacing="1", align="center"),
            value=value,
            id=f"tab-{value}",
        )

    def content(value: str, body: rx.Component) -> rx.Component:
        return rx.tabs.content(
            rx.scroll_area(rx.box(body, padding="0.9rem"), type="hover", height="100%"),
            value=value,
            height="calc(100% - 2.5rem)",
        )

    return rx.tabs.root(
        rx.tabs.list(tab("node", "Node", "sliders-horizontal"), tab("workflow", "Workflow", "workflow"),
                     tab("runs", "Runs", "play"), size="1"),
        content("node", rx.cond(S.is_current, _node_tab())),
        content("workflow", rx.cond(S.is_current, _workflow_tab())),
        content("runs", rx.cond(S.is_current, run_panel(S))),
        value=S.panel_tab, on_change=S.set_panel_tab,
        width=PANEL_WIDTH, min_width=PANEL_WIDTH, height="100%",
        border_left=f"1px solid {rx.color('gray', 4)}", background="var(--color-panel-solid)", id="side-panel",
    )  # fmt: skip


def _missing() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("file-question", size=32, color=rx.color("gray", 9)),
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
            id="editor",
            data_loaded=rx.cond(S.is_current, "true", "false"),
        ),
    )
