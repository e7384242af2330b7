"""Dark mode in Chromium: the app follows the system's colour scheme, and so does the workflow canvas
(its nodes, labels, edges, background and minimap), switching live when the system switches."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from models.db import session_scope
from models.tables import Workflow, WorkflowVersion
from tests.integration.engine_helpers import node, workflow

TIMEOUT_MS = 20_000

DEFINITION = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="Colours")

# What is measured: element selector -> CSS property (all computed, as the browser paints them).
PROBES = {
    "node": (".fl-node", "background-color"),
    "label": (".fl-label", "color"),
    "canvas": (".fl-canvas", "background-color"),
    "edge": (".react-flow__edge-path", "stroke"),
    "minimap": (".react-flow__minimap", "background-color"),
    "page": ("#editor", "background-color"),
}


def luminance(css: str) -> float:
    """Relative luminance (WCAG) of an rgb()/rgba()/color(srgb ...) value."""
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)[:3]]
    if "color(" in css:  # color(srgb r g b): 0..1
        numbers = [n * 255 for n in numbers]

    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in numbers)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def colours(page: Page) -> dict[str, str]:
    found = {}
    for name, (selector, prop) in PROBES.items():
        found[name] = page.locator(selector).first.evaluate(
            f"(el) => getComputedStyle(el).getPropertyValue('{prop}')"
        )
    return found


@pytest.fixture
def coloured_workflow(pg_url: str) -> str:
    with session_scope(pg_url) as session:
        row = Workflow(name="Colours")
        session.add(row)
        session.flush()
        session.add(
            WorkflowVersion(workflow_id=row.id, version=1, definition=DEFINITION.model_dump(mode="json"))
        )
        row.latest_version = 1
        return str(row.id)


def test_the_canvas_switches_to_dark_colours_when_the_system_does(
    page: Page, app_server: str, login_as: Callable[..., str], coloured_workflow: str
) -> None:
    login_as(page, "editor")
    page.emulate_media(color_scheme="light")
    page.goto(f"{app_server}/workflows/{coloured_workflow}")
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    expect(page.locator("[data-testid=flow-node]")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("html")).to_have_class(re.compile(r"\blight\b"))
    light = colours(page)
    assert luminance(light["node"]) > 0.85 and luminance(light["label"]) < 0.05, light
    assert luminance(light["canvas"]) > 0.8 and luminance(light["page"]) > 0.8, light

    page.emulate_media(color_scheme="dark")  # the system switches; the page is not reloaded
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"), timeout=TIMEOUT_MS)
    dark = colours(page)
    assert luminance(dark["node"]) < 0.05 and luminance(dark["label"]) > 0.7, dark
    assert luminance(dark["canvas"]) < 0.05 and luminance(dark["page"]) < 0.05, dark
    assert luminance(dark["minimap"]) < 0.05, dark
    for name in PROBES:  # every probed colour changed: nothing on the canvas is a fixed colour
        assert dark[name] != light[name], f"{name} stayed {light[name]} in dark mode"

    page.emulate_media(color_scheme="light")
    expect(page.locator("html")).to_have_class(re.compile(r"\blight\b"), timeout=TIMEOUT_MS)
    assert colours(page) == light


def test_a_dark_system_opens_the_app_dark(page: Page, app_server: str, login_as: Callable[..., str]) -> None:
    login_as(page, "viewer")
    page.emulate_media(color_scheme="dark")
    page.goto(f"{app_server}/workflows")
    expect(page.locator("#sidebar")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    background = page.locator("#main").evaluate("(el) => getComputedStyle(el).backgroundColor")
    text = page.locator("#sidebar").evaluate("(el) => getComputedStyle(el).color")
    assert luminance(background) < 0.05 and luminance(text) > 0.5, (background, text)
