"""The Agents page: saved agents (state, capabilities, memory, recent executions); create, edit, validate, terminate."""

from __future__ import annotations

from typing import Any

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.agents_state import POLICIES, AgentRow
from app.pages.agents_state import AgentsState as S
from components.config_form import config_form
from components.data_table import data_table


def _actions(row: AgentRow) -> rx.Component:
    return rx.cond(
        S.can_edit,
        rx.hstack(
            rx.button("Edit", size="1", variant="soft", on_click=S.edit_agent(row.id),
                      disabled=(row.state == "TERMINATED") | (row.state == "EXECUTING")),
            rx.button("Validate", size="1", variant="soft", color_scheme="green",
                      on_click=S.validate_agent(row.id), disabled=row.state == "TERMINATED"),
            rx.button("Terminate", size="1", variant="soft", color_scheme="red",
                      on_click=S.terminate_agent(row.id), disabled=row.state == "TERMINATED"),
            spacing="1",
        ),
    )  # fmt: skip


def _row(row: AgentRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, weight="medium", size="2"),
                rx.code(row.id, size="1", variant="ghost"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.badge(row.state, color_scheme=row.color, variant="soft", data_testid="agent-state"),
                rx.cond(
                    row.reason != "",
                    rx.text(row.reason, size="1", color=rx.color("red", 11), max_width="22rem"),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.flex(
                rx.foreach(row.capabilities, lambda c: rx.badge(c, variant="surface", radius="full")),
                wrap="wrap",
                gap="1",
            )  # fmt: skip
        ),
        rx.table.cell(rx.text(row.memory, size="1")),
        rx.table.cell(
            rx.vstack(
                rx.text(row.executions, size="1"),
                rx.text(row.last, size="1", color=rx.color("gray", 11)),
                spacing="1",
            )
        ),  # fmt: skip
        rx.table.cell(_actions(row)),
        align="center",
        data_testid="agent-row",
        data_agent_id=row.id,
    )


def _table() -> rx.Component:
    columns = ["Agent", ("State", "9rem"), "Capabilities", "Memory", "Recent executions", ("", "14rem")]
    return data_table("agents-table", columns, S.rows, _row)


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%")


def _text_field(label: str, key: str, value: rx.Var[str], aria_label: str = "", **props: Any) -> rx.Component:
    """A labelled text input of the agent form, bound to its field `key` (set_form_value)."""
    control = rx.input(
        value=value, aria_label=aria_label or label, on_change=lambda v: S.set_form_value(key, v), **props
    )
    return _labelled(label, control)


def _form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading(rx.cond(S.editing_id != "", "Edit agent", "New agent"), size="3", weight="medium"),
            _text_field("Name", "name", S.name, id="agent-name", width="100%"),
            _text_field("Description", "description", S.description, width="100%"),
            _text_field(
                "Capabilities (comma-separated, e.g. SUMMARISE; those the config implies are added)",
                "capabilities_text",
                S.capabilities_text,
                aria_label="Capabilities",
                id="agent-capabilities",
                width="100%",
            ),  # fmt: skip
            rx.hstack(
                _labelled(
                    "Sessions across runs",
                    rx.select(
                        POLICIES,
                        value=S.memory_policy,
                        on_change=lambda v: S.set_form_value("memory_policy", v),
                        custom_attrs={"aria-label": "Sessions across runs"},
                    ),
                ),
                _text_field("Turns kept", "memory_turns", S.memory_turns),
                _text_field("USD per 1M input tokens", "price_in", S.price_in),
                _text_field("USD per 1M output tokens", "price_out", S.price_out),
                width="100%",
            ),  # fmt: skip
            rx.heading("Model, prompt, tools and memory", size="2", weight="medium", margin_top="0.5rem"),
            config_form(S.config_fields, "agent-config-form", set=S.set_field, flag=S.set_flag),
            _labelled(
                "Guardrails (JSON)",
                rx.text_area(
                    value=S.guardrails_text,
                    rows="3",
                    font_family="monospace",
                    aria_label="Guardrails",
                    width="100%",
                    on_change=lambda v: S.set_form_value("guardrails_text", v),
                ),
            ),  # fmt: skip
            rx.cond(
                S.form_error != "",
                rx.text(S.form_error, color=rx.color("red", 11), size="2", id="agent-form-error"),
            ),
            rx.hstack(
                rx.button("Save and validate", on_click=S.save, id="agent-save"),
                rx.button("Cancel", variant="soft", color_scheme="gray", on_click=S.close_form),
                spacing="2",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        margin_top="1rem",
        id="agent-form",
    )


@page(route=routes.AGENTS, title="Agents", on_load=S.load)
def agents_page() -> rx.Component:
    """Saved agents."""
    return rx.box(
        page_header(
            "Agents",
            "Saved agents that agent nodes run by id or capability; each is validated before it is READY.",
            rx.cond(
                S.can_edit,
                rx.button(rx.icon("plus", size=14), "New agent", on_click=S.new_agent, id="agent-new"),
            ),
        ),
        error_callout(S.error),
        listing(
            S.loaded,
            S.rows.length() > 0,
            _table(),
            empty_state(
                "agents-empty",
                "bot",
                "No agents yet",
                "Create one, then pick it in an agent node's agent_id (or ask for its capability).",
            ),
        ),
        rx.cond(S.form_open, _form()),
        width="100%",
    )
