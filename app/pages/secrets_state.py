"""State of the Secrets page (admins): the secrets with bindings, provenance and usage; create,
rotate, delete.

A value arrives once, in the submitted form's data, goes to the encrypted store and is never
assigned to a state variable, so it never travels back over the socket or sits in Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import secret_admin
from app.auth.guard import caller_of, requires
from app.pages.formatting import format_time
from app.pages.page_reads import reading
from app.pages.workspace_scope import current_workspace
from engine import secrets
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.roles import Role

log = logging.getLogger(__name__)


@dataclass
class SecretView:
    """One secret as the table shows it (never its value)."""

    name: str
    description: str
    destinations: str
    node_types: str
    created: str
    rotated: str
    used_by: str
    source: str
    env: str


def _lines(text: str) -> list[str]:
    """Entries typed one per line or separated by commas."""
    return [e.strip() for e in text.replace(",", "\n").splitlines() if e.strip()]


def _view(row: secret_admin.SecretRow) -> SecretView:
    created = f"{row.created_by or '—'} · {format_time(row.created_at)}" if row.created_at else "—"
    rotated = f"{row.rotated_by or '—'} · {format_time(row.rotated_at)}" if row.rotated_at else "never"
    return SecretView(
        name=row.name, description=row.description,
        destinations=", ".join(row.allowed_destinations) or "nowhere (no network destination)",
        node_types=", ".join(row.allowed_node_types) or "any", created=created, rotated=rotated,
        used_by=", ".join(w.name for w in row.used_by) or "—", source=row.source, env=row.env,
    )  # fmt: skip


class SecretsState(rx.State):
    """The secrets table and the open dialog; no value is ever held here."""

    rows: list[SecretView] = []
    loaded: bool = False
    error: str = ""
    create_open: bool = False
    rotate_open: bool = False
    rotate_name: str = ""
    rotate_destinations: str = ""
    rotate_node_types: str = ""
    rotate_description: str = ""
    delete_open: bool = False
    delete_name: str = ""

    def _workspace(self) -> str:
        return current_workspace(self)

    def _refresh(self) -> None:
        with reading(self, "secrets", rows=[]):
            self.rows = [_view(r) for r in secret_admin.list_rows(self._workspace())]

    @rx.event
    @requires(Role.ADMIN)
    def load(self) -> None:
        """List the secrets (on page load)."""
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_create_open(self, value: bool) -> None:
        self.create_open = value

    @rx.event
    @requires(Role.ADMIN)
    def create(self, form: dict[str, Any]) -> EventSpec | None:
        """Store a new secret from the dialog's form; the value goes to the store, not to state."""
        principal = caller_of(self)
        try:
            secret_admin.create(
                principal.actor, str(form.get("name", "")).strip(), str(form.get("value", "")),
                description=str(form.get("description", "")).strip(),
                allowed_destinations=_lines(str(form.get("allowed_destinations", ""))),
                allowed_node_types=_lines(str(form.get("allowed_node_types", ""))),
                workspace_id=self._workspace(),
            )  # fmt: skip
        except DB_ERRORS as exc:  # SecretsError is a FlowloomError: its text names the field
            return rx.toast.error(describe_db_error(exc))
        self.create_open = False
        self._refresh()
        return rx.toast.success("Secret stored")

    @rx.event
    @requires(Role.ADMIN)
    def open_rotate(self, name: str) -> None:
        """Open the rotate dialog for `name`, filled with its current bindings."""
        rows = secret_admin.list_rows(self._workspace())
        row = next((r for r in rows if r.name == name and r.source == "store"), None)
        if row is None:
            return
        self.rotate_name, self.rotate_description = row.name, row.description
        self.rotate_destinations = "\n".join(row.allowed_destinations)
        self.rotate_node_types = "\n".join(row.allowed_node_types)
        self.rotate_open = True

    @rx.event
    @requires(Role.ADMIN)
    def set_rotate_open(self, value: bool) -> None:
        self.rotate_open = value

    @rx.event
    @requires(Role.ADMIN)
    def rotate(self, form: dict[str, Any]) -> EventSpec | None:
        """Rotate the value (when one was typed) and save the bindings from the dialog's form."""
        principal = caller_of(self)
        value = str(form.get("value", ""))
        try:
            changed = secret_admin.update(
                principal.actor, self.rotate_name, value=value or None,
                description=str(form.get("description", "")).strip(),
                allowed_destinations=_lines(str(form.get("allowed_destinations", ""))),
                allowed_node_types=_lines(str(form.get("allowed_node_types", ""))),
                workspace_id=self._workspace(),
            )  # fmt: skip
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.rotate_open = False
        self._refresh()
        if changed is None:
            return rx.toast.error(f"No secret {self.rotate_name!r}")
        return rx.toast.success("Secret rotated" if value else "Bindings saved")

    @rx.event
    @requires(Role.ADMIN)
    def open_delete(self, name: str) -> None:
        self.delete_name, self.delete_open = name, True

    @rx.event
    @requires(Role.ADMIN)
    def set_delete_open(self, value: bool) -> None:
        self.delete_open = value

    @rx.event
    @requires(Role.ADMIN)
    def delete(self) -> EventSpec | None:
        """Delete the secret named in the confirmation dialog."""
        principal = caller_of(self)
        try:
            deleted = secret_admin.delete(principal.actor, self.delete_name, workspace_id=self._workspace())
        except (secrets.SecretsError, *DB_ERRORS) as exc:
            return rx.toast.error(describe_db_error(exc))
        self.delete_open = False
        self._refresh()
        return rx.toast.success("Secret deleted") if deleted else rx.toast.error("No such secret")
