"""State of the Audit page (admins): the audit log filtered by actor, action, object and time, paged,
and exported as CSV or JSON (the same filters, up to engine.audit.EXPORT_MAX entries)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import audit_who, requires
from app.db import db_session
from app.pages.formatting import format_time, time_ago
from components.pager import PagedState
from engine import audit
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.roles import Role
from models.auth import AuditLog

log = logging.getLogger(__name__)

ANY = "all"  # a select's "no filter" value (a select item cannot have an empty value)
PAGE_SIZE = 50
SUMMARY_CHARS = 200
TEXT_FILTERS = ("actor", "target_id", "date_from", "date_to")


@dataclass
class AuditRow:
    """One line of the table, as plain strings."""

    id: int
    at: str
    at_exact: str
    actor: str
    source: str
    ip: str
    action: str
    target: str
    details: str
    change: str


def _summary(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def row_of(entry: AuditLog) -> AuditRow:
    """The table's line for an entry."""
    change = ""
    if entry.before or entry.after:
        change = f"{_summary(entry.before) or '—'} → {_summary(entry.after) or '—'}"
    target = f"{entry.target_type} {entry.target_id}".strip()
    return AuditRow(
        id=entry.id or 0, at=time_ago(entry.at), at_exact=format_time(entry.at), actor=entry.actor,
        source=entry.source or "—", ip=entry.ip or "—", action=entry.action, target=target or "—",
        details=_summary(entry.details), change=change,
    )  # fmt: skip


def _day(label: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{label}: {value!r} is not a date (YYYY-MM-DD)") from exc


def build_query(
    actor: str, action: str, target_type: str, target_id: str, date_from: str, date_to: str
) -> audit.AuditQuery:
    """The engine's query for the page's filters (dates are UTC days; the "to" day is included)."""
    start, end = _day("from", date_from), _day("to", date_to)
    if start and end and end < start:
        raise ValueError("to: the end date is before the start date")
    return audit.AuditQuery(
        actor=actor, action="" if action == ANY else action, target_type="" if target_type == ANY else target_type,
        target_id=target_id, since=datetime.combine(start, time(), UTC) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
    )  # fmt: skip


class AuditState(PagedState, rx.State):
    """The entries on show, the filters, the page and the exports."""

    rows: list[AuditRow] = []
    page_size: ClassVar[int] = PAGE_SIZE
    actor: str = ""
    action: str = ANY
    target_type: str = ANY
    target_id: str = ""
    date_from: str = ""
    date_to: str = ""
    action_choices: list[str] = [ANY]
    type_choices: list[str] = [ANY]
    form_key: int = 0
    loaded: bool = False
    error: str = ""

    def _query(self) -> audit.AuditQuery:
        return build_query(
            self.actor, self.action, self.target_type, self.target_id, self.date_from, self.date_to
        )

    def _refresh(self) -> None:
        try:
            query = self._query()
            with db_session() as session:
                actions, types = audit.facets(session)
                self.rows = [
                    row_of(e) for e in audit.search(session, query, limit=PAGE_SIZE, offset=self.offset)
                ]
                self.total = audit.count(session, query)
            kinds = sorted({a.split(".", 1)[0] for a in actions if "." in a})
            self.action_choices = [ANY, *kinds, *actions]
            self.type_choices = [ANY, *types]
            self.error = ""
        except ValueError as exc:
            self.rows, self.total, self.error = [], 0, str(exc)
        except DB_ERRORS as exc:
            log.warning("loading the audit log failed: %s", exc)
            self.rows, self.total, self.error = [], 0, describe_db_error(exc)
        self.loaded = True

    @rx.event
    @requires(Role.ADMIN)
    def load(self) -> None:
        """List the newest entries (on page load)."""
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def apply_filters(self, form: dict[str, Any]) -> None:
        """Take the typed filters (actor, object id, dates) from the filter form and list again."""
        self.actor = str(form.get("actor", "")).strip()[:320]
        self.target_id = str(form.get("target_id", "")).strip()[:100]
        self.date_from = str(form.get("date_from", "")).strip()[:10]
        self.date_to = str(form.get("date_to", "")).strip()[:10]
        self.offset = 0
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_action(self, value: str) -> None:
        self.action = value if value in self.action_choices else ANY
        self.offset = 0
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_target_type(self, value: str) -> None:
        self.target_type = value if value in self.type_choices else ANY
        self.offset = 0
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def clear_filters(self) -> None:
        self.actor, self.action, self.target_type, self.target_id = "", ANY, ANY, ""
        self.date_from, self.date_to, self.offset = "", "", 0
        self.form_key += 1
        self._refresh()

    def _export(self, kind: str) -> EventSpec:
        try:
            query = self._query()
            with db_session() as session:
                rows = audit.search(session, query, limit=audit.EXPORT_MAX)
                audit.record_export(session, query, kind=kind, entries=len(rows), who=audit_who(self))
        except ValueError as exc:
            return rx.toast.error(str(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        text = audit.csv_text(rows) if kind == "csv" else audit.json_text(rows)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return rx.download(data=text, filename=f"flowloom-audit-{stamp}.{kind}")

    @rx.event
    @requires(Role.ADMIN)
    def export_csv(self) -> EventSpec:
        """Download the entries that match the filters as CSV."""
        return self._export("csv")

    @rx.event
    @requires(Role.ADMIN)
    def export_json(self) -> EventSpec:
        """Download the entries that match the filters as JSON."""
        return self._export("json")
