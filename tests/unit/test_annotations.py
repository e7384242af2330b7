"""Sticky notes and groups in a definition: validated, kept by JSON and YAML, ignored by the plan."""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError
from engine.parse import parse_dict, parse_json, parse_yaml, to_json, to_yaml
from engine.plan import build_plan

BASE = {
    "name": "annotated",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "work", "type": "delay"},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "work"},
        {"id": "e2", "source": "work", "target": "done"},
    ],
}
ANNOTATIONS = {
    "notes": [
        {
            "id": "why",
            "text": "# Why\n\n*Retries* are on.\n\n<script>alert('x')</script> [x](javascript:alert(1))",
            "color": "pink",
            "position": {"x": 10, "y": -120},
            "width": 300,
            "height": 180,
        }
    ],
    "groups": [
        {
            "id": "body",
            "title": "The work",
            "color": "green",
            "position": {"x": -20, "y": -20},
            "nodes": ["work", "done"],
        }
    ],
}


def test_notes_and_groups_survive_json_and_yaml_round_trips_exactly() -> None:
    defn = parse_dict({**BASE, "annotations": ANNOTATIONS})
    for again in (parse_json(to_json(defn)), parse_yaml(to_yaml(defn))):
        assert again == defn
        assert again.annotations.notes[0].text == ANNOTATIONS["notes"][0]["text"]  # stored as written
        assert again.annotations.groups[0].nodes == ["work", "done"]
        assert again.annotations.groups[0].color == "green"


def test_a_definition_without_annotations_gets_empty_ones() -> None:
    defn = parse_dict(BASE)
    assert defn.to_dict()["annotations"] == {"notes": [], "groups": []}


def test_the_plan_ignores_annotations() -> None:
    plain, annotated = parse_dict(BASE), parse_dict({**BASE, "annotations": ANNOTATIONS})
    assert build_plan(plain).phases == build_plan(annotated).phases


@pytest.mark.parametrize(
    ("annotations", "message", "where"),
    [
        (
            {"groups": [{"id": "g", "nodes": ["ghost"]}]},
            "not a node of this workflow",
            "annotations.groups[0].nodes[0]",
        ),
        (
            {"groups": [{"id": "g", "nodes": ["work"]}, {"id": "h", "nodes": ["work"]}]},
            "in two groups",
            "annotations.groups[1].nodes[0]",
        ),
        (
            {"notes": [{"id": "x"}], "groups": [{"id": "x"}]},
            "duplicate annotation id",
            "annotations.groups[0].id",
        ),
        ({"notes": [{"id": "n", "colour": "red"}]}, "did you mean 'color'", "annotations.notes[0].colour"),
        ({"notes": [{"id": "n", "color": "chartreuse"}]}, "yellow", "annotations.notes[0].color"),
        ({"notes": [{"id": "n", "text": "x" * 10_001}]}, "10000", "annotations.notes[0].text"),
        ({"groups": [{"id": "g", "width": 5}]}, "greater than or equal", "annotations.groups[0].width"),
    ],
)
def test_bad_annotations_are_refused_with_the_place(annotations: dict, message: str, where: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_dict({**BASE, "annotations": annotations}, source="wf.yaml")
    assert message in str(caught.value)
    assert where in str(caught.value)
