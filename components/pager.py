"""Previous/next paging of a page's list: "21–40 of 57" and the two buttons."""

from __future__ import annotations

from typing import Any

import reflex as rx


def page_range(offset: int, total: int, size: int) -> str:
    """What the pager says: "none", or the first and last shown of the total ("21–40 of 57")."""
    if total <= 0:
        return "none"
    return f"{offset + 1}–{min(offset + size, total)} of {total}"


def pager(
    label: rx.Var[str],
    has_previous: rx.Var[bool],
    has_next: rx.Var[bool],
    on_previous: Any,
    on_next: Any,
    **label_props: Any,
) -> list[rx.Component]:
    """The range text and the two buttons, to put at the end of a page's toolbar."""
    return [
        rx.text(label, size="2", color=rx.color("gray", 11), **label_props),
        rx.button(rx.icon("chevron-left", size=16), variant="soft", size="1", disabled=~has_previous,
                  on_click=on_previous, aria_label="Previous page"),
        rx.button(rx.icon("chevron-right", size=16), variant="soft", size="1", disabled=~has_next,
                  on_click=on_next, aria_label="Next page"),
    ]  # fmt: skip
