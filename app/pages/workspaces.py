"""The Workspaces page (workspace admins): who belongs to this workspace with which role; instance
admins also see every workspace and create new ones."""

from __future__ import annotations

from typing import Any

import reflex as rx

from app import routes
from app.layout import error_callout, page, page_header
from app.pages.workspaces_state import ROLE_CHOICES, MemberView, WorkspaceView
from app.pages.workspaces_state import WorkspacesState as S
from components.data_table import data_table
from components.labels import field_label, label_id, labelled_select


def _member_row(m: MemberView) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(rx.text(m.email, size="2"), rx.text(m.name, size="1", color=rx.color("gray", 11)))
        ),
        rx.table.cell(rx.badge(m.role, variant="soft")),
        rx.table.cell(
            rx.select(
                ROLE_CHOICES,
                value=m.choice,
                on_change=lambda v: S.set_role(m.user_id, v),
                size="1",
                aria_label="Role in this workspace",
            )  # fmt: skip
        ),
        rx.table.cell(
            rx.button("Remove", size="1", variant="soft", color_scheme="red", on_click=S.remove(m.user_id))
        ),
        align="center",
        data_testid="member-row",
    )


def _workspace_row(w: WorkspaceView) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(w.name, size="2", weight=rx.cond(w.current, "bold", "regular"))),
        rx.table.cell(rx.code(w.slug, size="1", variant="ghost")),
        rx.table.cell(rx.cond(w.current, rx.badge("current", variant="soft", color_scheme="green"))),
        data_testid="workspace-row",
    )


def _labelled_input(
    text: str, control_id: str, value: rx.Var[str], on_change: Any, placeholder: str
) -> list[rx.Component]:
    """A field_label and the text input it names."""
    return [
        field_label(text, control_id),
        rx.input(value=value, on_change=on_change, placeholder=placeholder, id=control_id,
                 custom_attrs={"aria-labelledby": label_id(control_id)}),
    ]  # fmt: skip


def _add_member() -> rx.Component:
    return rx.hstack(
        *_labelled_input(
            "E-mail", "new-member-email", S.new_member_email, S.set_new_member_email, "someone@example.com"
        ),
        *labelled_select("Role", "new-member-role", ROLE_CHOICES, S.new_member_role, S.set_new_member_role),
        rx.button("Add member", on_click=S.add_member, id="add-member"),
        align="center",
        margin_bottom="1rem",
    )


def _instance() -> rx.Component:
    return rx.cond(
        S.is_instance_admin,
        rx.vstack(
            rx.heading("All workspaces", size="4", margin_top="2rem"),
            rx.hstack(
                *_labelled_input("Short name", "new-workspace-slug", S.new_slug, S.set_new_slug, "team-a"),
                *_labelled_input("Name", "new-workspace-name", S.new_name, S.set_new_name, "Team A"),
                rx.button("Create workspace", on_click=S.create_workspace, id="create-workspace"),
                align="center",
            ),
            data_table("workspaces-table", ["Name", "Short name", ""], S.all_workspaces, _workspace_row),
            width="100%",
            align="start",
        ),
    )


@page(route=routes.WORKSPACES, title="Workspaces", on_load=S.load)
def workspaces_page() -> rx.Component:
    """The current workspace's members with their roles; instance admins' list of workspaces."""
    return rx.box(
        page_header(
            "Workspaces",
            "Workflows, runs, secrets, keys, agents and knowledge belong to one workspace; "
            "its members see them with the role they have there.",
        ),
        error_callout(S.error),
        rx.heading(S.workspace_name, size="4", margin_bottom="0.5rem", id="members-of"),
        _add_member(),
        data_table("members-table", ["Member", "Role here", "Change", ""], S.members, _member_row),
        _instance(),
        width="100%",
    )
