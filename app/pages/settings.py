"""The Settings page: my API keys (created, shown once, revoked), for instance admins users' roles,
for the workspace's admins its limits and review rule."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import error_callout, page, page_header
from app.pages.settings_limits import limits_section
from app.pages.settings_review import review_section
from app.pages.settings_state import CREATED_KEY_ID, ROLES, KeyRow, UserRow
from app.pages.settings_state import SettingsState as S
from components.data_table import table
from components.dialogs import confirm_dialog


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
                    "Revoke",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=S.ask_revoke_key(k.id),
                    aria_label="Revoke key " + k.name,
                ),
            )
        ),
        data_testid="key-row",
    )


def _user_row(u: UserRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(u.email, size="2")),
        rx.table.cell(rx.text(u.issuer, size="1", color=rx.color("gray", 11))),
        rx.table.cell(
            rx.select(
                ROLES,
                value=u.role,
                size="1",
                on_change=lambda r: S.ask_user_role(u.id, r),
                custom_attrs={"aria-label": "Role of " + u.email},
                data_testid="user-role",
            )
        ),
        rx.table.cell(
            rx.switch(
                checked=u.active,
                on_change=lambda v: S.ask_user_active(u.id, v),
                aria_label=u.email + " is active",
                data_testid="user-active",
            )
        ),
        data_testid="user-row",
    )


def _keys() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("API keys", size="4"),
            rx.text("Send a key as 'Authorization: Bearer <key>'. Its role cannot exceed yours.", size="2"),
            rx.hstack(
                rx.vstack(
                    rx.el.label("Key name", html_for="new-key-name", font_size="var(--font-size-1)"),
                    rx.input(
                        placeholder="e.g. CI deploys",
                        value=S.new_key_name,
                        on_change=S.set_new_key_name,
                        id="new-key-name",
                    ),
                    spacing="1",
                ),
                rx.vstack(
                    rx.el.label("Role", id="new-key-role-label", font_size="var(--font-size-1)"),
                    rx.select(
                        ROLES,
                        value=S.new_key_role,
                        on_change=S.set_new_key_role,
                        custom_attrs={"aria-labelledby": "new-key-role-label"},
                        id="new-key-role",
                    ),
                    spacing="1",
                ),
                rx.button("Create key", on_click=S.create_key, id="create-key"),
                spacing="2",
                align="end",
            ),
            # Always rendered (hidden until a key is made), so the event that fills it finds it.
            rx.callout.root(
                rx.callout.text(
                    rx.el.label("Copy this key now; it is not shown again:", html_for=CREATED_KEY_ID)
                ),
                rx.input(id=CREATED_KEY_ID, read_only=True, width="100%", font_family="monospace"),
                rx.button("Done", size="1", on_click=S.dismiss_key),
                color_scheme="amber",
                display=rx.cond(S.key_shown, "flex", "none"),
            ),
            table(["Name", "Key", "Role", "Last used", "Actions"], rx.foreach(S.keys, _key_row)),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _confirm_dialog() -> rx.Component:
    """The one confirmation of the page: revoke a key, change a role, deactivate a user."""
    return confirm_dialog(
        S.confirm_title,
        S.confirm_text,
        S.confirm_button,
        S.confirm,
        open=S.confirm_open,
        on_open_change=S.set_confirm_open,
        confirm_id="confirm-action",
        max_width="28rem",
        ids={"content": "confirm-dialog", "description": "confirm-text", "cancel": "confirm-cancel"},
    )


@page(route=routes.SETTINGS, title="Settings", on_load=S.load)
def settings_page() -> rx.Component:
    """API keys and users."""
    return rx.box(
        page_header("Settings", "Your API keys; users and roles for instance admins."),
        error_callout(S.error),
        _keys(),
        rx.cond(
            S.instance_admin,  # users are the instance's: a workspace's admin neither sees nor changes them
            rx.card(
                rx.vstack(
                    rx.heading("Users", size="4"),
                    table(["E-mail", "Signed in with", "Role", "Active"], rx.foreach(S.users, _user_row)),
                    width="100%",
                ),
                width="100%",
                margin_top="1.5rem",
            ),
        ),
        limits_section(),
        review_section(),
        _confirm_dialog(),
        width="100%",
    )
