"""The Dead letters page (admins): events and trigger messages that could not be handled, with a Replay button."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.dead_letters_state import SOURCE_FILTERS, STATE_FILTERS, DeadLetterView
from app.pages.dead_letters_state import DeadLettersState as S
from components.data_table import data_table
from components.labels import labelled_select
from components.pager import pager


def _row(row: DeadLetterView) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(row.source, color_scheme=row.color, variant="soft")),
        rx.table.cell(
            rx.vstack(
                rx.text(row.error, size="2", color=rx.color("red", 11), data_testid="dead-letter-error"),
                rx.text(row.origin, size="1", color=rx.color("gray", 11)),
                rx.code(
                    row.preview,
                    size="1",
                    variant="ghost",
                    color_scheme="gray",
                    white_space="pre-wrap",
                    word_break="break-all",
                    data_testid="dead-letter-preview",
                ),  # fmt: skip
                spacing="1",
                align="start",
            )
        ),
        rx.table.cell(rx.tooltip(rx.text(row.created, size="2"), content=row.created_exact)),
        rx.table.cell(
            rx.vstack(
                rx.text(row.replayed, size="1"),
                rx.cond(row.replay_run != "", rx.code(row.replay_run, size="1", variant="ghost")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.button(
                rx.icon("rotate-ccw", size=14),
                "Replay",
                size="1",
                variant="soft",
                disabled=~row.can_replay,
                on_click=S.replay(row.id),
                data_testid="dead-letter-replay",
            )  # fmt: skip
        ),
        align="center",
        data_testid="dead-letter-row",
        data_dead_letter_id=row.id,
    )


def _table() -> rx.Component:
    columns = [
        ("Source", "6rem"),
        "Error, origin and payload",
        ("When", "8rem"),
        ("Replayed", "10rem"),
        ("", "7rem"),
    ]
    return data_table("dead-letters-table", columns, S.rows, _row)


def _filters() -> rx.Component:
    return rx.hstack(
        *labelled_select("Source", "dead-letter-source", SOURCE_FILTERS, S.source, S.set_source),
        *labelled_select(
            "Replay", "dead-letter-status", STATE_FILTERS, S.status, S.set_status, margin_left="0.75rem"
        ),
        rx.spacer(),
        *pager(S.range_label, S.has_previous, S.has_next, S.previous_page, S.next_page),
        align="center",
        width="100%",
        margin_bottom="1rem",
    )


@page(route=routes.DEAD_LETTERS, title="Dead letters", on_load=S.load)
def dead_letters_page() -> rx.Component:
    """Dead letters, newest first, with their error, source, time, a payload preview and a Replay button."""
    return rx.box(
        page_header(
            "Dead letters",
            "Events the relay could not publish and trigger messages that could not start a run.",
        ),
        error_callout(S.error),
        _filters(),
        listing(
            S.loaded,
            S.rows.length() > 0,
            _table(),
            empty_state(
                "dead-letters-empty",
                "mail-check",
                "No dead letters",
                "Nothing here matches the filters: every event and message was handled.",
            ),
            spinner=True,
        ),
        width="100%",
    )
