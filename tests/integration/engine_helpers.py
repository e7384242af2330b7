"""Shared helpers for engine integration tests: build definitions, wait for runs."""

from __future__ import annotations

import time
from typing import Any

from engine.parse import parse_dict
from engine.runs import RunView, get_run

TERMINAL_RUN = ("succeeded", "failed", "cancelled")


def workflow(nodes: list[dict], edges: list[tuple], **extra: Any):
    """A definition from compact node dicts and (source, target[, source_port[, condition]]) edges."""
    edge_dicts = []
    for i, e in enumerate(edges):
        d = {"id": f"e{i}", "source": e[0], "target": e[1]}
        if len(e) > 2 and e[2]:
            d["source_port"] = e[2]
        if len(e) > 3 and e[3]:
            d["condition"] = e[3]
        edge_dicts.append(d)
    return parse_dict(
        {
            "id": extra.pop("id", "test"),
            "name": extra.pop("name", "test"),
            "nodes": nodes,
            "edges": edge_dicts,
            **extra,
        }
    )


def node(node_id: str, node_type: str, **config: Any) -> dict:
    extra = {k: config.pop(k) for k in ("retry", "timeout_s", "max_visits") if k in config}
    return {"id": node_id, "type": node_type, "config": config, **extra}


def wait_for_run(run_id: str, timeout: float = 60.0, statuses: tuple[str, ...] = TERMINAL_RUN) -> RunView:
    """Poll until the run reaches one of `statuses`; fail with its steps if it does not."""
    deadline = time.monotonic() + timeout
    view = get_run(run_id)
    while time.monotonic() < deadline:
        view = get_run(run_id)
        if view is not None and view.status in statuses:
            return view
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {statuses}: {view}")


def wait_for_step(run_id: str, node_id: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = get_run(run_id)
        for s in view.steps if view else []:
            if s["node_id"] == node_id and s["status"] == status:
                return s
        time.sleep(0.05)
    raise AssertionError(f"step {node_id} of run {run_id} never became {status}: {get_run(run_id)}")


def steps_by_node(view: RunView) -> dict[str, dict]:
    return {s["node_id"]: s for s in view.steps}
