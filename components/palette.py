"""The node palette: every registered node type by category, searchable, draggable onto the canvas.

From the keyboard, Tab reaches each item and Enter (or Space) adds its node in the middle of the
canvas's view: the item sends a DOM event the canvas answers with its usual drop event.

The registry is fixed when the app compiles, so the palette is rendered statically; the search
box only toggles which items show. `canvas_types` and `canvas_icons` give the canvas the same
catalogue (labels, icons, typed ports) as compile-time constants, not state.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby
from typing import Any

import reflex as rx

from engine.contract import NodeType, all_node_types

DRAG_MIME = "application/reactflow"
ADD_NODE_EVENT = "flowloom:add-node"  # what assets/flow_canvas.jsx listens for (a node chosen by keyboard)
CATEGORY_TITLES = {
    "control": "Flow control",
    "ai": "AI",
    "memory": "Memory",
    "tool": "Tools",
    "human": "Human",
}
CATEGORY_ORDER = ["control", "ai", "memory", "tool", "human"]
# Keep in step with the .fl-cat-* classes of assets/flow_node.jsx (tests/unit/test_palette.py checks).
CATEGORY_COLORS = {"control": "gray", "ai": "violet", "memory": "green", "tool": "blue", "human": "amber"}
FALLBACK_ICON = "box"


def _ordered_types() -> list[NodeType]:
    rank = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return sorted(all_node_types(), key=lambda t: (rank.get(t.category, len(rank)), t.category, t.label))


def canvas_types() -> dict[str, Any]:
    """node type -> what the canvas draws: label, category, icon and typed ports."""
    catalogue = {}
    for t in all_node_types():
        catalogue[t.type] = {
            "label": t.label,
            "category": t.category,
            "icon": t.icon,
            "inputs": {name: vars(port) for name, port in t.inputs.items()},
            "outputs": {name: vars(port) for name, port in t.outputs.items()},
        }
    return catalogue


def canvas_icons(size: int = 16) -> dict[str, rx.Component]:
    """icon name -> icon element, for every icon a node type uses (imported one by one, not the whole set)."""
    names = {t.icon for t in all_node_types()} | {FALLBACK_ICON}
    return {name: rx.icon(name, size=size) for name in sorted(names)}


def _matches(query: rx.Var[str], node_type: NodeType) -> rx.Var[bool]:
    haystack = f"{node_type.label} {node_type.type} {node_type.category} {node_type.description}".lower()
    return (query == "") | rx.Var.create(haystack).contains(query.lower())


def _item(node_type: NodeType, query: rx.Var[str]) -> rx.Component:
    color = CATEGORY_COLORS.get(node_type.category, "teal")
    return rx.hstack(
        rx.center(
            rx.icon(node_type.icon, size=15, color=rx.color(color, 11)),
            width="1.75rem",
            height="1.75rem",
            border_radius="var(--radius-2)",
            background=rx.color(color, 3),
            flex_shrink="0",
        ),
        rx.vstack(
            rx.text(node_type.label, size="2", weight="medium"),
            rx.text(node_type.type, size="1", color=rx.color("gray", 11)),
            spacing="0",
            min_width="0",
        ),
        align="center",
        spacing="2",
        padding="0.4rem 0.5rem",
        border_radius="var(--radius-3)",
        border=f"1px solid {rx.color('gray', 4)}",
        background="var(--color-panel-solid)",
        cursor="grab",
        width="100%",
        _hover={"border_color": rx.color("accent", 7), "background": rx.color("accent", 2)},
        _focus_visible={"outline": f"2px solid {rx.color('accent', 9)}", "outline_offset": "1px"},
        display=rx.cond(_matches(query, node_type), "flex", "none"),
        title=node_type.description,
        draggable=True,
        tab_index=0,
        role="button",
        aria_keyshortcuts="Enter",
        data_testid="palette-item",
        data_node_type=node_type.type,
        custom_attrs={
            # dataTransfer must be filled synchronously during dragstart, so this stays in JS.
            "onDragStart": rx.Var(
                f"(e) => {{ e.dataTransfer.setData('{DRAG_MIME}', '{node_type.type}');"
                " e.dataTransfer.effectAllowed = 'move'; }"
            ),
            # Enter or Space adds the node without a drag (assets/flow_canvas.jsx places it).
            "onKeyDown": rx.Var(
                "(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault();"
                f" window.dispatchEvent(new CustomEvent('{ADD_NODE_EVENT}', {{ detail: {{ kind: '{node_type.type}' }} }})); }} }}"
            ),
        },
    )


def palette(query: rx.Var[str], on_query: Callable[[str], Any]) -> rx.Component:
    """The searchable palette; `on_query` receives the search text."""
    groups = []
    for category, members in groupby(_ordered_types(), key=lambda t: t.category):
        types = list(members)
        visible = _matches(query, types[0])
        for node_type in types[1:]:
            visible = visible | _matches(query, node_type)
        groups.append(
            rx.vstack(
                rx.text(
                    CATEGORY_TITLES.get(category, category.title()),
                    size="1",
                    weight="bold",
                    color=rx.color("gray", 11),
                    text_transform="uppercase",
                    letter_spacing="0.04em",
                ),
                *[_item(t, query) for t in types],
                spacing="1",
                width="100%",
                display=rx.cond(visible, "flex", "none"),
                data_category=category,
            )
        )
    return rx.vstack(
        rx.input(
            rx.input.slot(rx.icon("search", size=14)),
            placeholder="Search nodes",
            value=query,
            on_change=on_query,
            size="2",
            width="100%",
            id="palette-search",
            aria_label="Search nodes",
            data_search_shortcut=True,
        ),
        rx.text(
            "Drag a node onto the canvas, or Tab to it and press Enter", size="1", color=rx.color("gray", 11)
        ),
        rx.scroll_area(
            rx.vstack(*groups, spacing="4", width="100%", padding_right="0.6rem"),
            type="hover",
            scrollbars="vertical",
            flex="1",
            min_height="0",
        ),
        spacing="2",
        padding="0.75rem",
        width="15rem",
        min_width="15rem",
        height="100%",
        border_right=f"1px solid {rx.color('gray', 4)}",
        background=rx.color("gray", 1),
        id="palette",
    )
