"""The pure pieces of chat streaming: server-sent events split anywhere, a session's truncation and
history, which node's tokens are the answer, and problem documents as OpenAI errors."""

from __future__ import annotations

import json

from app.api.openai_errors import from_problem
from engine.chat_sessions import history_of, trim
from engine.chat_stream import answer_text, streaming_node
from engine.parse import parse_dict
from nodes.agent.llm_http import SseDecoder

EVENTS = [{"choices": [{"delta": {"content": "Grüße "}}]}, {"choices": [{"delta": {"content": "✓"}}]}]
BODY = ("event: ping\n" + "".join(f"data: {json.dumps(e, ensure_ascii=False)}\r\n\r\n" for e in EVENTS)
        + "data: not json\n\ndata: [DONE]\n\ndata: {\"after\": 1}\n\n").encode()  # fmt: skip


def test_events_split_at_any_byte_come_out_whole_and_stop_at_done() -> None:
    for size in (1, 2, 3, 7, len(BODY)):
        decoder, found = SseDecoder(), []
        for start in range(0, len(BODY), size):
            found += decoder.feed(BODY[start : start + size])
        found += decoder.close()
        assert found == EVENTS, size
        assert decoder.done


def test_a_last_event_without_newline_is_read_at_close() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"a": 1}') == []
    assert decoder.close() == [{"a": 1}]


def _turns(*pairs: tuple[str, str | None]) -> list[dict]:
    messages = []
    for i, (question, reply) in enumerate(pairs, 1):
        messages.append({"role": "user", "content": question, "run_id": f"r{i}", "turn": i})
        if reply is not None:
            messages.append({"role": "assistant", "content": reply, "run_id": f"r{i}", "turn": i})
    return messages


def test_trim_keeps_the_last_turns_whole() -> None:
    messages = _turns(("a", "A"), ("b", "B"), ("c", None))
    assert [m["content"] for m in trim(messages, 2)] == ["b", "B", "c"]
    assert trim(messages, 3) == messages and trim(messages, 0) == []


def test_history_has_only_answered_turns_as_role_and_content() -> None:
    messages = _turns(("a", "A"), ("b", ""), ("c", None))
    messages[3]["error"] = "the run failed"
    assert history_of(messages) == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "A"}]


def _chat(template: str, stream: bool = True):
    return parse_dict({
        "name": "chat", "outputs": {"answer": template},
        "nodes": [{"id": "start", "type": "start"}, {"id": "bot", "type": "agent", "config": {"stream": stream}},
                  {"id": "end", "type": "end"}],
    })  # fmt: skip


def test_only_an_answer_that_is_exactly_a_streaming_agents_text_streams() -> None:
    assert streaming_node(_chat("{{ steps.bot.outputs.out.text }}"), "answer") == "bot"
    assert streaming_node(_chat("{{steps.bot.output.out.text}}"), "answer") == "bot"
    assert streaming_node(_chat("Bot says: {{ steps.bot.outputs.out.text }}"), "answer") is None
    assert streaming_node(_chat("{{ steps.bot.outputs.out.text }}", stream=False), "answer") is None
    assert streaming_node(_chat("{{ steps.end.outputs.out.text }}"), "answer") is None
    assert streaming_node(_chat("{{ steps.bot.outputs.out.text }}"), "reply") is None


def test_an_answer_that_is_not_text_is_json() -> None:
    assert answer_text({"answer": "hi"}, "answer") == "hi"
    assert answer_text({"answer": {"n": 1}}, "answer") == '{"n": 1}'
    assert answer_text({"other": 1}, "answer") is None and answer_text(None, "answer") is None


def test_problem_documents_become_openai_errors() -> None:
    status, body = from_problem({"code": "api_key_unknown", "detail": "the API key is unknown"}, 401)
    assert status == 401 and body == {"error": {"message": "the API key is unknown", "type": "authentication_error",
                                                "param": None, "code": "invalid_api_key"}}  # fmt: skip
    status, body = from_problem(
        {"code": "request_invalid", "detail": "body.messages: too short",
         "errors": [{"loc": ["body", "messages"], "msg": "too short"}]}, 422,
    )  # fmt: skip
    assert (
        status == 400
        and body["error"]["param"] == "messages"
        and body["error"]["type"] == "invalid_request_error"
    )
    assert (
        from_problem({"code": "rate_limited", "detail": "slow down"}, 429)[1]["error"]["type"]
        == "rate_limit_error"
    )
