"""State of the Templates page, and the built-in example workflows it offers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import db, routes
from engine import workflows
from engine.db_errors import DB_ERRORS, describe_db_error

log = logging.getLogger(__name__)


def _node(node_id: str, node_type: str, label: str, x: float, y: float = 0, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "label": label, "config": config, "position": {"x": x, "y": y}}


def _edge(source: str, target: str, source_port: str = "out") -> dict[str, Any]:
    return {
        "id": f"{source}-{target}",
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": "in",
    }


@dataclass(frozen=True)
class WorkflowTemplate:
    """A ready-made workflow definition people can start from."""

    key: str
    name: str
    description: str
    icon: str
    definition: dict[str, Any] = field(repr=False)

    @property
    def steps(self) -> list[str]:
        """The labels of its nodes, in definition order."""
        return [node["label"] for node in self.definition["nodes"]]


TEMPLATES: tuple[WorkflowTemplate, ...] = (
    WorkflowTemplate(
        key="approval-flow",
        name="Approval flow",
        description="Pause a run until a person approves it, then finish.",
        icon="user-check",
        definition={
            "id": "approval-flow",
            "name": "Approval flow",
            "description": "Pause a run until a person approves it, then finish.",
            "nodes": [
                _node("start", "start", "Start", 0),
                _node(
                    "approve",
                    "human.approval",
                    "Approve request",
                    260,
                    title="Approve this request?",
                    body="The run was started with:\n\n{{ input | tojson }}",
                ),
                _node("end", "end", "End", 520),
            ],
            "edges": [_edge("start", "approve"), _edge("approve", "end", source_port="approved")],
        },
    ),
    WorkflowTemplate(
        key="http-summarise",
        name="HTTP fetch and summarise",
        description="Fetch a web page and let an agent summarise it.",
        icon="globe",
        definition={
            "id": "http-summarise",
            "name": "HTTP fetch and summarise",
            "description": "Fetch a web page and let an agent summarise it.",
            "nodes": [
                _node("start", "start", "Start", 0),
                _node("fetch", "tool.http", "Fetch page", 260, url="https://example.com", method="GET"),
                _node(
                    "summarise",
                    "agent",
                    "Summarise",
                    520,
                    provider="openai",
                    model="gpt-4o-mini",
                    api_key_secret="OPENAI_API_KEY",
                    prompt="Summarise this page in three bullet points:\n\n{{ ports.in.body }}",
                ),
                _node("end", "end", "End", 780),
            ],
            "edges": [_edge("start", "fetch"), _edge("fetch", "summarise"), _edge("summarise", "end")],
        },
    ),
    WorkflowTemplate(
        key="parallel-fan-out",
        name="Parallel fan-out",
        description="Run two Python tools side by side and merge their results.",
        icon="git-fork",
        definition={
            "id": "parallel-fan-out",
            "name": "Parallel fan-out",
            "description": "Run two Python tools side by side and merge their results.",
            "nodes": [
                _node("start", "start", "Start", 0, 80),
                _node("add", "tool.python", "Add numbers", 260, 0, tool="add", args={"a": 2, "b": 3}),
                _node("echo", "tool.python", "Echo text", 260, 160, tool="echo", args={"value": "hello"}),
                _node("merge", "merge", "Merge", 520, 80, mode="all"),
                _node("end", "end", "End", 780, 80),
            ],
            "edges": [
                _edge("start", "add"),
                _edge("start", "echo"),
                _edge("add", "merge"),
                _edge("echo", "merge"),
                _edge("merge", "end"),
            ],
        },
    ),
)

_BY_KEY = {template.key: template for template in TEMPLATES}


class TemplatesState(rx.State):
    """Creates workflows from templates."""

    @rx.event
    def use_template(self, key: str) -> EventSpec | list[EventSpec]:
        """Create a workflow whose version 1 is the template's definition, then show the list."""
        template = _BY_KEY.get(key)
        if template is None:
            return rx.toast.error(f"Unknown template {key!r}")
        try:
            with db.db_session() as session:
                workflows.create_workflow(session, template.name, template.description, template.definition)
        except DB_ERRORS as exc:
            log.warning("creating a workflow from template %s failed: %s", key, exc)
            return rx.toast.error(describe_db_error(exc))
        return [
            rx.toast.success(f'Created "{template.name}" from its template'),
            rx.redirect(routes.WORKFLOWS),
        ]
