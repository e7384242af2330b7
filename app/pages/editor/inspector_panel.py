"""The side panel's edge form (condition with suggestions, label, error output) and the node's
behaviour form (retries with backoff, timeout, on-error, visit limit)."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.inspector_state import EditorInspector as I
from app.pages.editor.state import EditorState as S
from components.config_form import DEBOUNCE_MS, config_form
from components.labels import field_label

E = S.sel_edge


def behaviour_section() -> rx.Component:
    return rx.vstack(
        rx.divider(),
        rx.hstack(rx.icon("refresh-ccw", size=14), rx.text("Retries and errors", size="2", weight="bold"),
                  align="center", spacing="1"),
        config_form(S.behaviour, "node-behaviour-form", set=I.set_behaviour, flag=I.set_behaviour),
        spacing="3", width="100%", id="node-behaviour",
    )  # fmt: skip


def _suggestion(path: rx.Var[str]) -> rx.Component:
    return rx.button(
        path, size="1", variant="soft", color_scheme="gray", font_family="monospace",
        on_click=I.use_suggestion(path), data_testid="condition-suggestion", data_path=path,
    )  # fmt: skip


def _condition() -> rx.Component:
    return rx.vstack(
        field_label("Condition", "edge-condition-input"),
        rx.input(
            value=E.condition, key=E.id, on_change=I.set_edge_condition, debounce_timeout=DEBOUNCE_MS,
            placeholder="output.status == 'ok'", font_family="monospace", width="100%",
            id="edge-condition-input", disabled=E.is_error,
        ),
        rx.cond(E.condition_error != "", rx.text(E.condition_error, size="1", color=rx.color("red", 11),
                                                   data_testid="condition-error")),
        rx.foreach(E.condition_warnings, lambda w: rx.text(w, size="1", color=rx.color("amber", 11),
                                                             data_testid="condition-warning")),
        rx.cond(E.suggestions.length() > 0,
                rx.flex(rx.foreach(E.suggestions, _suggestion), wrap="wrap", gap="1", id="condition-suggestions")),
        rx.text(
            rx.cond(
                S.mode == "state_machine",
                "A transition is taken when its condition holds: the first such one, else the one without a condition.",
                "The edge fires only when its condition holds (a Jinja2 expression, no braces).",
            ),
            size="1", color=rx.color("gray", 11),
        ),
        spacing="1", width="100%", data_invalid=rx.cond(E.condition_error != "", "true", "false"),
    )  # fmt: skip


def edge_section() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text(rx.cond(S.mode == "state_machine", "Transition", "Edge"), size="3", weight="bold"),
            rx.code(E.id, size="1", variant="ghost"),
            align="center", spacing="2",
        ),
        rx.text(E.source, ".", E.source_port, " → ", E.target, ".", E.target_port, size="1",
                color=rx.color("gray", 11), font_family="monospace", id="edge-route"),
        rx.divider(),
        rx.vstack(
            field_label("Label", "edge-label-input"),
            rx.input(value=E.label, key=E.id, on_change=I.set_edge_label, debounce_timeout=DEBOUNCE_MS,
                     width="100%", id="edge-label-input", placeholder="shown on the canvas"),
            spacing="1", width="100%",
        ),
        _condition(),
        rx.hstack(
            rx.switch(checked=E.is_error, on_change=I.set_edge_error_output, id="edge-error-switch",
                      color_scheme="red", aria_labelledby="edge-error-label"),
            rx.text("Error output: taken when ", rx.code(E.source), " fails after its retries", size="2",
                    id="edge-error-label"),
            align="center", spacing="2", width="100%",
        ),
        spacing="3", width="100%", id="edge-form", data_edge_id=E.id,
    )  # fmt: skip
