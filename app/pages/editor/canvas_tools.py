"""The editor's notes, groups, snippets and version-diff pieces: toolbar buttons, the diff picker,
the diff's banner and list of changes."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.diff_state import DiffRow
from app.pages.editor.diff_state import EditorDiff as D
from app.pages.editor.snippets_state import EditorSnippets as P
from app.pages.editor.snippets_state import SnippetRow
from components.dialogs import dialog_buttons

# What assets/flow_canvas.jsx listens for: it knows the view (where a note goes) and the measured
# node sizes (the frame of a new group).
ADD_NOTE_EVENT = "flowloom:add-note"
GROUP_SELECTION_EVENT = "flowloom:group-selection"
KIND_COLORS = {"added": "green", "removed": "red", "changed": "amber", "moved": "blue"}


def _dom_event_button(icon: str, tip: str, event: str, element_id: str) -> rx.Component:
    return rx.tooltip(
        rx.icon_button(
            rx.icon(icon, size=16), variant="ghost", color_scheme="gray", size="2", id=element_id, aria_label=tip,
            custom_attrs={"onClick": rx.Var(f"(e) => window.dispatchEvent(new CustomEvent('{event}'))")},
        ),
        content=tip,
    )  # fmt: skip


def canvas_tools() -> rx.Component:
    """Add note, Group selection, Snippets, Compare versions."""
    return rx.fragment(
        rx.tooltip(
            rx.icon_button(rx.icon("puzzle", size=16), variant="ghost", color_scheme="gray", size="2",
                           on_click=P.set_snippets_open(True), id="toolbar-snippets", aria_label="Snippets"),
            content="Snippets: save the selection, insert one, paste copied nodes",
        ),
        _dom_event_button("sticky-note", "Add a sticky note", ADD_NOTE_EVENT, "toolbar-add-note"),
        _dom_event_button("group", "Group the selected nodes", GROUP_SELECTION_EVENT, "toolbar-group"),
        rx.tooltip(
            rx.icon_button(rx.icon("git-compare", size=16), variant="ghost", color_scheme="gray", size="2",
                           on_click=D.set_diff_open(True), id="toolbar-diff", aria_label="Compare two versions"),
            content="Compare two versions",
        ),
    )  # fmt: skip


def _version_select(value, on_change, element_id: str, label: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", weight="medium", as_="label", html_for=element_id),
        rx.select.root(
            rx.select.trigger(id=element_id, aria_label=label, min_width="6rem"),
            rx.select.content(rx.foreach(D.diff_choices, lambda v: rx.select.item(v, value=v))),
            value=value,
            on_change=on_change,
        ),
        spacing="1",
    )


def diff_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Compare versions"),
            rx.dialog.description(
                "The canvas shows the newer version with what changed highlighted: added (green), removed "
                "(red, dashed), changed (amber), moved (blue, dotted).",
                size="2", margin_bottom="0.75rem",
            ),
            rx.hstack(
                _version_select(D.diff_from, D.set_diff_from, "diff-from", "From (older)"),
                rx.icon("arrow-right", size=16, margin_top="1.4rem"),
                _version_select(D.diff_to, D.set_diff_to, "diff-to", "To (newer)"),
                align="start", spacing="3",
            ),
            rx.cond(D.diff_error != "",
                    rx.text(D.diff_error, size="2", color=rx.color("gray", 12), margin_top="0.75rem", id="diff-error")),
            dialog_buttons(
                rx.button(rx.icon("git-compare", size=14), "Compare", on_click=D.show_diff, id="diff-show",
                          disabled=D.diff_choices.length() < 2),
            ),
            max_width="28rem",
        ),
        open=D.diff_open,
        on_open_change=D.set_diff_open,
    )  # fmt: skip


def _diff_row(row: DiffRow) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.badge(row.kind, color_scheme=rx.match(row.kind, *KIND_COLORS.items(), "gray"), variant="soft", size="1"),
            rx.text(rx.text.strong(row.label), " · ", row.what, size="1", trim="both"),
            align="center", spacing="2",
        ),
        rx.foreach(row.fields, lambda line: rx.text(line, size="1", font_family="monospace",
                                                    color=rx.color("gray", 11), padding_left="0.5rem",
                                                    word_break="break-all", data_testid="diff-field")),
        spacing="1", padding="0.3rem 0.4rem", border_radius="var(--radius-2)", width="100%",
        cursor=rx.cond(row.item_id != "", "pointer", "default"), _hover={"background": rx.color("gray", 3)},
        on_click=D.focus_diff_item(row.item_id),
        data_testid="diff-row", data_item_id=row.item_id, data_kind=row.kind,
    )  # fmt: skip


def diff_panel(current_workflow) -> rx.Component:
    """The banner and list of changes while a diff is on the canvas."""
    return rx.cond(
        (D.diff_workflow != "") & (D.diff_workflow == current_workflow),
        rx.card(
            rx.hstack(
                rx.icon("git-compare", size=15),
                rx.text("Comparing ", rx.text.strong(D.diff_title), size="2", id="diff-title"),
                rx.spacer(),
                rx.button("Close", size="1", variant="soft", color_scheme="gray", on_click=D.close_diff,
                          id="diff-close"),
                align="center", width="100%",
            ),
            rx.text(D.diff_counts, size="1", color=rx.color("gray", 11), id="diff-counts"),
            rx.scroll_area(rx.vstack(rx.foreach(D.diff_rows, _diff_row), spacing="0", width="100%"),
                           max_height="22rem", type="auto"),
            position="absolute", left="1rem", top="1rem", width="26rem", max_width="calc(100% - 2rem)",
            z_index="6", id="diff-panel",
        ),
    )  # fmt: skip


def canvas_diff(current_workflow):
    """What the canvas's `diff` prop gets: the diff of this workflow, or nothing."""
    return rx.cond(D.diff_workflow == current_workflow, D.canvas_diff, {})


