"""The Audit page (admins): who did what, when and from where, filtered, paged and exported."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.audit_state import AuditRow
from app.pages.audit_state import AuditState as S
from components.data_table import data_table
from components.labels import field_label, labelled_select
from components.pager import pager


def _row(row: AuditRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.tooltip(rx.text(row.at, size="2"), content=row.at_exact)),
        rx.table.cell(
            rx.vstack(
                rx.text(row.actor, size="2", word_break="break-all"),
                rx.text(row.source, " · ", row.ip, size="1", color=rx.color("gray", 11)),
                spacing="1",
            )
        ),
        rx.table.cell(rx.code(row.action, size="2", variant="ghost", data_testid="audit-action")),
        rx.table.cell(rx.text(row.target, size="2", word_break="break-all", data_testid="audit-target")),
        rx.table.cell(
            rx.vstack(
                rx.cond(row.change != "", rx.text(row.change, size="1", word_break="break-all")),
                rx.text(row.details, size="1", color=rx.color("gray", 11), word_break="break-all"),
                spacing="1",
            )
        ),
        align="center",
        data_testid="audit-row",
        data_audit_id=row.id,
    )


def _text_filter(label: str, name: str, value: rx.Var[str], kind: str = "text", **props) -> rx.Component:
    control = f"audit-{name.replace('_', '-')}"
    return rx.vstack(
        field_label(label, control),
        rx.input(name=name, id=control, type=kind, default_value=value, size="2", **props),
        spacing="1",
    )


def _select_filter(label: str, control: str, choices: rx.Var, value: rx.Var, on_change) -> rx.Component:
    return rx.vstack(*labelled_select(label, control, choices, value, on_change), spacing="1")


def _filters() -> rx.Component:
    return rx.form(
        rx.hstack(
            _text_filter("Who", "actor", S.actor, placeholder="part of an e-mail or key"),
            _select_filter("Action", "audit-action", S.action_choices, S.action, S.set_action),
            _select_filter("Object", "audit-object-kind", S.type_choices, S.target_type, S.set_target_type),
            _text_filter("Object id", "target_id", S.target_id),
            _text_filter("From", "date_from", S.date_from, kind="date"),
            _text_filter("To", "date_to", S.date_to, kind="date"),
            rx.button("Apply", type="submit", size="2", data_testid="audit-apply"),
            rx.button("Clear", type="button", size="2", variant="soft", on_click=S.clear_filters),
            align="end",
            spacing="3",
            wrap="wrap",
        ),
        on_submit=S.apply_filters,
        reset_on_submit=False,
        key=S.form_key,  # Clear draws the form again, so the typed filters go too
        width="100%",
        margin_bottom="1rem",
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.button(rx.icon("download", size=14), "Export CSV", size="1", variant="soft", on_click=S.export_csv,
                  data_testid="audit-export-csv"),
        rx.button(rx.icon("download", size=14), "Export JSON", size="1", variant="soft", on_click=S.export_json,
                  data_testid="audit-export-json"),
        rx.spacer(),
        *pager(S.range_label, S.has_previous, S.has_next, S.previous_page, S.next_page, data_testid="audit-range"),
        align="center",
        width="100%",
        margin_bottom="0.75rem",
    )  # fmt: skip


@page(route=routes.AUDIT, title="Audit", on_load=S.load)
def audit_page() -> rx.Component:
    """The audit log, newest first: time, who and from where, action, object, change and details."""
    columns = [
        ("When", "8rem"),
        ("Who", "14rem"),
        ("Action", "11rem"),
        ("Object", "14rem"),
        "Change and details",
    ]
    return rx.box(
        page_header(
            "Audit",
            "Every change to workflows, versions, runs, approvals, secrets, keys and users. "
            "Entries cannot be changed or deleted.",
        ),
        error_callout(S.error),
        _filters(),
        _pager(),
        listing(
            S.loaded,
            S.rows.length() > 0,
            data_table("audit-table", columns, S.rows, _row),
            empty_state(
                "audit-empty", "scroll-text", "No entries", "Nothing in the audit log matches the filters."
            ),
            spinner=True,
        ),
        width="100%",
    )
