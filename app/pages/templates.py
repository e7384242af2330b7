"""The Templates page: example workflows to start from."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import page, page_header
from app.pages.templates_state import TEMPLATES, WorkflowTemplate
from app.pages.templates_state import TemplatesState as S


def _steps(template: WorkflowTemplate) -> rx.Component:
    chips: list[rx.Component] = []
    for index, label in enumerate(template.steps):
        if index:
            chips.append(rx.icon("chevron-right", size=12, color=rx.color("gray", 8)))
        chips.append(rx.badge(label, variant="surface", color_scheme="gray", radius="full"))
    return rx.flex(*chips, wrap="wrap", gap="1", align="center")


def _card(template: WorkflowTemplate) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.center(
                rx.icon(template.icon, size=20, color=rx.color("accent", 11)),
                width="2.5rem",
                height="2.5rem",
                border_radius="var(--radius-3)",
                background=rx.color("accent", 3),
            ),
            rx.heading(template.name, size="3", weight="medium"),
            rx.text(template.description, size="2", color=rx.color("gray", 10)),
            _steps(template),
            rx.spacer(),
            rx.button(
                rx.icon("plus", size=14),
                "Use template",
                variant="soft",
                width="100%",
                on_click=S.use_template(template.key),
                id=f"use-template-{template.key}",
            ),
            spacing="3",
            height="100%",
        ),
        size="2",
        data_testid="template-card",
    )


@page(route=routes.TEMPLATES, title="Templates")
def templates_page() -> rx.Component:
    """The template gallery."""
    return rx.box(
        page_header("Templates", "Start from a working example and adapt it."),
        rx.grid(
            *[_card(t) for t in TEMPLATES],
            columns=rx.breakpoints(initial="1", sm="2", lg="3"),
            spacing="4",
            width="100%",
        ),
        width="100%",
    )
