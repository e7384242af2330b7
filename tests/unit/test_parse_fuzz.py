"""Fuzz the parsers: whatever comes in, only DefinitionError ever comes out."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import DefinitionError
from engine.parse import parse_dict, parse_json, parse_yaml, to_json, to_yaml
from engine.validate import validate

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
# Like JSONISH but with keys and values JSON cannot hold, as a caller's dict might.
PYTHONISH = st.recursive(
    SCALARS | st.binary(max_size=5) | st.dates() | st.tuples(st.integers()),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.integers() | st.none(), children, max_size=4)
    ),
    max_leaves=30,
)
VALID = [
    {
        "name": "diamond",
        "nodes": [
            {"id": "a", "type": "start"},
            {"id": "b", "type": "delay", "config": {"seconds": 0}},
            {"id": "c", "type": "condition", "config": {"expression": "value.ok"}},
            {"id": "d", "type": "end"},
        ],
        "edges": [
            {"id": "e1", "source": "a", "target": "b"},
            {"id": "e2", "source": "a", "target": "c"},
            {"id": "e3", "source": "b", "target": "d", "condition": "value"},
            {"id": "e4", "source": "c", "source_port": "true", "target": "d"},
            {"id": "e5", "source": "b", "source_port": "error", "target": "d"},
        ],
    },
    {
        "id": "loop",
        "name": "loop",
        "mode": "state_machine",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "outputs": {"n": "{{ steps.w.output.out }}"},
        "nodes": [
            {"id": "s", "type": "start", "position": {"x": 1, "y": 2}},
            {
                "id": "w",
                "type": "delay",
                "config": {"seconds": "{{ input.n }}"},
                "max_visits": 3,
                "retry": {},
            },
            {"id": "m", "type": "merge", "config": {"mode": "any"}, "timeout_s": 4},
            {"id": "e", "type": "end"},
        ],
        "edges": [
            {"id": "e1", "source": "s", "target": "w"},
            {"id": "e2", "source": "w", "target": "m"},
            {"id": "e3", "source": "m", "target": "w", "condition": "visit < 3"},
            {"id": "e4", "source": "m", "target": "e"},
        ],
        "error_handling": {"on_error": "continue"},
        "policy": {"max_visits": 4},
    },
]


def _only_definition_errors(parse: Callable[[Any], Any], value: Any, *, round_trip: bool = False) -> None:
    try:
        defn = parse(value)
    except DefinitionError:
        return
    if round_trip:
        validate(defn)  # what parses must also validate without crashing
        assert parse_json(to_json(defn)) == defn
        assert parse_yaml(to_yaml(defn)) == defn


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    return paths


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    """A valid definition with one to three random edits (replace, delete, add, duplicate)."""
    data = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate", "stringify"]))
        if action == "replace":
            parent[key] = draw(JSONISH)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSONISH)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "stringify":
            parent[key] = json.dumps(parent[key])
    return data


@FUZZ
@given(st.text(max_size=200))
def test_random_text_only_raises_definition_errors(text: str) -> None:
    _only_definition_errors(parse_json, text, round_trip=True)
    _only_definition_errors(parse_yaml, text, round_trip=True)


@FUZZ
@given(JSONISH)
def test_random_json_structures_only_raise_definition_errors(value: Any) -> None:
    _only_definition_errors(parse_dict, value, round_trip=True)
    _only_definition_errors(parse_json, json.dumps(value))
    _only_definition_errors(parse_yaml, yaml.safe_dump(value))


@FUZZ
@given(PYTHONISH)
def test_random_python_values_only_raise_definition_errors(value: Any) -> None:
    _only_definition_errors(parse_dict, {"name": "w", "nodes": [], "inputs": {"x": value}}, round_trip=True)
    _only_definition_errors(parse_dict, value)


@FUZZ
@given(mutated_definitions())
def test_mutated_valid_definitions_only_raise_definition_errors(data: Any) -> None:
    _only_definition_errors(parse_dict, data, round_trip=True)
    _only_definition_errors(parse_json, json.dumps(data))
    _only_definition_errors(parse_yaml, yaml.safe_dump(data))


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mangled_definition_text_only_raises_definition_errors(data: Any, draw: st.DataObject) -> None:
    for text in (json.dumps(data, indent=1), yaml.safe_dump(data)):
        start = draw.draw(st.integers(0, len(text)))
        end = draw.draw(st.integers(start, min(len(text), start + 20)))
        mangled = text[:start] + draw.draw(st.text(max_size=10)) + text[end:]
        _only_definition_errors(parse_json, mangled, round_trip=True)
        _only_definition_errors(parse_yaml, mangled, round_trip=True)
