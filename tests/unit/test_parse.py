"""Parsing JSON/YAML definitions: round trips, and errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import DefinitionError
from engine.parse import (
    MAX_DEFINITION_BYTES,
    parse_dict,
    parse_file,
    parse_json,
    parse_yaml,
    to_json,
    to_yaml,
)

RICH = {
    "id": "support-triage",
    "name": "Support triage ✓",
    "version": 3,
    "description": "multi\nline: text, NEL\x85 LS\u2028 BOM\ufeff tab\t",
    "mode": "state_machine",
    "inputs": {"type": "object", "properties": {"ticket": {"type": "string"}}, "required": ["ticket"]},
    "outputs": {"answer": "{{ steps.done.output.out }}"},
    "nodes": [
        {"id": "start", "type": "start", "position": {"x": 1.5, "y": -2}},
        {
            "id": "fetch",
            "type": "tool.http",
            "label": "Fetch",
            "config": {
                "url": "https://example.com/{{ input.ticket }}",
                "when": "2024-01-01",
                "flags": ["yes", "no", "on", "null", "1e3", "0x10", ""],
                "nested": {"empty": {}, "list": [], "n": None, "f": 1.25, "big": 10**20, "t": True},
            },
            "retry": {"max_attempts": 3, "backoff_s": 0.5, "backoff_factor": 2, "max_backoff_s": 10},
            "timeout_s": 12.5,
            "max_visits": 4,
        },
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "fetch"},
        {"id": "e2", "source": "fetch", "target": "done", "condition": "value.status == 'ok'", "label": "ok"},
        {"id": "e3", "source": "fetch", "source_port": "error", "target": "done"},
    ],
    "error_handling": {"on_error": "continue", "retry": {"max_attempts": 2}},
    "policy": {"max_visits": 5, "max_steps": 50, "step_timeout_s": 30},
}


def _error(parse, text: str) -> DefinitionError:  # type: ignore[no-untyped-def]
    with pytest.raises(DefinitionError) as err:
        parse(text)
    return err.value


def test_json_to_model_to_yaml_to_model_round_trips_without_loss() -> None:
    defn = parse_json(json.dumps(RICH))
    again = parse_yaml(to_yaml(defn))
    assert again == defn
    assert again.to_dict() == defn.to_dict()
    assert parse_json(to_json(again)) == defn
    assert again.node("fetch").config["when"] == "2024-01-01"
    assert again.node("fetch").config["flags"] == RICH["nodes"][1]["config"]["flags"]


def test_yaml_is_dumped_in_model_order() -> None:
    text = to_yaml(parse_dict(RICH))
    assert text.startswith("id: support-triage\nname: ")
    assert text.index("\nnodes:") < text.index("\nedges:") < text.index("\npolicy:")


def test_yaml_dates_stay_strings() -> None:
    defn = parse_yaml(
        "name: w\nnodes:\n- id: a\n  type: delay\n  config: {day: 2024-05-01, at: 2001-12-14t21:59:43.10-05:00}\n"
    )
    assert defn.nodes[0].config == {"day": "2024-05-01", "at": "2001-12-14t21:59:43.10-05:00"}


def test_json_syntax_error_gives_the_line() -> None:
    err = _error(parse_json, '{\n  "name": "w",\n  "nodes": [\n    {"id": "a",}\n  ]\n}')
    assert err.line == 4
    assert "invalid JSON" in str(err) and "line 4" in str(err)


def test_yaml_syntax_error_gives_the_line() -> None:
    err = _error(parse_yaml, "name: w\nnodes:\n  - id: a\n    type: [start\n")
    assert err.line is not None and err.line >= 4
    assert "invalid YAML" in err.message


def test_model_error_gives_the_path_and_node_id() -> None:
    data = json.loads(json.dumps(RICH))
    data["nodes"][2]["retry"] = {"max_attempts": 0}
    err = _error(parse_dict, data)
    assert err.path == "nodes[2].retry.max_attempts"
    assert err.node_id == "done"
    assert str(err).startswith('node "done", nodes[2].retry.max_attempts: ')


def test_all_model_errors_are_listed_and_typos_get_a_suggestion() -> None:
    err = _error(
        parse_json, '{"name": "w", "nodes": [{"id": "a", "type": "start", "confg": {}}], "edges": [{}]}'
    )
    assert err.path == "nodes[0].confg"
    assert "did you mean 'config'?" in err.message
    assert "edges[0].source: Field required" in err.message


def test_source_is_named_in_the_path() -> None:
    err = _error(
        lambda d: parse_dict(d, source="api body"), {"name": "w", "nodes": [{"id": "1a", "type": "x"}]}
    )
    assert err.path == "api body: nodes[0].id"


@pytest.mark.parametrize("kind", ["node", "edge"])
def test_duplicate_ids_name_the_id(kind: str) -> None:
    data = json.loads(json.dumps(RICH))
    if kind == "node":
        data["nodes"].append({"id": "fetch", "type": "end"})
    else:
        data["edges"].append({"id": "e2", "source": "start", "target": "done"})
    err = _error(parse_dict, data)
    assert f"duplicate {kind} id 'fetch'" in err.message or f"duplicate {kind} id 'e2'" in err.message
    assert err.path == ("nodes[3].id" if kind == "node" else "edges[3].id")


def test_oversized_definitions_are_refused() -> None:
    text = '{"name": "' + "x" * MAX_DEFINITION_BYTES + '", "nodes": []}'
    err = _error(parse_json, text)
    assert f"the limit is {MAX_DEFINITION_BYTES} bytes" in err.message
    assert f"definition is {len(text)} bytes" in err.message


def test_yaml_aliases_and_merge_keys_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    err = _error(parse_yaml, bomb)
    assert "aliases" in err.message and err.line == 2
    assert "merge keys" in _error(parse_yaml, "name: w\nnodes: []\npolicy: {<<: {max_steps: 3}}\n").message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: w\nnodes: []\ninputs: {blob: !!binary aGk=}\n", "bytes is not a JSON value"),
        ("name: w\nnodes: []\ninputs: {s: !!set {a, b}}\n", "not a JSON value"),
        ("name: w\nnodes: []\ninputs: {t: !!timestamp 2024-01-01}\n", "date is not a JSON value"),
        ("name: w\nnodes: []\ninputs: {x: .nan}\n", "nan is not a JSON number"),
        ("name: w\nnodes: []\ninputs: {1: a}\n", "keys must be strings"),
        ("name: w\nnodes: []\ninputs: {on: a}\n", "True is a boolean; keys must be strings"),
        ("name: w\nname: v\nnodes: []\n", "duplicate key 'name'"),
        ("name: w\nnodes: []\ninputs: {x: !!int abc}\n", "invalid YAML value"),
        ("- a\n- b\n", "mapping at the top level, not a list"),
        ("", "not null"),
        ("a: 1\n---\nb: 2\n", "single document"),
        ("name: w\nnodes: []\ndescription: !!python/object:os.system ls\n", "invalid YAML"),
    ],
)
def test_yaml_non_json_content_is_refused_clearly(text: str, expected: str) -> None:
    assert expected in _error(parse_yaml, text).message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "w", "name": "v", "nodes": []}', "duplicate key 'name'"),
        ('{"name": "w", "nodes": [], "inputs": {"x": NaN}}', "NaN is not a JSON number"),
        ('{"name": "w", "nodes": [], "inputs": {"x": 1' + "0" * 5000 + "}}", "invalid JSON"),
        ('{"name": "w\\u0000", "nodes": []}', "NUL"),
        ('{"name": "\\ud800", "nodes": []}', "surrogate"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"name": "w", "nodes": [], "inputs": ' + "[" * 150 + "]" * 150 + "}", "nested too deeply"),
        ("", "invalid JSON"),
    ],
)
def test_json_non_json_content_is_refused_clearly(text: str, expected: str) -> None:
    assert expected in _error(parse_json, text).message


def test_deep_yaml_is_refused() -> None:
    assert "nested too deeply" in _error(parse_yaml, "[" * 20_000 + "]" * 20_000).message


def test_parse_file_picks_the_format_by_extension(tmp_path: Path) -> None:
    defn = parse_dict(RICH)
    (tmp_path / "w.json").write_text(to_json(defn), encoding="utf-8")
    (tmp_path / "w.YML").write_text(to_yaml(defn), encoding="utf-8")
    assert parse_file(tmp_path / "w.json") == defn == parse_file(str(tmp_path / "w.YML"))


def test_parse_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text("import os\nos.system('touch pwned')\n")
    err = _error(parse_file, tmp_path / "flow.py")
    assert "engine.dsl" in err.message and err.path == str(tmp_path / "flow.py")
    assert not (tmp_path / "pwned").exists()
    assert "unknown definition format" in _error(parse_file, tmp_path / "flow.toml").message
    assert "cannot read" in _error(parse_file, tmp_path / "missing.yaml").message
    (tmp_path / "bad.yaml").write_bytes(b"name: \xff\n")
    assert "not UTF-8" in _error(parse_file, tmp_path / "bad.yaml").message
    (tmp_path / "broken.yaml").write_text("name: w\nnodes: [\n")
    err = _error(parse_file, tmp_path / "broken.yaml")
    assert err.path == str(tmp_path / "broken.yaml") and err.line is not None
    (tmp_path / "big.json").write_bytes(b" " * (MAX_DEFINITION_BYTES + 1))
    assert "the limit is" in _error(parse_file, tmp_path / "big.json").message
