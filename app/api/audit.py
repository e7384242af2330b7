"""/api/audit: the audit log, filtered and paged, as JSON or a CSV/JSON export (admins only).

Read-only by design: the log has no route that changes or removes an entry, and the database
refuses UPDATE and DELETE of one (migration 0011).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from app.api.callers import Admin
from app.db import db_session
from engine import audit

router = APIRouter(tags=["audit"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class AuditPublic(BaseModel):
    """One audit entry: who did what to which object, when, from where, with before and after."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    source: str = ""
    ip: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def _filename(kind: str) -> str:
    return f'attachment; filename="flowloom-audit-{datetime.now().strftime("%Y%m%d-%H%M%S")}.{kind}"'


@router.get(
    "/audit",
    response_model=list[AuditPublic],
    responses={200: {"content": {"text/csv": {}}, "description": "The entries, newest first; "
                     "`X-Total-Count` says how many match"}},
)  # fmt: skip
def read_audit(
    principal: Admin,
    response: Response,
    actor: str = Query("", max_length=320, description="part of the actor, case-insensitive"),
    action: str = Query("", max_length=100, description='an action ("run.started") or a kind ("run")'),
    target_type: str = Query("", max_length=50, description="the object's kind: workflow, run, secret, ..."),
    target_id: str = Query("", max_length=100, description="the object's id"),
    source: str = Query("", max_length=20, description="ui, api, cli, trigger or system"),
    since: datetime | None = Query(None, description="from this time on (inclusive)"),
    until: datetime | None = Query(None, description="before this time"),
    limit: int = Query(100, ge=1, le=audit.EXPORT_MAX),
    offset: int = Query(0, ge=0),
    format: Literal["json", "csv"] | None = Query(None, description="csv or json: a file to download"),  # noqa: A002
) -> Any:
    """The audit log, newest first (admins only); with `format` a download of the page asked for."""
    query = audit.AuditQuery(actor=actor, action=action, target_type=target_type, target_id=target_id,
                             source=source, since=since, until=until)  # fmt: skip
    with db_session() as session:
        rows = audit.search(session, query, limit=limit, offset=offset)
        total = audit.count(session, query)
        if format is not None:
            audit.record_export(session, query, kind=format, entries=len(rows))
    headers = {"X-Total-Count": str(total)}
    if format == "csv":
        return Response(audit.csv_text(rows), media_type=CSV_MEDIA_TYPE,
                        headers={**headers, "Content-Disposition": _filename("csv")})  # fmt: skip
    if format == "json":
        return Response(audit.json_text(rows), media_type="application/json",
                        headers={**headers, "Content-Disposition": _filename("json")})  # fmt: skip
    response.headers.update(headers)
    return [AuditPublic.model_validate(e) for e in rows]
