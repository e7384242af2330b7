"""The palette has a group, a title and a colour for every category a node type declares."""

from __future__ import annotations

import re
from pathlib import Path

from components.palette import CATEGORY_COLORS, CATEGORY_ORDER, CATEGORY_TITLES, _ordered_types
from engine.contract import all_node_types

FLOW_NODE_JSX = Path(__file__).resolve().parents[2] / "assets" / "flow_node.jsx"


def test_every_node_category_is_a_palette_group_with_a_title_and_a_colour() -> None:
    # The node types Flowloom ships (other tests register their own, e.g. in a "test" category).
    categories = {t.category for t in all_node_types() if t.run.__module__.startswith("nodes.")}
    assert {"control", "ai", "memory", "tool", "human"} <= categories
    assert categories <= set(CATEGORY_ORDER), categories - set(CATEGORY_ORDER)
    assert set(CATEGORY_ORDER) == set(CATEGORY_TITLES) == set(CATEGORY_COLORS)


def test_the_canvas_colours_every_palette_category_instead_of_the_fallback() -> None:
    source = FLOW_NODE_JSX.read_text()
    known = re.search(r"KNOWN_CATEGORIES = new Set\(\[([^\]]*)\]\)", source)
    assert known is not None
    assert set(re.findall(r'"([^"]+)"', known.group(1))) == set(CATEGORY_ORDER)
    for category in CATEGORY_ORDER:
        assert f".fl-cat-{category} {{" in source


def test_memory_nodes_are_listed_after_ai_and_before_tools() -> None:
    order = [t.category for t in _ordered_types()]
    assert order.index("memory") > max(i for i, c in enumerate(order) if c == "ai")
    assert order.index("memory") < order.index("tool")
