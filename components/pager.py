"""Previous/next paging of a page's list: "21–40 of 57" and the two buttons, and the State mixin
that pages the list (its offset, total and the moves between pages)."""

from __future__ import annotations

from typing import Any, ClassVar

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


class PagedState(rx.State, mixin=True):
    """The paging of a page State's list, `page_size` rows at a time from `offset` of `total`.

    The page's State sets `page_size` and `_refresh` (read the list again at `offset`); its access
    to `next_page` and `previous_page` is in app.auth.policy.HANDLER_POLICY (`Class.method`).
    """

    page_size: ClassVar[int] = 25
    total: int = 0
    offset: int = 0

    @rx.var
    def range_label(self) -> str:
        return page_range(self.offset, self.total, self.page_size)

    @rx.var
    def has_previous(self) -> bool:
        return self.offset > 0

    @rx.var
    def has_next(self) -> bool:
        return self.offset + self.page_size < self.total

    def _refresh(self) -> None:
        raise NotImplementedError("a paged State reads its list in _refresh")

    @rx.event
    def next_page(self) -> None:
        """Show the next page (if there is one)."""
        if self.offset + self.page_size < self.total:
            self.offset += self.page_size
        self._refresh()

    @rx.event
    def previous_page(self) -> None:
        """Show the previous page (the first stays the first)."""
        self.offset = max(0, self.offset - self.page_size)
        self._refresh()
