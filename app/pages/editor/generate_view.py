"""The "Describe your workflow" dialog and the banner of a generated graph waiting to be accepted."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.generate_state import EditorGenerate as G
from components.dialogs import dialog_buttons
from engine.workflow_generation import MAX_DESCRIPTION


def _reason(text: rx.Var[str]) -> rx.Component:
    return rx.el.li(rx.text(text, size="1"), data_testid="generate-reason")


def generate_dialog() -> rx.Component:
    """Describe the workflow; the configured model drafts it, the validator checks it."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Describe your workflow"),
            rx.dialog.description(
                "The configured model drafts a definition; Flowloom validates it (and asks the model once "
                "to fix what fails). You see it on the canvas and keep it only if you accept it.",
                size="2", margin_bottom="0.75rem",
            ),
            rx.cond(
                ~G.gen_configured,
                rx.callout("No model is configured for generating workflows: an admin sets "
                           "FLOWLOOM_GENERATOR_MODEL (and its provider, URL and API key secret).",
                           icon="info", color_scheme="amber", size="1", margin_bottom="0.5rem",
                           id="generate-not-configured"),
            ),
            rx.text_area(
                value=G.gen_description, on_change=G.set_gen_description, rows="6", width="100%",
                placeholder="e.g. When a support e-mail arrives by webhook, classify it, and send urgent ones to a "
                            "person for approval before replying.",
                max_length=MAX_DESCRIPTION, id="generate-description", aria_label="What the workflow should do",
            ),
            rx.cond(
                G.gen_error != "",
                rx.callout(
                    rx.vstack(
                        rx.text(G.gen_error, size="1"),
                        rx.el.ul(rx.foreach(G.gen_reasons, _reason), margin="0", padding_left="1rem"),
                        spacing="1",
                    ),
                    icon="circle-alert", color_scheme="red", size="1", margin_top="0.5rem", id="generate-error",
                ),
            ),
            dialog_buttons(
                rx.button(rx.icon("sparkles", size=15), "Generate", on_click=G.generate, loading=G.gen_busy,
                          disabled=(G.gen_description.strip() == "") | ~G.gen_configured, id="generate-submit"),
                close_disabled=G.gen_busy,
            ),
            max_width="40rem",
        ),
        open=G.gen_open,
        on_open_change=G.set_gen_open,
    )  # fmt: skip


def generated_banner() -> rx.Component:
    """Shown while the canvas holds a generated graph that is not saved: accept or discard it."""
    return rx.cond(
        G.gen_preview,
        rx.hstack(
            rx.icon("sparkles", size=15, color=rx.color("violet", 11)),
            rx.text("Generated workflow: ", rx.text.strong(G.gen_summary), size="2"),
            rx.button("Discard", size="1", variant="soft", color_scheme="gray", on_click=G.discard_generated,
                      id="generate-discard"),
            rx.button("Accept and save", size="1", on_click=G.accept_generated, id="generate-accept"),
            position="absolute", top="0.75rem", left="50%", transform="translateX(-50%)", z_index="6",
            padding="0.4rem 0.75rem", border_radius="999px", background="var(--color-panel-solid)",
            box_shadow="0 1px 4px rgba(0,0,0,.16)", align="center", spacing="2", id="generate-banner",
        ),
    )  # fmt: skip
