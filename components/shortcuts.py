"""The keyboard-shortcuts list: a dialog opened with `?` (or its button), saying every key the app
answers to. It is client-side only (an uncontrolled dialog; assets/shortcut_keys.jsx listens for the
keys), so it needs no state and no server round trip."""

from __future__ import annotations

import reflex as rx

BUTTON_ID = "shortcuts-button"

# (section, [(keys, what they do)]); keys are separated by " / " when several do the same.
SHORTCUTS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("?", "Show this list"),
            ("/", "Jump to the page's search or filter box"),
            ("Tab / Shift+Tab", "Move to the next or previous link, button, field or row"),
            ("Enter", "Open the focused row, press the focused button"),
            ("Esc", "Close a dialog or menu"),
        ],
    ),
    (
        "Workflow editor",
        [
            ("Enter / Space", "On a palette item: add that node in the middle of the canvas"),
            ("Tab", "On the canvas: move from node to node; Enter selects the focused one"),
            ("Arrow keys", "Move the selected nodes (Shift: further)"),
            ("Ctrl+S", "Save a new version"),
            ("Ctrl+Z", "Undo"),
            ("Ctrl+Shift+Z / Ctrl+Y", "Redo"),
            ("Ctrl+C / Ctrl+V", "Copy and paste the selected nodes"),
            ("Ctrl+D", "Duplicate the selected nodes"),
            ("Delete / Backspace", "Delete the selection"),
        ],
    ),
]


class ShortcutKeys(rx.Component):
    """The page-wide key listener of assets/shortcut_keys.jsx (renders nothing)."""

    library = "$/public/shortcut_keys.jsx"
    tag = "ShortcutKeys"

    target: rx.Var[str]


def _keys(keys: str) -> rx.Component:
    parts: list[rx.Component] = []
    for i, combo in enumerate(keys.split(" / ")):
        if i:
            parts.append(rx.text("or", size="1", color=rx.color("gray", 11)))
        parts.append(rx.el.kbd(combo, style=_KBD))
    return rx.hstack(*parts, spacing="1", align="center", wrap="wrap")


_KBD = {
    "font_family": "var(--code-font-family, monospace)",
    "font_size": "var(--font-size-1)",
    "padding": "1px 6px",
    "border_radius": "var(--radius-2)",
    "border": "1px solid var(--gray-7)",
    "background": "var(--gray-3)",
    "color": "var(--gray-12)",
    "white_space": "nowrap",
}


def _section(title: str, rows: list[tuple[str, str]]) -> rx.Component:
    return rx.vstack(
        rx.heading(title, size="3", as_="h3"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("Keys", width="13rem"), rx.table.column_header_cell("Does")
                )
            ),
            rx.table.body(
                *[
                    rx.table.row(rx.table.cell(_keys(keys)), rx.table.cell(rx.text(does, size="2")))
                    for keys, does in rows
                ]
            ),
            size="1",
            variant="ghost",
            width="100%",
        ),
        spacing="2",
        width="100%",
    )


def shortcuts_help(**button_props: object) -> rx.Component:
    """The button that opens the list (also opened by `?` anywhere), with the key listener."""
    return rx.fragment(
        ShortcutKeys.create(target=BUTTON_ID),
        rx.dialog.root(
            rx.dialog.trigger(
                rx.icon_button(
                    rx.icon("keyboard", size=16),
                    variant="ghost",
                    color_scheme="gray",
                    aria_label="Keyboard shortcuts (?)",
                    title="Keyboard shortcuts (?)",
                    id=BUTTON_ID,
                    **button_props,
                )
            ),
            rx.dialog.content(
                rx.dialog.title("Keyboard shortcuts"),
                rx.dialog.description(
                    "Press ? on any page to see this list; Esc closes it.", size="2", margin_bottom="1rem"
                ),
                rx.vstack(*[_section(title, rows) for title, rows in SHORTCUTS], spacing="5", width="100%"),
                rx.hstack(
                    rx.dialog.close(
                        rx.button("Close", variant="soft", color_scheme="gray", id="shortcuts-close")
                    ),
                    justify="end",
                    margin_top="1rem",
                ),
                max_width="36rem",
                id="shortcuts-dialog",
            ),
        ),
    )
