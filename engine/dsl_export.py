"""A definition written back as Python DSL source (engine/dsl.py), so JSON, YAML and the DSL round-trip.

`to_dsl(defn)` returns a module that builds `defn` again when run: `definition = wf.definition()`
at its end equals `defn`. Edges whose id is the one the DSL would make are written `a >> b`; others
`wf.connect(..., id=...)`. A definition field the DSL has no way to say (a field added to the
models after this module) is refused with DSL_UNSUPPORTED naming it, never dropped.
"""

from __future__ import annotations

import ast
import keyword
import pprint
from typing import Any

from pydantic import BaseModel

from engine.definition import (
    EdgeSpec,
    ErrorHandling,
    NodeSpec,
    WorkflowDefinition,
    WorkflowPolicy,
)
from engine.errors import ErrorCode, FlowloomError

# What the DSL can say, per model; any other field with a value besides its default is refused.
_SAID = {
    WorkflowDefinition: {"id", "name", "version", "description", "mode", "inputs", "outputs", "nodes", "edges",
                         "error_handling", "policy", "triggers", "annotations"},
    NodeSpec: {"id", "type", "label", "config", "position", "retry", "timeout_s", "max_visits", "on_error",
               "guardrails"},
    EdgeSpec: {"id", "source", "source_port", "target", "target_port", "condition", "label"},
}  # fmt: skip
# Node(...) parameters: a config key with one of these names goes through config={...}.
_NODE_PARAMS = {
    "id",
    "type",
    "label",
    "position",
    "retry",
    "timeout_s",
    "max_visits",
    "on_error",
    "guardrails",
    "config",
    "workflow",
}
# Names the exported module uses itself: a node variable never takes one.
_TAKEN = {"Node", "Workflow", "wf", "definition", "RetryPolicy", "ErrorHandling", "WorkflowPolicy"}
_WIDTH = 100


def to_dsl(defn: WorkflowDefinition) -> str:
    """`defn` as the source of a Python module building it with engine.dsl; a FlowloomError
    (DSL_UNSUPPORTED, naming the node and field) for what the DSL cannot express."""
    _refuse_unsaid(defn, None, "")
    for node in defn.nodes:
        _refuse_unsaid(node, node.id, f"nodes.{node.id}.")
    for edge in defn.edges:
        _refuse_unsaid(edge, None, f"edges.{edge.id}.")
    names = _variable_names(defn)
    for edge in defn.edges:
        for end in (edge.source, edge.target):
            if end not in names:
                raise FlowloomError(
                    f'edge "{edge.id}" joins node "{end}", which the workflow does not have',
                    code=ErrorCode.DSL_UNSUPPORTED, field=f"edges.{edge.id}",
                )  # fmt: skip
    body = [f"    {names[n.id]} = {_node_call(n)}" for n in defn.nodes]
    if defn.edges:
        body.append("")
        body += [f"    {line}" for line in _edge_lines(defn, names)]
    if not body:
        body = ["    pass"]
    source = "\n".join(
        [
            f'"""{_docstring(defn.name)}: a Flowloom workflow in the Python DSL (engine/dsl.py)."""',
            "",
            *_imports(defn),
            "from engine.dsl import Node, Workflow",
            "",
            f"with {_workflow_call(defn)} as wf:",
            *body,
            "",
            "definition = wf.definition()",
            "",
        ]
    )
    ast.parse(source)  # what we write is Python, whatever the text of the definition held
    return source


def _refuse_unsaid(model: BaseModel, node_id: str | None, where: str) -> None:
    said = _SAID[type(model)]
    for name, info in type(model).model_fields.items():
        if name in said:
            continue
        if getattr(model, name) != info.get_default(call_default_factory=True):
            raise FlowloomError(
                f"{where}{name} cannot be written in the Python DSL yet; export this workflow as JSON or YAML",
                code=ErrorCode.DSL_UNSUPPORTED, node_id=node_id, field=f"{where}{name}",
            )  # fmt: skip


