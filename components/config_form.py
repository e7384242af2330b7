"""A form generated from a config JSON schema: text, number, select, multi-line prompt, key-value,
secret reference, boolean, a choice from a list the page supplies and a JSON fallback, each with
its inline error.

`build_fields` turns (schema, values, errors) into rows the browser renders; `parse_input` turns
what the user typed back into a config value. `config_form` renders the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from components.labels import field_label as label_element
from components.labels import label_id
from engine.config_fields import CHOICES

DEBOUNCE_MS = 250
UNSET = object()  # parse_input's answer for an emptied field: drop the key, the default applies


@dataclass
class FormField:
    """One input of a generated form, as the browser sees it."""

    name: str
    label: str
    kind: str  # text | multiline | number | select | choice | boolean | keyvalue | secret | json
    description: str = ""
    value: str = ""
    checked: bool = False
    options: list[str] = field(default_factory=list)
    pairs: list[list[str]] = field(default_factory=list)
    choices: list[list[str]] = field(default_factory=list)  # a choice field's [value, label] rows
    required: bool = False
    error: str = ""
    placeholder: str = ""


class InputError(ValueError):
    """What the user typed cannot become a value of the field (bad JSON, not a number)."""


def resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """A property schema with its $ref followed and an optional (X | None) unwrapped to X."""
    prop = dict(prop)
    ref = prop.pop("$ref", None)
    if isinstance(ref, str):
        prop = {**defs.get(ref.rsplit("/", 1)[-1], {}), **prop}
    options = prop.get("anyOf")
    if isinstance(options, list):
        real = [p for p in options if p.get("type") != "null"]
        if len(real) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**resolve(real[0], defs), **rest, "nullable": True}
    return prop


def field_kind(prop: Mapping[str, Any]) -> str:
    """Which input renders a property."""
    fmt, kind = prop.get("format"), prop.get("type")
    if prop.get(CHOICES):  # a list the page fills (build_fields' `choices`)
        return "choice"
    if fmt in ("secret", "keyvalue", "multiline"):
        return fmt
    if "enum" in prop or (kind == "string" and prop.get("examples")):
        return "select"
    if kind == "boolean":
        return "boolean"
    if kind in ("number", "integer"):
        return "number"
    if kind == "string":
        return "text"
    return "json"


ACRONYMS = {
    "url": "URL",
    "api": "API",
    "id": "ID",
    "http": "HTTP",
    "sql": "SQL",
    "json": "JSON",
    "llm": "LLM",
}
UNITS = {"s": "(s)", "ms": "(ms)"}


def field_label(name: str, prop: Mapping[str, Any]) -> str:
    """A field's label: its schema title if one was written, else its name in words ("timeout_s" -> "Timeout (s)")."""
    title = prop.get("title")
    if title and title != name.replace("_", " ").title():
        return title
    words = [w for w in name.split("_") if w]
    if not words:
        return name
    if len(words) > 1 and words[-1] in UNITS:
        words[-1] = UNITS[words[-1]]
    words = [ACRONYMS.get(w.lower(), w) for w in words]
    first = words[0]
    return " ".join([first if first.isupper() else first.capitalize(), *words[1:]])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def _placeholder(prop: Mapping[str, Any], kind: str) -> str:
    default = prop.get("default")
    if kind == "secret":
        return "a secret's name (Secrets page)"
    if default not in (None, "", [], {}):
        return f"{_text(default)} (default)"
    return {"json": "JSON value", "number": "a number"}.get(kind, "")


def build_fields(
    schema: Mapping[str, Any],
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
    drafts: Mapping[str, Any] | None = None,
    choices: Mapping[str, list[list[str]]] | None = None,
) -> list[FormField]:
    """The form rows of `schema` filled with `values`; `drafts` hold text not yet valid (shown as typed);
    `choices` the [value, label] rows of each choice field (a value not among them is added, marked)."""
    errors, drafts, choices = errors or {}, drafts or {}, choices or {}
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = []
    for name, raw_prop in schema.get("properties", {}).items():
        prop = resolve(raw_prop, defs)
        kind = field_kind(prop)
        value = values.get(name, UNSET)
        row = FormField(
            name=name,
            label=field_label(name, prop),
            kind=kind,
            description=prop.get("description", ""),
            required=name in required,
            error=errors.get(name, ""),
            placeholder=_placeholder(prop, kind),
            options=[str(o) for o in prop.get("enum") or prop.get("examples") or []],
        )
        if kind == "boolean":
            row.checked = bool(prop.get("default", False) if value is UNSET else value)
        elif kind == "keyvalue":
            pairs = drafts.get(name)
            if pairs is None and isinstance(value, Mapping):
                pairs = [[str(k), _text(v)] for k, v in value.items()]
            row.pairs = [list(p) for p in pairs or []]
        elif kind == "choice":
            row.value = "" if value is UNSET else _text(value)
            row.choices = [list(c) for c in choices.get(name, [])]
            if row.value and row.value not in {c[0] for c in row.choices}:
                row.choices.append([row.value, f"{row.value} (not in the list)"])
        else:
            row.value = drafts[name] if name in drafts else ("" if value is UNSET else _text(value))
        rows.append(row)
    return rows


