"""The sign-in page: provider buttons, the local admin form, and the first-run setup form."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page
from app.pages.login_state import LoginState as S
from app.pages.login_state import ProviderButton
from components.labels import field_label
from components.native_form import native_form


def _field(label: str, name: str, kind: str = "text", autocomplete: str = "") -> rx.Component:
    return rx.vstack(
        field_label(label, f"{name}-input"),
        rx.input(
            name=name, type=kind, required=True, auto_complete=autocomplete, width="100%", id=f"{name}-input"
        ),
        spacing="1",
        width="100%",
    )


def _provider(p: ProviderButton) -> rx.Component:
    # reload_document: the browser must leave the app for the provider, not route client-side.
    return rx.el.a(
        rx.button(rx.icon("log-in", size=16), "Sign in with ", p.label, width="100%", size="3"),
        href=p.href,
        reload_document=True,
        width="100%",
        data_testid="provider-button",
    )


def _local_form() -> rx.Component:
    return native_form(
        rx.vstack(
            _field("E-mail", "email", "email", "username"),
            _field("Password", "password", "password", "current-password"),
            rx.el.input(type="hidden", name="next", value=S.next),
            rx.button("Sign in", type="submit", size="3", width="100%", id="local-sign-in"),
            spacing="3",
            width="100%",
        ),
        action="/auth/local",
        method="post",
        id="local-form",
    )


def _setup_form() -> rx.Component:
    return native_form(
        rx.vstack(
            rx.heading("Create the admin account", size="4"),
            rx.text(
                "First start: enter the setup code from ",
                rx.code(S.setup_code_path),
                " and choose the admin's e-mail and password.",
                size="2",
                color=rx.color("gray", 11),
            ),
            _field("Setup code", "code", "text", "off"),
            _field("E-mail", "email", "email", "username"),
            _field("Password", "password", "password", "new-password"),
            _field("Password again", "password_again", "password", "new-password"),
            rx.button("Create admin and sign in", type="submit", size="3", width="100%", id="setup-submit"),
            spacing="3",
            width="100%",
        ),
        action="/auth/setup",
        method="post",
        id="setup-form",
    )


@page(route=routes.LOGIN, title="Sign in", on_load=S.load, bare=True)
def login_page() -> rx.Component:
    """Sign in."""
    return rx.center(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.image(src="/logo.svg", width="32px", height="32px", alt=""),
                    rx.heading("Sign in to Flowloom", size="6", as_="h1"),
                    align="center",
                    spacing="3",
                ),
                rx.cond(
                    S.error != "",
                    rx.callout(S.error, icon="circle-alert", color_scheme="red", id="login-error"),
                ),
                rx.cond(S.notice != "", rx.callout(S.notice, icon="info", id="login-notice")),
                rx.cond(
                    S.signed_in_as != "",
                    rx.text(
                        "Signed in as ",
                        rx.text.strong(S.signed_in_as),
                        ". ",
                        rx.link("Open Flowloom", href=routes.WORKFLOWS),
                    ),
                ),
                rx.cond(
                    S.setup_needed,
                    _setup_form(),
                    rx.vstack(
                        rx.foreach(S.providers, _provider),
                        rx.cond(
                            S.show_local,
                            rx.vstack(
                                rx.cond(S.providers.length() > 0, rx.divider()),
                                _local_form(),
                                width="100%",
                            ),
                        ),
                        spacing="3",
                        width="100%",
                    ),
                ),
                spacing="4",
                width="100%",
            ),
            size="4",
            width="26rem",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
        role="main",
        id="login-page",
    )
