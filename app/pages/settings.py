"""The Settings page: my API keys (created, shown once, revoked) and, for admins, users' roles."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.auth.guard import AuthState
from app.layout import error_callout, page, page_header
from app.pages.settings_state import CREATED_KEY_ID, ROLES, KeyRow, UserRow
from app.pages.settings_state import SettingsState as S


def _key_row(k: KeyRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(k.name, size="2")),
        rx.table.cell(rx.code("flk_", k.prefix, "_…", size="1")),
        rx.table.cell(rx.badge(k.role, variant="soft")),
        rx.table.cell(rx.text(k.last_used, size="2")),
        rx.table.cell(
            rx.cond(
                k.revoked,
                rx.badge("revoked", color_scheme="gray"),
                rx.button(
                    "Revoke", size="1", color_scheme="red", variant="soft", on_click=S.revoke_key(k.id)
                ),
            )
        ),
        data_testid="key-row",
    )


def _user_row(u: UserRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(u.email, size="2")),
        rx.table.cell(rx.text(u.issuer, size="1", color=rx.color("gray", 10))),
        rx.table.cell(rx.select(ROLES, value=u.role, size="1", on_change=lambda r: S.set_user_role(u.id, r))),
        rx.table.cell(rx.switch(checked=u.active, on_change=lambda v: S.set_user_active(u.id, v))),
        data_testid="user-row",
    )


def _table(header: list[str], body: rx.Component) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in header])),
        rx.table.body(body),
        variant="ghost",
        width="100%",
    )


def _keys() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("API keys", size="4"),
            rx.text("Send a key as 'Authorization: Bearer <key>'. Its role cannot exceed yours.", size="2"),
            rx.hstack(
                rx.input(
                    placeholder="Key name",
                    value=S.new_key_name,
                    on_change=S.set_new_key_name,
                    id="new-key-name",
                ),
                rx.select(ROLES, value=S.new_key_role, on_change=S.set_new_key_role),
                rx.button("Create key", on_click=S.create_key, id="create-key"),
                spacing="2",
            ),
            # Always rendered (hidden until a key is made), so the event that fills it finds it.
            rx.callout.root(
                rx.callout.text("Copy this key now; it is not shown again:"),
                rx.input(id=CREATED_KEY_ID, read_only=True, width="100%", font_family="monospace"),
                rx.button("Done", size="1", on_click=S.dismiss_key),
                color_scheme="amber",
                display=rx.cond(S.key_shown, "flex", "none"),
            ),
            _table(["Name", "Key", "Role", "Last used", ""], rx.foreach(S.keys, _key_row)),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


@page(route=routes.SETTINGS, title="Settings", on_load=S.load)
def settings_page() -> rx.Component:
    """API keys and users."""
    return rx.box(
        page_header("Settings", "Your API keys; users and roles for admins."),
        error_callout(S.error),
        _keys(),
        rx.cond(
            AuthState.is_admin,
            rx.card(
                rx.vstack(
                    rx.heading("Users", size="4"),
                    _table(["E-mail", "Signed in with", "Role", "Active"], rx.foreach(S.users, _user_row)),
                    width="100%",
                ),
                width="100%",
                margin_top="1.5rem",
            ),
        ),
        width="100%",
    )
