"""The editor's working graph: a workflow definition as plain data, edited by returning new graphs.

A `WorkingGraph` is never changed in place: every edit returns a new graph that shares the
untouched node and edge dicts with the old one. Undo is then a stack of references, and
Reflex does not wrap the graph in its change-tracking proxies (it is not a list or dict).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from app.pages.editor import notes_groups
from engine.connections import connection_problems
from engine.contract import NodeType, Port, get_node_type
from engine.definition import ERROR_PORT, NODE_ID_PATTERN, WORKFLOW_ID_PATTERN, WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError
from engine.parse import parse_dict

PASTE_OFFSET = 40
_NODE_ID = re.compile(NODE_ID_PATTERN)


class EditRefused(FlowloomError):
    """An edit the editor will not make (a refused connection, a taken id); the message says why."""

    code = ErrorCode.EDIT_REFUSED


def empty_definition(name: str) -> dict[str, Any]:
    """A new workflow's definition: no nodes yet."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]
    workflow_id = slug if re.fullmatch(WORKFLOW_ID_PATTERN, slug) else "workflow"
    return WorkflowDefinition(id=workflow_id, name=name or "Workflow", nodes=[]).to_dict()


def output_ports(node_type: NodeType, config: Mapping[str, Any]) -> dict[str, Port]:
    """A node's output ports for its current config (approval actions and condition branches add ports)."""
    if node_type.dynamic_outputs is None:
        return dict(node_type.outputs)
    model = node_type.config_model
    try:
        cfg = model.model_validate(dict(config))
    except Exception:  # an invalid config still shows the ports it names
        try:
            cfg = model.model_construct(**dict(config))
        except Exception:
            return dict(node_type.outputs)
    try:
        return node_type.output_ports(cfg)
    except Exception:
        return dict(node_type.outputs)


def input_ports(node_type: NodeType, config: Mapping[str, Any]) -> dict[str, Port]:
    """A node's input ports for its current config (a sub-workflow's are the called workflow's inputs)."""
    if node_type.dynamic_inputs is None:
        return dict(node_type.inputs)
    try:
        return node_type.input_ports(node_type.config_model.model_validate(dict(config)))
    except Exception:  # an invalid config, or a called version that cannot be read: the declared ports
        return dict(node_type.inputs)


def _typed(ports: Mapping[str, Port]) -> list[tuple[str, str]]:
    return [(name, port.type) for name, port in ports.items()]


def _port_dict(port: Port) -> dict[str, Any]:
    return {"type": port.type, "required": port.required, "description": port.description}


