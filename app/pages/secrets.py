"""The Secrets page (admins): credentials by name with where they may go; values are write-only."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.secrets_state import SecretsState as S
from app.pages.secrets_state import SecretView
from components.data_table import data_table
from components.dialogs import confirm_dialog, dialog_buttons

_BINDING_HELP = (
    "Allowed destinations: one per line, a host (api.openai.com, *.example.com, host:port) or a URL "
    "prefix (https://hooks.example.com/flowloom/). Empty = the secret may go nowhere. "
    "Allowed node types: e.g. agent, tool.http, webhook.send; empty = any."
)


def _row(row: SecretView) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, weight="medium", size="2"),
                rx.text(row.description, size="1", color=rx.color("gray", 11)),
                rx.cond(row.source == "env", rx.badge("env: ", row.env, variant="soft", color_scheme="gray")),
                spacing="1",
            )
        ),
        rx.table.cell(rx.text(row.destinations, size="1")),
        rx.table.cell(rx.text(row.node_types, size="1")),
        rx.table.cell(rx.text(row.created, size="1")),
        rx.table.cell(rx.text(row.rotated, size="1")),
        rx.table.cell(rx.text(row.used_by, size="1")),
        rx.table.cell(
            rx.cond(
                row.source == "store",
                rx.hstack(
                    rx.button("Rotate", size="1", variant="soft", on_click=S.open_rotate(row.name)),
                    rx.button(
                        "Delete",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=S.open_delete(row.name),
                    ),
                    spacing="2",
                ),
            )
        ),
        data_testid="secret-row",
    )


def _table() -> rx.Component:
    columns = ["Name", "Allowed destinations", "Node types", "Created", "Rotated", "Used by", ""]
    return data_table("secrets-table", columns, S.rows, _row)


def _field(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%")


def _binding_fields(destinations: rx.Var | str = "", node_types: rx.Var | str = "") -> list[rx.Component]:
    return [
        _field(
            "Allowed destinations",
            rx.text_area(name="allowed_destinations", default_value=destinations, width="100%", rows="3"),
        ),
        _field(
            "Allowed node types",
            rx.text_area(name="allowed_node_types", default_value=node_types, width="100%"),
        ),
        rx.text(_BINDING_HELP, size="1", color=rx.color("gray", 11)),
    ]


def _buttons(submit: str, submit_id: str) -> rx.Component:
    return dialog_buttons(
        rx.button(submit, type="submit", id=submit_id), in_form=True, width="100%", margin_top="0.5rem"
    )


def _create_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("New secret"),
            rx.form(
                rx.vstack(
                    _field("Name", rx.input(name="name", required=True, max_length=100, width="100%")),
                    _field(
                        "Value (write-only: it is never shown again)",
                        rx.input(
                            name="value", type="password", required=True, auto_complete="off", width="100%"
                        ),
                    ),
                    _field("Description", rx.input(name="description", max_length=500, width="100%")),
                    *_binding_fields(),
                    _buttons("Store", "create-secret-submit"),
                    spacing="3",
                ),
                on_submit=S.create,
                reset_on_submit=True,
            ),
            max_width="32rem",
        ),
        open=S.create_open,
        on_open_change=S.set_create_open,
    )


def _rotate_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Rotate ", S.rotate_name),
            rx.form(
                rx.vstack(
                    _field(
                        "New value (leave empty to change only the bindings)",
                        rx.input(name="value", type="password", auto_complete="off", width="100%"),
                    ),
                    _field(
                        "Description",
                        rx.input(name="description", default_value=S.rotate_description, width="100%"),
                    ),
                    *_binding_fields(S.rotate_destinations, S.rotate_node_types),
                    _buttons("Save", "rotate-secret-submit"),
                    spacing="3",
                ),
                on_submit=S.rotate,
                reset_on_submit=True,
                key=S.rotate_name,  # a fresh form (and defaults) for each secret
            ),
            max_width="32rem",
        ),
        open=S.rotate_open,
        on_open_change=S.set_rotate_open,
    )


def _delete_dialog() -> rx.Component:
    return confirm_dialog(
        "Delete secret",
        rx.text(
            "Delete ", rx.text.strong(S.delete_name), "? Workflows that use it fail until it is stored again."
        ),
        "Delete",
        S.delete,
        open=S.delete_open,
        on_open_change=S.set_delete_open,
        confirm_id="delete-secret-confirm",
    )


@page(route=routes.SECRETS, title="Secrets", on_load=S.load)
def secrets_page() -> rx.Component:
    """Secrets with their bindings, provenance and the workflows that use them."""
    return rx.box(
        page_header(
            "Secrets",
            "Credentials nodes use by name; each may go only to its allowed destinations.",
            rx.button(
                rx.icon("plus", size=16), "New secret", on_click=S.set_create_open(True), id="new-secret"
            ),
        ),
        error_callout(S.error),
        listing(
            S.loaded,
            S.rows.length() > 0,
            _table(),
            empty_state(
                "secrets-empty", "key-round", "No secrets yet", "Store an API key or signing secret."
            ),
        ),
        _create_dialog(),
        _rotate_dialog(),
        _delete_dialog(),
        width="100%",
    )
