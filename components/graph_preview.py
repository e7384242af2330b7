"""A small picture of a workflow's graph: its nodes as boxes where the editor puts them, edges as lines.

Rendered on the server as SVG and shown as an <img> (a data: URL), so a gallery of cards costs no
canvas per card and an SVG in an image cannot run anything. Labels are escaped. The page's theme
does not reach into an image, so the SVG carries its own light and dark colours and picks them with
`prefers-color-scheme`, as the app's colour mode does.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

NODE_W, NODE_H = 150.0, 44.0  # a node's box in the editor's coordinates
PAD = 16.0
# Box colour classes by node type (its family's prefix); anything else is a plain box.
_KIND = {
    "start": "s",
    "end": "e",
    "human": "h",
    "agent": "a",
    "openvino": "a",
    "memory": "m",
    "tool": "t",
    "webhook": "t",
    "condition": "c",
    "merge": "c",
    "delay": "c",
}
# (light, dark) fill of each class; then the box stroke, the label, an edge and an error edge.
_FILLS = {
    "s": ("#dcfce7", "#113b29"),
    "e": ("#e5e7eb", "#2e3135"),
    "h": ("#fef3c7", "#3f2700"),
    "a": ("#ede9fe", "#2c2250"),
    "m": ("#e0e7ff", "#1f2d5c"),
    "t": ("#dbeafe", "#0d2847"),
    "c": ("#fce7f3", "#4a1a36"),
    "o": ("#f3f4f6", "#26282b"),
}
_INK = {"box": ("#6b7280", "#8b8d98"), "label": ("#111827", "#edeef0"), "edge": ("#9ca3af", "#6b7280"),
        "err": ("#f87171", "#e5484d")}  # fmt: skip
_LABEL_CHARS = 20


def _style() -> str:
    def rules(i: int) -> str:
        fills = "".join(f".{k}{{fill:{v[i]}}}" for k, v in _FILLS.items())
        box, label, edge, err = (_INK[k][i] for k in ("box", "label", "edge", "err"))
        return (f"{fills}rect{{stroke:{box}}}text{{fill:{label}}}line{{stroke:{edge}}}line.x{{stroke:{err}}}"
                f"marker path{{fill:{edge}}}")  # fmt: skip

    return f"<style>{rules(0)}@media (prefers-color-scheme: dark){{{rules(1)}}}</style>"


def _fill(node_type: str) -> str:
    return _KIND.get(node_type, _KIND.get(node_type.split(".", 1)[0], "o"))


def _position(node: Mapping[str, Any]) -> tuple[float, float]:
    position = node.get("position") or {}
    try:
        return float(position.get("x", 0)), float(position.get("y", 0))
    except (TypeError, ValueError, AttributeError):
        return 0.0, 0.0


def preview_svg(definition: Mapping[str, Any], width: int = 320, height: int = 120) -> str:
    """The graph as an SVG document `width` x `height` pixels, scaled to fit."""
    nodes = [n for n in definition.get("nodes") or [] if isinstance(n, Mapping) and n.get("id")]
    at = {str(n["id"]): _position(n) for n in nodes}
    if not at:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>'
    min_x, min_y = min(x for x, _ in at.values()), min(y for _, y in at.values())
    span_x = max(x for x, _ in at.values()) - min_x + NODE_W
    span_y = max(y for _, y in at.values()) - min_y + NODE_H
    scale = min((width - 2 * PAD) / span_x, (height - 2 * PAD) / span_y, 1.0)
    off_x = (width - span_x * scale) / 2 - min_x * scale
    off_y = (height - span_y * scale) / 2 - min_y * scale

    def box(node_id: str) -> tuple[float, float]:
        x, y = at[node_id]
        return x * scale + off_x, y * scale + off_y

    w, h = NODE_W * scale, NODE_H * scale
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        _style(),
        '<defs><marker id="a" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="5" markerHeight="5" '
        'orient="auto"><path d="M0,0 L6,3 L0,6 z"/></marker></defs>',
    ]
    for edge in definition.get("edges") or []:
        source, target = str(edge.get("source", "")), str(edge.get("target", ""))
        if source not in at or target not in at:
            continue
        (sx, sy), (tx, ty) = box(source), box(target)
        error = ' class="x"' if edge.get("source_port") == "error" else ""
        parts.append(
            f'<line{error} x1="{sx + w:.1f}" y1="{sy + h / 2:.1f}" x2="{tx:.1f}" y2="{ty + h / 2:.1f}" '
            'stroke-width="1.2" marker-end="url(#a)"/>'
        )
    font = max(min(11.0, h * 0.42), 5.0)
    for node in nodes:
        x, y = box(str(node["id"]))
        label = str(node.get("label") or node["id"])
        label = label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{min(6.0, h / 4):.1f}" '
            f'class="{_fill(str(node.get("type", "")))}" stroke-width="0.8"/>'
        )
        parts.append(
            f'<text x="{x + w / 2:.1f}" y="{y + h / 2:.1f}" font-family="sans-serif" font-size="{font:.1f}" '
            f'text-anchor="middle" dominant-baseline="central">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def preview_data_url(definition: Mapping[str, Any], width: int = 320, height: int = 120) -> str:
    """`preview_svg` as a data: URL for an <img>."""
    svg = preview_svg(definition, width, height).encode("utf-8")
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
