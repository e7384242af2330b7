"""The Inbox page: approvals waiting for a decision."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, page, page_header
from app.pages.inbox_state import ApprovalRow
from app.pages.inbox_state import InboxState as S


def _row(row: ApprovalRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.icon("user-check", size=16, color=rx.color("amber", 11)),
                rx.text(row.title, weight="medium", size="2"),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(row.workflow, size="2"),
                rx.code(row.run, variant="ghost", color_scheme="gray", size="1"),
                spacing="0",
            )
        ),
        rx.table.cell(rx.tooltip(rx.text(row.created, size="2"), content=row.created_exact)),
        rx.table.cell(
            rx.badge(row.deadline, color_scheme=rx.cond(row.overdue, "red", "gray"), variant="soft"),
        ),
        align="center",
        data_testid="approval-row",
        data_approval_id=row.id,
    )


def _table() -> rx.Component:
    return rx.card(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("Request"),
                    rx.table.column_header_cell("Run", width="14rem"),
                    rx.table.column_header_cell("Created", width="9rem"),
                    rx.table.column_header_cell("Deadline", width="9rem"),
                ),
            ),
            rx.table.body(rx.foreach(S.rows, _row)),
            variant="ghost",
            width="100%",
            id="inbox-table",
        ),
        padding="0.5rem",
        width="100%",
    )


@page(route=routes.INBOX, title="Inbox", on_load=S.load)
def inbox_page() -> rx.Component:
    """Pending approvals."""
    return rx.box(
        page_header("Inbox", "Decisions that paused a run and wait for a person."),
        error_callout(S.error),
        rx.cond(
            S.loaded,
            rx.cond(
                S.has_approvals,
                _table(),
                rx.cond(
                    S.error == "",
                    empty_state(
                        "inbox-empty-state",
                        "inbox",
                        "Nothing waiting for you",
                        "When a run reaches a human approval step, the request shows up here.",
                    ),
                ),
            ),
            rx.center(rx.spinner(size="3"), padding_y="4rem", width="100%"),
        ),
        width="100%",
    )
