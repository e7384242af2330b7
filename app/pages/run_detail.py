"""A run's page: who and what started it, the version it ran, its graph coloured by step state, each
step's inputs, outputs, attempts, timings, progress and error, its event log, Cancel, and starting
it again: "Re-run from here" on a step, "Fork with new inputs"."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, loading, page
from app.pages.run_detail_state import RunDetailState as S
from app.pages.run_detail_view import EventLine, StepCard
from app.pages.run_guardrails import guardrail_card
from components.dialogs import confirm_dialog, dialog_buttons
from components.flow_canvas import flow_canvas
from components.palette import canvas_icons, canvas_types
from components.status_badge import status_badge

_PRE = {
    "margin": "0", "padding": "0.5rem 0.6rem", "max_height": "16rem", "overflow": "auto", "font_size": "12px",
    "line_height": "1.45", "border_radius": "var(--radius-2)", "background": rx.color("gray", 2),
    "border": f"1px solid {rx.color('gray', 4)}", "white_space": "pre-wrap", "word_break": "break-word",
}  # fmt: skip


def _fact(label: str, value: rx.Component | rx.Var, testid: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=rx.color("gray", 11)),
        rx.box(value, data_testid=testid) if isinstance(value, rx.Component) else rx.text(value, size="2", data_testid=testid),
        spacing="0",
        min_width="8rem",
    )  # fmt: skip


def _json(title: str, text: rx.Var[str], testid: str, open_: bool = False) -> rx.Component:
    return rx.cond(
        text != "",
        rx.el.details(
            rx.el.summary(rx.text(title, size="1", weight="bold", as_="span"), cursor="pointer"),
            rx.el.pre(text, style=_PRE, data_testid=testid),
            open=open_,
        ),
    )


def _cancel_dialog() -> rx.Component:
    return confirm_dialog(
        "Cancel this run?",
        "Steps that have not finished are cancelled and the run ends as cancelled. "
        "A step already running finishes its current work, but nothing after it starts.",
        "Cancel run",
        S.cancel,
        open=S.cancel_open,
        on_open_change=S.set_cancel_open,
        cancel="Keep running",
        confirm_id="run-cancel-confirm",
        max_width="28rem",
    )


def _fork_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Fork with new inputs"),
            rx.dialog.description(
                "Starts this run's version again with these inputs (JSON), checked against the workflow's "
                "inputs schema. This run stays as it is.",
                size="2",
            ),
            rx.text_area(value=S.fork_inputs, on_change=S.set_fork_inputs, rows="10", width="100%",
                         font_family="monospace", id="run-fork-inputs", aria_label="Inputs (JSON)",
                         margin_top="0.75rem"),
            rx.cond(
                S.fork_error != "",
                rx.callout.root(
                    rx.callout.icon(rx.icon("circle-x")),
                    rx.callout.text(S.fork_error),
                    rx.foreach(S.fork_issues, lambda i: rx.text(i, size="1", data_testid="run-fork-issue")),
                    color_scheme="red", size="1", margin_top="0.5rem", id="run-fork-error",
                ),
            ),
            dialog_buttons(
                rx.button(rx.icon("git-fork", size=14), "Start the fork", on_click=S.fork, id="run-fork-start"),
                close="Close",
            ),
            max_width="34rem",
        ),
        open=S.fork_open,
        on_open_change=S.set_fork_open,
    )  # fmt: skip


def _header() -> rx.Component:
    h = S.head
    return rx.vstack(
        rx.hstack(
            rx.link(rx.hstack(rx.icon("arrow-left", size=14), rx.text("Runs", size="2"), align="center",
                              spacing="1"), href=routes.RUNS, id="run-back"),
            rx.spacer(),
            rx.cond(S.active, rx.hstack(rx.spinner(size="1"), rx.text("live", size="1", color=rx.color("gray", 11)),
                                        align="center", id="run-live")),
            rx.cond(
                S.may_restart,
                rx.button(rx.icon("git-fork", size=14), "Fork with new inputs", variant="soft",
                          on_click=S.set_fork_open(True), id="run-fork"),
            ),
            rx.cond(
                S.can_cancel,
                rx.button(rx.icon("ban", size=14), "Cancel run", color_scheme="red", variant="soft",
                          high_contrast=True, on_click=S.set_cancel_open(True), id="run-cancel"),
            ),
            width="100%",
            align="center",
        ),
        rx.hstack(
            rx.heading(h.workflow, size="6", weight="bold", id="run-workflow"),
            status_badge(h.status, id="run-status", size="2"),
            rx.cond(h.status == "queued", rx.text("waiting for a free slot (concurrency limit)", size="2",
                                                  color_scheme="gray", id="run-waiting")),  # fmt: skip
            rx.code(h.short_id, variant="ghost", color_scheme="gray"),
            align="center",
            spacing="3",
        ),
        rx.cond(h.source != "", rx.link(rx.hstack(rx.icon("history", size=14), rx.text(h.source, size="2"),
                                                   align="center", spacing="1"),
                                         href=h.source_href, id="run-source")),
        rx.cond(h.parent != "", rx.link(rx.hstack(rx.icon("corner-left-up", size=14), rx.text(h.parent, size="2"),
                                                   align="center", spacing="1"),
                                         href=h.parent_href, id="run-parent")),
        rx.cond(h.cancel_requested, rx.callout("Cancel requested; the run stops after its running steps.",
                                                icon="ban", size="1", color_scheme="gray")),
        rx.cond(h.error != "", rx.callout(h.error, icon="circle-x", color_scheme="red", size="1", width="100%",
                                           id="run-error")),
        rx.flex(
            _fact("Version", rx.cond(h.editor_href != "",
                                     rx.link(h.version, href=h.editor_href, size="2", id="run-version-link"),
                                     rx.text(h.version, size="2")), "run-version"),
            _fact("Started by", h.started_by, "run-started-by"),
            _fact("From", h.started_via, "run-started-via"),
            rx.cond(h.trigger != "", _fact("Trigger", h.trigger, "run-trigger")),
            _fact("Created", h.created, "run-created"),
            _fact("Finished", h.finished, "run-finished"),
            _fact("Took", h.duration, "run-duration"),
            wrap="wrap",
            gap="1.25rem",
        ),
        spacing="3",
        width="100%",
        margin_bottom="1rem",
    )  # fmt: skip


def _graph() -> rx.Component:
    return rx.card(
        rx.box(
            flow_canvas(
                readonly=True, nodes=S.canvas_nodes, edges=S.canvas_edges, statuses=S.statuses,
                issues={}, types=canvas_types(), icons=canvas_icons(), fit=S.fit, focus={},
                on_select=S.select, id="run-canvas",
            ),
            height="24rem",
            width="100%",
        ),
        padding="0",
        width="100%",
        overflow="hidden",
    )  # fmt: skip


def _timing(label: str, value: rx.Var[str]) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color=rx.color("gray", 11)),
        rx.text(value, size="1", weight="medium", font_family="monospace"),
        spacing="0",
    )


def _step(step: StepCard) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            status_badge(step.status),
            rx.text(step.label, size="2", weight="medium"),
            rx.code(step.node_id, variant="ghost", color_scheme="gray", size="1"),
            rx.badge(step.node_type, variant="outline", color_scheme="gray", size="1"),
            rx.spacer(),
            rx.text("visit ", step.visit, " · attempt ", step.attempt, size="1", color=rx.color("gray", 11)),
            rx.text(step.duration, size="1", weight="medium", data_testid="step-duration"),
            rx.cond(step.reused, rx.tooltip(rx.badge("reused", color_scheme="gray", variant="soft", size="1",
                                                     data_testid="step-reused"),
                                            content="Copied from the run this one re-runs: not executed again")),
            rx.cond(step.child_href != "", rx.link(rx.hstack(rx.icon("workflow", size=12), rx.text(step.child, size="1"),
                                                              align="center", spacing="1"),
                                                    href=step.child_href, data_testid="step-child-run")),
            rx.cond(
                S.can_rerun & (step.status != "skipped"),
                rx.button(rx.icon("rotate-ccw", size=12), "Re-run from here", size="1", variant="soft",
                          on_click=S.rerun_from_step(step.id), data_testid="step-rerun"),
            ),
            align="center",
            width="100%",
            wrap="wrap",
        ),
        rx.hstack(_timing("queued", step.queued), _timing("started", step.started),
                  _timing("finished", step.finished), spacing="4"),
        rx.cond(
            step.progress_text != "",
            rx.vstack(
                rx.cond(step.progress_percent >= 0,
                        rx.progress(value=step.progress_percent, max=100, width="100%", data_testid="step-progress-bar")),
                rx.text(step.progress_text, size="1", color=rx.color("gray", 11), data_testid="step-progress"),
                spacing="1",
                width="100%",
            ),
        ),
        rx.cond(
            step.error != "",
            rx.callout.root(
                rx.callout.icon(rx.icon("circle-x")),
                rx.callout.text(
                    rx.cond(step.error_code != "", rx.badge(step.error_code, color_scheme="red", variant="solid",
                                                             size="1", margin_right="0.4rem",
                                                             data_testid="step-error-code")),
                    rx.cond(step.error_field != "", rx.badge(step.error_field, color_scheme="red",
                                                              variant="outline", size="1", margin_right="0.4rem",
                                                              data_testid="step-error-field")),
                    step.error,
                ),
                color_scheme="red",
                size="1",
                width="100%",
                data_testid="step-error",
            ),
        ),
        _json("Inputs", step.inputs, "step-inputs"),
        _json("Outputs", step.outputs, "step-outputs", open_=True),
        _json("Metrics", step.metrics, "step-metrics"),
        spacing="2",
        width="100%",
        padding="0.75rem",
        border=f"1px solid {rx.color('gray', 5)}",
        border_radius="var(--radius-3)",
        background="var(--color-panel-solid)",
        data_testid="run-step",
        data_node_id=step.node_id,
        data_status=step.status,
    )  # fmt: skip


def _steps() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading("Steps", size="4"),
            rx.cond(
                S.selected_node != "",
                rx.hstack(
                    rx.text("of node ", rx.code(S.selected_node), size="2", color=rx.color("gray", 11)),
                    rx.button("Show all", size="1", variant="ghost", on_click=S.show_all_steps, id="run-steps-all"),
                    align="center",
                ),
                rx.text("Pick a node on the graph to see only its steps.", size="2", color=rx.color("gray", 11)),
            ),
            align="center",
            spacing="3",
        ),
        rx.cond(
            S.shown_steps.length() > 0,
            rx.vstack(rx.foreach(S.shown_steps, _step), spacing="2", width="100%", id="run-steps"),
            rx.text("No steps yet.", size="2", color=rx.color("gray", 11)),
        ),
        spacing="2",
        width="100%",
    )  # fmt: skip


def _event(line: EventLine) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(line.at, size="1", font_family="monospace")),
        rx.table.cell(rx.code(line.event_type, size="1", variant="ghost")),
        rx.table.cell(rx.text(line.node_id, size="1")),
        rx.table.cell(rx.text(line.text, size="1", color=rx.color("gray", 11))),
        data_testid="run-event",
    )


def _log() -> rx.Component:
    return rx.el.details(
        rx.el.summary(rx.text("Event log (", S.events.length(), ")", size="2", weight="medium", as_="span"),
                      cursor="pointer"),
        rx.table.root(rx.table.body(rx.foreach(S.events, _event)), size="1", variant="ghost", width="100%"),
        id="run-log",
    )  # fmt: skip


def _run() -> rx.Component:
    return rx.vstack(
        _header(),
        _graph(),
        rx.grid(
            _json("Run inputs", S.inputs, "run-inputs", open_=True),
            _json("Run outputs", S.outputs, "run-outputs", open_=True),
            columns="2",
            gap="1rem",
            width="100%",
        ),
        guardrail_card(S.guardrails),
        _steps(),
        _log(),
        _cancel_dialog(),
        _fork_dialog(),
        spacing="4",
        width="100%",
        id="run-page",
    )


def _not_found() -> rx.Component:
    return empty_state(
        "run-not-found",
        "search-x",
        "Run not found",
        "There is no run with this id; it may have been deleted with its workflow, or the link is mistyped.",
        rx.link(rx.button("All runs", variant="soft"), href=routes.RUNS),
    )


@page(route=routes.RUN, title="Run", on_load=S.load)
def run_detail_page() -> rx.Component:
    """One run."""
    return rx.box(
        error_callout(S.error),
        rx.cond(
            S.loaded,
            rx.cond(S.not_found, _not_found(), rx.cond(S.error == "", _run())),
            loading(),
        ),
        width="100%",
    )
