"""Chat sessions: the design's State Manager for chat triggers.

A session (models.triggers.ChatSession) belongs to one workflow and one owner ("user:<id>",
"api_key:<id>" or "token:<trigger id>"); a session of another owner does not exist for you.
Each message starts a run of the chat trigger with the message and the conversation so far
(`history`), and the session id on the run. The answer joins the session when the run ends:
whoever waits for it calls `record_answer`, and any later read of the session fills in answers
of runs that ended meanwhile, so an answer is kept even when nobody waited.

Truncation: a session keeps its last `max_turns` turns (a turn is one message and its answer);
older turns are dropped when a new message arrives. The run of a message therefore sees at
most `max_turns - 1` earlier turns as history. Turns whose run failed stay in the session (with
the error) but are not sent as history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlmodel import col

from engine import dispatch, trigger_fire
from engine.chat_stream import answer_text
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.run_events import TERMINAL_RUN
from engine.settings import get_settings
from engine.trigger_config import ChatConfig
from engine.triggers import TriggerRow
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Run
from models.triggers import ChatSession

_sessions = table_of(ChatSession)
TITLE_CHARS = 80
MAX_MESSAGE_CHARS = 32_000


@dataclass
class SessionView:
    """A session as pages and routes show it; `messages` are {role, content, run_id, turn[, error]}."""

    id: str
    workflow_id: str
    owner: str
    title: str
    messages: list[dict[str, Any]]
    turns: int
    created_at: datetime
    updated_at: datetime

    @property
    def pending_run(self) -> str | None:
        """The run still answering the last message, if any."""
        last = self.messages[-1] if self.messages else None
        return str(last["run_id"]) if last and last.get("role") == "user" and last.get("run_id") else None


@dataclass
class TurnStarted:
    """A message was accepted: its turn number and the run answering it."""

    session: SessionView
    run_id: str
    turn: int
    duplicate: bool = False
    history: list[dict[str, str]] = field(default_factory=list)


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _view(row: Any, messages: list[dict[str, Any]] | None = None) -> SessionView:
    return SessionView(
        str(row.id), str(row.workflow_id), row.owner, row.title, list(messages if messages is not None else row.messages or []),
        row.turns, row.created_at, row.updated_at,
    )  # fmt: skip


def _not_found(session_id: Any) -> FlowloomError:
    return FlowloomError(f"no chat session {session_id}", code=ErrorCode.CHAT_SESSION_NOT_FOUND)


def trim(messages: list[dict[str, Any]], max_turns: int) -> list[dict[str, Any]]:
    """The messages of the last `max_turns` turns (a turn starts at each user message)."""
    if max_turns <= 0:
        return []
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(starts) <= max_turns:
        return list(messages)
    return list(messages[starts[-max_turns] :])


def history_of(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation a run is given: {role, content} of every answered turn, oldest first."""
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if m.get("role") != "user":
            continue
        reply = messages[i + 1] if i + 1 < len(messages) else None
        if reply is None or reply.get("role") != "assistant" or reply.get("error"):
            continue  # unanswered or failed turns are not context
        out += [{"role": "user", "content": str(m.get("content", ""))},
                {"role": "assistant", "content": str(reply.get("content", ""))}]  # fmt: skip
    return out


def _answers(conn: Connection, messages: list[dict[str, Any]], answer_output: str) -> list[dict[str, Any]]:
    """`messages` with the answer of every ended run filled in after its user message."""
    waiting = [
        (i, m) for i, m in enumerate(messages)
        if m.get("role") == "user" and m.get("run_id")
        and not (i + 1 < len(messages) and messages[i + 1].get("role") == "assistant")
    ]  # fmt: skip
    if not waiting:
        return messages
    ids = [parse_id(m["run_id"]) for _, m in waiting]
    rows = {
        str(r.id): r
        for r in conn.execute(
            select(col(Run.id), col(Run.status), col(Run.outputs), col(Run.error)).where(col(Run.id).in_(ids))
        )
    }
    out = list(messages)
    for i, m in reversed(waiting):  # from the end, so earlier indexes stay right
        run = rows.get(str(m["run_id"]))
        if run is not None and run.status not in TERMINAL_RUN:
            continue
        reply: dict[str, Any] = {"role": "assistant", "run_id": m["run_id"], "turn": m.get("turn")}
        answer = answer_text(run.outputs, answer_output) if run is not None else None
        if run is not None and run.status == "succeeded" and answer is not None:
            reply["content"] = answer
        else:
            reply["content"] = ""
            reply["error"] = (
                (run.error or f"the run {run.status}") if run is not None else "the run no longer exists"
            )
            if run is not None and run.status == "succeeded":
                reply["error"] = f"the workflow gave no {answer_output!r} output"
        out.insert(i + 1, reply)
    return out


def _locked(conn: Connection, session_id: str, owner: str) -> Any:
    sid = parse_id(session_id)
    if sid is None:
        raise _not_found(session_id)
    row = conn.execute(
        select(_sessions).where(_sessions.c.id == sid, _sessions.c.owner == owner).with_for_update()
    ).first()
    if row is None:
        raise _not_found(session_id)
    return row


