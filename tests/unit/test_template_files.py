"""Template files and the gallery door, without a database: loading, the needs checks, search,
import parsing and its refusals, and the graph preview."""

from __future__ import annotations

import base64
import json

import pytest

from components.graph_preview import preview_data_url, preview_svg
from engine.errors import DefinitionError, FlowloomError
from engine.template_files import Template, template_from_text
from engine.template_gallery import (
    MAX_IMPORT_BYTES,
    all_templates,
    categories,
    get_template,
    list_templates,
    read_import,
)

GOOD = """
template:
  key: tiny
  title: Tiny
  description: Echo a greeting.
  category: getting-started
  needs: {inputs: [name]}
  examples:
    - input: {name: Ada}
      expect: {checks: ["outputs.out == 'hi Ada'"]}
definition:
  name: Tiny
  inputs: {type: object, properties: {name: {type: string}}, required: [name]}
  nodes:
    - {id: start, type: start}
    - {id: greet, type: tool.python, config: {tool: echo, args: {value: "hi {{ input.name }}"}}}
    - {id: end, type: end}
  edges:
    - {id: a, source: start, target: greet}
    - {id: b, source: greet, target: end}
"""


def test_a_template_file_loads_with_its_metadata_and_definition():
    template = template_from_text(GOOD, "tiny.yaml")
    assert template.key == "tiny" and template.meta.needs.inputs == ["name"]
    assert template.parsed.nodes[1].config["tool"] == "echo"
    assert "tool.python" in template.search_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("needs: {inputs: [name]}", "needs: {}"),
            "needs.inputs is [] but the definition's inputs schema requires",
        ),
        (("needs: {inputs: [name]}", "needs: {inputs: [name], triggers: [chat]}"), "needs.triggers"),
        (
            ("needs: {inputs: [name]}", "needs: {inputs: [name], secrets: [{name: KEY}]}"),
            "KEY listed but never used",
        ),
        (("category: getting-started", "category: misc"), "template.category"),
        (("outputs.out == 'hi Ada'", "outputs.out =="), "checks[0]"),
        (("key: tiny", "key: Tiny!"), "template.key"),
        (("- input: {name: Ada}", "- input: {name: Ada}\n      decisions: [{node: nope}]"), "node 'nope'"),
        (("- {id: end, type: end}", "- {id: end, typo: end}"), "definition"),
    ],
)
def test_metadata_that_disagrees_with_the_definition_is_refused_saying_where(change, message):
    old, new = change
    with pytest.raises(DefinitionError, match="tiny.yaml") as caught:
        template_from_text(GOOD.replace(old, new), "tiny.yaml")
    assert message in str(caught.value)


def test_a_secret_the_definition_uses_must_be_listed():
    text = GOOD.replace(
        '{tool: echo, args: {value: "hi {{ input.name }}"}}',
        "{tool: echo, args: {value: hi}}}\n    - {id: call, type: tool.http, config: {url: 'https://x.example', "
        "auth: {type: bearer, secret: API_TOKEN}}",
    )
    with pytest.raises(DefinitionError, match="uses API_TOKEN, not listed"):
        template_from_text(text, "tiny.yaml")


def test_yaml_aliases_and_non_json_values_are_refused():
    with pytest.raises(DefinitionError, match="aliases"):
        template_from_text(GOOD.replace("title: Tiny", "title: &t Tiny\n  tags: [*t]"), "tiny.yaml")
    with pytest.raises(DefinitionError, match="not JSON"):
        template_from_text(
            GOOD.replace("- input: {name: Ada}", "- input: {name: !!binary aGk=}"), "tiny.yaml"
        )


def test_the_built_in_gallery_is_complete_and_consistent():
    templates = all_templates()
    keys = [t.key for t in templates]
    assert len(keys) == len(set(keys)) >= 12
    for kept in ("approval-flow", "http-summarise", "parallel-fan-out"):  # the three earlier built-ins
        assert kept in keys
    assert categories() == ["getting-started", "ai", "human", "integration", "events"]
    assert get_template("dag-phases").parsed.mode == "dag"
    assert get_template("state-machine-review").parsed.mode == "state_machine"
    with pytest.raises(FlowloomError, match="no template 'nope'"):
        get_template("nope")


def test_search_matches_every_word_in_title_tags_triggers_and_node_types_within_a_category():
    assert {t.key for t in list_templates("kafka")} == {"kafka-order-pipeline"}
    assert "rag-citations" in {t.key for t in list_templates("memory.search")}
    assert {t.key for t in list_templates("approval quorum")} == {"approval-quorum-deadline"}
    human = list_templates(category="human")
    assert human and all(t.meta.category == "human" for t in human)
    assert list_templates("kafka", category="human") == []
    assert len(list_templates("  ")) == len(all_templates())


def test_import_reads_a_template_file_or_a_bare_definition():
    found = read_import(GOOD.encode(), "tiny.yaml")
    assert isinstance(found, Template) and found.key == "tiny"
    bare = {"name": "Bare", "nodes": [{"id": "start", "type": "start"}]}
    assert read_import(json.dumps(bare).encode(), "bare.json") == bare
    assert read_import(json.dumps(bare).encode(), "bare")["name"] == "Bare"  # no extension: sniffed


@pytest.mark.parametrize(
    ("raw", "filename", "message"),
    [
        (b"x" * (MAX_IMPORT_BYTES + 1), "big.json", "the limit for an import is 1,000,000 bytes"),
        (b"", "empty.yaml", "the file is empty"),
        (b"\xff\xfe{", "bad.json", "not UTF-8"),
        (b'{"name": ', "broken.json", "broken.json, line 1: invalid JSON"),
        (b"name: [", "broken.yaml", "invalid YAML"),
        (b"name: x\n", "nodes.yaml", "nodes.yaml: nodes: Field required"),
        (b"{}", "shell.sh", "unknown file type '.sh'"),
    ],
)
def test_import_refusals_say_what_is_wrong_and_where(raw, filename, message):
    with pytest.raises(DefinitionError) as caught:
        read_import(raw, filename)
    assert message in str(caught.value)


def test_the_preview_draws_every_node_where_the_editor_puts_it_and_escapes_labels():
    defn = get_template("dag-phases").definition
    svg = preview_svg(defn)
    assert svg.count("<rect") == len(defn["nodes"]) and svg.count("<line") == len(defn["edges"])
    hostile = {"nodes": [{"id": "a", "label": "<script>x</script>", "position": {"x": 0, "y": 0}}]}
    assert "<script>" not in preview_svg(hostile) and "&lt;script&gt;" in preview_svg(hostile)
    url = preview_data_url(defn)
    assert base64.b64decode(url.split(",", 1)[1]).decode() == svg
    assert "<rect" not in preview_svg({"nodes": []})
