"""Generating a workflow from a description: the model is asked through a run of the agent node on
real workers (a scripted OpenAI-compatible server answers), its answer checked by the validator,
repaired once with the validator's issues, or refused with the reasons."""

from __future__ import annotations

import json

import pytest

from engine import secrets
from engine import workflow_generation as generation
from engine.runs import get_run
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401

DESCRIPTION = "When a webhook arrives, ask an agent to summarise the body, then finish."


def _valid(name: str = "Summarise") -> dict:
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
            {"id": "summarise", "type": "agent", "label": "Summarise",
             "config": {"model": "gpt-4o-mini", "prompt": "Summarise {{ input.body }}"},
             "position": {"x": 300, "y": 0}},
            {"id": "done", "type": "end", "position": {"x": 600, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "source_port": "out", "target": "summarise", "target_port": "in"},
            {"id": "e2", "source": "summarise", "source_port": "out", "target": "done", "target_port": "in"},
        ],
    }  # fmt: skip


def _without_end() -> dict:
    broken = _valid()
    broken["nodes"] = broken["nodes"][:2]
    broken["edges"] = broken["edges"][:1]
    return broken


def _user_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "user"]


@pytest.fixture
def llm(scripted_llm, engine_env, engine_worker, clean_db, monkeypatch, tmp_path):  # noqa: F811
    """The scripted server configured as the generator (this process only: it builds the asking run)."""
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))  # the secrets store's key for this test
    monkeypatch.setenv("FLOWLOOM_GENERATOR_PROVIDER", "openai")
    monkeypatch.setenv("FLOWLOOM_GENERATOR_MODEL", "scripted")
    monkeypatch.setenv("FLOWLOOM_GENERATOR_BASE_URL", scripted_llm.base_url)
    monkeypatch.setenv("FLOWLOOM_GENERATOR_TIMEOUT_S", "60")
    from engine.settings import get_settings

    get_settings.cache_clear()
    yield scripted_llm
    get_settings.cache_clear()


def test_a_valid_answer_is_returned_after_one_question_through_an_agent_run(llm) -> None:
    llm.script(answer(json.dumps(_valid())))
    generated = generation.generate(DESCRIPTION, started_by="user:test", started_via="ui")

    assert generated.attempts == 1 and not generated.repaired
    assert [n["id"] for n in generated.definition["nodes"]] == ["start", "summarise", "done"]
    assert len(llm.requests) == 1
    body = llm.requests[0]["body"]
    assert body["model"] == "scripted"
    system = next(m["content"] for m in body["messages"] if m["role"] == "system")
    assert "- agent (Agent, ai)" in system and "- human.approval" in system  # the node catalogue
    assert DESCRIPTION in _user_messages(llm.requests[0])[0]
    view = get_run(generated.run_ids[0])  # an ordinary, recorded run of the agent node
    assert view is not None and view.status == "succeeded" and view.started_via == "ui"
    assert [s["node_type"] for s in view.steps] == ["start", "agent", "end"]


def test_an_invalid_answer_is_repaired_once_with_the_validators_issues(llm) -> None:
    llm.script(answer(json.dumps(_without_end())), answer(json.dumps(_valid("Repaired"))))
    generated = generation.generate(DESCRIPTION)

    assert generated.attempts == 2 and generated.repaired
    assert generated.definition["name"] == "Repaired"
    assert any('no "end" node' in r for r in generated.first_reasons)
    assert len(llm.requests) == 2
    repair = _user_messages(llm.requests[1])[0]
    assert 'no "end" node' in repair  # the validator's own sentence went back to the model
    assert '"summarise"' in repair and DESCRIPTION in repair  # with its answer and the description


def test_an_answer_invalid_twice_is_refused_with_the_reasons(llm) -> None:
    still_broken = _without_end()
    still_broken["nodes"][1]["config"] = {"prompt": "no model"}
    llm.script(answer(json.dumps(_without_end())), answer(json.dumps(still_broken)))
    with pytest.raises(generation.GenerationRefused) as refused:
        generation.generate(DESCRIPTION)

    reasons = refused.value.reasons
    assert any('no "end" node' in r for r in reasons)
    assert any('node "summarise"' in r and "config.model" in r for r in reasons), reasons
    assert refused.value.code == "generation_refused" and "even after one repair" in str(refused.value)
    assert len(llm.requests) == 2  # one repair, no more


def test_garbage_that_is_not_json_gets_a_clear_error(llm) -> None:
    llm.script(
        answer("Sure! Here is your workflow: start -> agent -> end."), answer('{"name": "x", "nodes": [}')
    )
    with pytest.raises(generation.GenerationRefused) as refused:
        generation.generate(DESCRIPTION)

    assert len(refused.value.reasons) == 1, refused.value.reasons
    assert refused.value.reasons[0].startswith("the model's answer is not valid JSON (invalid JSON: ")
    first = _user_messages(llm.requests[1])[0]
    assert "is not a JSON object" in first  # the first garbage was named to the model


def test_secret_values_never_reach_the_model(llm) -> None:
    secrets.set_secret("crm-token", "tok-9f8e7d6c5b4a", allowed_destinations=["crm.example.com"])
    llm.script(answer(json.dumps(_valid())))
    generation.generate(DESCRIPTION + " Use the token tok-9f8e7d6c5b4a for the CRM.")

    sent = json.dumps(llm.requests[0]["body"])
    assert "tok-9f8e7d6c5b4a" not in sent
    assert "Use the token [secret] for the CRM." in _user_messages(llm.requests[0])[0]


def test_a_failing_provider_is_a_generation_error_naming_the_run(llm) -> None:
    llm.script()  # the script is empty: the server answers 500
    with pytest.raises(generation.GenerationError) as failed:
        generation.generate(DESCRIPTION)
    assert "asking the model failed" in str(failed.value) and "(run " in str(failed.value)


def test_without_a_configured_model_generation_says_what_to_set(monkeypatch) -> None:
    from engine.settings import get_settings

    monkeypatch.setenv("FLOWLOOM_GENERATOR_MODEL", "")
    get_settings.cache_clear()
    try:
        with pytest.raises(generation.GenerationError, match="FLOWLOOM_GENERATOR_MODEL"):
            generation.generate(DESCRIPTION)
        with pytest.raises(generation.GenerationError, match="empty"):
            generation.generate("   ")
    finally:
        get_settings.cache_clear()
