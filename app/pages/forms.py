"""A form trigger's page: the workflow's inputs as a form, on a bare page (no sidebar, nothing of
the app around it), since a public form's visitors are not signed in."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page
from app.pages.forms_state import FieldRow
from app.pages.forms_state import FormState as S
from components.config_form import field_error


def _control(f: FieldRow) -> rx.Component:
    text = {
        "value": f.value,
        "on_change": lambda v: S.set_value(f.name, v),
        "width": "100%",
        "name": f.name,
        "custom_attrs": {"aria-label": f.label},
    }
    return rx.match(
        f.kind,
        ("boolean", rx.switch(checked=f.checked, on_change=lambda v: S.set_flag(f.name, v), name=f.name)),
        (
            "enum",
            rx.select(
                f.options,
                value=f.value,
                on_change=lambda v: S.set_value(f.name, v),
                width="100%",
                placeholder="Choose…",
                name=f.name,
            ),
        ),  # fmt: skip
        ("json", rx.text_area(**text, rows="4", font_family="monospace")),
        ("number", rx.input(**text, input_mode="decimal")),
        ("integer", rx.input(**text, input_mode="numeric")),
        rx.input(**text),
    )


def _field(f: FieldRow) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text(f.label, size="2", weight="medium"),
            rx.cond(f.required, rx.text("*", color=rx.color("red", 10), size="2")),
            spacing="1",
        ),
        rx.cond(f.description != "", rx.text(f.description, size="1", color=rx.color("gray", 11))),
        _control(f),
        rx.cond(f.hint != "", rx.text(f.hint, size="1", color=rx.color("gray", 11))),
        field_error(f.error),
        spacing="1",
        width="100%",
        data_field=f.name,
        data_invalid=rx.cond(f.error != "", "true", "false"),
    )


def _form() -> rx.Component:
    return rx.vstack(
        rx.foreach(S.fields, _field),
        rx.cond(
            S.form_error != "",
            rx.callout(S.form_error, icon="circle-alert", color_scheme="red", width="100%", id="form-error"),
        ),
        rx.button("Submit", on_click=S.submit, size="3", id="form-submit", width="100%"),
        spacing="4",
        width="100%",
        id="trigger-form",
    )


def _done() -> rx.Component:
    return rx.vstack(
        rx.callout(S.message, icon="circle-check", color_scheme="green", width="100%", id="form-message"),
        rx.cond(
            S.status == "waiting",
            rx.hstack(rx.spinner(size="2"), rx.text("Waiting for the result…", size="2"), id="form-waiting"),
        ),
        rx.cond(
            S.result != "",
            rx.vstack(
                rx.badge(S.result_status, variant="soft", id="form-result-status"),
                rx.code_block(S.result, language="json", width="100%", id="form-result"),
                width="100%",
            ),
        ),
        rx.button("Fill in again", on_click=S.again, variant="soft", id="form-again"),
        spacing="3",
        width="100%",
    )


def _not_found() -> rx.Component:
    return rx.vstack(
        rx.heading("404", size="8", color=rx.color("gray", 11)),
        rx.text("This page could not be found.", size="3"),
        align="center",
        spacing="2",
        id="form-not-found",
    )


@page(route=routes.FORM, title="Form", on_load=S.load, bare=True)
def form_page() -> rx.Component:
    """A form trigger's page (or "not found")."""
    return rx.center(
        rx.box(
            rx.match(
                S.status,
                ("loading", rx.center(rx.spinner(size="3"), padding="3rem")),
                ("not_found", _not_found()),
                (
                    "ready",
                    rx.card(
                        rx.vstack(
                            rx.heading(S.title, size="6", id="form-title"),
                            rx.cond(
                                S.description != "",
                                rx.text(S.description, size="2", color=rx.color("gray", 11)),
                            ),
                            _form(),
                            spacing="4",
                            width="100%",
                        ),
                        padding="1.5rem",
                        width="100%",
                    ),
                ),
                rx.card(
                    rx.vstack(rx.heading(S.title, size="6"), _done(), spacing="4", width="100%"),
                    padding="1.5rem",
                    width="100%",
                ),
            ),
            width="100%",
            max_width="36rem",
        ),
        min_height="100vh",
        padding="2rem 1rem",
        background=rx.color("gray", 2),
    )
