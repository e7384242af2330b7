"""The Workflows page's dialogs: create, rename, confirm delete and share."""

from __future__ import annotations

import reflex as rx

from app.pages.workflows_state import ShareRow
from app.pages.workflows_state import WorkflowsState as S
from components.dialogs import confirm_dialog, dialog_buttons
from components.labels import field_label


def create_dialog() -> rx.Component:
    """Name and description of a new workflow."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("New workflow"),
            rx.dialog.description(
                "Give it a name; you can build the flow next.", size="2", margin_bottom="1rem"
            ),
            rx.form(
                rx.vstack(
                    field_label("Name", "new-workflow-name"),
                    rx.input(
                        name="name",
                        placeholder="e.g. Triage support tickets",
                        required=True,
                        max_length=200,
                        id="new-workflow-name",
                        width="100%",
                    ),
                    field_label("Description", "new-workflow-description", margin_top="0.5rem"),
                    rx.text_area(
                        name="description",
                        placeholder="What does it do? (optional)",
                        max_length=2000,
                        id="new-workflow-description",
                        width="100%",
                    ),
                    dialog_buttons(
                        rx.button("Create", type="submit", id="create-workflow-submit"),
                        in_form=True,
                        width="100%",
                    ),
                    spacing="1",
                ),
                on_submit=S.create,
                reset_on_submit=True,
            ),
            max_width="28rem",
        ),
        open=S.create_open,
        on_open_change=S.set_create_open,
    )


def rename_dialog() -> rx.Component:
    """A new name for the chosen workflow."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Rename workflow"),
            rx.dialog.description(
                "A new name for the workflow; its versions and runs keep theirs.", size="2"
            ),
            field_label("New name", "rename-workflow-name", margin_top="1rem", display="block"),
            rx.input(
                value=S.rename_name,
                on_change=S.set_rename_name,
                max_length=200,
                id="rename-workflow-name",
                width="100%",
                margin_top="0.25rem",
                margin_bottom="1rem",
            ),
            dialog_buttons(rx.button("Save", on_click=S.rename, id="rename-workflow-submit"), margin_top="0"),
            max_width="26rem",
        ),
        open=S.rename_open,
        on_open_change=S.set_rename_open,
    )


def delete_dialog() -> rx.Component:
    """Confirmation before a workflow and its runs are deleted."""
    return confirm_dialog(
        "Delete workflow",
        rx.text(
            "Delete ",
            rx.text.strong(S.delete_name),
            " with all its versions and runs? This cannot be undone.",
        ),
        "Delete",
        S.delete,
        open=S.delete_open,
        on_open_change=S.set_delete_open,
        confirm_id="delete-workflow-confirm",
    )


def _share_line(row: ShareRow) -> rx.Component:
    return rx.hstack(
        rx.icon(rx.cond(row.kind == "user", "user", "users"), size=14, color=rx.color("gray", 11)),
        rx.vstack(
            rx.text(row.target, size="2", weight="medium"),
            rx.text(row.target_name, " · granted ", row.granted, size="1", color=rx.color("gray", 11)),
            spacing="0",
            flex="1",
        ),
        rx.badge(
            row.permission, variant="soft", color_scheme=rx.cond(row.permission == "edit", "orange", "gray")
        ),
        rx.button(
            "Revoke",
            size="1",
            variant="soft",
            color_scheme="red",
            on_click=S.revoke_share(row.id),
            aria_label="Revoke the share with " + row.target,
            data_testid="share-revoke",
        ),
        align="center",
        width="100%",
        data_testid="share-row",
    )


def share_dialog() -> rx.Component:
    """Share the chosen workflow with a user (by e-mail) or a workspace, to read or edit; list and revoke."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Share ", S.share_name),
            rx.dialog.description(
                "Read: they see it, its versions and diffs, and can export it. Edit: they can also save "
                "versions and rename it. Nobody it is shared with can delete, share or run it.",
                size="2",
                margin_bottom="1rem",
            ),
            rx.hstack(
                rx.select(
                    ["user", "workspace"],
                    value=S.share_kind,
                    on_change=S.set_share_kind,
                    aria_label="Share with a user or a workspace",
                    id="share-kind",
                ),
                rx.input(
                    value=S.share_target,
                    on_change=S.set_share_target,
                    placeholder=rx.cond(S.share_kind == "user", "name@example.com", "workspace short name"),
                    aria_label=rx.cond(
                        S.share_kind == "user", "The user's e-mail", "The workspace's short name"
                    ),
                    max_length=320,
                    id="share-target",
                    flex="1",
                ),
                rx.select(
                    ["read", "edit"],
                    value=S.share_permission,
                    on_change=S.set_share_permission,
                    aria_label="What they may do",
                    id="share-permission",
                ),
                rx.button("Share", on_click=S.grant_share, id="share-submit"),
                width="100%",
                align="center",
            ),
            rx.heading("Shared with", size="2", margin_top="1.25rem", margin_bottom="0.5rem"),
            rx.cond(
                S.share_rows.length() > 0,  # type: ignore[attr-defined]
                rx.vstack(rx.foreach(S.share_rows, _share_line), spacing="2", width="100%", id="share-list"),
                rx.text(
                    "Nobody outside this workspace yet.",
                    size="2",
                    color=rx.color("gray", 11),
                    id="share-none",
                ),
            ),
            dialog_buttons(close="Done"),
            max_width="36rem",
        ),
        open=S.share_open,
        on_open_change=S.set_share_open,
    )
