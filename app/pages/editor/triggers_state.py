"""The editor's Triggers tab: the workflow's triggers as its definition declares them (add, edit,
remove, enable: undoable edits of the working graph, saved with it), beside their live state in
the database (next fire times, webhook URL, form page, pause and resume, a form's token).

A sub-state of `EditorCore`. What the tab shows is computed from the working graph and from the
saved triggers (re-read when the workflow, its version or a pause changes), so undo, redo, import
and restore update the tab without being told.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import caller_of, requires
from app.auth.policy import Role
from app.pages.editor.core_state import EditorCore
from app.trigger_view import describe
from components.config_form import UNSET, FormField, InputError, build_fields, parse_input, resolve
from engine import triggers
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.definition import NODE_ID_PATTERN
from engine.schedule_loop import next_fire_times
from engine.trigger_config import CONFIG_MODELS, ScheduleConfig, config_problems, parse_config
from models.db import get_engine

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "schedule": "Schedule (cron)",
    "webhook": "Webhook (inbound)",
    "kafka": "Kafka topic",
    "form": "Form page",
    "chat": "Chat page",
}
# What a new trigger of each kind starts with (the form then shows what is still missing).
NEW_CONFIG: dict[str, dict[str, Any]] = {
    "schedule": {"cron": "0 * * * *", "timezone": "UTC"},
    "webhook": {},
    "kafka": {},
    "form": {},
    "chat": {},
}
STATUS_LABELS = {
    "live": "live",
    "paused": "paused",
    "disabled": "disabled",
    "invalid": "invalid config",
    "unsaved": "save to apply",
}
_KEY = re.compile(NODE_ID_PATTERN)
PREVIEW_FIRES = 5


@dataclass
class TriggerItem:
    """One row of the Triggers tab."""

    key: str
    kind: str
    kind_label: str
    enabled: bool
    status: str  # live | paused | disabled | invalid | unsaved
    status_label: str
    summary: str
    problem: str = ""
    trigger_id: str = ""  # its row in the database ("" until saved)
    saved_active: bool = False  # the saved trigger may be paused or resumed
    paused: bool = False
    next_fires: list[str] = field(default_factory=list)
    fires_are_preview: bool = False  # computed from the unsaved config
    webhook_path: str = ""
    page_path: str = ""
    has_token: bool = False
    selected: bool = False


def _summary(kind: str, config: dict[str, Any]) -> str:
    if kind == "schedule":
        return f"{config.get('cron', '?')} · {config.get('timezone', 'UTC')}"
    if kind == "kafka":
        return f"topic {config.get('topic') or '?'}"
    if kind == "webhook":
        return f"{config.get('signature', 'standard')} signatures"
    if kind in ("form", "chat"):
        return "public with a token" if config.get("public") else "signed-in users"
    return ""


def format_fire(tick: datetime, zone: str) -> str:
    """A fire time in the schedule's zone, e.g. "Tue 2024-05-07 03:00 CEST"."""
    return tick.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def _same_config(kind: str, working: dict[str, Any], saved: Any) -> bool:
    try:
        return parse_config(kind, working).model_dump() == saved.model_dump()
    except Exception:  # an invalid working config differs from any saved one
        return False


def trigger_items(
    specs: list[dict[str, Any]], live: dict[str, dict[str, Any]], selected: str
) -> list[TriggerItem]:
    """The tab's rows: each trigger of the working definition with the saved state of its key."""
    items = []
    for spec in specs:
        key, kind = str(spec.get("id", "")), str(spec.get("kind", ""))
        config = dict(spec.get("config") or {})
        enabled = bool(spec.get("enabled", True))
        problems = config_problems(kind, config)
        saved = live.get(key)
        item = TriggerItem(key=key, kind=kind, kind_label=KINDS.get(kind, kind), enabled=enabled, status="live",
                           status_label="", summary=_summary(kind, config), selected=key == selected)  # fmt: skip
        if saved and saved["kind"] == kind:
            item.trigger_id, item.saved_active, item.paused = saved["id"], saved["active"], saved["paused"]
            item.webhook_path, item.page_path = saved["webhook_path"] or "", saved["page_path"] or ""
            item.has_token = saved["has_token"]
        if problems:
            item.status, item.problem = "invalid", f"{problems[0][0]}: {problems[0][1]}"
        elif not enabled:
            item.status = "disabled"
        elif (
            not saved
            or saved["kind"] != kind
            or not saved["active"]
            or not _same_config(kind, config, saved["config"])
        ):
            item.status = "unsaved"
        elif saved["paused"]:
            item.status = "paused"
        item.status_label = STATUS_LABELS[item.status]
        if kind == "schedule" and not problems:
            schedule = ScheduleConfig.model_validate(config)
            if item.status == "live":
                ticks = saved["next_fires"]
            else:
                ticks = next_fire_times(schedule, PREVIEW_FIRES) if item.status == "unsaved" else []
                item.fires_are_preview = bool(ticks)
            item.next_fires = [format_fire(t, schedule.timezone) for t in ticks]
        items.append(item)
    return items


