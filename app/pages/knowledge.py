"""The Knowledge page: collections of documents that memory.search and agents answer from, with citations."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.auth.guard import AuthState
from app.layout import empty_state, error_callout, page, page_header
from app.pages.knowledge_state import CollectionRow, DocumentRow
from app.pages.knowledge_state import KnowledgeState as S
from components.data_table import data_table
from components.dialogs import confirm_dialog
from components.job_progress import job_progress
from components.uploads import file_drop

UPLOAD_ID = "knowledge-upload"
STATUS_COLORS = {"ready": "green", "failed": "red", "indexing": "blue", "queued": "gray"}


def _collection(row: CollectionRow) -> rx.Component:
    return rx.button(
        rx.text(row.name, weight="medium"),
        rx.badge(row.documents, variant="soft", radius="full"),
        variant=rx.cond(S.selected == row.name, "solid", "soft"),
        on_click=S.select(row.name),
        aria_label=f"Open collection {row.name}",
        data_testid="knowledge-collection",
    )


def _status(row: DocumentRow) -> rx.Component:
    return rx.match(
        row.status,
        ("ready", rx.badge("ready", color_scheme="green")),
        ("failed", rx.tooltip(rx.badge("failed", color_scheme="red"), content=row.error)),
        ("indexing", rx.badge("indexing", color_scheme="blue")),
        rx.badge(row.status, color_scheme="gray"),
    )


def _document(row: DocumentRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.name, weight="medium", size="2")),
        rx.table.cell(_status(row)),
        rx.table.cell(rx.text(row.chunks, size="2")),
        rx.table.cell(rx.text(row.size, size="2")),
        rx.table.cell(rx.text(row.chunking, size="2")),
        rx.table.cell(rx.text(row.indexed, size="2")),
        rx.table.cell(
            rx.cond(
                AuthState.can_edit,
                rx.icon_button(
                    rx.icon("trash-2", size=14),
                    size="1",
                    variant="ghost",
                    color_scheme="red",
                    on_click=S.ask_delete(row.id, row.name),
                    aria_label=f"Remove {row.name}",
                ),
            )
        ),
        rx.cond(row.error != "", rx.table.cell(rx.text(row.error, size="1", color="red"))),
        align="center",
        data_testid="knowledge-document",
    )


def _documents() -> rx.Component:
    columns = [
        "Document", ("State", "7rem"), ("Chunks", "6rem"), ("Size", "6rem"), ("Chunk / overlap", "8rem"),
        ("Indexed", "9rem"), ("", "3rem"),
    ]  # fmt: skip
    return data_table("knowledge-documents", columns, S.documents, _document)


def _upload() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Add documents to ", rx.code(S.selected), size="3", weight="medium", as_="h2"),
            rx.hstack(
                rx.vstack(
                    rx.el.label(
                        "Chunk size (characters)", html_for="knowledge-chunk-size", font_size="0.8rem"
                    ),
                    rx.input(
                        id="knowledge-chunk-size",
                        default_value=S.chunk_size,
                        on_blur=S.set_chunk_size,
                        width="8rem",
                    ),
                    spacing="1",
                ),
                rx.vstack(
                    rx.el.label("Overlap", html_for="knowledge-chunk-overlap", font_size="0.8rem"),
                    rx.input(
                        id="knowledge-chunk-overlap",
                        default_value=S.chunk_overlap,
                        on_blur=S.set_chunk_overlap,
                        width="8rem",
                    ),
                    spacing="1",
                ),
                rx.spacer(),
                rx.button(
                    rx.icon("refresh-cw", size=14),
                    "Re-index collection",
                    variant="soft",
                    on_click=S.reindex,
                    disabled=S.busy != "",
                    id="knowledge-reindex",
                ),
                width="100%",
                align="end",
            ),
            file_drop(
                UPLOAD_ID,
                "Drop PDF, Markdown, text or HTML files here, or click to choose",
                "Up to 20 files of 20 MB each",
                {
                    "application/pdf": [".pdf"],
                    "text/markdown": [".md", ".markdown"],
                    "text/plain": [".txt", ".text"],
                    "text/html": [".html", ".htm"],
                },
                S.upload(rx.upload_files(upload_id=UPLOAD_ID, on_upload_progress=S.upload_progress)),
                multiple=True,
            ),
            rx.cond(
                S.upload_percent >= 0,
                rx.progress(value=S.upload_percent, max=100, width="100%", aria_label="Upload progress"),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        margin_bottom="1rem",
    )


def _job() -> rx.Component:
    return job_progress("knowledge", S.busy, S.job_percent, S.job_message)


def _delete_dialog() -> rx.Component:
    return confirm_dialog(
        "Remove this document?",
        rx.text("Remove ", rx.code(S.delete_name), " and its chunks from the collection."),
        "Remove",
        S.delete,
        open=S.delete_id != "",
        on_cancel=S.cancel_delete,
        max_width=None,
    )


def _new_collection() -> rx.Component:
    return rx.cond(
        AuthState.can_edit,
        rx.hstack(
            rx.input(
                placeholder="new collection",
                value=S.new_collection,
                on_change=S.set_new_collection,
                aria_label="Name of a new collection",
                width="12rem",
            ),
            rx.button(rx.icon("plus", size=14), "Create", variant="soft", on_click=S.create_collection),
            spacing="2",
        ),
    )


@page(route=routes.KNOWLEDGE, title="Knowledge", on_load=S.load)
def knowledge_page() -> rx.Component:
    """Knowledge collections and their documents."""
    return rx.box(
        page_header(
            "Knowledge",
            "Documents that memory.search and agents with a memory collection answer from, citing them.",
            _new_collection(),
        ),
        error_callout(S.error),
        rx.cond(S.busy != "", _job()),
        rx.hstack(rx.foreach(S.collections, _collection), wrap="wrap", spacing="2", margin_bottom="1rem"),
        rx.cond(
            S.selected != "",
            rx.box(
                rx.cond(AuthState.can_edit, _upload()),
                rx.cond(
                    S.documents.length() > 0,
                    _documents(),
                    empty_state(
                        "knowledge-empty",
                        "book-open",
                        "No documents yet",
                        "Upload files above; a worker extracts, chunks and embeds them with the local OpenVINO model.",
                    ),  # fmt: skip
                ),
            ),
            empty_state(
                "knowledge-none",
                "library",
                "No collections yet",
                "Create a collection, then upload documents into it.",
            ),  # fmt: skip
        ),
        _delete_dialog(),
    )
