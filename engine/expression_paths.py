"""What an edge condition can look at: the paths the editor suggests, and the references the
validator checks (a node, run input or port an expression names that the workflow does not have).

A condition sees `output` (the value on the edge's source port), `outputs` (every output of the
source), `input` (the run's inputs) and `steps` (`steps.<id>.output`, `.outputs`, `.status` of the
nodes that finished before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import networkx as nx
from jinja2 import Environment, nodes
from jinja2.parser import Parser

from engine.definition import EdgeSpec, WorkflowDefinition
from engine.errors import ErrorCode, Issue
from engine.expressions import check_expression
from engine.plan import workflow_graph

CONDITION_NAMES = ("output", "outputs", "input", "steps")
STEP_FIELDS = ("output", "outputs", "status")
# Names Jinja itself offers to every expression.
_JINJA_GLOBALS = frozenset(
    {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none"}
)
_MAX_INPUT_DEPTH = 3
MAX_SUGGESTIONS = 200
_PARSER_ENV = Environment()  # parses only; expressions never run here


def expression_references(expression: str) -> list[tuple[str, ...]]:
    """The dotted paths `expression` reads ("steps.fetch.output.status" -> ("steps", "fetch",
    "output", "status")), each as far as it is written with names; [] when it does not parse."""
    try:
        parser = Parser(_PARSER_ENV, expression, state="variable")
        tree = parser.parse_expression()
        if not parser.stream.eos:
            return []
    except Exception:  # a syntax error: check_expression reports it
        return []
    return list(dict.fromkeys(_paths(tree)))


def _paths(node: nodes.Node) -> Iterator[tuple[str, ...]]:
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        parts: list[str] = []
        here: nodes.Node = node
        while True:
            if isinstance(here, nodes.Getattr):
                parts.append(here.attr)
                here = here.node
            elif isinstance(here, nodes.Getitem) and isinstance(here.arg, nodes.Const):
                parts.append(str(here.arg.value))
                here = here.node
            elif isinstance(here, nodes.Getitem):
                yield from _paths(here.arg)
                parts.clear()  # a computed key: only the part before it is a known path
                here = here.node
            else:
                break
        if isinstance(here, nodes.Name):
            yield (here.name, *reversed(parts))
            return
        yield from _paths(here)
        return
    for child in node.iter_child_nodes():
        yield from _paths(child)


def input_paths(schema: Mapping[str, Any], prefix: str = "input", depth: int = 0) -> list[str]:
    """`input.<name>` for every property the run-input JSON Schema declares, nested objects too."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return []
    found = []
    for name, prop in properties.items():
        path = f"{prefix}.{name}"
        found.append(path)
        if depth + 1 < _MAX_INPUT_DEPTH and isinstance(prop, Mapping):
            found.extend(input_paths(prop, path, depth + 1))
    return found


def _earlier_nodes(defn: WorkflowDefinition, edge: EdgeSpec) -> list[str]:
    """Nodes whose outputs a condition of `edge` may see: in a DAG the source's ancestors, in a
    state machine every node (loops come back)."""
    if defn.mode == "state_machine":
        return [n.id for n in defn.nodes]
    graph = workflow_graph(defn)
    before = nx.ancestors(graph, edge.source) if edge.source in graph else set()
    return [n.id for n in defn.nodes if n.id in before]


def condition_suggestions(
    defn: WorkflowDefinition, edge: EdgeSpec, outputs_by_node: Mapping[str, Iterable[str]]
) -> list[str]:
    """Paths a condition on `edge` can use, most local first: the source's output and ports, the run
    inputs, then the earlier nodes' outputs. `outputs_by_node` names each node's output ports."""
    source_ports = [p for p in outputs_by_node.get(edge.source, ()) if p != "error"]
    found = ["output", *(f"outputs.{p}" for p in source_ports)]
    found.extend(input_paths(defn.inputs))
    for node_id in _earlier_nodes(defn, edge):
        found.append(f"steps.{node_id}.output")
        ports = [p for p in outputs_by_node.get(node_id, ()) if p != "error"]
        if len(ports) > 1:
            found.extend(f"steps.{node_id}.outputs.{p}" for p in ports)
        found.append(f"steps.{node_id}.status")
    return list(dict.fromkeys(found))[:MAX_SUGGESTIONS]


def reference_problems(
    expression: str,
    defn: WorkflowDefinition,
    edge: EdgeSpec,
    source_outputs: Iterable[str] | None,
) -> list[str]:
    """What `expression` (the condition of `edge`) names that is not there: an unknown name, node,
    step field, declared run input or source port. `source_outputs` None: the ports are unknown."""
    problems: list[str] = []
    node_ids = {n.id for n in defn.nodes}
    declared = set(input_paths(defn.inputs))
    ports = None if source_outputs is None else set(source_outputs)
    for path in expression_references(expression):
        root = path[0]
        if root in _JINJA_GLOBALS:
            continue
        if root not in CONDITION_NAMES:
            problems.append(
                f'unknown name "{root}": a condition sees output, outputs.<port>, input.<name> and '
                f"steps.<id>.output (did you mean output.{root}?)"
            )
        elif root == "steps" and len(path) > 1:
            if path[1] not in node_ids:
                problems.append(f'steps.{path[1]}: this workflow has no node "{path[1]}"')
            elif len(path) > 2 and path[2] not in STEP_FIELDS:
                problems.append(
                    f"steps.{path[1]}.{path[2]}: a step has {', '.join(STEP_FIELDS)} (steps.{path[1]}.output)"
                )
        elif root == "input" and len(path) > 1 and declared and f"input.{path[1]}" not in declared:
            names = sorted(p.split(".")[1] for p in declared if p.count(".") == 1)
            problems.append(
                f'input.{path[1]}: the run inputs declare no "{path[1]}" (they have: {", ".join(names)})'
            )
        elif root == "outputs" and len(path) > 1 and ports is not None and path[1] not in ports:
            problems.append(
                f'outputs.{path[1]}: "{edge.source}" has no output port "{path[1]}" '
                f"(its ports: {', '.join(sorted(ports - {'error'})) or 'none'})"
            )
    return list(dict.fromkeys(problems))


def condition_issues(
    defn: WorkflowDefinition, edge: EdgeSpec, source_outputs: Iterable[str] | None
) -> list[Issue]:
    """Warnings about the condition of `edge` beyond its syntax (which check_expression reports):
    the references it makes, and a condition on an error edge (never checked)."""
    if edge.condition is None or not edge.condition.strip() or check_expression(edge.condition):
        return []
    if edge.is_error_edge:
        message = "an error edge fires whenever its source fails; its condition is never checked"
        return [
            Issue(
                message, code=ErrorCode.BAD_CONDITION, edge_id=edge.id, field="condition", severity="warning"
            )
        ]
    return [
        Issue(
            problem, code=ErrorCode.UNKNOWN_REFERENCE, edge_id=edge.id, field="condition", severity="warning"
        )
        for problem in reference_problems(edge.condition, defn, edge, source_outputs)
    ]
