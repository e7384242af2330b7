"""The Runs page: the latest runs and their status."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, page, page_header
from app.pages.runs_state import RUNS_SHOWN, RunRow
from app.pages.runs_state import RunsState as S


def _row(row: RunRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(row.status, color_scheme=row.color, variant="soft", radius="full")),
        rx.table.cell(rx.text(row.workflow, weight="medium", size="2")),
        rx.table.cell(rx.text(row.started_by, size="2", data_testid="run-started-by")),
        rx.table.cell(
            rx.badge(row.started_via, variant="outline", color_scheme="gray", data_testid="run-started-via")
        ),
        rx.table.cell(rx.code(row.short_id, variant="ghost", color_scheme="gray")),
        rx.table.cell(rx.tooltip(rx.text(row.created, size="2"), content=row.created_exact)),
        rx.table.cell(
            rx.tooltip(
                rx.text(row.finished, size="2", color=rx.color("gray", 11)), content=row.finished_exact
            )
        ),
        align="center",
        data_testid="run-row",
        data_run_id=row.id,
    )


def _table() -> rx.Component:
    return rx.card(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("Status", width="8rem"),
                    rx.table.column_header_cell("Workflow"),
                    rx.table.column_header_cell("Started by"),
                    rx.table.column_header_cell("From", width="6rem"),
                    rx.table.column_header_cell("Run", width="7rem"),
                    rx.table.column_header_cell("Created", width="9rem"),
                    rx.table.column_header_cell("Finished", width="9rem"),
                ),
            ),
            rx.table.body(rx.foreach(S.rows, _row)),
            variant="ghost",
            width="100%",
            id="runs-table",
        ),
        padding="0.5rem",
        width="100%",
    )


@page(route=routes.RUNS, title="Runs", on_load=S.load)
def runs_page() -> rx.Component:
    """The latest runs."""
    return rx.box(
        page_header("Runs", f"The latest {RUNS_SHOWN} runs of every workflow."),
        error_callout(S.error),
        rx.cond(
            S.loaded,
            rx.cond(
                S.has_runs,
                _table(),
                rx.cond(
                    S.error == "",
                    empty_state(
                        "runs-empty-state",
                        "play",
                        "No runs yet",
                        "Runs appear here once a workflow starts, from the editor, the API, a schedule or the CLI.",
                        rx.link(rx.button("Go to workflows", variant="soft"), href=routes.WORKFLOWS),
                    ),
                ),
            ),
            rx.center(rx.spinner(size="3"), padding_y="4rem", width="100%"),
        ),
        width="100%",
    )
