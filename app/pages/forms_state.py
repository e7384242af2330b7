"""State of a form trigger's page (/forms/<trigger id>): fields from the workflow's inputs schema,
their validation messages, the submission and its result.

The page is public at the HTTP layer and its handlers are PUBLIC in app.auth.policy: each one
that reads or starts anything decides itself through app.trigger_access.open_form (a signed-in
operator, or anyone with a public form's token). Everyone else sees "not found", nothing more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.auth.guard import caller_of
from app.trigger_access import Opened, open_form
from engine import forms
from engine.db_errors import DB_ERRORS
from engine.errors import FlowloomError, user_message
from engine.trigger_config import FormConfig

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 20_000
MAX_VALUE_CHARS = 100_000


@dataclass
class FieldRow:
    """One field as the browser renders it."""

    name: str
    label: str
    kind: str  # string | number | integer | boolean | enum | json
    description: str = ""
    hint: str = ""
    required: bool = False
    value: str = ""
    checked: bool = False
    options: list[str] | None = None
    error: str = ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class FormState(rx.State):
    """One form: loading, not_found, ready, waiting (for the result), done."""

    status: str = "loading"
    title: str = ""
    description: str = ""
    fields: list[FieldRow] = []
    form_error: str = ""
    message: str = ""
    result: str = ""
    result_status: str = ""
    run_id: str = ""

    _trigger_id: str = ""
    _token: str = ""
    _schema: dict = {}
    _values: dict = {}
    _submission: str = ""
    _wait_s: float = 0.0

    def _where(self) -> tuple[str, str]:
        trigger_id = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        return trigger_id, str(self.router.url.query_parameters.get("token", ""))

    def _opened(self) -> Opened | None:
        try:
            return open_form(self._trigger_id, self._token, caller_of(self))
        except DB_ERRORS as exc:
            log.warning("opening form %s failed: %s", self._trigger_id, exc)
            return None

    def _rows(self, errors: dict[str, str] | None = None) -> None:
        errors = errors or {}
        rows = []
        for f in forms.form_fields(self._schema):
            value = self._values.get(f.name)
            rows.append(
                FieldRow(
                    name=f.name,
                    label=f.label,
                    kind=f.type,
                    description=f.description,
                    hint=f.hint,
                    required=f.required,
                    value="" if isinstance(value, bool) else _text(value),
                    checked=bool(value),
                    options=list(f.options),
                    error=errors.get(f.name, ""),
                )  # fmt: skip
            )
        self.fields = rows
        self.form_error = errors.get("", "")

    def _fresh(self) -> None:
        defaults = {f.name: f.default for f in forms.form_fields(self._schema) if f.default is not None}
        self._values = {k: v if isinstance(v, bool) else _text(v) for k, v in defaults.items()}
        self._submission = uuid.uuid4().hex  # one run per showing of the form, however often it is sent
        self.message, self.result, self.result_status, self.run_id = "", "", "", ""
        self._rows()
        self.status = "ready"

    @rx.event
    def load(self) -> None:
        """Show the form if the caller may fill it in; "not found" otherwise."""
        self._trigger_id, self._token = self._where()
        self._schema, self.fields, self.title, self.description = {}, [], "", ""
        opened = self._opened()
        if opened is None:
            self.status = "not_found"
            return
        config: FormConfig = opened.trigger.config
        self._schema = opened.schema
        self.title = config.title or opened.trigger.workflow_name
        self.description = config.description
        self._fresh()

    @rx.event
    def set_value(self, name: str, text: str) -> None:
        """What a text, number, choice or JSON field holds now."""
        if self.status != "ready" or name not in {f.name for f in self.fields}:
            return
        self._values = {**self._values, name: str(text)[:MAX_VALUE_CHARS]}
        self.fields = [FieldRow(**{**f.__dict__, "value": str(text)[:MAX_VALUE_CHARS], "error": ""})
                       if f.name == name else f for f in self.fields]  # fmt: skip

    @rx.event
    def set_flag(self, name: str, on: bool) -> None:
        """A switch was turned on or off."""
        if self.status != "ready" or name not in {f.name for f in self.fields}:
            return
        self._values = {**self._values, name: bool(on)}
        self.fields = [FieldRow(**{**f.__dict__, "checked": bool(on), "error": ""}) if f.name == name else f
                       for f in self.fields]  # fmt: skip

    @rx.event
    def submit(self) -> Any:
        """Check the fields with the workflow's schema, then start the run."""
        if self.status != "ready":
            return None  # a second click while the first is handled
        opened = self._opened()
        if opened is None:
            self.status = "not_found"
            return None
        try:
            sent = forms.submit(opened.trigger, opened.schema, self._values, self._submission,
                                started_by=opened.started_by)  # fmt: skip
        except (FlowloomError, *DB_ERRORS) as exc:
            log.warning("form %s: submission failed: %s", self._trigger_id, exc)
            why = user_message(exc) if isinstance(exc, FlowloomError) else "try again later"
            self.form_error = f"The form could not be sent: {why}"
            return None
        if sent.errors:
            self._rows(sent.errors)
            return None
        config: FormConfig = opened.trigger.config
        self.run_id = sent.run_id
        self.message = config.submit_message
        if not config.show_result:
            self.status = "done"
            return None
        self.status, self._wait_s = "waiting", config.wait_s
        return FormState.wait_result

    @rx.event(background=True)
    async def wait_result(self) -> None:
        """Wait (up to the form's wait_s) for the run this form started, then show its outputs."""
        async with self:
            run_id, wait_s = self.run_id, self._wait_s
        try:
            outcome = await asyncio.to_thread(forms.result, run_id, wait_s) if run_id else None
        except DB_ERRORS as exc:
            log.warning("form %s: reading run %s failed: %s", self._trigger_id, run_id, exc)
            outcome = None
        async with self:
            if self.run_id != run_id or self.status != "waiting":
                return
            self.status = "done"
            if outcome is None:
                return
            self.result_status = outcome.status
            if outcome.status == "succeeded":
                text = json.dumps(outcome.outputs, indent=2, ensure_ascii=False, default=str)
                self.result = text[:MAX_RESULT_CHARS]
            elif outcome.status in ("failed", "cancelled"):
                self.result = outcome.error or f"The run {outcome.status}."
            else:
                self.result = "Still working on it; the result is not ready yet."

    @rx.event
    def again(self) -> None:
        """Fill in the form once more (a new submission)."""
        if self.status not in ("done", "waiting"):
            return
        if self._opened() is None:
            self.status = "not_found"
            return
        self._fresh()
