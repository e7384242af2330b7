"""The editor's side panel: the selected node's config form, the workflow's settings, its triggers, the runs."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.inspector_panel import behaviour_section, edge_section
from app.pages.editor.limit_state import EditorLimit as L
from app.pages.editor.run_state import EditorRun as R
from app.pages.editor.state import EditorState as S
from app.pages.editor.tools_state import EditorTools as T
from app.pages.editor.triggers_panel import triggers_tab
from components.config_form import config_form
from components.labels import field_label
from components.run_panel import run_panel

PANEL_WIDTH = "22rem"


def _node_tab() -> rx.Component:
    header = rx.vstack(
        rx.hstack(
            rx.text(S.sel_type_label, size="3", weight="bold"),
            rx.code(S.sel_type, size="1", variant="ghost"),
            align="center", spacing="2",
        ),
        rx.text(S.sel_description, size="1", color=rx.color("gray", 11)),
        rx.hstack(
            rx.vstack(
                field_label("Id", "node-id-input"),
                rx.input(default_value=S.sel_id, key=S.sel_id, on_blur=S.rename_node, size="1", id="node-id-input"),
                spacing="1", flex="1",
            ),
            rx.vstack(
                field_label("Label", "node-label-input"),
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
                                                          color=rx.color("gray", 11))),
            config_form(S.form_fields, "node-config-form", set=S.set_field, flag=S.set_flag, pair=S.set_pair,
                        add_pair=S.add_pair, remove_pair=S.remove_pair),
            behaviour_section(),
            spacing="3", width="100%",
        ),
        rx.cond(
            S.sel_edge.id != "",
            edge_section(),
            rx.text(
                rx.cond(S.selected_nodes.length() > 1, "Several nodes are selected; pick one to configure it.",
                        "Select a node or an edge to configure it."),
                size="2", color=rx.color("gray", 11),
            ),
        ),
    )  # fmt: skip


def _workflow_tab() -> rx.Component:
    return rx.vstack(
        field_label("Mode", "workflow-mode-trigger"),
        rx.select.root(
            rx.select.trigger(width="100%", id="workflow-mode-trigger"),
            rx.select.content(
                rx.select.item("DAG (no loops)", value="dag"),
                rx.select.item("State machine (loops allowed)", value="state_machine"),
            ),
            value=S.mode, on_change=T.set_mode, id="workflow-mode",
        ),
        rx.cond(
            S.mode == "state_machine",
            rx.vstack(
                field_label("Visit limit per state", "workflow-visit-limit"),
                rx.input(value=T.visit_limit_text, on_change=T.set_visit_limit, debounce_timeout=400,
                         input_mode="numeric", width="100%", id="workflow-visit-limit"),
                rx.cond(T.visit_limit_error != "", rx.text(T.visit_limit_error, size="1", color=rx.color("red", 11),
                                                           id="workflow-visit-limit-error")),
                rx.text("A run that would enter a state more often fails; a state's own limit (Selection tab) "
                        "overrides it.", size="1", color=rx.color("gray", 11)),
                spacing="1", width="100%",
            ),
        ),
        field_label("Run inputs (JSON Schema)", "workflow-inputs"),
        rx.text_area(value=T.inputs_text, on_change=lambda t: T.set_workflow_field("inputs", t),
                     debounce_timeout=400, rows="8", font_family="monospace", width="100%", id="workflow-inputs"),
        field_label("Run outputs (name → template)", "workflow-outputs"),
        rx.text_area(value=T.outputs_text, on_change=lambda t: T.set_workflow_field("outputs", t),
                     debounce_timeout=400, rows="4", font_family="monospace", width="100%", id="workflow-outputs"),
        rx.cond(T.settings_error != "", rx.text(T.settings_error, size="1", color=rx.color("red", 11))),
        rx.cond(S.share_permission == "", _run_limit()),
        spacing="2", width="100%",
    )  # fmt: skip


def _run_limit() -> rx.Component:
    """The workflow's own limit of runs at once: applies when applied, not with a saved version."""
    return rx.vstack(
        rx.divider(margin_y="0.5rem"),
        field_label("Runs at once (this workflow)", "workflow-run-limit"),
        rx.hstack(
            rx.input(value=L.run_limit_text, on_change=L.set_run_limit_text, placeholder="no limit",
                     input_mode="numeric", flex="1", id="workflow-run-limit"),
            rx.button("Apply", size="2", variant="soft", on_click=L.save_run_limit, id="workflow-run-limit-save"),
            width="100%", spacing="2",
        ),
        rx.cond(L.run_limit_error != "", rx.text(L.run_limit_error, size="1", color=rx.color("red", 11),
                                                 id="workflow-run-limit-error")),
        rx.text("More runs wait queued, in order; the workspace's limit applies too. Applies at once, "
                "not with a saved version; empty: no limit of its own.", size="1", color=rx.color("gray", 11)),
        spacing="1", width="100%",
    )  # fmt: skip


def _read_only_for_viewers(body: rx.Component) -> rx.Component:
    """`body`'s fields, switches and buttons, disabled for a caller who may not edit (a disabled
    fieldset disables every control inside it); the server refuses their edits as well."""
    return rx.el.fieldset(
        body,
        disabled=~S.can_edit,
        style={"border": "0", "padding": "0", "margin": "0", "min_width": "0"},
        data_readonly=rx.cond(S.can_edit, "false", "true"),
    )


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
        rx.tabs.list(tab("node", "Selection", "sliders-horizontal"), tab("workflow", "Workflow", "workflow"),
                     tab("triggers", "Triggers", "alarm-clock"), tab("runs", "Runs", "play"), size="1"),
        content("node", rx.cond(S.is_current, _read_only_for_viewers(_node_tab()))),
        content("workflow", rx.cond(S.is_current, _read_only_for_viewers(_workflow_tab()))),
        content("triggers", rx.cond(S.is_current, triggers_tab())),
        content("runs", rx.cond(S.is_current, run_panel(R))),
        value=S.panel_tab, on_change=S.set_panel_tab,
        width=PANEL_WIDTH, min_width=PANEL_WIDTH, height="100%",
        border_left=f"1px solid {rx.color('gray', 4)}", background="var(--color-panel-solid)", id="side-panel",
    )  # fmt: skip
