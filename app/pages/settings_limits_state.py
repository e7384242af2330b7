"""State of the Settings page's "Limits and retention" section (admins of the current workspace).

It shows the workspace's concurrency limit, hourly quota and retention rules, the compliance block
they map from, and what the next prune removes (engine.retention.preview); saving is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import reflex as rx

from app import db
from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role, allows
from app.pages.formatting import format_time
from engine import dispatch, retention, workspace_limits
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from models.db import get_engine

log = logging.getLogger(__name__)


@dataclass
class PruneRow:
    """A run the next prune deletes, and why."""

    id: str
    workflow: str
    status: str
    finished: str
    reason: str


def _number(text: str) -> int | None | str:
    """A form field as a whole number, None when empty, or the text back when it is neither."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


class LimitsState(rx.State):
    """The current workspace's limits and retention; only admins see or change them."""

    is_admin: bool = False
    max_concurrent_runs: str = ""
    runs_per_hour: str = ""
    retention_days: str = ""
    retention_keep_last: str = ""
    step_data_retention_days: str = ""
    compliance_text: str = ""
    effective_retention: str = ""
    prune_runs: int = 0
    prune_by_age: int = 0
    prune_by_count: int = 0
    prune_steps: int = 0
    prune_rows: list[PruneRow] = []
    limits_error: str = ""
    limits_saved: str = ""

    def _load(self) -> None:
        principal = caller_of(self)
        self.is_admin = principal is not None and allows(principal.role, Role.ADMIN)
        if principal is None or not self.is_admin or not principal.workspace_id:
            return
        with get_engine(db.database_url()).connect() as conn:
            limits = workspace_limits.get_limits(conn, principal.workspace_id)
            shown = retention.preview(conn, principal.workspace_id)
        for name in workspace_limits.FIELDS:
            value = getattr(limits, name)
            setattr(self, name, "" if value is None else str(value))
        block = workspace_limits.compliance()
        self.compliance_text = (
            f"data_retention_days {block.data_retention_days or 'unset'}, audit_log_level "
            f"{block.audit_log_level or 'unset'}, encryption_at_rest {block.encryption_at_rest}, "
            f"encryption_in_transit {block.encryption_in_transit}"
        )
        days = workspace_limits.effective_retention_days(limits)
        self.effective_retention = f"{days} days" if days else "forever"
        self.prune_runs, self.prune_steps = shown.runs, shown.steps_cleared
        self.prune_by_age, self.prune_by_count = shown.runs_by_age, shown.runs_by_count
        self.prune_rows = [
            PruneRow(r.id, r.workflow or "(unsaved definition)", r.status,
                     format_time(r.finished_at) if r.finished_at else "",
                     " and ".join(w for w, on in (("age", r.by_age), ("keep last", r.by_count)) if on))
            for r in shown.examples
        ]  # fmt: skip

    @rx.event
    @requires(Role.VIEWER)
    def load_limits(self) -> None:
        """Fetch the workspace's limits and what the next prune removes (admins only)."""
        self.limits_saved = ""
        try:
            self._load()
            self.limits_error = ""
        except DB_ERRORS as exc:
            log.warning("loading limits failed: %s", exc)
            self.limits_error = describe_db_error(exc)

    @rx.event
    @requires(Role.ADMIN)
    def set_limit_field(self, name: str, value: str) -> None:
        if name in workspace_limits.FIELDS:
            setattr(self, name, value[:10])

    @rx.event
    @requires(Role.ADMIN)
    def save_limits(self) -> None:
        """Store the form's limits (audited); a looser limit admits waiting runs at once."""
        principal = caller_of(self)
        if principal is None or not principal.workspace_id:
            return
        values = {name: _number(getattr(self, name)) for name in workspace_limits.FIELDS}
        try:
            with get_engine(db.database_url()).begin() as conn:
                sent = workspace_limits.set_limits(
                    conn, principal.workspace_id, workspace_limits.WorkspaceLimits(**values),  # type: ignore[arg-type]
                    who=audit_who(self, principal),
                )  # fmt: skip
            dispatch.send(sent)
            self._load()
            self.limits_error, self.limits_saved = "", "Saved."
        except FlowloomError as exc:
            self.limits_error = user_message(exc)
        except DB_ERRORS as exc:
            self.limits_error = describe_db_error(exc)