def parse_input(prop: Mapping[str, Any], text: str) -> Any:
    """The config value for what the user typed into the field of `prop` (UNSET for an empty field)."""
    kind = field_kind(prop)
    if not text.strip():
        return UNSET
    if "{{" in text and kind in ("number", "json", "select"):
        if kind == "json":  # JSON whose strings hold templates ({"value": "{{ input.x }}"}) stays JSON
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
        return text  # a template: rendered and checked when the step runs
    if kind == "choice" and prop.get("type") == "integer":
        if not text.strip().isdigit():
            raise InputError("pick one from the list")
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise InputError("enter a number") from None
        return int(number) if prop.get("type") == "integer" and number.is_integer() else number
    if kind == "json" or (kind == "multiline" and "type" not in prop and text.lstrip()[:1] in "{["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    return text


def pairs_value(pairs: list[list[str]]) -> dict[str, str]:
    """A key-value field's config value: rows with a key, in order."""
    return {key.strip(): value for key, value in pairs if key.strip()}


# Rendering

FieldHandler = Callable[..., Any]


def _label(f: rx.Var, control_id: rx.Var[str]) -> rx.Component:
    return rx.hstack(
        label_element(f.label, control_id),
        rx.cond(f.required, rx.text("*", color=rx.color("red", 11), size="2", aria_hidden="true")),
        rx.spacer(),
        rx.cond(
            f.description != "",
            rx.tooltip(
                rx.icon("info", size=14, color=rx.color("gray", 11), aria_label=f.description, role="img"),
                content=f.description,
            ),
        ),
        align="center",
        spacing="1",
        width="100%",
    )


def _keyvalue(
    f: rx.Var, on_pair: FieldHandler, on_add: FieldHandler, on_remove: FieldHandler, control_id: rx.Var[str]
) -> rx.Component:
    return rx.vstack(
        rx.foreach(
            f.pairs,
            lambda pair, i: rx.hstack(
                rx.input(
                    value=pair[0], placeholder="key", size="1", flex="1", aria_label=f.label + " key",
                    on_change=lambda v: on_pair(f.name, i, 0, v), debounce_timeout=DEBOUNCE_MS,
                ),
                rx.input(
                    value=pair[1], placeholder="value", size="1", flex="1.4", aria_label=f.label + " value",
                    on_change=lambda v: on_pair(f.name, i, 1, v), debounce_timeout=DEBOUNCE_MS,
                ),
                rx.icon_button(
                    rx.icon("x", size=12), size="1", variant="ghost", color_scheme="gray",
                    on_click=on_remove(f.name, i), aria_label="Remove row",
                ),
                width="100%", spacing="1", align="center",
            ),
        ),
        rx.button(
            rx.icon("plus", size=12), "Add", size="1", variant="soft", color_scheme="gray",
            on_click=on_add(f.name), data_testid="kv-add", id=control_id,
        ),
        spacing="1",
        width="100%",
    )  # fmt: skip


def _input(f: rx.Var, handlers: Mapping[str, FieldHandler], control_id: rx.Var[str]) -> rx.Component:
    on_set = handlers["set"]
    labelled = {"aria_labelledby": label_id(control_id)}
    labelled_attrs = {"aria-labelledby": label_id(control_id)}  # a select's trigger takes them this way
    text_props = {
        "id": control_id,
        "value": f.value,
        "placeholder": f.placeholder,
        "on_change": lambda v: on_set(f.name, v),
        "debounce_timeout": DEBOUNCE_MS,
        "width": "100%",
        "size": "2",
    }
    return rx.match(
        f.kind,
        ("multiline", rx.text_area(**text_props, rows="4", resize="vertical")),
        ("json", rx.text_area(**text_props, rows="3", resize="vertical", font_family="monospace")),
        ("number", rx.input(**text_props, type="text", input_mode="decimal")),
        (
            "select",
            rx.select(
                f.options,
                value=f.value,
                placeholder=rx.cond(f.placeholder != "", f.placeholder, "Choose…"),
                on_change=lambda v: on_set(f.name, v),
                width="100%",
                id=control_id,
                custom_attrs=labelled_attrs,
            ),
        ),
        (
            "choice",
            rx.select.root(
                rx.select.trigger(
                    placeholder=rx.cond(f.choices.length() > 0, "Choose…", "Nothing to choose from"),
                    width="100%",
                    id=control_id,
                    custom_attrs=labelled_attrs,
                ),
                rx.select.content(rx.foreach(f.choices, lambda c: rx.select.item(c[1], value=c[0]))),
                value=f.value,
                on_change=lambda v: on_set(f.name, v),
            ),
        ),
        (
            "boolean",
            rx.switch(
                checked=f.checked, on_change=lambda v: handlers["flag"](f.name, v), id=control_id, **labelled
            ),
        ),
        (
            "keyvalue",
            _keyvalue(f, handlers["pair"], handlers["add_pair"], handlers["remove_pair"], control_id)
            if "pair" in handlers
            else rx.text_area(**text_props, rows="3", font_family="monospace"),
        ),
        ("secret", rx.input(rx.input.slot(rx.icon("key-round", size=14)), **text_props)),
        rx.input(**text_props),
    )


def field_error(error: rx.Var[str]) -> rx.Component:
    """A field's error in red under it (tests and assistive checks find it by its test id)."""
    return rx.cond(
        error != "", rx.text(error, size="1", color=rx.color("red", 11), data_testid="field-error")
    )


def config_form(fields: rx.Var[list[FormField]], form_id: str, **handlers: FieldHandler) -> rx.Component:
    """The rows of `fields`; handlers: set(name, text), flag(name, on), and for key-value fields
    pair(name, i, part, text), add_pair(name), remove_pair(name, i)."""
    return rx.vstack(
        rx.foreach(
            fields,
            lambda f: rx.vstack(
                _label(f, f"{form_id}-" + f.name),
                _input(f, handlers, f"{form_id}-" + f.name),
                field_error(f.error),
                spacing="1",
                width="100%",
                data_field=f.name,
                data_kind=f.kind,
                data_invalid=rx.cond(f.error != "", "true", "false"),
            ),
        ),
        spacing="4",
        width="100%",
        id=form_id,
    )
