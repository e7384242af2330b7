"""The Templates page: a gallery of working workflows to start from, and importing one from a file."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.auth.guard import AuthState
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.templates_state import CategoryChip, TemplateCard
from app.pages.templates_state import TemplatesState as S
from components.dialogs import dialog_buttons
from components.uploads import file_drop

UPLOAD_ID = "template-upload"


def _need(icon: str, items: rx.Var, color: str, kind: str) -> rx.Component:
    return rx.foreach(
        items,
        lambda item: rx.badge(
            rx.icon(icon, size=11), item, variant="soft", color_scheme=color, radius="full",
            data_testid=f"need-{kind}",
        ),
    )  # fmt: skip


def _needs(card: TemplateCard) -> rx.Component:
    return rx.vstack(
        rx.text("Needs", size="1", weight="medium", color=rx.color("gray", 11)),
        rx.cond(
            card.needs_nothing,
            rx.text("Nothing: runs as it is", size="1", color=rx.color("gray", 11)),
            rx.flex(
                _need("zap", card.triggers, "orange", "trigger"),
                _need("key-round", card.secrets, "red", "secret"),
                _need("text-cursor-input", card.inputs, "blue", "input"),
                _need("cpu", card.models, "violet", "model"),
                wrap="wrap",
                gap="1",
            ),
        ),
        spacing="1",
        width="100%",
    )


def _use_button(card: TemplateCard) -> rx.Component:
    button = rx.button(
        rx.icon("plus", size=14), "Use template", variant="soft", width="100%",
        on_click=S.use_template(card.key), id=f"use-template-{card.key}", disabled=~AuthState.can_edit,
    )  # fmt: skip
    return rx.cond(
        AuthState.can_edit,
        button,
        rx.tooltip(rx.box(button, width="100%"), content="Editors can create workflows from templates"),
    )


def _card(card: TemplateCard) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.center(
                    rx.icon(card.icon, size=18, color=rx.color("accent", 11)),
                    width="2.25rem",
                    height="2.25rem",
                    border_radius="var(--radius-3)",
                    background=rx.color("accent", 3),
                    flex_shrink="0",
                ),  # fmt: skip
                rx.vstack(
                    rx.heading(card.title, size="3", weight="medium", data_testid="template-title"),
                    rx.hstack(
                        rx.badge(card.category_label, variant="surface", color_scheme="gray"),
                        rx.text(card.nodes, " nodes · ", card.mode, size="1", color=rx.color("gray", 11)),
                        spacing="2",
                        align="center",
                    ),
                    spacing="1",
                ),
                spacing="3",
                align="start",
                width="100%",
            ),
            rx.image(
                src=card.preview,
                alt=f"Graph of {card.title}",
                width="100%",
                height="120px",
                border_radius="var(--radius-3)",
                background=rx.color("gray", 2),
                border=f"1px solid {rx.color('gray', 4)}",
                data_testid="template-preview",
            ),  # fmt: skip
            rx.text(card.description, size="2", color=rx.color("gray", 11)),
            _needs(card),
            rx.spacer(),
            _use_button(card),
            spacing="3",
            height="100%",
        ),
        size="2",
        data_testid="template-card",
        data_template_key=card.key,
    )


def _chip(chip: CategoryChip) -> rx.Component:
    active = S.category == chip.value
    return rx.button(
        chip.label,
        rx.text(chip.count, size="1", opacity="0.9"),
        size="1", radius="full", variant=rx.cond(active, "solid", "soft"),
        color_scheme=rx.cond(active, "violet", "gray"), on_click=S.set_category(chip.value),
        data_testid="category-chip", data_category=chip.value,
        custom_attrs={"aria-pressed": rx.cond(active, "true", "false")},
    )  # fmt: skip


def _toolbar() -> rx.Component:
    return rx.vstack(
        rx.input(
            rx.input.slot(rx.icon("search", size=16)),
            placeholder="Search templates: approval, kafka, rag, …",
            value=S.search,
            on_change=S.set_search,
            debounce_timeout=250,
            id="template-search",
            aria_label="Search templates",
            data_search_shortcut=True,
            width="22rem",
        ),  # fmt: skip
        rx.flex(rx.foreach(S.chips, _chip), wrap="wrap", spacing="2", id="category-chips"),
        spacing="3",
        width="100%",
        margin_bottom="1.25rem",
    )


def _import_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Import from a file"),
            rx.dialog.description(
                "A template file (template: and definition:) or a workflow definition, as JSON or YAML; "
                "it becomes a new workflow and opens in the editor.",
                size="2",
                margin_bottom="0.75rem",
            ),  # fmt: skip
            file_drop(
                UPLOAD_ID,
                "Drop a .json or .yaml file here, or click to choose one",
                "Up to 1 MB",
                {"application/json": [".json"], "application/yaml": [".yaml", ".yml"]},
                S.import_file(rx.upload_files(upload_id=UPLOAD_ID, on_upload_progress=S.import_progress)),
                multiple=False,
            ),
            rx.cond(
                S.import_percent >= 0,
                rx.vstack(
                    rx.progress(value=S.import_percent, max=100, aria_label="Import progress", width="100%"),
                    rx.text(
                        rx.cond(
                            S.import_percent < 100,
                            f"Uploading… {S.import_percent}%",
                            "Checking and saving the workflow…",
                        ),
                        size="1",
                        color=rx.color("gray", 11),
                        role="status",
                    ),
                    id="template-import-progress",
                    width="100%",
                    spacing="1",
                    margin_top="0.75rem",
                ),
            ),
            rx.cond(
                S.import_error != "",
                rx.callout(
                    S.import_error,
                    icon="circle-alert",
                    color_scheme="red",
                    size="1",
                    margin_top="0.75rem",
                    id="template-import-error",
                ),  # fmt: skip
            ),
            dialog_buttons(close="Close"),
            max_width="32rem",
        ),
        open=S.import_open,
        on_open_change=S.set_import_open,
    )


def _import_button() -> rx.Component:
    return rx.cond(
        AuthState.can_edit,
        rx.button(
            rx.icon("file-up", size=16),
            "Import from file",
            variant="soft",
            on_click=S.set_import_open(True),
            id="import-template-button",
        ),  # fmt: skip
    )


def _gallery() -> rx.Component:
    no_match = empty_state(
        "templates-no-match", "search-x", "No matching templates",
        "No template's title, description, tags or nodes contain that text in this category.",
    )  # fmt: skip
    grid = rx.grid(
        rx.foreach(S.shown, _card),
        columns=rx.breakpoints(initial="1", sm="2", lg="3"),
        spacing="4",
        width="100%",
        id="template-grid",
    )
    return listing(S.loaded, S.shown.length() > 0, grid, rx.cond(S.error == "", no_match), spinner=True)


@page(route=routes.TEMPLATES, title="Templates", on_load=S.load)
def templates_page() -> rx.Component:
    """The template gallery."""
    return rx.box(
        page_header("Templates", "Start from a working example and adapt it.", _import_button()),
        error_callout(S.error),
        _toolbar(),
        _gallery(),
        _import_dialog(),
        width="100%",
    )
