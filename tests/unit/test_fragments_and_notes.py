"""Clipboard fragments and snippets (checked, inserted with fresh ids) and the editor's notes and
groups (moved, deleted and renamed along with the graph)."""

from __future__ import annotations

import json
import re

import pytest

from app.pages.editor import notes_groups
from app.pages.editor.graph import PASTE_OFFSET, WorkingGraph
from engine.errors import DefinitionError
from engine.fragments import check_fragment, fragment_text, parse_fragment_text
from engine.parse import parse_dict


def _graph() -> WorkingGraph:
    return WorkingGraph(
        parse_dict(
            {
                "name": "g",
                "nodes": [
                    {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
                    {
                        "id": "fetch",
                        "type": "tool.http",
                        "config": {"url": "https://a.example"},
                        "position": {"x": 300, "y": 0},
                    },
                    {"id": "done", "type": "end", "position": {"x": 600, "y": 0}},
                ],
                "edges": [
                    {"id": "e1", "source": "start", "target": "fetch"},
                    {"id": "e2", "source": "fetch", "target": "done", "condition": "output.status == 200"},
                ],
            }
        ).to_dict()
    )


def test_a_copied_selection_round_trips_through_clipboard_text() -> None:
    fragment = _graph().fragment(["fetch", "done"])
    assert fragment is not None and [e["id"] for e in fragment["edges"]] == ["e2"]  # only inner edges
    text = fragment_text(fragment)
    assert json.loads(text)["flowloom"] == "fragment"
    again = parse_fragment_text(text)
    assert [n["id"] for n in again["nodes"]] == ["fetch", "done"]
    assert again["edges"][0]["condition"] == "output.status == 200"


def test_inserting_a_snippet_twice_gives_fresh_node_and_edge_ids_and_rewired_edges() -> None:
    graph = _graph()
    snippet = check_fragment(graph.fragment(["fetch", "done"]))
    once, first = graph.paste(snippet, PASTE_OFFSET)
    twice, second = once.paste(snippet, PASTE_OFFSET)
    assert first == ["fetch_2", "done_2"] and second == ["fetch_3", "done_3"]
    ids = [n["id"] for n in twice.nodes]
    assert len(ids) == len(set(ids)) == 7
    copies = [e for e in twice.edges if e["source"] in ("fetch_2", "fetch_3")]
    assert {(e["source"], e["target"]) for e in copies} == {("fetch_2", "done_2"), ("fetch_3", "done_3")}
    assert len({e["id"] for e in twice.edges}) == len(twice.edges) == 4
    assert twice.node("fetch_2")["config"] == {**graph.node("fetch")["config"]}
    assert twice.node("fetch_2")["position"] == {"x": 300 + PASTE_OFFSET, "y": PASTE_OFFSET}
    twice.to_definition()  # still a valid definition


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid JSON"),
        ('{"nodes": []}', "no Flowloom nodes"),
        ('{"flowloom": "fragment", "version": 7, "nodes": []}', "version 7"),
        ('{"flowloom": "fragment", "version": 1, "nodes": []}', "at least one node"),
        ('{"flowloom": "fragment", "version": 1, "nodes": [{"id": "a"}]}', "nodes[0].type"),
        ('{"flowloom": "fragment", "version": 1, "nodes": [{"id": "1bad", "type": "end"}]}', "nodes[0].id"),
        (
            '{"flowloom": "fragment", "version": 1, "nodes": [{"id": "a", "type": "end"}],'
            ' "edges": [{"id": "e", "source": "a", "target": "elsewhere"}]}',
            "not in the fragment",
        ),
        (
            '{"flowloom": "fragment", "version": 1, "nodes": [{"id": "a", "type": "end"}, {"id": "a", "type": "end"}]}',
            "duplicate node id",
        ),
        ('{"flowloom": "fragment", "flowloom": "fragment"}', "duplicate key"),
    ],
)
def test_pasted_text_that_is_not_a_valid_fragment_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        parse_fragment_text(text)


