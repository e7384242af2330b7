"""Who may open a form or chat trigger's page: the one rule the pages (and their tests) use.

- A chat page: signed-in operators (and above) of the trigger's workflow's workspace, for a live
  chat trigger.
- A form page: signed-in operators of the workflow's workspace; for a form with `public: true` also anyone who holds the
  form's current access token (`?token=`, compared in constant time by engine.triggers).
Anything else (an unknown, paused or removed trigger, another kind, a wrong token) is simply
"not found": the page tells nothing about why.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.auth.policy import Role, allows
from app.auth.principal import Principal
from app.db import db_session
from engine import trigger_fire, triggers, workflows
from engine.errors import FlowloomError
from engine.settings import get_settings
from engine.trigger_config import ChatConfig, FormConfig
from engine.triggers import TriggerRow
from models.db import get_engine


@dataclass(frozen=True)
class Opened:
    """A trigger the caller may use, with the inputs schema of the version it runs."""

    trigger: TriggerRow
    schema: dict[str, Any]
    started_by: str  # how its runs record who started them
    owner: str  # whose chat sessions these are ("user:<id>" or "token:<trigger id>")


def _operator(principal: Principal | None) -> bool:
    return principal is not None and allows(principal.role, Role.OPERATOR)


def _member_operator(principal: Principal | None, trigger: TriggerRow) -> bool:
    """An operator acting in the workspace of the trigger's workflow (for others it does not exist)."""
    if principal is None or not _operator(principal):
        return False
    with db_session() as session:
        found = workflows.get_workflow(
            session, uuid.UUID(trigger.workflow_id), workspace_id=principal.workspace_id
        )
    return found is not None


def _open(trigger_id: str, kind: type) -> tuple[TriggerRow, dict[str, Any]] | None:
    with get_engine(get_settings().database_url).connect() as conn:
        trigger = triggers.get(conn, trigger_id)
        if trigger is None or not trigger.live or not isinstance(trigger.config, kind):
            return None
        try:
            defn, _ = trigger_fire.published_definition(conn, trigger.workflow_id)
        except FlowloomError:  # no saved version that parses
            return None
    return trigger, dict(defn.inputs or {})


def open_form(trigger_id: str, token: str, principal: Principal | None) -> Opened | None:
    """The form trigger if the caller may fill it in, else None."""
    opened = _open(trigger_id, FormConfig)
    if opened is None:
        return None
    trigger, schema = opened
    if _member_operator(principal, trigger):
        return Opened(trigger, schema, principal.started_by, f"user:{principal.user_id}")  # type: ignore[union-attr]
    if not trigger.config.public or not token:
        return None
    with get_engine(get_settings().database_url).connect() as conn:
        if not triggers.token_matches(conn, trigger.id, token):
            return None
    return Opened(trigger, schema, f"trigger:{trigger.id}", f"token:{trigger.id}")


def open_chat(trigger_id: str, principal: Principal | None) -> Opened | None:
    """The chat trigger if the caller (a signed-in operator) may chat with it, else None."""
    if not _operator(principal):
        return None
    opened = _open(trigger_id, ChatConfig)
    if opened is None:
        return None
    trigger, schema = opened
    if not _member_operator(principal, trigger):
        return None
    return Opened(trigger, schema, principal.started_by, f"user:{principal.user_id}")  # type: ignore[union-attr]
