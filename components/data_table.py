"""The app's tables: a header row of columns (each with an optional width) over one row per item,
on a card where a page lists things (agents, runs, secrets, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import reflex as rx

# A column: its header (text, or a component such as screen-reader-only text), or (header, width).
Column = str | rx.Component | tuple[str | rx.Component, str]


def header_cell(column: Column) -> rx.Component:
    """One column's header cell, with its width when the column gives one."""
    if isinstance(column, tuple):
        label, width = column
        return rx.table.column_header_cell(label, width=width)
    return rx.table.column_header_cell(column)


def table(columns: Sequence[Column], body: rx.Component, **props: Any) -> rx.Component:
    """A borderless table: the header of `columns` over `body` (usually an `rx.foreach` of rows)."""
    return rx.table.root(
        rx.table.header(rx.table.row(*[header_cell(c) for c in columns])),
        rx.table.body(body),
        **{"variant": "ghost", "width": "100%", **props},
    )


def data_table(
    table_id: str, columns: Sequence[Column], rows: rx.Var[list[Any]], row: Callable[[Any], rx.Component]
) -> rx.Component:
    """A page's list on a card: the header of `columns`, then `row(item)` for each item of `rows`."""
    return rx.card(table(columns, rx.foreach(rows, row), id=table_id), padding="0.5rem", width="100%")
