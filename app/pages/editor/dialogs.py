"""The editor's dialogs: import, export, version history and the run's inputs."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.review_view import status_badge, version_actions
from app.pages.editor.run_state import EditorRun as R
from app.pages.editor.tools_state import EditorTools as T
from app.pages.editor.tools_state import VersionRow
from components.config_form import config_form
from components.dialogs import dialog_buttons

UPLOAD_ID = "definition-upload"


def _mono_area(**props) -> rx.Component:
    return rx.text_area(
        font_family="monospace", font_size="12px", rows="18", width="100%", resize="vertical", **props
    )


def import_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Import a definition"),
            rx.dialog.description(
                "Paste JSON or YAML, or upload a file. It replaces the canvas (undo brings it back).",
                size="2",
                margin_bottom="0.75rem",
            ),
            # The label names the dropzone's file input (react-dropzone takes no attributes for it); a
            # click on it opens the file picker, so the dropzone itself does not (no_click).
            rx.el.label(rx.upload.root(
                rx.hstack(
                    rx.icon("upload", size=16),
                    rx.text("Drop a .json or .yaml file here, or click to choose one", size="2"),
                    align="center",
                    spacing="2",
                    padding="0.6rem",
                    border=f"1px dashed {rx.color('gray', 7)}",
                    border_radius="var(--radius-3)",
                    width="100%",
                    justify="center",
                    cursor="pointer",
                ),
                id=UPLOAD_ID,
                multiple=False,
                accept={"application/json": [".json"], "application/yaml": [".yaml", ".yml"], "text/plain": [".txt"]},
                on_drop=T.upload_definition(rx.upload_files(upload_id=UPLOAD_ID)),
                no_click=True,
                width="100%",
                margin_bottom="0.5rem",
            ), display="block"),
            _mono_area(value=T.import_text, on_change=T.set_import_text, placeholder="{ \"name\": ... }",
                       id="import-text", aria_label="The definition, JSON or YAML"),
            rx.cond(
                T.import_error != "",
                rx.callout(T.import_error, icon="circle-alert", color_scheme="red", size="1", margin_top="0.5rem",
                           id="import-error"),
            ),
            dialog_buttons(rx.button("Import", on_click=T.import_definition, id="import-submit")),
            max_width="44rem",
        ),
        open=T.import_open,
        on_open_change=T.set_import_open,
    )  # fmt: skip


def export_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.hstack(
                rx.dialog.title("Export", margin="0"),
                rx.spacer(),
                rx.segmented_control.root(
                    rx.segmented_control.item("JSON", value="json"),
                    rx.segmented_control.item("YAML", value="yaml"),
                    rx.segmented_control.item("Python", value="python"),
                    value=T.export_format,
                    on_change=T.set_export_format,
                    size="1",
                    id="export-format",
                ),
                align="center",
                width="100%",
                margin_bottom="0.5rem",
            ),
            rx.text("Secrets are not part of a definition: nodes only name them.", size="1",
                    color=rx.color("gray", 11), margin_bottom="0.5rem"),
            _mono_area(value=T.export_text, read_only=True, id="export-text", aria_label="The exported definition"),
            dialog_buttons(
                rx.button(rx.icon("download", size=14), "Download", on_click=T.download_export, id="export-download"),
                close="Close",
            ),
            max_width="44rem",
        ),
        open=T.export_open,
        on_open_change=T.set_export_open,
    )  # fmt: skip


def _version_row(v: VersionRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(f"v{v.version}", variant="soft")),
        rx.table.cell(status_badge(v.status)),
        rx.table.cell(rx.text(v.note, size="2")),
        rx.table.cell(rx.text(v.nodes, size="2")),
        rx.table.cell(rx.tooltip(rx.text(v.created, size="2"), content=v.created_exact)),
        rx.table.cell(
            rx.hstack(
                version_actions(v),
                rx.cond(T.can_edit, rx.button("Restore", size="1", variant="soft",
                                              on_click=T.restore_version(v.version), data_testid="restore-version")),
                spacing="1", justify="end",
            ),
            text_align="right",
        ),
        align="center",
        data_testid="version-row",
        data_version=v.version,
    )  # fmt: skip


def versions_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Version history"),
            rx.dialog.description(
                "Every save is a version. Restoring puts it on the canvas; saving makes it the newest. "
                "Triggers and operators run the published one; when the workspace requires review, "
                "another editor approves a version before it is published.",
                size="2",
                margin_bottom="0.75rem",
            ),
            rx.cond(
                T.share_permission != "",
                rx.callout("This workflow is shared with you: only its own workspace submits, reviews and "
                           "publishes its versions.", icon="share-2", size="1", margin_bottom="0.75rem",
                           id="versions-shared-note"),
            ),
            rx.cond(
                T.versions.length() > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Version"),
                            rx.table.column_header_cell("State"),
                            rx.table.column_header_cell("Note"),
                            rx.table.column_header_cell("Nodes"),
                            rx.table.column_header_cell("Saved"),
                            rx.table.column_header_cell(""),
                        )
                    ),
                    rx.table.body(rx.foreach(T.versions, _version_row)),
                    size="1",
                    width="100%",
                ),
                rx.text("Nothing saved yet.", size="2", color=rx.color("gray", 11)),
            ),
            dialog_buttons(close="Close"),
            max_width="52rem",
        ),
        open=T.versions_open,
        on_open_change=T.set_versions_open,
    )  # fmt: skip


def run_inputs_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Run inputs"),
            rx.dialog.description("The workflow's inputs schema asks for these.", size="2", margin_bottom="1rem"),
            config_form(R.input_fields, "run-inputs-form", set=R.set_run_input, flag=R.set_run_flag),
            dialog_buttons(
                rx.button(rx.icon("play", size=14), "Start run", on_click=R.submit_run_inputs, color_scheme="green",
                          id="run-inputs-submit"),
            ),
            max_width="30rem",
        ),
        open=R.run_inputs_open,
        on_open_change=R.set_run_inputs_open,
    )  # fmt: skip