def new_key(kind: str, taken: set[str]) -> str:
    """An unused trigger id for a new trigger of `kind` ("schedule", then "schedule_2", ...)."""
    if kind not in taken:
        return kind
    n = 2
    while f"{kind}_{n}" in taken:
        n += 1
    return f"{kind}_{n}"


class EditorTriggers(EditorCore):
    """The Triggers tab of the side panel."""

    trig_sel: str = ""
    trig_new_kind: str = "schedule"
    trig_token: str = ""  # a token just issued: shown once
    trig_token_key: str = ""
    trig_live_n: int = 0  # bumped after a pause or resume: the saved state is read again
    trig_error: str = ""

    _trig_drafts: dict = {}

    # What the tab shows

    def _specs(self) -> list[dict[str, Any]]:
        return [dict(t) for t in self._g().defn.get("triggers") or [] if isinstance(t, dict)]

    @rx.var(deps=["wf_id", "version", "trig_live_n"], auto_deps=False)
    def _trig_saved(self) -> dict[str, dict[str, Any]]:
        """The saved triggers of the open workflow by key (re-read on open, save, pause, resume)."""
        workflow_id = self._workflow_uuid()
        if workflow_id is None:
            return {}
        try:
            with get_engine(db.database_url()).connect() as conn:
                rows = triggers.list_for_workflow(conn, workflow_id)
        except DB_ERRORS as exc:
            log.warning("reading the triggers of workflow %s failed: %s", self.wf_id, exc)
            return {}
        saved = {}
        for row in rows:
            view = describe(row)
            saved[row.key] = {
                "id": row.id, "kind": row.kind, "active": row.active, "paused": row.paused, "config": row.config,
                "next_fires": view.next_fires, "webhook_path": view.webhook_path, "page_path": view.page_path,
                "has_token": view.has_token,
            }  # fmt: skip
        return saved

    @rx.var(deps=["_graph", "_trig_saved", "trig_sel"], auto_deps=False)
    def trig_rows(self) -> list[TriggerItem]:
        """Every trigger of the working definition with its state."""
        return trigger_items(self._specs(), self._trig_saved, self.trig_sel)

    @rx.var(deps=["_graph", "trig_sel", "_trig_drafts"], auto_deps=False)
    def trig_fields(self) -> list[FormField]:
        """The config form of the selected trigger."""
        spec = self._spec(self.trig_sel)
        model = CONFIG_MODELS.get(str(spec.get("kind"))) if spec else None
        if spec is None or model is None:
            return []
        config = dict(spec.get("config") or {})
        errors = {}
        for where, message in config_problems(spec["kind"], config):
            errors.setdefault(where.split(".")[0], message)
        drafts = {k[1]: v for k, v in self._trig_drafts.items() if k[0] == spec["id"]}
        errors.update({name: d["error"] for name, d in drafts.items() if d.get("error")})
        return build_fields(
            model.model_json_schema(), config, errors, {k: v["text"] for k, v in drafts.items()}
        )

    # Editing the definition's triggers (undoable; saved with the workflow)

    def _spec(self, key: str) -> dict[str, Any] | None:
        return next((t for t in self._specs() if t.get("id") == key), None) if key else None

    def _put(self, specs: list[dict[str, Any]], edit: str = "") -> None:
        self._commit(self._g().replace(triggers=specs), edit=edit, canvas=False)

    def _change(self, key: str, edit: str = "", **fields: Any) -> bool:
        specs = self._specs()
        if not any(t.get("id") == key for t in specs):
            return False
        self._put([{**t, **fields} if t.get("id") == key else t for t in specs], edit)
        return True

    @rx.event
    @requires(Role.VIEWER)
    def trig_select(self, key: str) -> None:
        self.trig_sel = "" if key == self.trig_sel else key
        self.trig_error = ""

    @rx.event
    @requires(Role.VIEWER)
    def trig_set_new_kind(self, kind: str) -> None:
        if kind in KINDS:
            self.trig_new_kind = kind

    @rx.event
    @requires(Role.VIEWER)
    def trig_refresh(self) -> None:
        """Read the saved state again (the tab was opened)."""
        self.trig_live_n += 1

    @rx.event
    @requires(Role.EDITOR)
    def trig_add(self) -> None:
        """Add a trigger of the chosen kind and open its form."""
        specs = self._specs()
        key = new_key(self.trig_new_kind, {str(t.get("id")) for t in specs})
        spec = {
            "id": key,
            "kind": self.trig_new_kind,
            "config": dict(NEW_CONFIG[self.trig_new_kind]),
            "enabled": True,
        }
        self._put([*specs, spec])
        self.trig_sel, self.trig_error = key, ""

    @rx.event
    @requires(Role.EDITOR)
    def trig_remove(self, key: str) -> None:
        specs = self._specs()
        self._put([t for t in specs if t.get("id") != key])
        self._trig_drafts = {k: v for k, v in self._trig_drafts.items() if k[0] != key}
        if self.trig_sel == key:
            self.trig_sel = ""

    @rx.event
    @requires(Role.EDITOR)
    def trig_set_enabled(self, key: str, enabled: bool) -> None:
        self._change(key, enabled=bool(enabled))

    @rx.event
    @requires(Role.EDITOR)
    def trig_rename(self, new: str) -> EventSpec | None:
        """Give the selected trigger a new id (a saved trigger with the old id becomes inactive)."""
        old, new = self.trig_sel, new.strip()
        if not old or new == old:
            return None
        if not _KEY.match(new):
            self.trig_error = "an id starts with a letter or _ and holds letters, digits, _ or - (up to 64)"
            return None
        if self._spec(new) is not None:
            self.trig_error = f'another trigger is already called "{new}"'
            return None
        self._change(old, id=new)
        self._trig_drafts = {(new if k[0] == old else k[0], k[1]): v for k, v in self._trig_drafts.items()}
        self.trig_sel, self.trig_error = new, ""
        return None

    def _set_config(self, name: str, value: Any) -> None:
        spec = self._spec(self.trig_sel)
        if spec is None:
            return
        config = {k: v for k, v in (spec.get("config") or {}).items() if k != name}
        if value is not UNSET:
            config[name] = value
        self._change(spec["id"], edit=f"trigger:{spec['id']}:{name}", config=config)

    @rx.event
    @requires(Role.EDITOR)
    def trig_set_field(self, name: str, text: str) -> None:
        """A config field of the selected trigger typed into."""
        spec = self._spec(self.trig_sel)
        model = CONFIG_MODELS.get(str(spec.get("kind"))) if spec else None
        if spec is None or model is None:
            return
        schema = model.model_json_schema()
        prop = resolve(schema.get("properties", {}).get(name, {}), schema.get("$defs", {}))
        key = (spec["id"], name)
        try:
            value = parse_input(prop, text)
        except InputError as exc:
            self._trig_drafts = {**self._trig_drafts, key: {"text": text, "error": str(exc)}}
            return
        self._trig_drafts = {**self._trig_drafts, key: {"text": text, "error": ""}}
        self._set_config(name, value)

    @rx.event
    @requires(Role.EDITOR)
    def trig_set_flag(self, name: str, value: bool) -> None:
        self._set_config(name, bool(value))

    # The saved trigger's state (takes effect at once, no save needed)

    def _pause(self, key: str, paused: bool) -> EventSpec:
        saved = self._trig_saved.get(key)
        if saved is None:
            return rx.toast.error(f'Trigger "{key}" is not saved yet')
        try:
            triggers.set_paused(saved["id"], paused, actor=self._actor(), database_url=db.database_url())
        except DB_ERRORS as exc:  # a FlowloomError too: its own message
            return rx.toast.error(describe_db_error(exc))
        self.trig_live_n += 1
        return rx.toast.success(f'Trigger "{key}" {"paused" if paused else "resumed"}')

    def _actor(self) -> str:
        caller = caller_of(self)
        return caller.actor if caller else "unknown"

    @rx.event
    @requires(Role.OPERATOR)
    def trig_pause(self, key: str) -> EventSpec:
        return self._pause(key, True)

    @rx.event
    @requires(Role.OPERATOR)
    def trig_resume(self, key: str) -> EventSpec:
        return self._pause(key, False)

    @rx.event
    @requires(Role.EDITOR)
    def trig_rotate_token(self, key: str) -> EventSpec:
        """A new access token for a saved form or chat trigger, shown once."""
        saved = self._trig_saved.get(key)
        if saved is None:
            return rx.toast.error(f'Trigger "{key}" is not saved yet')
        try:
            token = triggers.rotate_token(saved["id"], actor=self._actor(), database_url=db.database_url())
        except DB_ERRORS as exc:  # a FlowloomError too: its own message
            return rx.toast.error(describe_db_error(exc))
        self.trig_token, self.trig_token_key = token, key
        self.trig_live_n += 1
        return rx.toast.success("New token issued: copy it now, it is shown once")

    @rx.event
    @requires(Role.VIEWER)
    def trig_hide_token(self) -> None:
        self.trig_token = self.trig_token_key = ""
