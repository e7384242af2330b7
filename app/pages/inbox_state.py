"""State of the Inbox page: the approvals the signed-in person may decide, one opened to decide it,
and the history of decided ones. Every handler checks the caller's role on the server, and the
decision itself goes through engine.approvals (approver list, quorum, deadline, row lock)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role
from app.pages.formatting import format_time, short_id, status_color, time_ago
from engine import approvals, audit
from engine.approvers import Approver, allowed_roles
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import user_message

log = logging.getLogger(__name__)

APPROVALS_SHOWN = 200
HISTORY_SHOWN = 50
DATA_SHOWN_CHARS = 20_000


@dataclass
class ApprovalRow:
    """One approval in a list."""

    id: str
    title: str
    workflow: str
    run: str
    created: str
    created_exact: str
    deadline: str
    overdue: bool
    status: str = "pending"
    color: str = "amber"
    decided_by: str = ""
    votes: str = ""
    voted: bool = False
    workspace: str = ""  # the name of the workspace of its run (the Inbox spans all of the caller's)


@dataclass
class FieldRow:
    """One form field of the opened approval."""

    name: str
    label: str
    kind: str
    required: bool
    options: list[str] = field(default_factory=list)


@dataclass
class ActionRow:
    """One decision button."""

    name: str
    label: str
    color: str


@dataclass
class Detail:
    """The opened approval: what to review and how to answer."""

    id: str = ""
    title: str = ""
    body: str = ""
    workflow: str = ""
    run_id: str = ""
    data: str = ""
    deadline: str = ""
    quorum: str = ""
    approvers: str = ""


def _row(
    approval: approvals.ApprovalSummary, now: datetime, *, pending: bool, names: dict[str, str] | None = None
) -> ApprovalRow:
    deadline, quorum = approval.deadline, int((approval.request or {}).get("quorum") or 1)
    return ApprovalRow(
        id=str(approval.id),
        title=approval.title or f'Approval at node "{approval.node_id}"',
        workflow=approval.workflow or "(unsaved workflow)",
        run=short_id(approval.run_id),
        created=time_ago(approval.created_at, now),
        created_exact=format_time(approval.created_at),
        deadline=time_ago(deadline, now) if deadline else "No deadline",
        overdue=deadline is not None and deadline < now,
        status=approval.status,
        color=status_color(approval.status),
        decided_by=approval.decided_by or "",
        votes=f"{approval.votes} of {quorum}" if pending and quorum > 1 else "",
        voted=approval.voted if pending else False,
        workspace=(names or {}).get(str(approval.workspace_id), ""),
    )


def _button_color(action: str) -> str:
    return {"approved": "green", "rejected": "red"}.get(action, "gray")


def _default_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class InboxState(rx.State):
    """The approvals waiting for me, the one I opened, and the decided ones."""

    rows: list[ApprovalRow] = []
    history: list[ApprovalRow] = []
    search: str = ""
    loaded: bool = False
    error: str = ""
    detail: Detail = Detail()
    fields: list[FieldRow] = []
    actions: list[ActionRow] = []
    form_values: dict[str, str] = {}
    comment: str = ""

    @rx.var
    def has_approvals(self) -> bool:
        return len(self.rows) > 0

    @rx.var
    def is_open(self) -> bool:
        return self.detail.id != ""

    def _approver(self) -> Approver | None:
        principal = caller_of(self)
        if principal is None:
            return None
        return principal.approver

    def _workspaces(self) -> dict[str, str]:
        # The Inbox spans every workspace the caller is a member of (their role in each applies).
        principal = caller_of(self)
        return principal.workspace_roles if principal is not None else {}

    def _reload(self) -> None:
        approver = self._approver()
        if approver is None:
            self.rows, self.history = [], []
            return
        now = datetime.now(UTC)
        workspaces = self._workspaces()
        pending = approvals.list_decidable(
            approver, "pending", APPROVALS_SHOWN, search=self.search, order="oldest", workspaces=workspaces
        )
        decided = approvals.list_decidable(
            approver, approvals.CLOSED, HISTORY_SHOWN, search=self.search, order="decided", include_voted=True,
            workspaces=workspaces,
        )  # fmt: skip
        principal = caller_of(self)
        names = {m.workspace_id: m.name for m in principal.workspaces} if principal is not None else {}
        self.rows = [_row(a, now, pending=True, names=names) for a in pending]
        self.history = [_row(a, now, pending=False, names=names) for a in decided]
        self.error = ""

    def _refresh(self) -> None:
        try:
            self._reload()
        except DB_ERRORS as exc:
            log.warning("loading approvals failed: %s", exc)
            self.rows, self.history, self.error = [], [], describe_db_error(exc)
        self.loaded = True

    @rx.event
    @requires(Role.OPERATOR)
    def load(self) -> None:
        """Fetch the approvals I may decide and the decided ones (on page load)."""
        self.detail, self.fields, self.actions = Detail(), [], []
        self._refresh()

    @rx.event
    @requires(Role.OPERATOR)
    def set_search(self, value: str) -> None:
        """Filter by title or workflow name."""
        self.search = value[:200]
        self._refresh()

    @rx.event
    @requires(Role.OPERATOR)
    def open(self, approval_id: str) -> EventSpec | None:
        """Show one approval with its data and form (only one I may decide)."""
        approver = self._approver()
        if approver is None:
            return rx.toast.error("That approval is not yours to decide.")
        try:
            found = approvals.get_decidable(approval_id, approver, workspaces=self._workspaces())
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        if found is None:
            return rx.toast.error("That approval is not yours to decide.")
        self._show(found)
        return None

    def _show(self, approval: approvals.ApprovalSummary) -> None:
        request = approval.request or {}
        data = json.dumps(request.get("data"), indent=2, default=str, ensure_ascii=False)
        approvers = request.get("approvers") or {}
        who = [*approvers.get("users", []), *(f"role {r}" for r in allowed_roles(request))]
        self.detail = Detail(
            id=str(approval.id),
            title=approval.title or approval.node_id,
            body=approval.body or "",
            workflow=approval.workflow or "(unsaved workflow)",
            run_id=str(approval.run_id),
            data=data[:DATA_SHOWN_CHARS],
            deadline=format_time(approval.deadline) if approval.deadline else "No deadline",
            quorum=str(request.get("quorum") or 1),
            approvers=", ".join(who) or "any operator",
        )
        self.fields = [
            FieldRow(
                f["name"],
                f.get("label") or f["name"],
                f.get("kind", "text"),
                bool(f.get("required")),
                list(f.get("options") or []),
            )  # fmt: skip
            for f in request.get("fields") or []
        ]
        self.form_values = {f["name"]: _default_text(f.get("default")) for f in request.get("fields") or []}
        self.actions = [
            ActionRow(a["name"], a["label"], _button_color(a["name"])) for a in request.get("actions") or []
        ]
        self.comment = ""

    @rx.event
    @requires(Role.OPERATOR)
    def close(self) -> None:
        self.detail, self.fields, self.actions = Detail(), [], []

    @rx.event
    @requires(Role.OPERATOR)
    def set_field(self, name: str, value: str | bool) -> None:
        """Keep what the approver typed (checked on the server when they decide)."""
        if name in self.form_values:
            self.form_values[name] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value)[:100_000]
            )

    @rx.event
    @requires(Role.OPERATOR)
    def set_comment(self, value: str) -> None:
        self.comment = value[:5000]

    @rx.event
    @requires(Role.OPERATOR)
    def decide(self, action: str) -> EventSpec | None:
        """Vote `action` with the form and comment; the run resumes once the quorum agrees."""
        approver = self._approver()
        if approver is None or not self.detail.id:
            return rx.toast.error("Open an approval first.")
        try:
            with audit.acting_as(audit_who(self)):
                outcome = approvals.decide(
                    self.detail.id, approver, action=action, form=dict(self.form_values), comment=self.comment,
                    workspaces=self._workspaces(),
                )  # fmt: skip
        except approvals.ApprovalError as exc:
            self._refresh()
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.detail, self.fields, self.actions = Detail(), [], []
        self._refresh()
        if outcome.decided:
            return rx.toast.success(f"Decided: {action}. The run continues.")
        return rx.toast.info(f"Your vote is in ({outcome.votes} of {outcome.quorum} needed).")
