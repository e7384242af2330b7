"""The Runs page: every run, newest first, filtered, searched and paged; a row opens its run."""

from __future__ import annotations

from typing import Any

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.run_filters import ANY
from app.pages.runs_state import RANGE_OPTIONS, STATUS_OPTIONS, VIA_OPTIONS, Option, RunRow
from app.pages.runs_state import RunsState as S
from components.data_table import data_table


def _row(row: RunRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(row.status, color_scheme=row.color, variant="soft", radius="full")),
        rx.table.cell(
            rx.hstack(
                rx.text(row.workflow, weight="medium", size="2"),
                rx.cond(row.version != "", rx.badge(row.version, variant="outline", color_scheme="gray", size="1")),
                align="center",
                spacing="2",
            )
        ),
        rx.table.cell(rx.text(row.started_by, size="2", data_testid="run-started-by")),
        rx.table.cell(
            rx.badge(row.started_via, variant="outline", color_scheme="gray", data_testid="run-started-via")
        ),
        rx.table.cell(
            # A real link: reachable by keyboard, opens in a new tab with a middle click.
            rx.link(rx.code(row.short_id, variant="ghost"), href=row.href, data_testid="run-link",
                    on_click=rx.stop_propagation, aria_label="Open run " + row.short_id)
        ),
        rx.table.cell(rx.tooltip(rx.text(row.created, size="2"), content=row.created_exact)),
        rx.table.cell(
            rx.tooltip(
                rx.text(row.finished, size="2", color=rx.color("gray", 11)), content=row.finished_exact
            )
        ),
        align="center",
        cursor="pointer",
        _hover={"background": rx.color("gray", 2)},
        on_click=S.open_run(row.id),
        data_testid="run-row",
        data_run_id=row.id,
    )  # fmt: skip


def _table() -> rx.Component:
    columns = [
        ("Status", "8rem"), "Workflow", "Started by", ("From", "6rem"), ("Run", "7rem"), ("Created", "9rem"),
        ("Finished", "9rem"),
    ]  # fmt: skip
    return data_table("runs-table", columns, S.rows, _row)


def _option(option: Option) -> rx.Component:
    return rx.select.item(option.label, value=option.value)


def _select(name: str, value: rx.Var[str], first: str, options: Any, label: str, width: str) -> rx.Component:
    """A filter's select: `first` is the "any" choice, then `options` (a list var or a Python list)."""
    items = (
        [_option(o) for o in options if o.value != ANY]
        if isinstance(options, list)
        else [rx.foreach(options, _option)]
    )
    return rx.select.root(
        rx.select.trigger(id=f"runs-filter-{name}", aria_label=label, width=width),
        rx.select.content(rx.select.item(first, value=ANY), *items),
        value=value,
        on_change=lambda v: S.set_filter(name, v),
        size="2",
    )


def _dates() -> rx.Component:
    return rx.hstack(
        rx.el.label(
            rx.text("From", size="1", color=rx.color("gray", 11)),
            rx.input(type="date", value=S.f_from, on_change=lambda v: S.set_filter("date_from", v),
                     id="runs-filter-from", size="2"),
        ),
        rx.el.label(
            rx.text("To", size="1", color=rx.color("gray", 11)),
            rx.input(type="date", value=S.f_to, on_change=lambda v: S.set_filter("date_to", v),
                     id="runs-filter-to", size="2"),
        ),
        spacing="2",
        align="end",
    )  # fmt: skip


def _filters() -> rx.Component:
    return rx.flex(
        rx.input(
            rx.input.slot(rx.icon("search", size=16)),
            placeholder="Run id or workflow name",
            value=S.search,
            on_change=S.set_search,
            debounce_timeout=300,
            id="runs-search",
            aria_label="Search runs by run id or workflow name",
            width="16rem",
        ),
        _select("workflow", S.f_workflow, "All workflows", S.workflow_options, "Workflow", "12rem"),
        _select("status", S.f_status, "Any status", STATUS_OPTIONS, "Status", "9rem"),
        _select("via", S.f_via, "From anywhere", VIA_OPTIONS, "Started from", "9rem"),
        rx.cond(
            S.trigger_options.length() > 0,
            _select("trigger", S.f_trigger, "Any trigger", S.trigger_options, "Trigger", "11rem"),
        ),
        _select("who", S.f_who, "Anyone", S.who_options, "Started by", "12rem"),
        _select("range", S.f_range, "Any time", RANGE_OPTIONS, "Time range", "10rem"),
        rx.cond(S.f_range == "custom", _dates()),
        rx.cond(
            S.filtered,
            rx.button(rx.icon("x", size=14), "Clear", variant="ghost", color_scheme="gray",
                      on_click=S.clear_filters, id="runs-clear-filters"),
        ),
        wrap="wrap",
        gap="0.5rem",
        align="end",
        width="100%",
        margin_bottom="1rem",
        id="runs-filters",
    )  # fmt: skip


def _pager() -> rx.Component:
    return rx.hstack(
        rx.text(S.page_label, size="2", color=rx.color("gray", 11), id="runs-page-label"),
        rx.spacer(),
        rx.button(rx.icon("chevron-left", size=14), "Newer", variant="soft", color_scheme="gray",
                  disabled=~S.has_newer, on_click=S.newer, id="runs-newer"),
        rx.button("Older", rx.icon("chevron-right", size=14), variant="soft", color_scheme="gray",
                  disabled=~S.has_older, on_click=S.older, id="runs-older"),
        align="center",
        width="100%",
        margin_top="0.75rem",
    )  # fmt: skip


def _nothing() -> rx.Component:
    return rx.cond(
        S.filtered | S.has_newer,
        empty_state(
            "runs-no-match",
            "search-x",
            "No runs match",
            "Nothing matches these filters; widen them or clear them.",
            rx.button("Clear filters", variant="soft", on_click=S.clear_filters),
        ),
        empty_state(
            "runs-empty-state",
            "play",
            "No runs yet",
            "Runs appear here once a workflow starts, from the editor, the API, a schedule or the CLI.",
            rx.link(rx.button("Go to workflows", variant="soft"), href=routes.WORKFLOWS),
        ),
    )


@page(route=routes.RUNS, title="Runs", on_load=S.load)
def runs_page() -> rx.Component:
    """Every run, newest first, a page at a time."""
    return rx.box(
        page_header("Runs", "Every run, newest first: filter, search, and open one to see its steps."),
        _filters(),
        error_callout(S.error),
        listing(
            S.loaded,
            S.has_runs,
            rx.fragment(_table(), _pager()),
            rx.cond(S.error == "", _nothing()),
            spinner=True,
        ),
        width="100%",
    )