def _store(conn: Connection, row: Any, messages: list[dict[str, Any]], **values: Any) -> None:
    conn.execute(
        update(_sessions)
        .where(_sessions.c.id == row.id)
        .values(messages=messages, updated_at=datetime.now(UTC), **values)
    )


def create(workflow_id: str, owner: str, *, title: str = "", database_url: str | None = None) -> SessionView:
    """A new, empty conversation of `owner` with the workflow."""
    wid = parse_id(workflow_id)
    if wid is None:
        raise FlowloomError(f"no workflow {workflow_id}", code=ErrorCode.WORKFLOW_NOT_FOUND)
    now = datetime.now(UTC)
    with _db(database_url).begin() as conn:
        row = conn.execute(
            _sessions.insert()
            .values(
                id=uuid.uuid4(),
                workflow_id=wid,
                owner=owner,
                title=title[:200],
                messages=[],
                turns=0,
                created_at=now,
                updated_at=now,
            )  # fmt: skip
            .returning(*_sessions.c)
        ).one()
    return _view(row)


def get(session_id: str, owner: str, config: ChatConfig, *, database_url: str | None = None) -> SessionView:
    """The session with every ended run's answer filled in; CHAT_SESSION_NOT_FOUND for an unknown
    id or another owner's session."""
    with _db(database_url).begin() as conn:
        row = _locked(conn, session_id, owner)
        messages = list(row.messages or [])
        filled = _answers(conn, messages, config.answer_output)
        if filled != messages:
            _store(conn, row, filled)
        return _view(row, filled)


def list_sessions(
    owner: str, workflow_id: str | None = None, *, limit: int = 20, database_url: str | None = None
) -> list[SessionView]:
    """The owner's sessions (of one workflow, when given), most recently used first."""
    query = select(_sessions).where(_sessions.c.owner == owner)
    if workflow_id is not None:
        wid = parse_id(workflow_id)
        if wid is None:
            return []
        query = query.where(_sessions.c.workflow_id == wid)
    with _db(database_url).connect() as conn:
        rows = conn.execute(query.order_by(_sessions.c.updated_at.desc()).limit(limit)).all()
    return [_view(r) for r in rows]


def send(
    trigger: TriggerRow,
    session_id: str,
    owner: str,
    text: str,
    *,
    started_by: str = "",
    database_url: str | None = None,
) -> TurnStarted:
    """Start the run answering `text` in the session (one transaction: the turn, the run, its
    delivery `<session id>:<turn>`); the run's first step is sent after the commit.

    Refused with CHAT_BUSY while the previous message's run is still going, with a
    ValidationError when the workflow's inputs do not take the message.
    """
    config = trigger.config
    if not isinstance(config, ChatConfig):
        raise FlowloomError(
            f"trigger {trigger.key!r} is not a chat trigger", code=ErrorCode.TRIGGER_NOT_FOUND
        )
    text = text.strip()
    if not text:
        raise FlowloomError("write a message first", code=ErrorCode.REQUEST_INVALID, field="message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise FlowloomError(f"the message is over {MAX_MESSAGE_CHARS:,} characters", code=ErrorCode.REQUEST_INVALID,
                            field="message")  # fmt: skip
    with _db(database_url).begin() as conn:
        row = _locked(conn, session_id, owner)
        if str(row.workflow_id) != trigger.workflow_id:
            raise _not_found(session_id)
        messages = _answers(conn, list(row.messages or []), config.answer_output)
        if messages and messages[-1].get("role") == "user":
            raise FlowloomError("the previous message is still being answered; wait for it",
                                code=ErrorCode.CHAT_BUSY)  # fmt: skip
        turn = row.turns + 1
        messages = trim(messages, config.max_turns - 1)  # room for this turn
        history = history_of(messages)
        inputs: dict[str, Any] = {config.message_input: text}
        if config.history_input:
            inputs[config.history_input] = history
        fired = trigger_fire.fire_in(conn, trigger, f"{row.id}:{turn}", inputs, session_id=str(row.id),
                                     started_by=started_by)  # fmt: skip
        messages.append({"role": "user", "content": text, "run_id": fired.run_id, "turn": turn})
        values: dict[str, Any] = {"turns": turn}
        if not row.title:
            values["title"] = text[:TITLE_CHARS]
        _store(conn, row, messages, **values)
        view = _view(row, messages)
        view.turns, view.title = turn, values.get("title", row.title)
    dispatch.send(fired.dispatches)
    return TurnStarted(view, str(fired.run_id), turn, duplicate=fired.duplicate, history=history)


def record_answer(
    session_id: str, owner: str, config: ChatConfig, *, database_url: str | None = None
) -> SessionView:
    """Fill in the answers of the session's ended runs (what a waiter calls once its run ended)."""
    return get(session_id, owner, config, database_url=database_url)
