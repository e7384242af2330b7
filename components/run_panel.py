"""The run side panel: the shown run, the selected node's step (inputs, outputs, error, timing)
and the workflow's run history. It reads the editor's run state (run fields, selected node), passed in as `S`."""

from __future__ import annotations

from typing import Any

import reflex as rx

from components.status_badge import status_badge


def _json_block(title: str, text: rx.Var[str], testid: str) -> rx.Component:
    return rx.cond(
        text != "",
        rx.vstack(
            rx.text(title, size="1", weight="bold", color=rx.color("gray", 11)),
            rx.el.pre(
                text,
                style={
                    "margin": "0",
                    "padding": "0.5rem 0.6rem",
                    "max_height": "14rem",
                    "overflow": "auto",
                    "font_size": "12px",
                    "line_height": "1.45",
                    "border_radius": "var(--radius-2)",
                    "background": rx.color("gray", 2),
                    "border": f"1px solid {rx.color('gray', 4)}",
                    "white_space": "pre-wrap",
                    "word_break": "break-word",
                    "width": "100%",
                },
                data_testid=testid,
            ),
            spacing="1",
            width="100%",
        ),
    )


def _timing(label: str, value: rx.Var[str]) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=rx.color("gray", 11)),
        rx.text(value, size="1", weight="medium", font_family="monospace"),
        spacing="0",
    )


def _step(step: Any) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            status_badge(step.status),
            rx.text("visit ", step.visit, " · attempt ", step.attempt, size="1", color=rx.color("gray", 11)),
            rx.spacer(),
            rx.text(step.duration, size="1", weight="medium", data_testid="step-duration"),
            align="center",
            width="100%",
        ),
        rx.hstack(
            _timing("queued", step.queued),
            _timing("started", step.started),
            _timing("finished", step.finished),
            spacing="4",
        ),
        rx.cond(
            step.error != "",
            rx.callout(step.error, icon="circle-x", color_scheme="red", size="1", width="100%",
                       data_testid="step-error"),
        ),
        _json_block("Inputs", step.inputs, "step-inputs"),
        _json_block("Outputs", step.outputs, "step-outputs"),
        spacing="2",
        width="100%",
        padding="0.6rem",
        border=f"1px solid {rx.color('gray', 4)}",
        border_radius="var(--radius-3)",
        data_testid="step-view",
    )  # fmt: skip


def _current_run(S: Any) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Run ", rx.code(S.run_id.to(str)[:8]), size="2", weight="medium"),
            status_badge(S.run_status, id="run-status"),
            rx.spacer(),
            rx.cond(S.run_active, rx.spinner(size="1")),
            rx.tooltip(
                rx.icon_button(rx.icon("x", size=14), size="1", variant="ghost", color_scheme="gray",
                               on_click=S.clear_run, aria_label="Back to editing"),
                content="Hide this run's colours",
            ),
            align="center",
            width="100%",
        ),
        rx.cond(S.run_error != "", rx.callout(S.run_error, icon="circle-x", color_scheme="red", size="1",
                                              width="100%")),
        _json_block("Run outputs", S.run_outputs, "run-outputs"),
        rx.cond(
            S.sel_id != "",
            rx.vstack(
                rx.text("Node ", rx.code(S.sel_id), size="2", weight="medium"),
                rx.cond(
                    S.steps.length() > 0,
                    rx.foreach(S.steps, _step),
                    rx.text("This node did not run.", size="2", color=rx.color("gray", 11)),
                ),
                spacing="2",
                width="100%",
                id="step-panel",
            ),
            rx.text("Click a node to see its inputs, outputs and timing.", size="2", color=rx.color("gray", 11)),
        ),
        spacing="3",
        width="100%",
        id="current-run",
    )  # fmt: skip


def _history_row(run: Any, S: Any) -> rx.Component:
    return rx.hstack(
        status_badge(run.status),
        rx.text(run.short_id, size="1", font_family="monospace"),
        rx.badge(run.version, variant="outline", color_scheme="gray", size="1"),
        rx.spacer(),
        rx.tooltip(rx.text(run.created, size="1", color=rx.color("gray", 11)), content=run.created_exact),
        align="center",
        width="100%",
        padding="0.35rem 0.5rem",
        border_radius="var(--radius-2)",
        cursor="pointer",
        background=rx.cond(run.id == S.run_id, rx.color("accent", 3), "transparent"),
        _hover={"background": rx.color("gray", 3)},
        on_click=S.open_run(run.id),
        data_testid="run-history-row",
    )


def run_panel(S: Any) -> rx.Component:
    """The Runs tab of the editor's side panel."""
    return rx.vstack(
        rx.cond(
            S.run_id != "",
            _current_run(S),
            rx.text("Press Run to start the saved version; the nodes show their status as it goes.",
                    size="2", color=rx.color("gray", 11)),
        ),
        rx.divider(),
        rx.text("History", size="1", weight="bold", color=rx.color("gray", 11), text_transform="uppercase"),
        rx.cond(
            S.runs.length() > 0,
            rx.vstack(rx.foreach(S.runs, lambda run: _history_row(run, S)), spacing="0", width="100%",
                      id="run-history"),
            rx.text("No runs yet.", size="2", color=rx.color("gray", 11)),
        ),
        spacing="3",
        width="100%",
    )  # fmt: skip
