"""The workflow canvas: a thin wrapper of assets/flow_canvas.jsx (React Flow 12)."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.event import EventHandler, passthrough_event_spec


class FlowCanvas(rx.Component):
    """React Flow with Flowloom's node renderer; drag positions and selection stay in the browser."""

    library = "$/public/flow_canvas.jsx"  # assets/ is served as public/
    tag = "FlowCanvas"
    # react-markdown and remark-gfm render sticky notes (the versions rx.markdown already uses).
    lib_dependencies: list[str] = ["@xyflow/react@12.10.0", "react-markdown@10.1.0", "remark-gfm@4.0.1"]

    active: rx.Var[bool]  # False while the tab still holds another workflow: draw nothing
    readonly: rx.Var[bool]  # a run's page: nodes can be selected, never moved, joined, dropped or deleted
    nodes: rx.Var[list[dict[str, Any]]]  # {id, t (node type), label, x, y, outs?}
    edges: rx.Var[list[dict[str, Any]]]  # {id, source, sourceHandle, target, targetHandle, label}
    statuses: rx.Var[dict[str, str]]  # node id -> run status
    issues: rx.Var[dict[str, dict[str, str]]]  # node id -> {level, text}
    phases: rx.Var[dict[str, int]]  # node id -> its phase in the validated execution plan (a badge)
    types: rx.Var[dict[str, Any]]  # node type -> {label, category, icon, inputs, outputs}
    icons: rx.Var[dict[str, Any]]  # icon name -> icon element
    fit: rx.Var[dict[str, Any]]  # {n, all}: fit the view whenever n changes (all: even a big graph)
    focus: rx.Var[
        dict[str, Any]
    ]  # {ids, center, n} or {edges, n}: select (and centre) them whenever n changes
    # Sticky notes and groups: {notes: [{id, text, color, x, y, w, h}], groups: [{..., title, nodes}]}
    annotations: rx.Var[dict[str, Any]]
    # A version diff drawn instead of the graph, read-only: {nodes, edges, annotations}, each item
    # marked `d` (added, removed, changed, moved); {} shows the graph.
    diff: rx.Var[dict[str, Any]]

    on_drop: EventHandler[passthrough_event_spec(str, float, float)]
    on_move: EventHandler[passthrough_event_spec(list)]
    on_connect: EventHandler[passthrough_event_spec(str, str, str, str)]
    on_select: EventHandler[passthrough_event_spec(list, list)]
    on_delete: EventHandler[passthrough_event_spec(list, list)]
    on_shortcut: EventHandler[passthrough_event_spec(str)]
    # (action, canvas id, data): add_note {x, y}, group {nodes, x, y, width, height}, update {text,
    # title, color, x, y, width, height}, ungroup {}
    on_annotate: EventHandler[passthrough_event_spec(str, str, dict)]
    # Text pasted over the canvas that claims to be Flowloom nodes (checked by engine.fragments).
    on_paste_text: EventHandler[passthrough_event_spec(str)]


flow_canvas = FlowCanvas.create
