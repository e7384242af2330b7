"""The pieces of workflow generation that need no services: reading an answer, checking it, the prompts."""

from __future__ import annotations

import json

import pytest

from engine import workflow_generation as generation
from engine.errors import DefinitionError
from engine.validate import validate

SMALL = {
    "name": "Tiny",
    "nodes": [{"id": "start", "type": "start"}, {"id": "done", "type": "end"}],
    "edges": [{"id": "e", "source": "start", "target": "done"}],
}


def test_an_answer_in_a_code_fence_or_after_prose_is_read() -> None:
    assert generation.read_answer("```json\n" + json.dumps(SMALL) + "\n```")["name"] == "Tiny"
    assert generation.read_answer("Here it is:\n" + json.dumps(SMALL) + "\nEnjoy.")["name"] == "Tiny"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("no braces at all", "is not a JSON object"),
        ('{"name": "x", "nodes": [}', "is not valid JSON"),
        ('{"name": "x", "name": "y", "nodes": []}', "is not valid JSON"),  # duplicate keys are refused
    ],
)
def test_an_answer_that_is_not_a_json_object_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        generation.read_answer(text)


def test_examine_gives_the_validators_sentences_for_a_broken_definition() -> None:
    broken = {**SMALL, "nodes": [*SMALL["nodes"], {"id": "fetch", "type": "tool.http"}]}
    data, errors, _ = generation.examine(json.dumps(broken))
    assert data is None
    assert any('node "fetch"' in e and "config.url" in e for e in errors), errors
    data, errors, _ = generation.examine(json.dumps(SMALL))
    assert errors == [] and data is not None and data["nodes"][1]["id"] == "done"


def test_the_instructions_list_every_node_type_with_its_config_fields() -> None:
    from engine.contract import all_node_types

    text = generation.instructions()
    for node_type in all_node_types():
        assert f"- {node_type.type} (" in text
    assert "      - url: string; required" in text  # tool.http's required field
    assert "secret NAME only" in text


def test_the_asking_run_is_a_valid_agent_workflow_with_the_providers_host_allowed() -> None:
    gen = generation.Generator("openai", "gpt-4o-mini", "http://127.0.0.1:8011/v1", "llm-key", 2048, 90)
    defn = generation.ask_definition(gen)
    assert validate(defn).ok, validate(defn).issues
    agent = next(n for n in defn.nodes if n.id == generation.ASK_NODE)
    assert agent.type == "agent" and agent.config["api_key_secret"] == "llm-key"
    assert agent.config["prompt"] == "{{ input.prompt }}"  # the description is a value, never a template
    assert defn.policy.egress.allowed_hosts == ["127.0.0.1:8011"]


def test_a_repair_prompt_carries_the_reasons_the_answer_and_the_description() -> None:
    prompt = generation.repair_prompt("Do X", '{"name": "x"}', ['nodes: no "end" node'])
    assert 'no "end" node' in prompt and '{"name": "x"}' in prompt and "Do X" in prompt
