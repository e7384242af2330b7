"""The Workflows page: list, search, create, rename, duplicate, share and delete workflows; the ones
shared with the caller carry a badge and only the actions their share allows."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.workflows_dialogs import create_dialog, delete_dialog, rename_dialog, share_dialog
from app.pages.workflows_state import WorkflowRow
from app.pages.workflows_state import WorkflowsState as S
from components.data_table import data_table
from components.labels import screen_reader_text


def _new_button(element_id: str = "new-workflow-button") -> rx.Component:
    return rx.button(
        rx.icon("plus", size=16), "New workflow", on_click=S.set_create_open(True), id=element_id
    )


def _row_menu(row: WorkflowRow) -> rx.Component:
    return rx.dropdown_menu.root(
        rx.dropdown_menu.trigger(
            rx.icon_button(
                rx.icon("ellipsis", size=16),
                variant="ghost",
                color_scheme="gray",
                aria_label="Actions for " + row.name,
                data_testid="workflow-actions",
            ),
        ),
        rx.dropdown_menu.content(
            rx.cond(
                row.permission != "read",
                rx.dropdown_menu.item(
                    rx.icon("pencil", size=14), "Rename", on_click=S.open_rename(row.id, row.name)
                ),
            ),
            # A share never allows copying, sharing on or deleting (engine/shares.py).
            rx.cond(
                row.permission == "",
                rx.fragment(
                    rx.dropdown_menu.item(
                        rx.icon("copy", size=14), "Duplicate", on_click=S.duplicate(row.id)
                    ),
                    rx.dropdown_menu.item(
                        rx.icon("share-2", size=14), "Share…", on_click=S.open_share(row.id, row.name)
                    ),
                    rx.dropdown_menu.separator(),
                    rx.dropdown_menu.item(
                        rx.icon("trash-2", size=14),
                        "Delete",
                        color="red",
                        on_click=S.open_delete(row.id, row.name),
                    ),
                ),
                rx.dropdown_menu.item(rx.icon("info", size=14), "Shared by ", row.owner, disabled=True),
            ),
        ),
    )


def _shared_badge(row: WorkflowRow) -> rx.Component:
    return rx.cond(
        row.permission != "",
        rx.tooltip(
            rx.badge(
                rx.icon("share-2", size=11),
                "Shared with you · ",
                row.permission,
                color_scheme="blue",
                variant="soft",
                size="1",
                data_testid="workflow-shared-badge",
            ),
            content="Shared by " + row.owner,
        ),
    )


def _row(row: WorkflowRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.center(
                    rx.icon("workflow", size=16, color=rx.color("accent", 11)),
                    width="2rem",
                    height="2rem",
                    border_radius="var(--radius-3)",
                    background=rx.color("accent", 3),
                    flex_shrink="0",
                ),
                rx.vstack(
                    rx.hstack(
                        rx.link(
                            rx.text(row.name, weight="medium", size="2", data_testid="workflow-name"),
                            href=routes.workflow_editor(row.id),
                            color=rx.color("gray", 12),
                            data_testid="workflow-open",
                        ),
                        _shared_badge(row),
                        align="center",
                        spacing="2",
                    ),
                    rx.text(
                        rx.cond(row.description != "", row.description, "No description"),
                        size="1",
                        color=rx.color("gray", 11),
                        trim="end",
                        max_width="32rem",
                    ),
                    spacing="0",
                ),
                align="center",
                spacing="3",
            ),
        ),
        rx.table.cell(
            rx.badge(
                row.version, variant="soft", color_scheme=rx.cond(row.version == "Draft", "gray", "violet")
            )
        ),
        rx.table.cell(
            rx.tooltip(rx.text(row.updated, size="2", color=rx.color("gray", 11)), content=row.updated_exact)
        ),
        rx.table.cell(
            rx.hstack(
                # A link that looks like a button (a button inside a link is two controls in one).
                rx.button(
                    rx.link("Open", href=routes.workflow_editor(row.id), underline="none"),
                    as_child=True,
                    size="1",
                    variant="soft",
                    data_testid="workflow-open-button",
                ),
                _row_menu(row),
                justify="end",
                align="center",
            ),
            text_align="right",
        ),
        align="center",
        data_testid="workflow-row",
        data_workflow_id=row.id,
    )


def _table() -> rx.Component:
    columns = [
        "Name",
        ("Latest version", "9rem"),
        ("Updated", "9rem"),
        (screen_reader_text("Actions"), "7rem"),
    ]
    return data_table("workflows-table", columns, S.rows, _row)


def _search() -> rx.Component:
    return rx.input(
        rx.input.slot(rx.icon("search", size=16)),
        placeholder="Search workflows by name",
        value=S.search,
        on_change=S.set_search,
        debounce_timeout=300,
        id="workflow-search",
        aria_label="Search workflows by name",
        data_search_shortcut=True,
        width="20rem",
        margin_bottom="1rem",
    )


def _body() -> rx.Component:
    no_match = empty_state(
        "workflows-no-match", "search-x", "No matching workflows", "No workflow name contains that text."
    )
    nothing_yet = empty_state(
        "workflows-empty-state",
        "workflow",
        "No workflows yet",
        "A workflow connects agents, tools and human approvals into a flow you can run, watch and repeat.",
        _new_button("empty-new-workflow-button"),
        rx.link("or start from a template", href=routes.TEMPLATES, size="2"),
    )
    nothing = rx.cond(S.error == "", rx.cond(S.search != "", no_match, nothing_yet))
    return listing(S.loaded, S.has_workflows, _table(), nothing, spinner=True)


@page(route=routes.WORKFLOWS, title="Workflows", on_load=S.load, aliases=(routes.INDEX,))
def workflows_page() -> rx.Component:
    """The workflow list."""
    return rx.box(
        page_header("Workflows", "Build, version and run your agent workflows.", _new_button()),
        error_callout(S.error),
        rx.cond(S.loaded & (S.has_workflows | (S.search != "")), _search()),
        _body(),
        create_dialog(),
        rename_dialog(),
        delete_dialog(),
        share_dialog(),
        width="100%",
    )
