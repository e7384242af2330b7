"""Chat triggers on real workers: a session carries the conversation across runs, keeps at most
max_turns turns, belongs to its owner only, and the answer streams in while the model writes it."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select

from engine import chat_sessions
from engine.chat_stream import ANY_NODE, follow_answer, streaming_node
from engine.errors import ErrorCode, FlowloomError
from engine.parse import parse_dict
from engine.run_events import wait_for_end
from models.db import get_engine
from models.tables import Run
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.chat_helpers import chat_definition, save_chat_workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")
WAIT_S = 60.0  # how long a test waits for a run (never a measured duration)
OWNER, OTHER = "user:ann", "user:bob"


@pytest.fixture
def llm(scripted_llm):  # noqa: F811 - the imported fixture
    scripted_llm.script()
    yield scripted_llm
    if scripted_llm.gate is not None:
        scripted_llm.gate.set()


def _say(trigger, session_id: str, text: str, owner: str = OWNER) -> chat_sessions.SessionView:
    """Send a message, wait for its run, and return the session with the answer in it."""
    started = chat_sessions.send(trigger, session_id, owner, text, started_by=owner)
    assert wait_for_end(started.run_id, WAIT_S) == "succeeded"
    return chat_sessions.record_answer(session_id, owner, trigger.config)


def _sent_messages(request: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request["body"]["messages"] if m["role"] != "system"]


def test_a_session_carries_the_conversation_into_the_next_run(pg_url, llm):
    llm.script(answer("Hello Ann."), answer("Your name is Ann."))
    workflow_id, trigger = save_chat_workflow(pg_url, chat_definition(llm))
    session = chat_sessions.create(workflow_id, OWNER)

    first = _say(trigger, session.id, "Hi, I am Ann.")
    assert [(m["role"], m["content"]) for m in first.messages] == [
        ("user", "Hi, I am Ann."), ("assistant", "Hello Ann."),
    ]  # fmt: skip
    assert first.title == "Hi, I am Ann." and first.turns == 1
    second = _say(trigger, session.id, "What is my name?")

    # The second run got the first turn as history, and the model saw it.
    assert _sent_messages(llm.requests[1]) == [
        ("user", "Hi, I am Ann."), ("assistant", "Hello Ann."), ("user", "What is my name?"),
    ]  # fmt: skip
    assert second.messages[-1]["content"] == "Your name is Ann." and second.turns == 2
    run_ids = [m["run_id"] for m in second.messages if m["role"] == "user"]
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(
            select(Run.session_id, Run.trigger_id, Run.started_by).where(Run.id.in_(run_ids))
        ).all()
    assert {(str(r.session_id), str(r.trigger_id), r.started_by) for r in rows} == {
        (session.id, trigger.id, OWNER)
    }


def test_a_session_keeps_only_the_last_max_turns_turns(pg_url, llm):
    llm.script(answer("one"), answer("two"), answer("three"))
    workflow_id, trigger = save_chat_workflow(pg_url, chat_definition(llm, max_turns=2))
    session = chat_sessions.create(workflow_id, OWNER)
    for text in ("first", "second", "third"):
        view = _say(trigger, session.id, text)

    # The third run saw only the second turn: with the new message that makes max_turns turns.
    assert _sent_messages(llm.requests[2]) == [("user", "second"), ("assistant", "two"), ("user", "third")]
    assert [m["content"] for m in view.messages] == ["second", "two", "third", "three"]
    assert view.turns == 3  # turns count every message ever sent; the stored ones are trimmed


def test_a_session_of_another_owner_does_not_exist_for_you(pg_url, llm):
    llm.script(answer("hi"))
    workflow_id, trigger = save_chat_workflow(pg_url, chat_definition(llm))
    mine = chat_sessions.create(workflow_id, OWNER)
    _say(trigger, mine.id, "hello")
    for attempt in (
        lambda: chat_sessions.get(mine.id, OTHER, trigger.config),
        lambda: chat_sessions.send(trigger, mine.id, OTHER, "let me in"),
        lambda: chat_sessions.get("not-a-uuid", OWNER, trigger.config),
    ):
        with pytest.raises(FlowloomError) as caught:
            attempt()
        assert caught.value.code == ErrorCode.CHAT_SESSION_NOT_FOUND
    assert chat_sessions.list_sessions(OTHER) == []
    assert [s.id for s in chat_sessions.list_sessions(OWNER, workflow_id)] == [mine.id]
    assert len(llm.requests) == 1  # the refused message started nothing


def test_the_answer_streams_in_while_the_model_writes_it(pg_url, llm):
    llm.script(answer("The quick brown fox jumps."))
    llm.gate = threading.Event()  # the model holds its reply after the first token until we open it
    defn = chat_definition(llm)
    assert streaming_node(parse_dict(defn), "answer") == "agent"
    workflow_id, trigger = save_chat_workflow(pg_url, defn)
    session = chat_sessions.create(workflow_id, OWNER)
    started = chat_sessions.send(trigger, session.id, OWNER, "Say something")

    async def follow() -> tuple[list, str | None]:
        pieces, status_at_first = [], None
        async for piece in follow_answer(started.run_id, "answer", node_id=ANY_NODE, timeout=WAIT_S):
            pieces.append(piece)
            if len(pieces) == 1:
                with get_engine(pg_url).connect() as conn:
                    status_at_first = conn.execute(
                        select(Run.status).where(Run.id == started.run_id)
                    ).scalar()
                with pytest.raises(FlowloomError) as busy:  # one message at a time per conversation
                    chat_sessions.send(trigger, session.id, OWNER, "and another thing")
                assert busy.value.code == ErrorCode.CHAT_BUSY
                llm.gate.set()
        return pieces, status_at_first

    pieces, status_at_first = asyncio.run(follow())
    # The first token was there while the model was still writing (the run still going).
    assert status_at_first == "running" and pieces[0].text == "The "
    streamed = "".join(p.text for p in pieces if not p.done)
    final = pieces[-1]
    assert (
        final.done
        and final.status == "succeeded"
        and final.answer == streamed == "The quick brown fox jumps."
    )
    assert (
        len([p for p in pieces if not p.done]) >= 2
    )  # more than one batch: it streamed, it did not arrive whole


def test_an_answer_nobody_waited_for_joins_the_session_when_it_is_read(pg_url, llm):
    llm.script(answer("Noted."))
    workflow_id, trigger = save_chat_workflow(pg_url, chat_definition(llm, stream=False))
    session = chat_sessions.create(workflow_id, OWNER)
    started = chat_sessions.send(trigger, session.id, OWNER, "Remember this")
    assert chat_sessions.get(session.id, OWNER, trigger.config).pending_run in (started.run_id, None)
    assert wait_for_end(started.run_id, WAIT_S) == "succeeded"
    view = chat_sessions.get(session.id, OWNER, trigger.config)  # nobody called record_answer
    assert [m["content"] for m in view.messages] == ["Remember this", "Noted."]
    assert view.pending_run is None


def test_a_failed_turn_is_kept_with_its_error_but_not_sent_as_history(pg_url, llm):
    llm.script({"no": "choices"}, answer("Fine now."))
    workflow_id, trigger = save_chat_workflow(pg_url, chat_definition(llm, stream=False))
    session = chat_sessions.create(workflow_id, OWNER)
    started = chat_sessions.send(trigger, session.id, OWNER, "broken")
    assert wait_for_end(started.run_id, WAIT_S) == "failed"
    view = _say(trigger, session.id, "again")
    failed = view.messages[1]
    assert failed["role"] == "assistant" and failed["content"] == "" and "choices" in failed["error"]
    assert _sent_messages(llm.requests[1]) == [("user", "again")]
