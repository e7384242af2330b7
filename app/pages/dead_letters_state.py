"""State of the Dead letters page (admins): what could not be handled, filtered and paged; replay one."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import ClassVar

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import caller_of, requires
from app.pages.formatting import format_time, short_id, time_ago
from app.pages.page_reads import reading
from components.pager import PagedState
from engine import dead_letters
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.roles import Role

log = logging.getLogger(__name__)

PAGE_SIZE = 25
INSTANCE_ADMIN_ONLY = "Dead letters are the whole instance's: this needs the instance admin role"
PREVIEW_CHARS = 240
SOURCE_COLORS = {"event": "purple", "kafka": "blue", "webhook": "teal", "schedule": "amber"}
SOURCE_FILTERS = ["all", *dead_letters.SOURCES]
STATE_FILTERS = ["waiting", "replayed", "all"]


@dataclass
class DeadLetterView:
    """One line of the table, as plain strings."""

    id: int
    source: str
    color: str
    origin: str
    error: str
    preview: str
    created: str
    created_exact: str
    replayed: str
    replay_run: str
    can_replay: bool


def _origin(row: dead_letters.DeadLetterRow) -> str:
    """Where it came from: the trigger and workflow, the topic and offset, or the event."""
    if row.source == "event":
        return f"event {row.payload.get('event_type', '')} of run {short_id(row.message_key)}"
    where = f"trigger {row.trigger_key or '?'}" + (f" of {row.workflow_name}" if row.workflow_name else "")
    if row.source == "kafka":
        where += f" · {row.topic}:{row.payload.get('partition', '?')}:{row.payload.get('offset', '?')}"
    return where


def _preview(payload: dict) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def view(row: dead_letters.DeadLetterRow) -> DeadLetterView:
    """The table's line for a dead letter."""
    replayed = f"{row.replayed_by} · {time_ago(row.replayed_at)}" if row.replayed_at else "not yet"
    return DeadLetterView(
        id=row.id, source=row.source, color=SOURCE_COLORS.get(row.source, "gray"), origin=_origin(row),
        error=row.error if len(row.error) <= 500 else row.error[:499] + "…", preview=_preview(row.payload),
        created=time_ago(row.created_at), created_exact=format_time(row.created_at), replayed=replayed,
        replay_run=short_id(row.replay_run_id) if row.replay_run_id else "", can_replay=row.replayed_at is None,
    )  # fmt: skip


class DeadLettersState(PagedState, rx.State):
    """The dead letters on show, the filters and the page."""

    rows: list[DeadLetterView] = []
    page_size: ClassVar[int] = PAGE_SIZE
    source: str = "all"
    status: str = "waiting"
    loaded: bool = False
    error: str = ""

    def _instance_admin(self) -> bool:
        # Dead letters are the whole instance's: a workspace's admin does not see or replay them.
        principal = caller_of(self)
        return principal is not None and principal.instance_role == Role.ADMIN

    def _refresh(self) -> None:
        replayed = {"waiting": False, "replayed": True}.get(self.status)
        if not self._instance_admin():
            self.rows, self.total, self.error, self.loaded = [], 0, INSTANCE_ADMIN_ONLY, True
            return
        with reading(self, "dead letters", rows=[], total=0):
            page = dead_letters.list_dead_letters(
                source=None if self.source == "all" else self.source, replayed=replayed, limit=PAGE_SIZE,
                offset=self.offset,
            )  # fmt: skip
            self.rows, self.total = [view(r) for r in page.rows], page.total

    @rx.event
    @requires(Role.ADMIN)
    def load(self) -> None:
        """List the dead letters (on page load)."""
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_source(self, value: str) -> None:
        self.source = value if value in SOURCE_FILTERS else "all"
        self.offset = 0
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_status(self, value: str) -> None:
        self.status = value if value in STATE_FILTERS else "waiting"
        self.offset = 0
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def replay(self, dead_letter_id: int) -> EventSpec:
        """Replay one dead letter; the toast says what it did."""
        principal = caller_of(self)
        if principal is None or not self._instance_admin():
            return rx.toast.error(INSTANCE_ADMIN_ONLY)
        try:
            done = dead_letters.replay(int(dead_letter_id), actor=principal.actor)
        except DB_ERRORS as exc:
            self._refresh()
            return rx.toast.error(describe_db_error(exc))
        self._refresh()
        if done.run_id:
            return rx.toast.success(f"Replayed: {done.note} ({short_id(done.run_id)})")
        return rx.toast.success(f"Replayed: {done.note}")
