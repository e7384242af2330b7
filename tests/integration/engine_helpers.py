"""Shared helpers for engine integration tests: build definitions, wait for runs."""

from __future__ import annotations

import time
from typing import Any

import psutil
from kombu import Connection
from sqlalchemy import text

from engine.celery_app import create_celery
from engine.parse import parse_dict
from engine.runs import RunView, get_run
from engine.settings import get_settings
from models.db import get_engine

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
    extra = {k: config.pop(k) for k in ("retry", "timeout_s", "max_visits", "on_error") if k in config}
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


def step_events(run_id: str, node_id: str) -> list[dict[str, Any]]:
    """The engine's `workflow.step.*` events of one node in a run, in order: their type, the time
    the engine recorded (`at`) and their data (attempt, delay_s, ...)."""
    query = text(
        "SELECT event_type, created_at, payload FROM events"
        " WHERE run_id = :r AND event_type LIKE 'workflow.step.%' ORDER BY id"
    )
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(query, {"r": run_id}).all()
    return [
        {**r.payload["data"], "type": r.event_type, "at": r.created_at}
        for r in rows
        if r.payload["data"].get("node_id") == node_id
    ]


def _active_tasks(worker: str) -> list[dict[str, Any]] | None:
    """The tasks Celery worker `worker` is running now; None if it did not answer."""
    url = get_settings().redis_url
    # A connection of its own: replies to a broadcast sent on a connection of the pool that also
    # sent the steps never arrive in this process.
    with Connection(url) as conn:
        app = create_celery(url, set_as_current=False)
        inspect = app.control.inspect(timeout=5.0, destination=[worker], limit=1, connection=conn)
        replies = inspect.active() or {}
    return replies.get(worker)


def task_running(step_id: object) -> tuple[str, str]:
    """(worker name, task id) of the Celery task running step `step_id` now. The step's row names
    the pool process (`host:pid`), whose parent is the worker `flowloom<pid>@<host>`; the task may
    have started with an earlier step of the run, run inline."""
    with get_engine(get_settings().database_url).connect() as conn:
        query = text("SELECT worker FROM step_runs WHERE id = :s")
        host, _, pid = conn.execute(query, {"s": str(step_id)}).scalar_one().rpartition(":")
    worker = f"flowloom{psutil.Process(int(pid)).ppid()}@{host}"
    tasks = _active_tasks(worker) or []
    found = [t["id"] for t in tasks if t.get("worker_pid") == int(pid)]
    assert found, f"worker {worker} reports no task in process {pid} running step {step_id}: {tasks}"
    return worker, found[0]


def wait_until_task_done(worker: str, task_id: str, timeout: float = 60.0) -> None:
    """Wait until `worker` answers that task `task_id` is no longer running (a state, not a pause)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = _active_tasks(worker)
        if tasks is not None and all(t["id"] != task_id for t in tasks):
            return
    raise AssertionError(f"worker {worker} still runs task {task_id}")


def agent_approval_flow(agent_config: dict[str, Any], allowed_hosts: list[str], *, flow_id: str = "approval"):
    """A state machine: the agent's approval output goes to a person, whose decision comes back to it."""
    back = {"target": "agent", "target_port": "approval"}
    return parse_dict(
        {
            "id": flow_id,
            "name": "agent with approval",
            "mode": "state_machine",
            "policy": {"egress": {"allowed_hosts": allowed_hosts}},
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "agent", "type": "agent", "config": agent_config},
                {"id": "review", "type": "human.approval", "config": {"title": "{{ ports.in.title }}"}},
                {"id": "end", "type": "end"},
            ],
            "edges": [
                {"id": "go", "source": "start", "target": "agent"},
                {"id": "ask", "source": "agent", "source_port": "approval", "target": "review"},
                {"id": "yes", "source": "review", "source_port": "approved", **back},
                {"id": "no", "source": "review", "source_port": "rejected", **back},
                {"id": "done", "source": "agent", "source_port": "out", "target": "end"},
            ],
        }
    )