def _docstring(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').replace("\n", " ")


def _imports(defn: WorkflowDefinition) -> list[str]:
    """The import of the definition models the source names (none when it names none)."""
    wanted = {"RetryPolicy"} if any(n.retry is not None for n in defn.nodes) else set()
    if defn.error_handling != ErrorHandling():
        wanted.add("ErrorHandling")
    if defn.policy != WorkflowPolicy():
        wanted.add("WorkflowPolicy")
    return [f"from engine.definition import {', '.join(sorted(wanted))}"] if wanted else []


def _variable_names(defn: WorkflowDefinition) -> dict[str, str]:
    """A Python name per node id ("fetch-page" -> fetch_page), unique, never a keyword or ours."""
    names: dict[str, str] = {}
    used = set(_TAKEN)
    for node in defn.nodes:
        base = node.id.replace("-", "_")
        if keyword.iskeyword(base) or keyword.issoftkeyword(base) or base in _TAKEN:
            base += "_node"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names[node.id] = name
    return names


def _literal(value: Any, indent: int) -> str:
    """A JSON value as a Python literal, continued lines indented by `indent` spaces."""
    text = pprint.pformat(value, width=max(_WIDTH - indent, 40), sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


def _changed(model: BaseModel) -> dict[str, Any]:
    """The fields of `model` that differ from a default instance's, as JSON data."""
    base = type(model)().model_dump(mode="json")
    return {k: v for k, v in model.model_dump(mode="json").items() if v != base[k]}


def _model_call(name: str, model: BaseModel, indent: int) -> str:
    changed = _changed(model)
    if all(isinstance(v, str | int | float | bool) or v is None for v in changed.values()):
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
    return f"{name}.model_validate({_literal(changed, indent + len(name) + 16)})"


def _workflow_call(defn: WorkflowDefinition) -> str:
    args = [repr(defn.name)]
    defaults = WorkflowDefinition.model_fields
    for field in ("id", "mode", "version", "description"):
        value = getattr(defn, field)
        if value != defaults[field].get_default(call_default_factory=True):
            args.append(f"{field}={value!r}")
    for field in ("inputs", "outputs"):
        if getattr(defn, field):
            args.append(f"{field}={_literal(getattr(defn, field), 4 + len(field) + 1)}")
    if defn.error_handling != ErrorHandling():
        args.append(f"error_handling={_model_call('ErrorHandling', defn.error_handling, 19)}")
    if defn.policy != WorkflowPolicy():
        args.append(f"policy={_model_call('WorkflowPolicy', defn.policy, 11)}")
    if defn.triggers:
        args.append(f"triggers={_literal([t.model_dump(mode='json') for t in defn.triggers], 13)}")
    annotations = defn.annotations.model_dump(mode="json")
    if any(annotations.values()):
        args.append(f"annotations={_literal(annotations, 16)}")
    one_line = f"Workflow({', '.join(args)})"
    if len(one_line) + 10 <= _WIDTH and "\n" not in one_line:
        return one_line
    return "Workflow(\n" + "".join(f"    {a},\n" for a in args) + ")"


def _node_call(node: NodeSpec) -> str:
    args = [repr(node.id), repr(node.type)]
    if node.label:
        args.append(f"label={node.label!r}")
    if node.position.x or node.position.y:
        args.append(f"position=({_number(node.position.x)}, {_number(node.position.y)})")
    if node.retry is not None:
        args.append(f"retry={_model_call('RetryPolicy', node.retry, 14)}")
    for field in ("timeout_s", "max_visits", "on_error"):
        if getattr(node, field) is not None:
            args.append(f"{field}={getattr(node, field)!r}")
    if node.guardrails is not None:
        args.append(f"guardrails={_literal(node.guardrails, 19)}")
    config = node.config
    as_keywords = all(k.isidentifier() and not keyword.iskeyword(k) and k not in _NODE_PARAMS for k in config)
    if as_keywords:
        args += [f"{k}={_literal(v, 8 + len(k) + 1)}" for k, v in config.items()]
    elif config:
        args.append(f"config={_literal(config, 15)}")
    one_line = f"Node({', '.join(args)})"
    if len(one_line) + 8 <= _WIDTH and "\n" not in one_line:
        return one_line
    return "Node(\n" + "".join(f"        {a},\n" for a in args) + "    )"


def _auto_id(source: str, source_port: str, target: str, target_port: str, used: set[str]) -> str:
    """The id engine.dsl.Workflow gives an edge it is not told the id of."""
    if source_port == "out" and target_port == "in":
        base = f"{source}->{target}"
    else:
        base = f"{source}.{source_port}->{target}.{target_port}"
    edge_id, n = base, 1
    while edge_id in used:
        n += 1
        edge_id = f"{base}#{n}"
    return edge_id


def _edge_lines(defn: WorkflowDefinition, names: dict[str, str]) -> list[str]:
    used: set[str] = set()
    lines = []
    for e in defn.edges:
        src, tgt = names[e.source], names[e.target]
        target = tgt if e.target_port == "in" else f"{tgt}.port({e.target_port!r})"
        if e.id == _auto_id(e.source, e.source_port, e.target, e.target_port, used) and not e.label:
            if e.condition is not None:
                port = "" if e.source_port == "out" else f", port={e.source_port!r}"
                source = f"{src}.when({e.condition!r}{port})"
            else:
                source = src if e.source_port == "out" else f"{src}.port({e.source_port!r})"
            lines.append(f"{source} >> {target}")
        else:
            args = [
                src if e.source_port == "out" else f"{src}.port({e.source_port!r})",
                target,
                f"id={e.id!r}",
            ]
            if e.condition is not None:
                args.append(f"condition={e.condition!r}")
            if e.label:
                args.append(f"label={e.label!r}")
            lines.append(f"wf.connect({', '.join(args)})")
        used.add(e.id)
    return lines
