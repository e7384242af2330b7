"""A small Python DSL that builds the same `WorkflowDefinition` the JSON/YAML parsers do.

    with Workflow("triage") as wf:
        start = Node("start", "start")
        fetch = Node("fetch", "tool.http", url="https://example.com")
        done = Node("done", "end")
        start >> fetch >> done                    # out -> in
        fetch.port("error") >> done.port("in")    # explicit ports
    defn = wf.definition()

`>>` returns the right-hand node (or list of nodes) so chains work; a list on either side
fans out or in (`a >> [b, c] >> d`; a list on both sides is not supported). Keyword
arguments of `Node` other than label, position, retry, timeout_s, max_visits, on_error, guardrails and config
become the node's config; pass `config={...}` for config fields with those names.
`Workflow(triggers=[...], annotations={...})` carry triggers and canvas notes/groups;
`wf.connect(a.port("x"), b, id="e1", label="...", condition="...")` names an edge.
`engine.dsl_export.to_dsl` writes any definition back as this DSL's source.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Literal

from engine.definition import (
    Annotations,
    ErrorHandling,
    OnError,
    RetryPolicy,
    TriggerSpec,
    WorkflowDefinition,
    WorkflowPolicy,
)
from engine.errors import DefinitionError
from engine.parse import parse_dict

_current: ContextVar[Workflow | None] = ContextVar("flowloom_dsl_workflow", default=None)


class Workflow:
    """Collects nodes and edges; use as a context manager so `Node(...)` joins it."""

    def __init__(
        self,
        name: str,
        *,
        id: str = "workflow",
        mode: Literal["dag", "state_machine"] = "dag",
        version: int = 1,
        description: str = "",
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
        error_handling: ErrorHandling | None = None,
        policy: WorkflowPolicy | None = None,
        triggers: list[TriggerSpec | dict[str, Any]] | None = None,
        annotations: Annotations | dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.id = id
        self.mode = mode
        self.version = version
        self.description = description
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.error_handling = error_handling or ErrorHandling()
        self.policy = policy or WorkflowPolicy()
        self.triggers = [t.model_dump() if isinstance(t, TriggerSpec) else dict(t) for t in triggers or []]
        self.annotations = (
            annotations.model_dump() if isinstance(annotations, Annotations) else dict(annotations or {})
        )
        self.nodes: dict[str, Node] = {}
        self.edges: list[dict[str, Any]] = []
        self._edge_ids: set[str] = set()
        self._token: Any = None

    def __enter__(self) -> Workflow:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        self._token = None

    def add(self, node: Node) -> Node:
        """Add `node` (done for you by `Node(...)` inside the `with` block)."""
        if node.id in self.nodes:
            raise DefinitionError(f"duplicate node id {node.id!r}; node ids must be unique", node_id=node.id)
        self.nodes[node.id] = node
        node.workflow = self
        return node

    def connect(
        self,
        source: Node | PortRef,
        target: Node | PortRef,
        *,
        condition: str | None = None,
        label: str = "",
        id: str | None = None,
    ) -> str:
        """Add an edge from `source` (node: port "out") to `target` (node: port "in"); returns its id
        (`id`, else one made from the nodes and ports)."""
        src = source if isinstance(source, PortRef) else PortRef(source, "out")
        tgt = target if isinstance(target, PortRef) else PortRef(target, "in")
        for ref in (src, tgt):
            if ref.node.workflow is not self:
                raise DefinitionError(
                    f"node {ref.node.id!r} belongs to another workflow", node_id=ref.node.id
                )
        condition = condition if condition is not None else src.condition
        if id is not None and id in self._edge_ids:
            raise DefinitionError(f"duplicate edge id {id!r}; edge ids must be unique")
        edge_id = self._edge_id(src, tgt) if id is None else id
        self._edge_ids.add(edge_id)
        edge: dict[str, Any] = {
            "id": edge_id,
            "source": src.node.id,
            "source_port": src.port,
            "target": tgt.node.id,
            "target_port": tgt.port,
            "label": label,
        }
        if condition is not None:
            edge["condition"] = condition
        self.edges.append(edge)
        return edge_id

    def definition(self) -> WorkflowDefinition:
        """The `WorkflowDefinition` built so far (checked like a parsed file)."""
        data = {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "mode": self.mode,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "nodes": [node.spec() for node in self.nodes.values()],
            "edges": list(self.edges),
            "error_handling": self.error_handling.model_dump(),
            "policy": self.policy.model_dump(),
            "triggers": list(self.triggers),
            "annotations": dict(self.annotations),
        }
        return parse_dict(data, source=f"workflow {self.name!r}")

    def _edge_id(self, src: PortRef, tgt: PortRef) -> str:
        if src.port == "out" and tgt.port == "in":
            base = f"{src.node.id}->{tgt.node.id}"
        else:
            base = f"{src.node.id}.{src.port}->{tgt.node.id}.{tgt.port}"
        edge_id, n = base, 1
        while edge_id in self._edge_ids:
            n += 1
            edge_id = f"{base}#{n}"
        return edge_id


class _Connectable:
    """What may stand on either side of `>>`."""

    def _source_ref(self) -> PortRef:
        raise NotImplementedError

    def _target_ref(self) -> PortRef:
        raise NotImplementedError

    def __rshift__(self, other: Any) -> Any:
        src = self._source_ref()
        for target in _as_list(other):
            _owner(src).connect(src, target._target_ref())
        return _result(other)

    def __rrshift__(self, other: Any) -> Any:
        tgt = self._target_ref()
        for source in _as_list(other):
            _owner(tgt).connect(source._source_ref(), tgt)
        return _result(self)


class Node(_Connectable):
    """A node of the enclosing `Workflow`; extra keyword arguments are its config."""

    def __init__(
        self,
        id: str,
        type: str,
        *,
        label: str = "",
        position: tuple[float, float] = (0, 0),
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
        max_visits: int | None = None,
        on_error: OnError | None = None,
        guardrails: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        workflow: Workflow | None = None,
        **config_fields: Any,
    ) -> None:
        self.id = id
        self.type = type
        self.label = label
        self.position = position
        self.retry = retry
        self.timeout_s = timeout_s
        self.max_visits = max_visits
        self.on_error = on_error
        self.guardrails = guardrails
        self.config = {**(config or {}), **config_fields}
        self.workflow: Workflow | None = None
        owner = workflow or _current.get()
        if owner is None:
            raise DefinitionError(
                f"Node {id!r} was created outside a `with Workflow(...)` block; pass workflow=...",
                node_id=id,
            )
        owner.add(self)

    def port(self, name: str) -> PortRef:
        """This node's port `name` (an output on the left of `>>`, an input on the right)."""
        return PortRef(self, name)

    def when(self, condition: str, port: str = "out") -> PortRef:
        """An output port whose edges fire only if `condition` (a Jinja2 expression) is true."""
        return PortRef(self, port, condition)

    def spec(self) -> dict[str, Any]:
        """This node as definition data."""
        return {
            "id": self.id,
            "type": self.type,
            "label": self.label,
            "config": self.config,
            "position": {"x": self.position[0], "y": self.position[1]},
            "retry": self.retry.model_dump() if self.retry else None,
            "timeout_s": self.timeout_s,
            "max_visits": self.max_visits,
            "on_error": self.on_error,
            "guardrails": self.guardrails,
        }

    def _source_ref(self) -> PortRef:
        return PortRef(self, "out")

    def _target_ref(self) -> PortRef:
        return PortRef(self, "in")

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.type!r})"


