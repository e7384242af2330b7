"""What a person (the editor's Triggers tab) or a client (the REST API) is shown about a trigger:
its state, its config without secrets, where it lives (a webhook's URL path, a form's or chat's
page) and a schedule's next fire times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app import routes
from engine.schedule_loop import next_fire_times
from engine.trigger_config import ScheduleConfig
from engine.triggers import TriggerRow

NEXT_FIRES = 5
# Config fields never shown: the name of a webhook's signing secret (and anything like it) stays
# on the server, so a viewer learns nothing that helps forge a delivery.
SECRET_FIELDS = frozenset({"secret", "token", "password"})
# Where each kind lives. Webhooks are POSTed to the API (app/api/hooks.py); forms and chats are pages.
WEBHOOK_PATH = routes.API_PREFIX + "/hooks/{id}"


@dataclass
class TriggerView:
    """A trigger as it is shown."""

    id: str
    workflow_id: str
    workflow_name: str
    key: str
    kind: str
    active: bool
    paused: bool
    live: bool
    config: dict[str, Any]
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    next_fires: list[datetime] = field(default_factory=list)
    webhook_path: str | None = None
    page_path: str | None = None
    has_token: bool = False


def public_config(config: Any) -> dict[str, Any]:
    """A typed trigger config as JSON, secrets left out."""
    dumped = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config or {})
    return {k: v for k, v in dumped.items() if k not in SECRET_FIELDS}


def webhook_path(trigger_id: str) -> str:
    """The path a webhook trigger's deliveries are POSTed to."""
    return WEBHOOK_PATH.format(id=trigger_id)


def page_path(kind: str, trigger_id: str) -> str | None:
    """The page of a form or chat trigger (None for other kinds)."""
    if kind == "form":
        return routes.form_page(trigger_id)
    return routes.chat_page(trigger_id) if kind == "chat" else None


def describe(row: TriggerRow, *, now: datetime | None = None) -> TriggerView:
    """The view of one trigger; a live schedule gets its next NEXT_FIRES fire times."""
    upcoming: list[datetime] = []
    if row.live and isinstance(row.config, ScheduleConfig):
        upcoming = next_fire_times(row.config, NEXT_FIRES, now)
    return TriggerView(
        id=row.id, workflow_id=row.workflow_id, workflow_name=row.workflow_name, key=row.key, kind=row.kind,
        active=row.active, paused=row.paused, live=row.live, config=public_config(row.config),
        next_fire_at=row.next_fire_at if row.live else None, last_fire_at=row.last_fire_at, next_fires=upcoming,
        webhook_path=webhook_path(row.id) if row.kind == "webhook" else None, page_path=page_path(row.kind, row.id),
        has_token=row.has_token,
    )  # fmt: skip
