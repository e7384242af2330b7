"""Validate a parsed workflow: node types, configs, ports, graph shape, expressions; every issue at once."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import networkx as nx
import pydantic

from engine.agents import agent_issues
from engine.config_fields import fixed_fields
from engine.connections import connection_problems
from engine.contract import NodeType, Port, all_node_types, get_node_type
from engine.definition import EdgeSpec, NodeSpec, WorkflowDefinition
from engine.errors import DefinitionError, ErrorCode, Issue, ValidationError
from engine.expression_paths import condition_issues
from engine.expressions import check_expression, check_template, is_templated
from engine.failure_policy import on_error_issues
from engine.guardrails import issues as guardrail_issues
from engine.json_schemas import schema_problems
from engine.parse import loc_path, parse_dict
from engine.plan import END_TYPE, START_TYPE, ExecutionPlan, build_plan, workflow_graph
from engine.settings import get_settings
from engine.validate_triggers import trigger_issues
from engine.workflow_calls import call_issues, resolvable, workspace_of


@dataclass
class ValidationReport:
    """Every issue found, and the plan when there is no error."""

    issues: list[Issue] = field(default_factory=list)
    plan: ExecutionPlan | None = None

    @property
    def ok(self) -> bool:
        """Whether no issue is an error (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able report for the API and the editor."""
        return {
            "ok": self.ok,
            "issues": [i.to_dict() for i in self.issues],
            "plan": self.plan.phases if self.plan else None,
        }


@dataclass
class _NodeInfo:
    node_type: NodeType | None
    # None when unknown: the type is unknown, or its ports depend on a config that is invalid.
    outputs: dict[str, Port] | None
    inputs: dict[str, Port] | None = None


def validate(
    defn: WorkflowDefinition, *, workflow_id: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> ValidationReport:
    """Check `defn` and report every issue found, each located by node, edge and field.

    `workflow_id`: the saved workflow `defn` is (a version of), so that a sub-workflow call
    leading back to it is refused as recursion. `workspace_id`: the workspace it belongs to (the
    caller's, else the saved workflow's): it may call only that workspace's workflows and agents.
    """
    issues: list[Issue] = []
    if workspace_id is None and workflow_id:
        workspace_id = workspace_of(workflow_id)
    _check_unique_ids(defn, issues)
    infos = {node.id: _check_node(node, issues, workspace_id) for node in defn.nodes}
    _check_edges(defn, infos, issues)
    _check_inputs_schema(defn.inputs, issues)
    for name, template in defn.outputs.items():
        _add_if(issues, check_template(template), code=ErrorCode.BAD_TEMPLATE, field=f"outputs.{name}")
    _check_graph(defn, workflow_graph(defn), issues)
    issues.extend(on_error_issues(defn))
    issues.extend(trigger_issues(defn))
    issues.extend(call_issues(defn, workflow_id=workflow_id, workspace_id=workspace_id))
    issues.extend(agent_issues(defn, workspace_id=workspace_id))
    issues.extend(guardrail_issues(get_settings().guardrails, defn.policy.guardrails,
                                   {n.id: n.guardrails for n in defn.nodes if n.guardrails}))  # fmt: skip
    report = ValidationReport(issues)
    if report.ok:
        report.plan = build_plan(defn)
    return report


def validate_data(
    data: Any, *, workspace_id: str | uuid.UUID | None = None
) -> tuple[WorkflowDefinition | None, ValidationReport]:
    """Parse decoded definition data (a request body) and validate it; data that does not parse is
    one `definition_invalid` issue at the place the parser names, and no definition."""
    try:
        defn = parse_dict(data)
    except DefinitionError as exc:
        issue = Issue(exc.message, code=exc.code, node_id=exc.node_id, field=exc.path)
        return None, ValidationReport([issue])
    return defn, validate(defn, workspace_id=workspace_id)


def ensure_valid(defn: WorkflowDefinition, *, workflow_id: str | None = None) -> ExecutionPlan:
    """The plan of `defn`, or ValidationError carrying every issue (errors first)."""
    report = validate(defn, workflow_id=workflow_id)
    if not report.ok or report.plan is None:
        raise ValidationError(report.errors + report.warnings)
    return report.plan


def _add_if(issues: list[Issue], message: str | None, **where: Any) -> None:
    if message:
        issues.append(Issue(message, **where))


def _check_unique_ids(defn: WorkflowDefinition, issues: list[Issue]) -> None:
    seen: set[str] = set()
    for node in defn.nodes:
        if node.id in seen:
            issues.append(
                Issue(
                    f"duplicate node id {node.id!r}", code=ErrorCode.DUPLICATE_ID, node_id=node.id, field="id"
                )
            )
        seen.add(node.id)
    seen.clear()
    for edge in defn.edges:
        if edge.id in seen:
            issues.append(
                Issue(
                    f"duplicate edge id {edge.id!r}", code=ErrorCode.DUPLICATE_ID, edge_id=edge.id, field="id"
                )
            )
        seen.add(edge.id)


def _check_node(
    node: NodeSpec, issues: list[Issue], workspace_id: str | uuid.UUID | None = None
) -> _NodeInfo:
    node_type = get_node_type(node.type)
    _check_config_strings(node, node_type, issues)
    if node_type is None:
        known = [t.type for t in all_node_types()]
        close = difflib.get_close_matches(node.type, known, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        issues.append(
            Issue(
                f"unknown node type {node.type!r}{hint}",
                code=ErrorCode.UNKNOWN_NODE_TYPE,
                node_id=node.id,
                field="type",
            )
        )
        return _NodeInfo(None, None)
    cfg = _check_config(node, node_type, issues)
    # A call to a missing version (or another workspace's workflow): its ports are unknown.
    if cfg is not None and not resolvable(node, workspace_id):
        return _NodeInfo(node_type, None, None)
    if cfg is None:
        static = dict(node_type.outputs) if node_type.dynamic_outputs is None else None
        static_in = dict(node_type.inputs) if node_type.dynamic_inputs is None else None
        return _NodeInfo(node_type, static, static_in)
    try:
        return _NodeInfo(node_type, node_type.output_ports(cfg), node_type.input_ports(cfg))
    except Exception as exc:  # a node type's port function is third-party code
        issues.append(
            Issue(
                f"cannot derive output ports: {exc}",
                code=ErrorCode.CONFIG_INVALID,
                node_id=node.id,
                field="config",
            )
        )
        return _NodeInfo(node_type, None)


def _check_config(node: NodeSpec, node_type: NodeType, issues: list[Issue]) -> pydantic.BaseModel | None:
    """The validated config, or None after reporting why it is invalid."""
    model = node_type.config_model
    try:
        return model.model_validate(node.config)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    except Exception as exc:  # a node type's validator raised something pydantic did not wrap
        issues.append(
            Issue(
                f"config check failed: {exc}", code=ErrorCode.CONFIG_INVALID, node_id=node.id, field="config"
            )
        )
        return None
    fixed = fixed_fields(model)
    templated_fixed = sorted(k for k in fixed if k in node.config and _holds_template(node.config[k]))
    for key in templated_fixed:
        issues.append(
            Issue(
                "this field takes no templates ({{ }}): a secret name or a power is set in the saved "
                f"definition, never by run inputs ({node.type})",
                code=ErrorCode.TEMPLATE_NOT_ALLOWED,
                node_id=node.id,
                field=f"config.{key}",
            )
        )
    real = [
        e
        for e in errors
        if not (e["loc"][:1] and e["loc"][0] in templated_fixed)
        and not (_templated(node.config, e["loc"]) and not (e["loc"][:1] and e["loc"][0] in fixed))
    ]
    if templated_fixed and not real:
        return None
    for error in real:
        issues.append(
            Issue(
                f"{error['msg']} ({node.type})",
                code=ErrorCode.CONFIG_INVALID,
                node_id=node.id,
                field=loc_path(("config", *error["loc"])),
            )
        )
    if real:
        return None
    # Only templated values failed: they are checked at run time; derive ports from the rest.
    try:
        return model.model_construct(**node.config)
    except Exception:
        return None


def _holds_template(value: Any) -> bool:
    """Whether a config value holds a template string anywhere inside it."""
    return any(is_templated(text) for _, _, text in _config_strings({"v": value}))


def _templated(config: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    """Whether the raw value an error points at (or inside) is a template, rendered and checked at run time."""
    value: Any = config
    for part in loc:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            break
    return isinstance(value, str) and is_templated(value)


def _config_strings(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """(location, key it sits under, text) of every string in a config."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, str):
                yield (*loc, key), str(key), item
            else:
                yield from _config_strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield (*loc, index), "", item
            else:
                yield from _config_strings(item, (*loc, index))


def _field_pattern(loc: tuple[Any, ...]) -> str:
    """A config location as NodeType.expression_fields names it: ("branches", 0, "expression") -> "branches.*.expression"."""
    return ".".join("*" if isinstance(part, int) else str(part) for part in loc)


def _check_config_strings(node: NodeSpec, node_type: NodeType | None, issues: list[Issue]) -> None:
    """Templates ({{ }}) anywhere in the config, and the expressions the node type declares."""
    expression_fields = node_type.expression_fields if node_type is not None else frozenset()
    for loc, _key, text in _config_strings(node.config):
        where = {"node_id": node.id, "field": loc_path(("config", *loc))}
        if is_templated(text):
            _add_if(issues, check_template(text), code=ErrorCode.BAD_TEMPLATE, **where)
        elif text.strip() and _field_pattern(loc) in expression_fields:
            _add_if(issues, check_expression(text), code=ErrorCode.BAD_CONDITION, **where)


def _check_edges(defn: WorkflowDefinition, infos: dict[str, _NodeInfo], issues: list[Issue]) -> None:
    seen: dict[tuple[Any, ...], str] = {}
    fed: set[tuple[str, str]] = set()
    for edge in defn.edges:
        if edge.condition is not None:
            _add_if(
                issues,
                check_expression(edge.condition),
                code=ErrorCode.BAD_CONDITION,
                edge_id=edge.id,
                field="condition",
            )
        dangling = [end for end in ("source", "target") if getattr(edge, end) not in infos]
        for end in dangling:
            issues.append(_dangling(edge, end, list(infos)))
        if dangling:
            continue
        issues.extend(condition_issues(defn, edge, infos[edge.source].outputs))
        fed.add((edge.target, edge.target_port))
        key = (edge.source, edge.source_port, edge.target, edge.target_port, edge.condition)
        if key in seen:
            issues.append(
                Issue(
                    f"same connection as edge {seen[key]!r}", code=ErrorCode.DUPLICATE_EDGE, edge_id=edge.id
                )
            )
        seen.setdefault(key, edge.id)
        issues.extend(_check_connection(defn, edge, infos))
    for node in defn.nodes:
        for name, port in (infos[node.id].inputs or {}).items():
            if port.required and (node.id, name) not in fed:
                issues.append(
                    Issue(
                        f'required input port "{name}" has no incoming edge',
                        code=ErrorCode.UNCONNECTED_INPUT,
                        node_id=node.id,
                        field=f"ports.{name}",
                        severity="warning",
                    )
                )


def _dangling(edge: EdgeSpec, end: str, node_ids: list[str]) -> Issue:
    missing = getattr(edge, end)
    close = difflib.get_close_matches(missing, node_ids, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return Issue(
        f"{end} {missing!r} is not a node of this workflow{hint}",
        code=ErrorCode.DANGLING_EDGE,
        edge_id=edge.id,
        field=end,
    )


def _check_connection(defn: WorkflowDefinition, edge: EdgeSpec, infos: dict[str, _NodeInfo]) -> list[Issue]:
    """The connection rulebook's verdict on `edge`, plus the state-machine self-loop warning."""
    source, target = infos[edge.source], infos[edge.target]
    found = connection_problems(
        mode=defn.mode,
        source=edge.source,
        source_port=edge.source_port,
        source_outputs=source.outputs,
        target=edge.target,
        target_port=edge.target_port,
        target_inputs=target.inputs,
    )
    issues = [replace(issue, edge_id=edge.id) for issue in found]
    if (
        edge.source == edge.target
        and defn.mode != "dag"
        and edge.condition is None
        and not edge.is_error_edge
    ):
        message = "unconditional self-loop: the node repeats until its max_visits guard stops the run"
        issues.append(
            Issue(message, code=ErrorCode.SELF_LOOP, node_id=edge.source, edge_id=edge.id, severity="warning")
        )
    return issues


def _check_inputs_schema(schema: Mapping[str, Any], issues: list[Issue]) -> None:
    """The run-input JSON Schema: a valid 2020-12 schema, "#..." references only, RE2 patterns."""
    if not schema:
        return
    problems = schema_problems(schema)  # the metaschema check (check_schema's), refs, RE2 patterns
    for problem in problems:
        field = f"inputs.{problem.path}" if problem.path else "inputs"
        issues.append(Issue(problem.message, code=ErrorCode.INPUTS_INVALID, field=field))
    if problems:
        return  # the checks below would repeat what is already said
    if schema.get("type", "object") != "object":
        issues.append(
            Issue(
                'the run inputs schema must have "type": "object"',
                code=ErrorCode.INPUTS_INVALID,
                field="inputs.type",
            )
        )
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        issues.append(
            Issue('"properties" must be a mapping', code=ErrorCode.INPUTS_INVALID, field="inputs.properties")
        )
        properties = {}
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        issues.append(
            Issue(
                '"required" must be a list of names', code=ErrorCode.INPUTS_INVALID, field="inputs.required"
            )
        )
    elif properties:
        for name in required:
            if name not in properties:
                message = f'required input "{name}" is not in "properties"'
                issues.append(Issue(message, code=ErrorCode.INPUTS_INVALID, field="inputs.required"))


def _check_graph(defn: WorkflowDefinition, graph: nx.MultiDiGraph, issues: list[Issue]) -> None:
    starts = [node.id for node in defn.nodes if node.type == START_TYPE]
    ends = [node.id for node in defn.nodes if node.type == END_TYPE]
    if not starts:
        issues.append(
            Issue(
                'no "start" node; every workflow begins at exactly one',
                code=ErrorCode.MISSING_START,
                field="nodes",
            )
        )
    if len(starts) > 1:
        message = f"{len(starts)} start nodes ({', '.join(starts)}); keep exactly one"
        issues.extend(Issue(message, code=ErrorCode.MULTIPLE_START, node_id=node_id) for node_id in starts)
    if not ends:
        issues.append(
            Issue('no "end" node; add one so runs can finish', code=ErrorCode.MISSING_END, field="nodes")
        )
    if starts:
        reachable = set(starts).union(*(nx.descendants(graph, s) for s in starts))
        for node in defn.nodes:
            if node.id not in reachable:
                issues.append(
                    Issue("not reachable from the start node", code=ErrorCode.UNREACHABLE, node_id=node.id)
                )
    if defn.mode == "dag":
        _check_cycles(defn, graph, issues)
    if ends:
        finishing = set(ends).union(*(nx.ancestors(graph, e) for e in ends))
        severity: Literal["error", "warning"] = "error" if defn.mode == "state_machine" else "warning"
        for node in defn.nodes:
            if node.id not in finishing:
                message = 'no path from here to an "end" node'
                issues.append(
                    Issue(message, code=ErrorCode.NO_PATH_TO_TERMINAL, node_id=node.id, severity=severity)
                )


def _check_cycles(defn: WorkflowDefinition, graph: nx.MultiDiGraph, issues: list[Issue]) -> None:
    """One issue per strongly connected group of nodes (self-loops are reported apart)."""
    order = {node.id: i for i, node in enumerate(defn.nodes)}
    groups = [g for g in nx.strongly_connected_components(graph) if len(g) > 1]
    for group in sorted(groups, key=lambda g: min(order[n] for n in g)):
        first = min(group, key=order.__getitem__)
        cycle = nx.find_cycle(graph.subgraph(group), source=first)
        path = " -> ".join([str(e[0]) for e in cycle] + [str(cycle[0][0])])
        message = f"cycle: {path}; a DAG has no loops (use mode state_machine)"
        issues.append(Issue(message, code=ErrorCode.CYCLE, node_id=str(cycle[0][0])))
