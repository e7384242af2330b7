"""The run page's Guardrails card: each rule that fired on a step of the run (its
`workflow.guardrail.violated` events), with the node, the field, the action taken and the redacted excerpt."""

from __future__ import annotations

from dataclasses import dataclass

import reflex as rx

from engine import events
from engine.run_detail import RunDetail


@dataclass
class GuardrailLine:
    """One guardrail that fired."""

    seq: int
    node_id: str
    rule: str
    action: str
    level: str
    field: str
    excerpt: str
    message: str


def guardrail_lines(detail: RunDetail) -> list[GuardrailLine]:
    """The run's guardrail violations among its latest events, oldest first."""
    lines = []
    for e in detail.events:
        if e.event_type != events.GUARDRAIL_VIOLATED:
            continue
        data = (e.payload or {}).get("data") or {}
        lines.append(
            GuardrailLine(
                seq=e.seq, node_id=str(data.get("node_id") or ""), rule=str(data.get("rule") or ""),
                action=str(data.get("action") or ""), level=str(data.get("level") or ""),
                field=str(data.get("field") or ""), excerpt=str(data.get("excerpt") or ""),
                message=str(data.get("message") or data.get("error") or ""),
            )
        )  # fmt: skip
    return lines


def _line(line: GuardrailLine) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(line.node_id, size="1", weight="medium")),
        rx.table.cell(rx.code(line.rule, size="1", variant="ghost"), data_testid="guardrail-rule"),
        rx.table.cell(rx.badge(line.action, size="1", color_scheme=rx.cond(line.action == "mask", "blue", "red")),
                      data_testid="guardrail-action"),
        rx.table.cell(rx.text(line.field, size="1", font_family="monospace"), data_testid="guardrail-field"),
        rx.table.cell(rx.text(line.excerpt, size="1", font_family="monospace"), data_testid="guardrail-excerpt"),
        rx.table.cell(rx.text(line.message, " (", line.level, ")", size="1", color=rx.color("gray", 11))),
        data_testid="run-guardrail",
        data_node_id=line.node_id,
    )  # fmt: skip


def guardrail_card(lines: rx.Var[list[GuardrailLine]]) -> rx.Component:
    """The card, shown only when a guardrail fired."""
    header = rx.table.header(
        rx.table.row(*(rx.table.column_header_cell(rx.text(h, size="1")) for h in
                       ("Node", "Rule", "Action", "Field", "Excerpt (redacted)", "Why"))),
    )  # fmt: skip
    return rx.cond(
        lines.length() > 0,
        rx.card(
            rx.vstack(
                rx.hstack(rx.icon("shield-alert", size=16), rx.heading("Guardrails", size="3"), align="center"),
                rx.table.root(header, rx.table.body(rx.foreach(lines, _line)), size="1", variant="ghost",
                              width="100%"),
                spacing="2",
                width="100%",
            ),
            id="run-guardrails",
            width="100%",
        ),
    )  # fmt: skip
