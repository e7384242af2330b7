"""Sticky notes and groups of the working graph: plain functions from a definition dict to a new one.

On the canvas a note is the node `note:<id>` and a group `group:<id>` (a node id cannot hold a
colon, so they never clash with the workflow's nodes). A group holds a list of node ids; the canvas
moves them with it and sends every new position at drag stop, so positions stay absolute in the
definition (`engine.definition.GroupSpec`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from engine.definition import ANNOTATION_COLORS, MAX_NOTE_TEXT, NODE_ID_PATTERN

NOTE_PREFIX = "note:"
GROUP_PREFIX = "group:"
GROUP_PADDING = 32
GROUP_TITLE_HEIGHT = 36
NOTE_SIZE = (240.0, 160.0)
_ID = re.compile(NODE_ID_PATTERN)
_LIMITS = {"width": (80.0, 20000.0), "height": (60.0, 20000.0)}


def is_annotation(canvas_id: str) -> bool:
    return canvas_id.startswith((NOTE_PREFIX, GROUP_PREFIX))


def _split(canvas_id: str) -> tuple[str, str] | None:
    """("notes", id) or ("groups", id) for a canvas id; None for a workflow node."""
    if canvas_id.startswith(NOTE_PREFIX):
        return "notes", canvas_id[len(NOTE_PREFIX) :]
    if canvas_id.startswith(GROUP_PREFIX):
        return "groups", canvas_id[len(GROUP_PREFIX) :]
    return None


def of(defn: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found = defn.get("annotations") or {}
    return {"notes": list(found.get("notes") or []), "groups": list(found.get("groups") or [])}


def _with(defn: Mapping[str, Any], notes: list | None = None, groups: list | None = None) -> dict[str, Any]:
    current = of(defn)
    return {
        **defn,
        "annotations": {
            "notes": current["notes"] if notes is None else notes,
            "groups": current["groups"] if groups is None else groups,
        },
    }


def canvas_annotations(defn: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """What the canvas draws: notes {id, text, color, x, y, w, h}, groups {id, title, color, x, y, w, h, nodes}."""
    found = of(defn)

    def box(item: Mapping[str, Any], default: tuple[float, float]) -> dict[str, Any]:
        position = item.get("position") or {}
        return {
            "x": position.get("x", 0.0),
            "y": position.get("y", 0.0),
            "w": item.get("width", default[0]),
            "h": item.get("height", default[1]),
            "color": item.get("color", "yellow"),
        }

    return {
        "notes": [
            {"id": NOTE_PREFIX + n["id"], "text": n.get("text", ""), **box(n, NOTE_SIZE)}
            for n in found["notes"]
        ],
        "groups": [
            {
                "id": GROUP_PREFIX + g["id"],
                "title": g.get("title", ""),
                "nodes": list(g.get("nodes") or []),
                **box(g, (400.0, 240.0)),
            }
            for g in found["groups"]
        ],
    }


def _taken(defn: Mapping[str, Any]) -> set[str]:
    found = of(defn)
    return {item["id"] for kind in ("notes", "groups") for item in found[kind]}


def _new_id(defn: Mapping[str, Any], stem: str) -> str:
    taken, n = _taken(defn), 1
    while f"{stem}_{n}" in taken:
        n += 1
    return f"{stem}_{n}"


def add_note(defn: Mapping[str, Any], x: float, y: float, text: str = "") -> tuple[dict[str, Any], str]:
    """A new yellow note at (x, y); returns the definition and the note's canvas id."""
    note_id = _new_id(defn, "note")
    note = {
        "id": note_id,
        "text": text[:MAX_NOTE_TEXT],
        "color": "yellow",
        "position": {"x": float(x), "y": float(y)},
        "width": NOTE_SIZE[0],
        "height": NOTE_SIZE[1],
    }
    return _with(defn, notes=[*of(defn)["notes"], note]), NOTE_PREFIX + note_id


def add_group(
    defn: Mapping[str, Any], node_ids: Iterable[str], box: Mapping[str, float], title: str = "Group"
) -> tuple[dict[str, Any], str]:
    """A group around `node_ids` (taken out of any group they were in) covering `box` {x, y, width,
    height} of the nodes, with room for the title; returns the definition and the group's canvas id."""
    existing = {n["id"] for n in defn.get("nodes", [])}
    members = [n for n in dict.fromkeys(node_ids) if n in existing]
    if not members:
        raise ValueError("select the nodes to group first")
    group_id = _new_id(defn, "group")
    width = _clamp("width", float(box["width"]) + 2 * GROUP_PADDING)
    height = _clamp("height", float(box["height"]) + 2 * GROUP_PADDING + GROUP_TITLE_HEIGHT)
    group = {
        "id": group_id,
        "title": title,
        "color": "blue",
        "position": {
            "x": float(box["x"]) - GROUP_PADDING,
            "y": float(box["y"]) - GROUP_PADDING - GROUP_TITLE_HEIGHT,
        },
        "width": width,
        "height": height,
        "nodes": members,
    }
    chosen = set(members)
    groups = [{**g, "nodes": [n for n in g.get("nodes", []) if n not in chosen]} for g in of(defn)["groups"]]
    return _with(defn, groups=[*groups, group]), GROUP_PREFIX + group_id


def _clamp(name: str, value: float) -> float:
    low, high = _LIMITS[name]
    return min(max(value, low), high)


