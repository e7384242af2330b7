"""A chat trigger's page: my conversations on the left, the open one's messages, the answer as it
streams in, and the message box."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import error_callout, page, page_header
from app.pages.chat_state import ChatLine, SessionRow
from app.pages.chat_state import ChatState as S


def _bubble(text: rx.Var, mine: rx.Var | bool, test_id: str, error: rx.Var | str = "") -> rx.Component:
    return rx.box(
        rx.text(text, size="2", white_space="pre-wrap"),
        rx.cond(error != "", rx.text(error, size="1", color=rx.color("red", 11), data_testid="chat-error")),
        background=rx.cond(mine, rx.color("accent", 3), "var(--color-panel-solid)"),
        border=f"1px solid {rx.color('gray', 4)}",
        border_radius="var(--radius-4)",
        padding="0.6rem 0.9rem",
        max_width="80%",
        align_self=rx.cond(mine, "flex-end", "flex-start"),
        data_testid=test_id,
    )


def _line(line: ChatLine) -> rx.Component:
    return _bubble(
        line.content,
        line.role == "user",
        rx.cond(line.role == "user", "chat-user", "chat-assistant"),
        line.error,
    )


def _session(row: SessionRow) -> rx.Component:
    return rx.box(
        rx.text(row.title, size="2", weight=rx.cond(row.active, "medium", "regular"), trim="both"),
        rx.text(row.when, size="1", color=rx.color("gray", 11)),
        padding="0.4rem 0.6rem",
        border_radius="var(--radius-3)",
        background=rx.cond(row.active, rx.color("accent", 3), "transparent"),
        _hover={"background": rx.color("gray", 3)},
        cursor="pointer",
        width="100%",
        on_click=S.open_session(row.id),
        data_testid="chat-session",
    )


def _conversation() -> rx.Component:
    return rx.vstack(
        rx.vstack(
            rx.cond(
                (S.lines.length() == 0) & ~S.busy,
                rx.text("Ask something to start the conversation.", size="2", color=rx.color("gray", 11)),
            ),
            rx.foreach(S.lines, _line),
            rx.cond(
                S.busy,
                rx.cond(
                    S.streaming != "",
                    _bubble(S.streaming, False, "chat-streaming"),
                    rx.hstack(
                        rx.spinner(size="2"), rx.text("Thinking…", size="2"), data_testid="chat-thinking"
                    ),
                ),
            ),
            spacing="3",
            width="100%",
            min_height="20rem",
            id="chat-messages",
        ),
        rx.hstack(
            rx.text_area(
                value=S.draft,
                on_change=S.set_draft,
                placeholder="Your message",
                rows="2",
                width="100%",
                id="chat-input",
                disabled=S.busy,
            ),
            rx.button("Send", on_click=S.send, disabled=S.busy, id="chat-send"),
            width="100%",
            align="end",
        ),
        spacing="4",
        width="100%",
    )


@page(route=routes.CHAT, title="Chat", on_load=S.load)
def chat_page() -> rx.Component:
    """A chat with a workflow (its chat trigger)."""
    return rx.cond(
        S.not_found,
        rx.vstack(
            page_header("Chat", "This chat does not exist, or it is paused."),
            rx.link("Back to the workflows", href=routes.WORKFLOWS),
            id="chat-not-found",
        ),
        rx.vstack(
            page_header(
                S.title,
                "Each conversation keeps its context across messages.",
                rx.button(
                    rx.icon("plus", size=16),
                    "New conversation",
                    on_click=S.new_conversation,
                    variant="soft",
                    id="chat-new",
                ),  # fmt: skip
            ),
            error_callout(S.error),
            rx.hstack(
                rx.vstack(
                    rx.text("My conversations", size="1", weight="medium", color=rx.color("gray", 11)),
                    rx.foreach(S.sessions, _session),
                    width="14rem",
                    min_width="14rem",
                    spacing="1",
                    id="chat-sessions",
                ),
                rx.card(_conversation(), width="100%", padding="1rem"),
                align="start",
                spacing="4",
                width="100%",
            ),
            width="100%",
        ),
    )
