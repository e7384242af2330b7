"""Fragments of a workflow: some nodes and the edges between them, as the clipboard and snippets
carry them. Anything that arrives as one (pasted text, a stored snippet) is checked here before it
reaches a graph: the same limits and models as a definition, edges only between its own nodes.

Clipboard text is JSON: {"flowloom": "fragment", "version": 1, "nodes": [...], "edges": [...]}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.definition import WorkflowDefinition
from engine.errors import DefinitionError
from engine.parse import load_json, parse_dict

MARKER = "fragment"
FORMAT_VERSION = 1


def check_fragment(data: Any, source: str = "fragment") -> dict[str, Any]:
    """The fragment in its full JSON form (defaults written out); DefinitionError says what is wrong
    and where (`fragment: nodes[1].type`)."""
    if not isinstance(data, Mapping):
        raise DefinitionError("a fragment is a JSON object with nodes and edges", path=source)
    nodes, edges = data.get("nodes"), data.get("edges", [])
    if not isinstance(nodes, list) or not nodes:
        raise DefinitionError("a fragment holds at least one node", path=f"{source}: nodes")
    if not isinstance(edges, list):
        raise DefinitionError("edges must be a list", path=f"{source}: edges")
    # The definition's checks (sizes, counts, models, unique ids), on a workflow made of the fragment.
    defn = parse_dict({"name": "fragment", "nodes": nodes, "edges": edges}, source=source)
    ids = {n.id for n in defn.nodes}
    for index, edge in enumerate(defn.edges):
        for end in ("source", "target"):
            if getattr(edge, end) not in ids:
                raise DefinitionError(
                    f"edge {edge.id!r} leads to {getattr(edge, end)!r}, which is not in the fragment",
                    path=f"{source}: edges[{index}].{end}",
                )
    return _dump(defn)


def _dump(defn: WorkflowDefinition) -> dict[str, Any]:
    data = defn.to_dict()
    return {"nodes": data["nodes"], "edges": data["edges"]}


def fragment_text(fragment: Mapping[str, Any]) -> str:
    """The clipboard text of a fragment."""
    body = {
        "flowloom": MARKER,
        "version": FORMAT_VERSION,
        "nodes": fragment["nodes"],
        "edges": fragment["edges"],
    }
    return json.dumps(body, ensure_ascii=False)


def looks_like_fragment(text: str) -> bool:
    """Whether pasted text claims to be a Flowloom fragment (it may still be refused)."""
    head = text.lstrip()[:200]
    return head.startswith("{") and '"flowloom"' in head


def parse_fragment_text(text: str) -> dict[str, Any]:
    """A fragment from clipboard text; DefinitionError when it is not one or not a valid one."""
    data = load_json(text, "clipboard")
    if not isinstance(data, Mapping) or data.get("flowloom") != MARKER:
        raise DefinitionError(
            'the clipboard holds no Flowloom nodes (no "flowloom": "fragment")', path="clipboard"
        )
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise DefinitionError(
            f"fragment version {version!r} is not supported (this is {FORMAT_VERSION})", path="clipboard"
        )
    return check_fragment({"nodes": data.get("nodes"), "edges": data.get("edges", [])}, source="clipboard")
