"""Workflow definitions: the typed models every parser produces and the engine walks."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.egress import EgressPolicy

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$"
# Every node implicitly has this output port; an edge leaving it fires when the node
# fails after its retries.
ERROR_PORT = "error"
OnError = Literal["branch", "fail"]
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "workflow-schema.json"


class _Spec(BaseModel):
    """Base of the definition models: unknown keys are errors, so typos surface."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Position(_Spec):
    """Where the editor draws a node."""

    x: float = 0.0
    y: float = 0.0


class RetryPolicy(_Spec):
    """How often and how patiently a failed step is retried.

    After failed attempt n the step waits a random time between half and all of
    min(backoff_s * backoff_factor ** (n - 1), max_backoff_s) ("equal jitter"), so retries of
    many runs that failed together spread out instead of arriving at once.
    """

    max_attempts: int = Field(1, ge=1, le=100)
    backoff_s: float = Field(1.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1)
    max_backoff_s: float = Field(60.0, ge=0)

    def backoff_ceiling(self, attempt: int) -> float:
        """The exponential backoff after failed attempt `attempt` (1-based), capped at max_backoff_s."""
        try:
            delay = self.backoff_s * self.backoff_factor ** max(attempt - 1, 0)
        except OverflowError:
            return self.max_backoff_s
        return min(delay, self.max_backoff_s)

    def backoff_range(self, attempt: int) -> tuple[float, float]:
        """The (shortest, longest) wait `backoff_for(attempt)` can return: half the ceiling, the ceiling."""
        ceiling = self.backoff_ceiling(attempt)
        return ceiling / 2, ceiling

    def backoff_for(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt` (1-based): equal
        jitter, uniform in `backoff_range(attempt)` (`rand` gives a number in [0, 1))."""
        low, high = self.backoff_range(attempt)
        return low + (high - low) * rand()


class NodeSpec(_Spec):
    """One node of a workflow: its type, its config and how it is retried."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=100)
    label: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    position: Position = Field(default_factory=Position)
    retry: RetryPolicy | None = None
    timeout_s: float | None = Field(None, gt=0)
    # Overrides the workflow's state-machine loop guard for this node.
    max_visits: int | None = Field(None, ge=1)
    # After its retries: "branch" takes the edges leaving the error output, "fail" ends the run;
    # None: the error edges if there are any, else the workflow's error_handling.on_error.
    on_error: OnError | None = None
    # Guardrails of this node (the GUARDRAILS_CONFIG shape, docs/guardrails.md), merged field by
    # field over the workflow's policy.guardrails; kept raw so a node sets only what it narrows.
    guardrails: dict[str, Any] | None = None


class EdgeSpec(_Spec):
    """A connection from one node's output port to another node's input port."""

    id: str = Field(min_length=1, max_length=200)
    source: str
    source_port: str = "out"
    target: str
    target_port: str = "in"
    # A Jinja2 expression without braces, e.g. "output.status == 'ok'"; the edge fires only if true.
    condition: str | None = None
    label: str = ""

    @property
    def is_error_edge(self) -> bool:
        """Whether this edge fires when its source fails after its retries."""
        return self.source_port == ERROR_PORT


class ErrorHandling(_Spec):
    """What a run does when a step fails and no on-error edge catches it."""

    on_error: Literal["fail", "continue"] = "fail"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class WorkflowPolicy(_Spec):
    """Guardrails of a run: egress, loop guard, step budget and step timeout."""

    egress: EgressPolicy = Field(default_factory=EgressPolicy)
    max_visits: int = Field(10, ge=1)
    max_steps: int = Field(1000, ge=1)
    step_timeout_s: float = Field(300.0, gt=0)
    # Guardrails of every step (docs/guardrails.md), over the instance's FLOWLOOM_GUARDRAILS.
    guardrails: dict[str, Any] = Field(default_factory=dict)


class TriggerSpec(_Spec):
    """A way the workflow starts on its own: an inbound webhook, a schedule, a Kafka topic, a form
    or a chat page. `config` is checked per kind (engine.trigger_config)."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    kind: Literal["webhook", "schedule", "kafka", "form", "chat"]
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


ANNOTATION_COLORS = ("yellow", "blue", "green", "pink", "purple", "gray")
AnnotationColor = Literal["yellow", "blue", "green", "pink", "purple", "gray"]
MAX_NOTE_TEXT = 10_000


class NoteSpec(_Spec):
    """A sticky note on the canvas: Markdown text the editor renders safely (no raw HTML)."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    text: str = Field("", max_length=MAX_NOTE_TEXT)
    color: AnnotationColor = "yellow"
    position: Position = Field(default_factory=Position)
    width: float = Field(240.0, ge=80, le=4000)
    height: float = Field(160.0, ge=60, le=4000)


class GroupSpec(_Spec):
    """A frame around nodes with a title and colour; moving it in the editor moves its nodes."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    title: str = Field("", max_length=200)
    color: AnnotationColor = "blue"
    position: Position = Field(default_factory=Position)
    width: float = Field(400.0, ge=80, le=20000)
    height: float = Field(240.0, ge=60, le=20000)
    # Ids of the nodes the group holds (each node in at most one group).
    nodes: list[str] = Field(default_factory=list, max_length=2000)


class Annotations(_Spec):
    """What the canvas shows beside the graph: saved with the definition, ignored by the engine."""

    notes: list[NoteSpec] = Field(default_factory=list, max_length=500)
    groups: list[GroupSpec] = Field(default_factory=list, max_length=500)


class WorkflowDefinition(_Spec):
    """A whole workflow: nodes, edges, run inputs/outputs and policies."""

    id: str = Field("workflow", pattern=WORKFLOW_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(1, ge=1)
    description: str = ""
    mode: Literal["dag", "state_machine"] = "dag"
    # A JSON Schema object for the run inputs.
    inputs: dict[str, Any] = Field(default_factory=dict)
    # Run output name -> Jinja2 template rendered when the run ends.
    outputs: dict[str, str] = Field(default_factory=dict)
    nodes: list[NodeSpec]
    edges: list[EdgeSpec] = Field(default_factory=list)
    error_handling: ErrorHandling = Field(default_factory=ErrorHandling)
    policy: WorkflowPolicy = Field(default_factory=WorkflowPolicy)
    triggers: list[TriggerSpec] = Field(default_factory=list)
    # Sticky notes and groups for people reading the canvas; runs never look at them.
    annotations: Annotations = Field(default_factory=Annotations)

    def node(self, node_id: str) -> NodeSpec:
        """The node called `node_id`; KeyError if there is none."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"workflow {self.id!r} has no node {node_id!r}")

    def edge(self, edge_id: str) -> EdgeSpec:
        """The edge called `edge_id`; KeyError if there is none."""
        for edge in self.edges:
            if edge.id == edge_id:
                return edge
        raise KeyError(f"workflow {self.id!r} has no edge {edge_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """A full JSON-able dump (defaults included) so round trips are lossless."""
        return self.model_dump(mode="json")


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow definition (what docs/workflow-schema.json holds)."""
    return WorkflowDefinition.model_json_schema()


def workflow_json_schema_text() -> str:
    """The exported schema file's exact text."""
    return json.dumps(workflow_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    # Refresh the exported schema: python -m engine.definition
    SCHEMA_PATH.write_text(workflow_json_schema_text(), encoding="utf-8")
