"""Follow a chat run's answer while it is written: the answering agent's `agent.stream` chunks as
they reach the outbox, then the run's answer once it ends.

The chat page and `POST /v1/chat/completions` read a run through `follow_answer`. It waits on
engine.run_events (LISTEN/NOTIFY) between reads, so a token batch is seen as soon as the worker
commits it. When no node of the workflow streams, the only piece before the end is none at all:
the answer then comes whole with the final piece.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from engine.definition import WorkflowDefinition
from engine.events import AGENT_COMPLETED, AGENT_STREAM
from engine.ids import parse_id
from engine.run_events import TERMINAL_RUN, events_after, run_status, wait_async
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Run

# `{{ steps.<node>.outputs.out.text }}` (or `.output.out.text`): the answer is exactly what that agent said.
_AGENT_TEXT = re.compile(r"^\s*\{\{\s*steps\.([A-Za-z_][A-Za-z0-9_\-]*)\.outputs?\.out\.text\s*\}\}\s*$")
WAIT_SLICE_S = 5.0  # re-read at least this often, even without a notification
ANY_NODE = "*"  # follow_answer: stream the tokens of whichever node streams


@dataclass(frozen=True)
class AnswerPiece:
    """One step of following an answer: streamed `text`, or the end (`done`) with the outcome.

    `restart` says the streamed text starts over (another model call or a retried step): what
    came before it is not part of the answer being written now.
    """

    text: str = ""
    restart: bool = False
    done: bool = False
    status: str = ""  # the run's status when done; "" when the wait ran out first
    answer: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended (or where it is): status, its answer output as text, its error."""

    status: str
    answer: str | None
    error: str | None
    outputs: dict[str, Any] | None


def answer_text(outputs: dict[str, Any] | None, answer_output: str) -> str | None:
    """The run output `answer_output` as text (JSON for anything that is not a string); None if absent."""
    if not isinstance(outputs, dict) or outputs.get(answer_output) is None:
        return None
    value = outputs[answer_output]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def streaming_node(defn: WorkflowDefinition, answer_output: str) -> str | None:
    """The agent whose streamed tokens are exactly the answer, or None.

    That is the case when the run output `answer_output` is `{{ steps.<node>.outputs.out.text }}` and
    `<node>` is an agent with `stream` on; anything else (a template that adds text, no streaming
    agent) streams nothing, and the answer comes whole at the end.
    """
    template = (defn.outputs or {}).get(answer_output)
    match = _AGENT_TEXT.match(template) if isinstance(template, str) else None
    if match is None:
        return None
    node = next((n for n in defn.nodes if n.id == match.group(1)), None)
    if node is None or node.type != "agent" or not (node.config or {}).get("stream"):
        return None
    return node.id


def run_outcome(
    run_id: str | uuid.UUID, answer_output: str, *, database_url: str | None = None
) -> RunOutcome | None:
    """The run's status, answer and error now; None if there is no such run."""
    rid = parse_id(run_id)
    if rid is None:
        return None
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        row = conn.execute(
            select(col(Run.status), col(Run.outputs), col(Run.error)).where(col(Run.id) == rid)
        ).first()
    if row is None:
        return None
    return RunOutcome(row.status, answer_text(row.outputs, answer_output), row.error, row.outputs)


def _read(run_id: str, after: int, database_url: str | None) -> tuple[str | None, list[Any]]:
    # The status first: once it is terminal, every event of the run was committed before it.
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        status = run_status(conn, run_id)
        return status, events_after(conn, run_id, after)


async def follow_answer(
    run_id: str,
    answer_output: str,
    *,
    node_id: str | None = None,
    timeout: float = 60.0,
    database_url: str | None = None,
) -> AsyncIterator[AnswerPiece]:
    """The run's streamed text as it comes, then one `done` piece with the outcome; after
    `timeout` seconds a `done` piece with an empty status and an error saying so.

    The text is `node_id`'s agent.stream chunks (ANY_NODE: any node's); with None only the end.
    """
    deadline = time.monotonic() + timeout
    after, current = 0, None
    while True:
        status, found = await asyncio.to_thread(_read, run_id, after, database_url)
        for event in found:
            after = event.seq
            data = (event.payload or {}).get("data") or {}
            if event.event_type != AGENT_STREAM or node_id is None:
                continue
            if node_id != ANY_NODE and data.get("node_id") != node_id:
                continue
            key = (data.get("step_id"), data.get("attempt"), data.get("iteration"))
            restart, current = current is not None and key != current, key
            text = "".join(str(c) for c in data.get("chunks") or [])
            if text or restart:
                yield AnswerPiece(text=text, restart=restart)
        if status is None or status in TERMINAL_RUN:
            outcome = await asyncio.to_thread(run_outcome, run_id, answer_output, database_url=database_url)
            if outcome is None:
                yield AnswerPiece(done=True, status="failed", error=f"run {run_id} no longer exists")
            else:
                yield AnswerPiece(
                    done=True, status=outcome.status, answer=outcome.answer, error=outcome.error
                )
            return
        left = deadline - time.monotonic()
        if left <= 0:
            yield AnswerPiece(done=True, error=f"no answer within {timeout:g} s; the run {run_id} goes on")
            return
        await wait_async(run_id, min(left, WAIT_SLICE_S), database_url=database_url)


def run_usage(run_id: str, *, database_url: str | None = None) -> dict[str, int]:
    """Token usage of the run's agents (their agent.completed events), summed per counter."""
    totals: dict[str, int] = {}
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        after = 0
        while batch := events_after(conn, run_id, after):
            after = batch[-1].seq
            for event in batch:
                usage = ((event.payload or {}).get("data") or {}).get("usage")
                if event.event_type != AGENT_COMPLETED or not isinstance(usage, dict):
                    continue
                for key, value in usage.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        totals[key] = totals.get(key, 0) + value
    return totals
