"""What a page shows in the app's layout instead of its content when it may not, or cannot, be shown:
403 (the caller's role is too low) and 404 (no such page). `AuthState.check_page` decides; the HTTP
gate sends the same status (app/auth/middleware.py)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.auth.guard import NOT_FOUND_DETAIL, AuthState


def _panel(
    status: rx.Var[int] | int, title: rx.Var[str] | str, detail: rx.Var[str] | str, icon: rx.Component
) -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.center(
                icon,
                width="3.5rem",
                height="3.5rem",
                border_radius="var(--radius-4)",
                background=rx.color("accent", 3),
                color=rx.color("accent", 11),
            ),
            rx.text(
                "Error ", status, size="2", weight="medium", color=rx.color("accent", 11), id="error-status"
            ),
            rx.heading(title, size="6", as_="h1", text_align="center"),
            rx.text(
                detail,
                size="2",
                color=rx.color("gray", 11),
                text_align="center",
                max_width="30rem",
                id="error-detail",
            ),  # fmt: skip
            rx.hstack(
                rx.link(rx.text("Go to workflows"), href=routes.WORKFLOWS, id="error-home"),
                rx.text("·", color=rx.color("gray", 11), aria_hidden="true"),
                rx.link("API docs", href=routes.API_DOCS, is_external=True),
                spacing="2",
                align="center",
            ),
            align="center",
            spacing="3",
        ),
        padding_y="5rem",
        border=f"1px dashed {rx.color('gray', 6)}",
        border_radius="var(--radius-4)",
        background="var(--color-panel-solid)",
        width="100%",
        id="error-page",
        data_status=status,
    )


def page_error() -> rx.Component:
    """The 403 or 404 that `AuthState.check_page` set for this page."""
    forbidden = AuthState.error_status == 403
    return _panel(
        AuthState.error_status,
        rx.cond(forbidden, "You don't have access to this page", "Page not found"),
        AuthState.error_detail,
        rx.cond(forbidden, rx.icon("lock", size=26), rx.icon("file-question", size=26)),
    )


def not_found() -> rx.Component:
    """The app's 404 page (the route Reflex shows for every unknown address)."""
    return _panel(404, "Page not found", NOT_FOUND_DETAIL, rx.icon("file-question", size=26))