def test_notes_and_groups_follow_moves_deletes_and_renames() -> None:
    graph = _graph()
    defn, note = notes_groups.add_note(graph.defn, 10, 20)
    defn, group = notes_groups.add_group(
        defn, ["fetch", "done"], {"x": 300, "y": 0, "width": 524, "height": 100}
    )
    graph = WorkingGraph(defn)
    assert (note, group) == ("note:note_1", "group:group_1")
    box = graph.defn["annotations"]["groups"][0]
    assert box["position"] == {
        "x": 300 - notes_groups.GROUP_PADDING,
        "y": -notes_groups.GROUP_PADDING - notes_groups.GROUP_TITLE_HEIGHT,
    }

    # A group drag sends the group and its nodes; the graph moves all of them.
    moved = graph.move(
        [{"id": group, "x": 100, "y": 100}, {"id": "fetch", "x": 400, "y": 136}, {"id": note, "x": 5, "y": 6}]
    )
    assert moved.defn["annotations"]["groups"][0]["position"] == {"x": 100.0, "y": 100.0}
    assert moved.node("fetch")["position"] == {"x": 400.0, "y": 136.0}
    assert moved.defn["annotations"]["notes"][0]["position"] == {"x": 5.0, "y": 6.0}
    assert graph.defn["annotations"]["groups"][0]["position"] == box["position"]  # the old graph is untouched

    renamed = moved.rename_node("fetch", "get")
    assert renamed.defn["annotations"]["groups"][0]["nodes"] == ["get", "done"]
    gone = renamed.remove(["done"])
    assert gone.defn["annotations"]["groups"][0]["nodes"] == ["get"]
    gone.to_definition()
    without = gone.remove([note, group])
    assert without.defn["annotations"] == {"notes": [], "groups": []}
    assert [n["id"] for n in without.nodes] == ["start", "get"]  # a deleted group leaves its nodes

    # Regrouping a node takes it out of its old group (a node is in one group at most).
    regrouped, _ = notes_groups.add_group(moved.defn, ["done"], {"x": 0, "y": 0, "width": 10, "height": 10})
    assert [g["nodes"] for g in regrouped["annotations"]["groups"]] == [["fetch"], ["done"]]
    WorkingGraph(regrouped).to_definition()


def test_note_and_group_edits_are_checked() -> None:
    defn, note = notes_groups.add_note(_graph().defn, 0, 0)
    edited = notes_groups.update(
        defn, note, {"text": "**hi**", "color": "pink", "width": 10, "height": 99999}
    )
    saved = edited["annotations"]["notes"][0]
    assert (saved["text"], saved["color"], saved["width"], saved["height"]) == (
        "**hi**",
        "pink",
        80.0,
        20000.0,
    )
    with pytest.raises(ValueError, match="colour"):
        notes_groups.update(defn, note, {"color": "chartreuse"})
    with pytest.raises(ValueError, match="10,000"):
        notes_groups.update(defn, note, {"text": "x" * 10_001})
    with pytest.raises(ValueError, match="select the nodes"):
        notes_groups.add_group(defn, ["ghost"], {"x": 0, "y": 0, "width": 1, "height": 1})


def test_a_group_moved_alone_takes_its_nodes_along() -> None:
    defn, group = notes_groups.add_group(
        _graph().defn, ["fetch", "done"], {"x": 300, "y": 0, "width": 524, "height": 100}
    )
    graph = WorkingGraph(defn)
    start = graph.defn["annotations"]["groups"][0]["position"]
    moves = [{"id": group, "x": start["x"] + 50, "y": start["y"] - 20}]  # the arrow keys move the frame only
    assert notes_groups.moves_members(graph.defn, moves)
    moved = graph.move(moves)
    assert moved.node("fetch")["position"] == {"x": 350.0, "y": -20.0}
    assert moved.node("done")["position"] == {"x": 650.0, "y": -20.0}
    assert moved.node("start")["position"] == {"x": 0.0, "y": 0.0}
    # A mouse drag sends the nodes too: they land where the canvas put them, not shifted twice.
    dragged = [*moves, {"id": "fetch", "x": 350, "y": -20}, {"id": "done", "x": 650, "y": -20}]
    assert not notes_groups.moves_members(graph.defn, dragged)
    assert graph.move(dragged).defn["nodes"] == moved.defn["nodes"]
