"""Pieces every dialog of the app shares: the row of buttons at its foot, and the confirmation that
asks before something is deleted, cancelled or changed for good."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.event import EventType


def dialog_buttons(
    *actions: rx.Component,
    close: str = "Cancel",
    in_form: bool = False,
    close_disabled: Any = False,
    **props: Any,
) -> rx.Component:
    """The buttons on the right at a dialog's foot: a grey `close` button that closes it, then `actions`.

    In a form (`in_form`) the close button is a plain button, so it does not submit the form.
    """
    close_props: dict[str, Any] = {"type": "button"} if in_form else {}
    if close_disabled is not False:
        close_props["disabled"] = close_disabled
    return rx.hstack(
        rx.dialog.close(rx.button(close, variant="soft", color_scheme="gray", **close_props)),
        *actions,
        **{"justify": "end", "margin_top": "1rem", **props},
    )


def confirm_dialog(
    title: Any,
    description: Any,
    confirm: Any,
    on_confirm: EventType[()],
    *,
    open: rx.Var[bool],
    on_open_change: EventType[bool] | None = None,
    on_cancel: EventType[()] | None = None,
    cancel: str = "Cancel",
    confirm_id: str | None = None,
    max_width: str | None = "26rem",
    ids: dict[str, str] | None = None,
) -> rx.Component:
    """An alert dialog: `title`, `description`, a grey `cancel` and a red `confirm` button that runs
    `on_confirm`. `ids` may name the dialog's "content", "description" and "cancel" elements."""
    ids = ids or {}

    def _id(part: str) -> dict[str, str]:
        return {"id": ids[part]} if part in ids else {}

    cancel_props: dict[str, Any] = {"on_click": on_cancel} if on_cancel is not None else {}
    confirm_props: dict[str, Any] = {"id": confirm_id} if confirm_id else {}
    content_props: dict[str, Any] = {"max_width": max_width} if max_width else {}
    root_props: dict[str, Any] = {"on_open_change": on_open_change} if on_open_change is not None else {}
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(description, size="2", **_id("description")),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button(cancel, variant="soft", color_scheme="gray", **cancel_props, **_id("cancel"))
                ),
                rx.alert_dialog.action(
                    rx.button(confirm, color_scheme="red", on_click=on_confirm, **confirm_props)
                ),
                justify="end",
                margin_top="1rem",
            ),
            **content_props,
            **_id("content"),
        ),
        open=open,
        **root_props,
    )
