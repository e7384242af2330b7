"""The Workflows page's dialogs: create, rename and confirm delete."""

from __future__ import annotations

import reflex as rx

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