def update(defn: Mapping[str, Any], canvas_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """A note's text or a group's title, the colour, the place and size (from a resize); anything
    else in `changes` is ignored. ValueError says what is wrong with a value."""
    where = _split(canvas_id)
    if where is None:
        return dict(defn)
    kind, item_id = where
    fields: dict[str, Any] = {}
    if "text" in changes and kind == "notes":
        text = str(changes["text"])
        if len(text) > MAX_NOTE_TEXT:
            raise ValueError(f"a note holds up to {MAX_NOTE_TEXT:,} characters")
        fields["text"] = text
    if "title" in changes and kind == "groups":
        fields["title"] = str(changes["title"]).strip()[:200]
    if "color" in changes:
        if changes["color"] not in ANNOTATION_COLORS:
            raise ValueError(f"colour is one of {', '.join(ANNOTATION_COLORS)}")
        fields["color"] = changes["color"]
    if "x" in changes and "y" in changes:
        fields["position"] = {"x": float(changes["x"]), "y": float(changes["y"])}
    for name in ("width", "height"):
        if name in changes:
            fields[name] = _clamp(name, float(changes[name]))
    items = [{**item, **fields} if item["id"] == item_id else item for item in of(defn)[kind]]
    return _with(defn, **{kind: items})


def move(defn: Mapping[str, Any], moves: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Notes and groups moved to new places (moves with canvas ids; others are left alone). A group's
    nodes that are not in `moves` themselves (the group was moved with the arrow keys) move by as
    much as the group did; a mouse drag sends them all."""
    moves = list(moves)
    where: dict[tuple[str, str], dict[str, float]] = {}
    for m in moves:
        split = _split(str(m.get("id", "")))
        if split is not None:
            where[split] = {"x": float(m["x"]), "y": float(m["y"])}
    if not where:
        return dict(defn)
    found = of(defn)
    shifts = _member_shifts(defn, found["groups"], where, {str(m.get("id")) for m in moves})
    nodes = defn.get("nodes", [])
    if shifts:
        nodes = [
            {
                **n,
                "position": {
                    "x": n["position"]["x"] + shifts[n["id"]][0],
                    "y": n["position"]["y"] + shifts[n["id"]][1],
                },
            }
            if n["id"] in shifts
            else n
            for n in nodes
        ]
    return _with(
        {**defn, "nodes": nodes},
        **{
            kind: [
                {**item, "position": where[(kind, item["id"])]} if (kind, item["id"]) in where else item
                for item in found[kind]
            ]
            for kind in ("notes", "groups")
        },
    )


def _member_shifts(
    defn: Mapping[str, Any],
    groups: list[dict[str, Any]],
    where: Mapping[tuple[str, str], Mapping[str, float]],
    moved: set[str],
) -> dict[str, tuple[float, float]]:
    """Node id -> (dx, dy) for the nodes of moved groups that did not move themselves."""
    positioned = {n["id"] for n in defn.get("nodes", []) if isinstance(n.get("position"), Mapping)}
    shifts: dict[str, tuple[float, float]] = {}
    for group in groups:
        target = where.get(("groups", group["id"]))
        if target is None:
            continue
        old = group.get("position") or {"x": 0.0, "y": 0.0}
        dx, dy = target["x"] - old.get("x", 0.0), target["y"] - old.get("y", 0.0)
        if not (dx or dy):
            continue
        for node_id in group.get("nodes", []):
            if node_id not in moved and node_id in positioned:
                shifts[node_id] = (dx, dy)
    return shifts


def moves_members(defn: Mapping[str, Any], moves: Iterable[Mapping[str, Any]]) -> bool:
    """Whether applying `moves` shifts nodes the canvas did not move (it must be told)."""
    moves = list(moves)
    where = {}
    for m in moves:
        split = _split(str(m.get("id", "")))
        if split is not None and split[0] == "groups":
            where[split] = {"x": float(m["x"]), "y": float(m["y"])}
    return bool(where) and bool(
        _member_shifts(defn, of(defn)["groups"], where, {str(m.get("id")) for m in moves})
    )


def remove(
    defn: Mapping[str, Any], canvas_ids: Iterable[str], gone_nodes: Iterable[str] = ()
) -> dict[str, Any]:
    """Without the given notes and groups (their nodes stay), and without `gone_nodes` in any group."""
    gone = {s for s in (_split(i) for i in canvas_ids) if s is not None}
    nodes_gone = set(gone_nodes)
    found = of(defn)
    if not gone and not any(set(g.get("nodes", [])) & nodes_gone for g in found["groups"]):
        return dict(defn)
    notes = [n for n in found["notes"] if ("notes", n["id"]) not in gone]
    groups = [
        {**g, "nodes": [n for n in g.get("nodes", []) if n not in nodes_gone]}
        for g in found["groups"]
        if ("groups", g["id"]) not in gone
    ]
    return _with(defn, notes=notes, groups=groups)


def rename_member(defn: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """A renamed node keeps its group."""
    groups = of(defn)["groups"]
    if not any(old in g.get("nodes", []) for g in groups):
        return dict(defn)
    return _with(
        defn, groups=[{**g, "nodes": [new if n == old else n for n in g.get("nodes", [])]} for g in groups]
    )


def valid_id(item_id: str) -> bool:
    return bool(_ID.match(item_id))
