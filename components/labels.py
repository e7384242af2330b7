"""Labels and row actions that assistive technology understands: a real <label for=...> in the type
style of the app, and a plain button that makes a clickable table row reachable from the keyboard."""

from __future__ import annotations

from typing import Any

import reflex as rx

LABEL_STYLE = {
    "font_size": "var(--font-size-2)",
    "line_height": "var(--line-height-2)",
    "font_weight": "500",
    "color": "var(--gray-12)",
}


def label_id(control_id: str | rx.Var[str]) -> str | rx.Var[str]:
    """The id of the label of the control `control_id` (for aria-labelledby on Radix selects and switches)."""
    return control_id + "-label"


def field_label(text: Any, control_id: str | rx.Var[str], *extra: rx.Component, **props: Any) -> rx.Component:
    """<label for=control_id>text</label>; clicking it focuses the control, screen readers name it."""
    return rx.el.label(text, *extra, html_for=control_id, id=label_id(control_id), style=LABEL_STYLE, **props)


def labelled_select(
    text: Any, control_id: str, choices: Any, value: Any, on_change: Any, **label_props: Any
) -> list[rx.Component]:
    """A field_label and the Radix select it names (a select's trigger takes its label by
    aria-labelledby), to put side by side in a toolbar or a form's row."""
    return [
        field_label(text, control_id, **label_props),
        rx.select(choices, value=value, on_change=on_change, size="2", id=control_id,
                  custom_attrs={"aria-labelledby": label_id(control_id)}),
    ]  # fmt: skip


# Hidden on screen, read by screen readers (the usual "sr-only" rules).
SR_ONLY = {
    "position": "absolute",
    "width": "1px",
    "height": "1px",
    "padding": "0",
    "margin": "-1px",
    "overflow": "hidden",
    "clip": "rect(0, 0, 0, 0)",
    "white_space": "nowrap",
    "border": "0",
}


def screen_reader_text(text: Any) -> rx.Component:
    """Text only assistive technology reads (a column header whose column holds buttons, say)."""
    return rx.el.span(text, style=SR_ONLY)


def row_button(*children: Any, on_click: Any, **props: Any) -> rx.Component:
    """The keyboard way into a clickable row: a button that looks like the row's text, doing what a
    click on the row does (Tab reaches it, Enter or Space presses it)."""
    return rx.el.button(
        *children,
        type="button",
        on_click=on_click,
        style={
            "all": "unset",
            "cursor": "pointer",
            "font_weight": "500",
            "font_size": "var(--font-size-2)",
            "color": "var(--gray-12)",
            "border_radius": "var(--radius-1)",
            "&:focus-visible": {"outline": "2px solid var(--accent-9)", "outline_offset": "2px"},
            "&:hover": {"text_decoration": "underline"},
        },
        **props,
    )
