"""Form triggers: typed run inputs from what a form's fields hold, checked against the workflow's
inputs schema (engine.json_schemas, the validator runs use) before anything starts, and the
submission that starts the run.

A submission carries an id the page made when it showed the form (`form:<id>` is the delivery
key), so a double click or a resent request starts one run, not two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine import json_schemas, trigger_fire
from engine.chat_stream import RunOutcome, run_outcome
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.run_events import wait_for_end
from engine.trigger_config import FormConfig
from engine.triggers import TriggerRow

_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_\-]{8,80}$")
_REQUIRED = re.compile(r"'(.+)' is a required property")


@dataclass(frozen=True)
class FormField:
    """One field of a form as the schema declares it."""

    name: str
    type: str  # string | number | integer | boolean | enum | json
    label: str
    description: str = ""
    required: bool = False
    options: tuple[str, ...] = ()
    hint: str = ""  # limits in words: "5 to 10", "at most 20 characters", the pattern
    default: Any = None


@dataclass
class Submitted:
    """What a submission did: the run it started (or had started before), or the fields' problems."""

    run_id: str
    duplicate: bool = False
    errors: dict[str, str] = field(default_factory=dict)


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    prop = dict(prop)
    ref = prop.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        prop = {**dict(defs.get(ref.rsplit("/", 1)[-1], {})), **prop}
    return prop


def _hint(prop: Mapping[str, Any]) -> str:
    parts = []
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None and high is not None:
        parts.append(f"from {low} to {high}")
    elif low is not None:
        parts.append(f"at least {low}")
    elif high is not None:
        parts.append(f"at most {high}")
    shortest, longest = prop.get("minLength"), prop.get("maxLength")
    if shortest:
        parts.append(f"at least {shortest} characters")
    if longest:
        parts.append(f"at most {longest} characters")
    if prop.get("pattern"):
        parts.append(f"matching {prop['pattern']}")
    return ", ".join(parts)


def form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    """The fields of a workflow's inputs schema, in its order."""
    defs = schema.get("$defs") or {}
    required = set(schema.get("required") or [])
    fields = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(raw if isinstance(raw, Mapping) else {}, defs)
        kind = prop.get("type")
        if "enum" in prop:
            kind = "enum"
        elif kind not in ("string", "number", "integer", "boolean"):
            kind = "json"
        fields.append(
            FormField(
                name=name,
                type=kind,
                label=str(prop.get("title") or name.replace("_", " ").capitalize()),
                description=str(prop.get("description") or ""),
                required=name in required,
                options=tuple(str(o) for o in prop.get("enum") or ()),
                hint=_hint(prop),
                default=prop.get("default"),
            )  # fmt: skip
        )
    return fields


def _typed(f: FormField, raw: Any, schema: Mapping[str, Any]) -> Any:
    """A field's value from what the form holds (text, or a bool for a switch); ValueError to show."""
    if f.type == "boolean":
        return bool(raw)
    text = str(raw).strip()
    if f.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("enter a whole number") from None
    if f.type == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("enter a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("enter a finite number")
        return number
    if f.type == "enum":
        prop = _resolve((schema.get("properties") or {}).get(f.name) or {}, schema.get("$defs") or {})
        for option in prop.get("enum") or []:
            if str(option) == text:
                return option  # the option itself: 2, not "2"
        raise ValueError(f"choose one of {', '.join(f.options)}")
    if f.type == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"enter JSON ({exc})") from None
    return str(raw)  # a string as typed (spaces are the user's)


def form_inputs(
    schema: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(run inputs, problems by field name) for what the fields hold; an empty field is left out.

    The problems are the engine's own schema check of the typed inputs (required, minimum,
    pattern, ...) plus values that cannot be typed at all.
    """
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in form_fields(schema):
        raw = values.get(f.name)
        if raw is None or (not isinstance(raw, bool) and str(raw).strip() == ""):
            continue
        try:
            inputs[f.name] = _typed(f, raw, schema)
        except ValueError as exc:
            errors[f.name] = str(exc)
    for problem in json_schemas.instance_problems(schema, inputs):
        name = problem.path.split(".")[0] if problem.path else ""
        missing = _REQUIRED.fullmatch(problem.message)
        if not name and missing:
            name, message = missing.group(1), "required"
        else:
            message = problem.message
        if name and name not in errors:
            errors[name] = message
        elif not name:
            errors.setdefault("", message)
    return inputs, errors


def submit(
    trigger: TriggerRow,
    schema: Mapping[str, Any],
    values: Mapping[str, Any],
    submission_id: str,
    *,
    started_by: str = "",
    database_url: str | None = None,
) -> Submitted:
    """Start the form's run from the fields' values; nothing starts when `errors` is not empty.

    The same `submission_id` again returns the run the first submission started (`duplicate`).
    """
    if not isinstance(trigger.config, FormConfig):
        raise FlowloomError(
            f"trigger {trigger.key!r} is not a form trigger", code=ErrorCode.TRIGGER_NOT_FOUND
        )
    if not _SUBMISSION_ID.match(submission_id):
        raise FlowloomError(
            "the form's submission id is malformed; reload the page", code=ErrorCode.REQUEST_INVALID
        )
    inputs, errors = form_inputs(schema, values)
    if errors:
        return Submitted("", errors=errors)
    try:
        fired = trigger_fire.fire(trigger, f"form:{submission_id}", inputs, started_by=started_by,
                                  database_url=database_url)  # fmt: skip
    except ValidationError as exc:  # the saved version changed under the page
        return Submitted(
            "", errors={(i.field or "").removeprefix("input.") or "": i.message for i in exc.issues}
        )
    return Submitted(str(fired.run_id), duplicate=fired.duplicate)


def result(run_id: str, wait_s: float, *, database_url: str | None = None) -> RunOutcome | None:
    """The run's outcome after waiting up to `wait_s` (the form's) for it to end (it may still be going)."""
    wait_for_end(run_id, wait_s, database_url=database_url)
    return run_outcome(run_id, "", database_url=database_url)