class WorkingGraph:
    """An immutable workflow definition (its JSON form) with the edits the editor makes."""

    __slots__ = ("defn", "_index")

    def __init__(self, defn: dict[str, Any]) -> None:
        self.defn = defn
        self._index = {node["id"]: i for i, node in enumerate(defn.get("nodes", []))}

    def __getstate__(self) -> dict[str, Any]:
        return {"defn": self.defn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["defn"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkingGraph) and self.defn == other.defn

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_definition(cls, defn: WorkflowDefinition) -> WorkingGraph:
        return cls(defn.to_dict())

    # Reading

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return self.defn.get("nodes", [])

    @property
    def edges(self) -> list[dict[str, Any]]:
        return self.defn.get("edges", [])

    @property
    def mode(self) -> str:
        return self.defn.get("mode", "dag")

    def node(self, node_id: str) -> dict[str, Any] | None:
        index = self._index.get(node_id)
        return None if index is None else self.nodes[index]

    def to_definition(self) -> WorkflowDefinition:
        """The typed definition; DefinitionError says where the data is malformed."""
        return parse_dict(self.defn)

    def canvas_nodes(self) -> list[dict[str, Any]]:
        """What the canvas draws of each node: id, type, label, position and config-derived outputs."""
        return [self._canvas_node(node) for node in self.nodes]

    def canvas_node(self, node_id: str) -> dict[str, Any] | None:
        """What the canvas draws of one node (None if there is no such node)."""
        node = self.node(node_id)
        return None if node is None else self._canvas_node(node)

    def _canvas_node(self, node: Mapping[str, Any]) -> dict[str, Any]:
        position = node.get("position") or {}
        item = {
            "id": node["id"],
            "t": node["type"],
            "label": node.get("label", ""),
            "x": position.get("x", 0.0),
            "y": position.get("y", 0.0),
        }
        node_type = get_node_type(node["type"])
        if node_type is not None and node_type.dynamic_outputs is not None:
            ports = output_ports(node_type, node.get("config") or {})
            if _typed(ports) != _typed(node_type.outputs):  # other ports, or the same typed by the config
                item["outs"] = {name: _port_dict(port) for name, port in ports.items()}
        if node_type is not None and node_type.dynamic_inputs is not None:
            ins = input_ports(node_type, node.get("config") or {})
            if _typed(ins) != _typed(node_type.inputs):
                item["ins"] = {name: _port_dict(port) for name, port in ins.items()}
        return item

    def canvas_edges(self) -> list[dict[str, Any]]:
        return [
            {
                "id": e["id"],
                "source": e["source"],
                "sourceHandle": e.get("source_port", "out"),
                "target": e["target"],
                "targetHandle": e.get("target_port", "in"),
                "label": e.get("label") or (e.get("condition") or ""),
            }
            for e in self.edges
        ]

    # Editing: each returns a new graph

    def _with(self, **changes: Any) -> WorkingGraph:
        return WorkingGraph({**self.defn, **changes})

    def replace(self, **fields: Any) -> WorkingGraph:
        """The same graph with top-level fields (mode, inputs, outputs, description) replaced."""
        return self._with(**fields)

    def new_node_id(self, base: str, taken: set[str] | None = None) -> str:
        """`base` made a valid, unused node id ("agent", then "agent_2", ...)."""
        taken = set(self._index) if taken is None else taken
        stem = re.sub(r"[^A-Za-z0-9_\-]", "_", base).strip("_") or "node"
        if not stem[0].isalpha() and stem[0] != "_":
            stem = f"n_{stem}"
        stem = re.sub(r"_\d+$", "", stem)[:56] or "node"
        if stem not in taken:
            return stem
        n = 2
        while f"{stem}_{n}" in taken:
            n += 1
        return f"{stem}_{n}"

    def add_node(self, type_name: str, x: float, y: float) -> tuple[WorkingGraph, str]:
        node_type = get_node_type(type_name)
        if node_type is None:
            raise EditRefused(f"unknown node type {type_name!r}", code=ErrorCode.UNKNOWN_NODE_TYPE)
        node_id = self.new_node_id(type_name.replace(".", "_"))
        node = {
            "id": node_id,
            "type": type_name,
            "label": node_type.label,
            "config": {},
            "position": {"x": float(x), "y": float(y)},
            "retry": None,
            "timeout_s": None,
            "max_visits": None,
        }
        return self._with(nodes=[*self.nodes, node]), node_id

    def move(self, moves: Iterable[Mapping[str, Any]]) -> WorkingGraph:
        moves = list(moves)
        where = {m["id"]: (float(m["x"]), float(m["y"])) for m in moves if m.get("id") in self._index}
        notes_and_groups = [m for m in moves if notes_groups.is_annotation(str(m.get("id", "")))]
        if not where and not notes_and_groups:
            return self
        nodes = [
            {**n, "position": {"x": where[n["id"]][0], "y": where[n["id"]][1]}} if n["id"] in where else n
            for n in self.nodes
        ]
        if not notes_and_groups:
            return self._with(nodes=nodes)
        return WorkingGraph(notes_groups.move({**self.defn, "nodes": nodes}, moves))

    def update_node(self, node_id: str, **fields: Any) -> WorkingGraph:
        """The node `node_id` with `fields` (config, label) replaced."""
        if node_id not in self._index:
            return self
        nodes = [{**n, **fields} if n["id"] == node_id else n for n in self.nodes]
        return self._with(nodes=nodes)

    def rename_node(self, node_id: str, new_id: str) -> WorkingGraph:
        """Give a node a new id, carrying its edges along."""
        if new_id == node_id:
            return self
        if not _NODE_ID.match(new_id):
            raise EditRefused(
                "an id starts with a letter or _ and holds letters, digits, _ or - (up to 64)",
                code=ErrorCode.BAD_ID,
            )
        if new_id in self._index:
            raise EditRefused(f'another node is already called "{new_id}"', code=ErrorCode.DUPLICATE_ID)
        nodes = [{**n, "id": new_id} if n["id"] == node_id else n for n in self.nodes]
        edges = [
            {
                **e,
                "source": new_id if e["source"] == node_id else e["source"],
                "target": new_id if e["target"] == node_id else e["target"],
            }
            if node_id in (e["source"], e["target"])
            else e
            for e in self.edges
        ]
        return WorkingGraph(
            notes_groups.rename_member({**self.defn, "nodes": nodes, "edges": edges}, node_id, new_id)
        )

    def remove(self, node_ids: Iterable[str], edge_ids: Iterable[str] = ()) -> WorkingGraph:
        """Without the given nodes (and every edge touching them) and edges."""
        gone_nodes, gone_edges = set(node_ids), set(edge_ids)
        if not gone_nodes and not gone_edges:
            return self
        nodes = [n for n in self.nodes if n["id"] not in gone_nodes]
        edges = [
            e
            for e in self.edges
            if e["id"] not in gone_edges and e["source"] not in gone_nodes and e["target"] not in gone_nodes
        ]
        # Deleted notes and groups (canvas ids "note:..", "group:.."); deleted nodes leave their group.
        return WorkingGraph(
            notes_groups.remove({**self.defn, "nodes": nodes, "edges": edges}, gone_nodes, gone_nodes)
        )

    # Connections

    def check_connection(self, source: str, source_port: str, target: str, target_port: str) -> None:
        """Raise EditRefused with the reason when this connection may not be drawn."""
        src, dst = self.node(source), self.node(target)
        if src is None or dst is None:
            raise EditRefused("both ends must be nodes of this workflow", code=ErrorCode.DANGLING_EDGE)
        src_type, dst_type = get_node_type(src["type"]), get_node_type(dst["type"])
        if src_type is None or dst_type is None:
            unknown = src["type"] if src_type is None else dst["type"]
            raise EditRefused(
                f"node type {unknown!r} is unknown, so its ports are unknown",
                code=ErrorCode.UNKNOWN_NODE_TYPE,
            )
        problems = connection_problems(
            mode=self.mode,
            source=source,
            source_port=source_port,
            source_outputs=output_ports(src_type, src.get("config") or {}),
            target=target,
            target_port=target_port,
            target_inputs=input_ports(dst_type, dst.get("config") or {}),
        )
        if problems:
            first = problems[0]
            raise EditRefused(first.message, code=first.code, node_id=first.node_id, field=first.field)
        for e in self.edges:
            if (e["source"], e.get("source_port"), e["target"], e.get("target_port")) == (
                source,
                source_port,
                target,
                target_port,
            ):
                raise EditRefused("these two ports are already connected", code=ErrorCode.DUPLICATE_EDGE)
        if self.mode == "dag" and source != target:
            path = self._path(target, source)
            if path:
                loop = " → ".join([source, *path])
                raise EditRefused(
                    f"that would close a loop ({loop}); a DAG has no loops (use state-machine mode)",
                    code=ErrorCode.CYCLE,
                )

    def _path(self, start: str, goal: str) -> list[str]:
        """Node ids of a directed path start..goal along existing edges, or []."""
        following: dict[str, list[str]] = {}
        for e in self.edges:
            following.setdefault(e["source"], []).append(e["target"])
        came_from: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            if here == goal:
                path = [here]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])  # type: ignore[arg-type]
                return list(reversed(path))
            for nxt in following.get(here, []):
                if nxt not in came_from:
                    came_from[nxt] = here
                    queue.append(nxt)
        return []

    def connect(
        self, source: str, source_port: str, target: str, target_port: str
    ) -> tuple[WorkingGraph, str]:
        """A new graph with the connection, or EditRefused saying why not."""
        self.check_connection(source, source_port, target, target_port)
        taken = {e["id"] for e in self.edges}
        edge_id = f"{source}__{target}"
        n = 2
        while edge_id in taken:
            edge_id = f"{source}__{target}_{n}"
            n += 1
        edge = {
            "id": edge_id,
            "source": source,
            "source_port": source_port,
            "target": target,
            "target_port": target_port,
            "condition": None,
            "label": "",
        }
        return self._with(edges=[*self.edges, edge]), edge_id

    def edge(self, edge_id: str) -> dict[str, Any] | None:
        return next((e for e in self.edges if e["id"] == edge_id), None)

    def output_port_names(self, node_id: str) -> list[str] | None:
        """The output ports of a node for its current config (error included); None for an unknown type."""
        node = self.node(node_id)
        node_type = get_node_type(node["type"]) if node else None
        if node is None or node_type is None:
            return None
        return [*output_ports(node_type, node.get("config") or {}), ERROR_PORT]

    def update_edge(self, edge_id: str, **fields: Any) -> WorkingGraph:
        """The edge `edge_id` with `fields` (label, condition) replaced."""
        edges = [{**e, **fields} if e["id"] == edge_id else e for e in self.edges]
        return self._with(edges=edges)

    def set_error_output(self, edge_id: str, on: bool) -> WorkingGraph:
        """The edge moved to its source's error output (`on`) or back to its first regular output;
        EditRefused when the connection would not be allowed from there."""
        edge = self.edge(edge_id)
        if edge is None:
            raise EditRefused(f'edge "{edge_id}" is not in this workflow', code=ErrorCode.DANGLING_EDGE)
        ports = [p for p in self.output_port_names(edge["source"]) or [] if p != ERROR_PORT]
        if not on and not ports:
            raise EditRefused(f'"{edge["source"]}" has no other output than its error output',
                              code=ErrorCode.UNKNOWN_PORT)  # fmt: skip
        port = ERROR_PORT if on else ("out" if "out" in ports else ports[0])
        if port == edge.get("source_port"):
            return self
        rest = self._with(edges=[e for e in self.edges if e["id"] != edge_id])
        rest.check_connection(edge["source"], port, edge["target"], edge.get("target_port", "in"))
        return self.update_edge(edge_id, source_port=port)

    # Clipboard

    def fragment(self, node_ids: Iterable[str]) -> dict[str, Any] | None:
        """The chosen nodes and the edges between them, for the clipboard; None if no node is chosen."""
        chosen = [n for n in self.nodes if n["id"] in set(node_ids)]
        if not chosen:
            return None
        ids = {n["id"] for n in chosen}
        edges = [e for e in self.edges if e["source"] in ids and e["target"] in ids]
        return {"nodes": chosen, "edges": edges}

    def paste(
        self, fragment: Mapping[str, Any], offset: float = PASTE_OFFSET
    ) -> tuple[WorkingGraph, list[str]]:
        """Add a copy of `fragment` shifted by `offset`, with fresh node and edge ids."""
        taken = set(self._index)
        renamed: dict[str, str] = {}
        nodes = []
        for node in fragment.get("nodes", []):
            new_id = self.new_node_id(node["id"], taken)
            taken.add(new_id)
            renamed[node["id"]] = new_id
            position = node.get("position") or {}
            nodes.append(
                {
                    **node,
                    "id": new_id,
                    "position": {"x": position.get("x", 0.0) + offset, "y": position.get("y", 0.0) + offset},
                }
            )
        edge_ids = {e["id"] for e in self.edges}
        edges = []
        for edge in fragment.get("edges", []):
            source, target = renamed[edge["source"]], renamed[edge["target"]]
            edge_id, n = f"{source}__{target}", 2
            while edge_id in edge_ids:
                edge_id, n = f"{source}__{target}_{n}", n + 1
            edge_ids.add(edge_id)
            edges.append({**edge, "id": edge_id, "source": source, "target": target})
        return self._with(nodes=[*self.nodes, *nodes], edges=[*self.edges, *edges]), list(renamed.values())