class PortRef(_Connectable):
    """A named port of a node, optionally with an edge condition."""

    def __init__(self, node: Node, port: str, condition: str | None = None) -> None:
        self.node = node
        self.port = port
        self.condition = condition

    def _source_ref(self) -> PortRef:
        return self

    def _target_ref(self) -> PortRef:
        if self.condition is not None:
            raise DefinitionError(
                "a condition belongs on the source side: node.when(...) >> target", node_id=self.node.id
            )
        return self

    def __repr__(self) -> str:
        return f"PortRef({self.node.id!r}, {self.port!r})"


def _as_list(value: Any) -> list[_Connectable]:
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]
    for item in items:
        if not isinstance(item, _Connectable):
            raise DefinitionError(f"cannot connect {item!r}; use a Node, node.port(...) or a list of them")
    return items


def _result(value: Any) -> Any:
    """What `>>` returns: the right-hand node(s), so `a >> b.port("x") >> c` leaves b from "out"."""
    if isinstance(value, PortRef):
        return value.node
    if isinstance(value, list | tuple):
        return [item.node if isinstance(item, PortRef) else item for item in value]
    return value


def _owner(ref: PortRef) -> Workflow:
    if ref.node.workflow is None:
        raise DefinitionError(f"node {ref.node.id!r} is not in a workflow", node_id=ref.node.id)
    return ref.node.workflow