def _snippet_row(row: SnippetRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.name, size="2", weight="medium")),
        rx.table.cell(rx.text(row.nodes, size="2")),
        rx.table.cell(rx.cond(row.shared, rx.badge("shared", variant="soft"), rx.badge("mine", variant="soft",
                                                                                      color_scheme="gray"))),
        rx.table.cell(rx.text(row.created, size="1", color=rx.color("gray", 11))),
        rx.table.cell(
            rx.hstack(
                rx.button("Insert", size="1", on_click=P.insert_snippet(row.id), data_testid="insert-snippet"),
                rx.cond(row.mine, rx.icon_button(rx.icon("trash-2", size=13), size="1", variant="ghost",
                                                 color_scheme="red", on_click=P.delete_snippet(row.id),
                                                 aria_label="Delete snippet", data_testid="delete-snippet")),
                spacing="2", justify="end",
            ),
        ),
        align="center", data_testid="snippet-row", data_name=row.name,
    )  # fmt: skip


def snippets_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Snippets"),
            rx.dialog.description(
                "Save the selected nodes (and the edges between them) under a name, then insert them into any "
                "workflow with fresh ids.", size="2", margin_bottom="0.75rem",
            ),
            rx.hstack(
                rx.input(value=P.snippet_name, on_change=P.set_snippet_name, placeholder="Name of the selection",
                         id="snippet-name", aria_label="Snippet name", max_length=200, flex="1"),
                rx.el.label(rx.hstack(rx.checkbox(checked=P.snippet_shared, on_change=P.set_snippet_shared,
                                                  id="snippet-shared", aria_label="Share with everyone"),
                                      rx.text("Share with everyone", size="2"), align="center", spacing="1")),
                rx.button(rx.icon("save", size=14), "Save selection", on_click=P.save_snippet, id="snippet-save"),
                align="center", spacing="2", width="100%",
            ),
            rx.cond(P.snippet_error != "",
                    rx.callout(P.snippet_error, icon="circle-alert", color_scheme="red", size="1", margin_top="0.5rem",
                               id="snippet-error")),
            rx.cond(
                P.snippet_rows.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(
                        rx.table.column_header_cell("Name"), rx.table.column_header_cell("Nodes"),
                        rx.table.column_header_cell(""), rx.table.column_header_cell("Saved"),
                        rx.table.column_header_cell(""),
                    )),
                    rx.table.body(rx.foreach(P.snippet_rows, _snippet_row)),
                    size="1", width="100%", margin_top="0.75rem",
                ),
                rx.text("No snippets yet.", size="2", color=rx.color("gray", 11), margin_top="0.75rem"),
            ),
            rx.text("Paste nodes copied in another workflow (Ctrl+C there, then Ctrl+V on this canvas, or here):",
                    size="2", margin_top="1rem", as_="label", html_for="fragment-text"),
            rx.text_area(value=P.fragment_text, on_change=P.set_fragment_text, id="fragment-text", rows="4",
                         font_family="monospace", font_size="12px", width="100%",
                         placeholder='{"flowloom": "fragment", "version": 1, "nodes": [...], "edges": [...]}'),
            rx.cond(P.fragment_error != "",
                    rx.callout(P.fragment_error, icon="circle-alert", color_scheme="red", size="1", margin_top="0.5rem",
                               id="fragment-error")),
            rx.hstack(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                rx.button("Insert pasted nodes", variant="soft", on_click=P.insert_fragment_text, id="fragment-insert"),
                justify="end", margin_top="0.75rem", spacing="2",
            ),
            max_width="44rem",
        ),
        open=P.snippets_open,
        on_open_change=P.set_snippets_open,
    )  # fmt: skip
