"""The rulebook of connections: may this output port feed that input port, and if not, why.

The validator checks every edge of a definition with it; the editor checks a connection with it
before drawing one. Both show the same text.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.contract.node_type import PORT_TYPES, Port, port_types_compatible
from engine.definition import ERROR_PORT
from engine.errors import ErrorCode, Issue

# What an on-error edge carries: a JSON description of the failure.
ERROR_PORT_SPEC = Port("json", required=False, description="the error, after the node's retries")


def output_port(outputs: Mapping[str, Port], name: str) -> Port | None:
    """The output port `name` of a node with `outputs`; every node also has the error port."""
    found = outputs.get(name)
    return ERROR_PORT_SPEC if found is None and name == ERROR_PORT else found


def connection_problems(
    *,
    mode: str,
    source: str,
    source_port: str,
    source_outputs: Mapping[str, Port] | None,
    target: str,
    target_port: str,
    target_inputs: Mapping[str, Port] | None,
) -> list[Issue]:
    """Why `source.source_port -> target.target_port` may not exist; [] when it may.

    `source_outputs` / `target_inputs` are None when that side's ports are unknown (an unknown
    type, or ports that depend on an invalid config): that side's ports are not checked.
    """
    problems: list[Issue] = []
    if source == target and mode == "dag":
        message = f'"{source}" cannot connect to itself: a DAG has no loops (switch the workflow to state-machine mode)'
        problems.append(Issue(message, code=ErrorCode.SELF_LOOP, node_id=source))
    out_port = ERROR_PORT_SPEC if source_port == ERROR_PORT else None
    if source_outputs is not None:
        out_port = output_port(source_outputs, source_port)
        if out_port is None:
            names = ", ".join([*source_outputs, ERROR_PORT])
            message = f'"{source}" has no output port "{source_port}"; its outputs: {names}'
            problems.append(Issue(message, code=ErrorCode.UNKNOWN_PORT, node_id=source, field="source_port"))
    in_port = None
    if target_inputs is not None:
        in_port = target_inputs.get(target_port)
        if in_port is None:
            names = ", ".join(target_inputs) or "none"
            message = f'"{target}" has no input port "{target_port}"; its inputs: {names}'
            problems.append(Issue(message, code=ErrorCode.UNKNOWN_PORT, node_id=target, field="target_port"))
    if (
        out_port is not None
        and in_port is not None
        and not port_types_compatible(out_port.type, in_port.type)
    ):
        fits = [t for t in PORT_TYPES if t != "any" and port_types_compatible(out_port.type, t)]
        message = (
            f'type mismatch: output "{source_port}" of "{source}" is {out_port.type}, '
            f'input "{target_port}" of "{target}" takes {in_port.type} '
            f"({'an' if out_port.type[0] in 'aeiou' else 'a'} {out_port.type} output feeds "
            f"{', '.join(fits)} or any inputs)"
        )
        problems.append(Issue(message, code=ErrorCode.PORT_TYPE_MISMATCH, node_id=target))
    return problems
