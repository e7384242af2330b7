"""The Inbox page: approvals waiting for me, the one I am deciding, and the decided ones."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, page, page_header
from app.pages.inbox_state import ActionRow, ApprovalRow, FieldRow
from app.pages.inbox_state import InboxState as S
from components.labels import field_label, label_id, row_button


def _row(row: ApprovalRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.icon("user-check", size=16, color=rx.color("amber", 11)),
                # The row opens on a click anywhere; this button is the keyboard's way to it.
                row_button(row.title, on_click=S.open(row.id).stop_propagation, data_testid="approval-open"),
                rx.cond(row.votes != "", rx.badge(row.votes, variant="outline", size="1")),
                rx.cond(row.voted, rx.badge("you voted", color_scheme="gray", size="1")),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(row.workflow, size="2"),
                rx.code(row.run, variant="ghost", color_scheme="gray", size="1"),
                rx.text(
                    row.workspace, size="1", color=rx.color("gray", 11), data_testid="approval-workspace"
                ),
                spacing="0",
            )
        ),
        rx.table.cell(rx.tooltip(rx.text(row.created, size="2"), content=row.created_exact)),
        rx.table.cell(
            rx.badge(row.deadline, color_scheme=rx.cond(row.overdue, "red", "gray"), variant="soft")
        ),
        align="center",
        cursor="pointer",
        on_click=S.open(row.id),
        data_testid="approval-row",
        data_approval_id=row.id,
    )


def _history_row(row: ApprovalRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.title, size="2")),
        rx.table.cell(rx.text(row.workflow, " · ", row.workspace, size="2")),
        rx.table.cell(rx.badge(row.status, color_scheme=row.color, variant="soft")),
        rx.table.cell(rx.text(row.decided_by, size="2")),
        data_testid="history-row",
    )


def _table(header: list[str], body: rx.Component, element_id: str) -> rx.Component:
    return rx.card(
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in header])),
            rx.table.body(body),
            variant="ghost",
            width="100%",
            id=element_id,
        ),
        padding="0.5rem",
        width="100%",
    )


def _field(f: FieldRow) -> rx.Component:
    value = S.form_values[f.name]
    control_id = "approval-field-" + f.name
    labelled = {"aria_labelledby": label_id(control_id)}
    control = rx.match(
        f.kind,
        (
            "boolean",
            rx.switch(
                checked=value == "true", on_change=lambda v: S.set_field(f.name, v), id=control_id, **labelled
            ),
        ),
        (
            "select",
            rx.select(
                f.options,
                value=value,
                on_change=lambda v: S.set_field(f.name, v),
                width="100%",
                id=control_id,
                custom_attrs={"aria-labelledby": label_id(control_id)},
            ),
        ),
        (
            "json",
            rx.text_area(
                value=value, on_change=lambda v: S.set_field(f.name, v), rows="6", width="100%", id=control_id
            ),
        ),
        rx.input(
            value=value,
            type=rx.cond(f.kind == "number", "number", "text"),
            on_change=lambda v: S.set_field(f.name, v),
            width="100%",
            id=control_id,
            required=f.required,
        ),
    )
    return rx.vstack(
        field_label(f.label, control_id, rx.cond(f.required, " *", "")),
        rx.box(control, width="100%", id="field-" + f.name),
        spacing="1",
        width="100%",
    )


def _action(a: ActionRow) -> rx.Component:
    return rx.button(a.label, color_scheme=a.color, on_click=S.decide(a.name), data_testid="action-" + a.name)


def _detail() -> rx.Component:
    d = S.detail
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(d.title, size="4"),
                rx.spacer(),
                rx.icon_button("x", variant="ghost", on_click=S.close, aria_label="Close the request"),
            ),
            rx.text(d.workflow, " · run ", rx.code(d.run_id, size="1"), size="2", color=rx.color("gray", 11)),
            rx.text(
                "Deadline: ",
                d.deadline,
                " · Decisions needed: ",
                d.quorum,
                " · Approvers: ",
                d.approvers,
                size="1",
            ),
            # Raw HTML off: the body is templated from run data, which may come from outside.
            rx.cond(d.body != "", rx.markdown(d.body, use_raw=False)),
            rx.text("Data to review", size="2", weight="medium"),
            rx.el.pre(
                d.data,
                max_height="16rem",
                overflow="auto",
                width="100%",
                font_size="12px",
                id="approval-data",
            ),
            rx.foreach(S.fields, _field),
            field_label("Comment (optional)", "decision-comment"),
            rx.text_area(
                placeholder="Why you decide this way, for the run's record",
                value=S.comment,
                on_change=S.set_comment,
                width="100%",
                id="decision-comment",
            ),  # fmt: skip
            rx.hstack(rx.foreach(S.actions, _action), spacing="2"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="approval-detail",
    )


@page(route=routes.INBOX, title="Inbox", on_load=S.load)
def inbox_page() -> rx.Component:
    """Approvals I may decide, and the decided ones."""
    return rx.box(
        page_header(
            "Inbox",
            "Decisions that paused a run and wait for you.",
            rx.input(
                rx.input.slot(rx.icon("search", size=16)),
                placeholder="Filter",
                value=S.search,
                on_change=S.set_search.debounce(300),
                id="inbox-filter",
                aria_label="Filter requests by title or workflow",
                data_search_shortcut=True,
            ),
        ),
        error_callout(S.error),
        rx.cond(S.is_open, _detail()),
        rx.cond(
            S.loaded,
            rx.cond(
                S.has_approvals,
                _table(["Request", "Run", "Created", "Deadline"], rx.foreach(S.rows, _row), "inbox-table"),
                rx.cond(
                    S.error == "",
                    empty_state(
                        "inbox-empty-state",
                        "inbox",
                        "Nothing waiting for you",
                        "When a run reaches a human approval step you may decide, the request shows up here.",
                    ),
                ),
            ),
            rx.center(rx.spinner(size="3"), padding_y="4rem", width="100%"),
        ),
        rx.heading("Decided", size="4", as_="h2", margin_top="2rem", margin_bottom="0.75rem"),
        rx.cond(
            S.history.length() > 0,
            _table(
                ["Request", "Workflow", "Outcome", "Decided by"],
                rx.foreach(S.history, _history_row),
                "inbox-history",
            ),
            rx.cond(
                S.loaded & (S.error == ""),
                empty_state(
                    "inbox-history-empty",
                    "history",
                    "Nothing decided yet",
                    "Requests you or others decided, approved, rejected or expired, are listed here with who decided.",
                ),
            ),
        ),
        width="100%",
    )
