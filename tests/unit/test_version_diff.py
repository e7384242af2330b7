"""engine.version_diff: what changed between two definitions, field by field, credentials hidden."""

from __future__ import annotations

import json
from typing import Any

from engine.parse import parse_dict
from engine.version_diff import REDACTED, diff_definitions


def _defn(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **extra: Any):
    return parse_dict({"name": "w", "nodes": nodes, "edges": edges, **extra})


START = {"id": "start", "type": "start", "position": {"x": 0, "y": 0}}
FETCH = {
    "id": "fetch",
    "type": "tool.http",
    "config": {"url": "https://example.com/a", "method": "GET", "headers": {"Accept": "text/plain"}},
    "position": {"x": 200, "y": 0},
}
DONE = {"id": "done", "type": "end", "position": {"x": 400, "y": 0}}
E1 = {"id": "e1", "source": "start", "target": "fetch"}
E2 = {"id": "e2", "source": "fetch", "target": "done"}


def test_identical_definitions_have_no_diff() -> None:
    a = _defn([START, FETCH, DONE], [E1, E2])
    assert diff_definitions(a, a).empty
    assert diff_definitions(a, _defn([START, FETCH, DONE], [E1, E2])).empty


def test_added_removed_changed_and_moved_nodes_and_edges() -> None:
    before = _defn([START, FETCH, DONE], [E1, E2])
    fetch = {
        **FETCH,
        "config": {**FETCH["config"], "url": "https://example.com/b"},
        "retry": {"max_attempts": 3},
    }
    notify = {"id": "notify", "type": "delay", "config": {"seconds": 1}}
    moved_done = {**DONE, "position": {"x": 480, "y": 40}}
    after = _defn(
        [START, fetch, moved_done, notify],
        [
            E1,
            {"id": "e3", "source": "fetch", "target": "notify"},
            {"id": "e4", "source": "notify", "target": "done"},
        ],
    )
    diff = diff_definitions(before, after)
    assert diff.node_marks() == {"fetch": "changed", "done": "moved", "notify": "added"}
    assert diff.edge_marks() == {"e3": "added", "e4": "added", "e2": "removed"}
    changed = next(c for c in diff.nodes if c.id == "fetch")
    fields = {f.path: (f.before, f.after) for f in changed.fields}
    assert fields["config.url"] == ("https://example.com/a", "https://example.com/b")
    assert fields["retry"][0] is None and fields["retry"][1]["max_attempts"] == 3
    assert changed.type == "tool.http"
    added = next(c for c in diff.nodes if c.id == "notify")
    assert {f.path: f.after for f in added.fields}["config.seconds"] == 1
    removed_edge = next(c for c in diff.edges if c.id == "e2")
    assert removed_edge.summary == "fetch.out -> done.in"
    # Removing a node is reported too, with what it held.
    gone = diff_definitions(after, before)
    assert gone.node_marks()["notify"] == "removed"
    assert {f.path: f.before for f in next(c for c in gone.nodes if c.id == "notify").fields}[
        "config.seconds"
    ] == 1


def test_an_edge_rewired_under_the_same_id_is_changed() -> None:
    before = _defn([START, FETCH, DONE], [E1, E2])
    after = _defn([START, FETCH, DONE], [E1, {**E2, "source": "start", "condition": "input.x > 1"}])
    change = diff_definitions(before, after).edges[0]
    assert change.kind == "changed"
    assert {f.path for f in change.fields} == {"source", "condition"}


def test_workflow_level_fields_and_annotations() -> None:
    before = _defn([START, DONE], [])
    after = _defn(
        [START, DONE],
        [],
        mode="state_machine",
        outputs={"out": "{{ steps.done.output }}"},
        annotations={
            "notes": [{"id": "n1", "text": "**why** this exists"}],
            "groups": [{"id": "g1", "title": "Ingest", "nodes": ["start"]}],
        },
    )
    diff = diff_definitions(before, after)
    assert {f.path: f.after for f in diff.workflow} == {
        "mode": "state_machine",
        "outputs.out": "{{ steps.done.output }}",
    }
    assert [(c.id, c.kind, c.type) for c in diff.annotations] == [
        ("n1", "added", "note"),
        ("g1", "added", "group"),
    ]
    edited = parse_dict({**after.to_dict(), "annotations": {**after.to_dict()["annotations"], "notes": [
        {"id": "n1", "text": "**why** this exists", "position": {"x": 50, "y": 50}}]}})  # fmt: skip
    assert [(c.id, c.kind) for c in diff_definitions(after, edited).annotations] == [("n1", "moved")]


def test_credentials_typed_into_plain_fields_never_appear_but_secret_names_do() -> None:
    token_a, token_b = "sk-live-AAAA1111", "sk-live-BBBB2222"
    before = _defn(
        [
            START,
            {**FETCH, "config": {**FETCH["config"], "headers": {"Authorization": f"Bearer {token_a}"}}},
            DONE,
        ],
        [E1, E2],
    )
    http_after = {
        **FETCH,
        "config": {
            **FETCH["config"],
            "headers": {"Authorization": f"Bearer {token_b}", "X-Password": "hunter22"},
            "secret_headers": {"X-Api-Key": "partner_key"},
        },
    }
    agent = {"id": "ask", "type": "agent", "config": {"api_key_secret": "openai_prod", "password": token_b}}
    after = _defn([START, http_after, DONE, agent], [E1, E2])
    diff = diff_definitions(before, after)
    text = json.dumps(diff.to_dict())
    for value in (token_a, token_b, "hunter22"):
        assert value not in text
    fetch = {f.path: f for f in next(c for c in diff.nodes if c.id == "fetch").fields}
    assert fetch["config.headers.Authorization"].redacted
    assert (fetch["config.headers.Authorization"].before, fetch["config.headers.Authorization"].after) == (
        REDACTED,
        REDACTED,
    )
    assert fetch["config.headers.X-Password"].after == REDACTED
    # Names of secrets in the store are what the node type declares them to be: names, shown.
    assert fetch["config.secret_headers.X-Api-Key"].after == "partner_key"
    ask = {f.path: f for f in next(c for c in diff.nodes if c.id == "ask").fields}
    assert ask["config.api_key_secret"].after == "openai_prod" and not ask["config.api_key_secret"].redacted
    assert ask["config.password"].after == REDACTED


def test_credentials_inside_lists_are_hidden_too() -> None:
    before = _defn([START, DONE], [])
    after = _defn([START, DONE], [], inputs={"type": "object", "examples": [{"token": "tok-9999-zzzz"}]})
    text = json.dumps(diff_definitions(before, after).to_dict())
    assert "tok-9999-zzzz" not in text and REDACTED in text
