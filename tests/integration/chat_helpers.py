"""Chat workflows for the chat tests: start -> agent (scripted model, streaming) -> end, with a chat trigger."""

from __future__ import annotations

from typing import Any

from engine import triggers, workflows
from models.db import get_engine, session_scope
from tests.integration.engine_helpers import node, workflow


def chat_definition(llm: Any, *, stream: bool = True, name: str = "helpdesk", **chat_config: Any) -> dict:
    """A chat workflow answering with the scripted model; `chat_config` goes into the chat trigger."""
    agent = node(
        "agent", "agent", model="scripted", base_url=llm.base_url, prompt="{{ input.message }}",
        history="{{ input.history }}", stream=stream, system_prompt="Be brief.",
    )  # fmt: skip
    defn = workflow(
        [node("start", "start"), agent, node("end", "end")],
        [("start", "agent"), ("agent", "end")],
        name=name,
        policy={"egress": {"allowed_hosts": [llm.host]}},
    ).to_dict()
    defn["inputs"] = {
        "type": "object",
        "properties": {"message": {"type": "string", "minLength": 1}, "history": {"type": "array"}},
        "required": ["message"],
    }
    defn["outputs"] = {"answer": "{{ steps.agent.outputs.out.text }}"}
    defn["triggers"] = [{"id": "chat", "kind": "chat", "config": {"title": "Helpdesk", **chat_config}}]
    return defn


def save_chat_workflow(pg_url: str, defn: dict) -> tuple[str, triggers.TriggerRow]:
    """Save the definition as a new workflow; its id and its (only) chat trigger."""
    with session_scope(pg_url) as session:
        workflow_id = str(workflows.create_workflow(session, defn["name"]).id)
        workflows.save_version(session, workflow_id, defn)
    with get_engine(pg_url).connect() as conn:
        (trigger,) = [t for t in triggers.list_for_workflow(conn, workflow_id) if t.kind == "chat"]
    return workflow_id, trigger
