"""The validation panel's execution plan: "Phase 1: [start]", "Phase 2: [fetch, check]", ...; each
node id selects and centres its node. A state machine's plan is an outline (breadth-first from the
start; loops come back to earlier phases)."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.state import EditorState as S
from app.pages.editor.tools_state import EditorTools as T


def _node_chip(node_id: rx.Var[str]) -> rx.Component:
    return rx.button(
        node_id, size="1", variant="soft", color_scheme="gray", font_family="monospace",
        on_click=T.focus_node(node_id), data_testid="plan-node", data_node_id=node_id,
    )  # fmt: skip


def _phase(phase: rx.Var[list[str]], index: rx.Var[int]) -> rx.Component:
    return rx.hstack(
        rx.text("Phase ", index + 1, ":", size="1", weight="medium", white_space="nowrap", min_width="4.5rem"),
        rx.flex(rx.foreach(phase, _node_chip), wrap="wrap", gap="1"),
        align="center", spacing="2", data_testid="plan-phase", data_phase=index + 1,
    )  # fmt: skip


def plan_view() -> rx.Component:
    return rx.cond(
        T.validated,
        rx.vstack(
            rx.divider(),
            rx.hstack(
                rx.text("Execution plan", size="2", weight="bold"),
                rx.cond(S.mode == "state_machine",
                        rx.text("(outline: breadth-first from start; loops revisit)", size="1",
                                color=rx.color("gray", 11))),
                align="baseline", spacing="2",
            ),
            rx.cond(
                T.plan_phases.length() > 0,
                rx.scroll_area(rx.vstack(rx.foreach(T.plan_phases, _phase), spacing="1"), max_height="9rem",
                               type="auto"),
                rx.text("No plan until the errors are fixed.", size="1", color=rx.color("gray", 11)),
            ),
            spacing="2", width="100%", id="execution-plan",
        ),
    )  # fmt: skip
