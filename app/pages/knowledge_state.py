"""State of the Knowledge page: collections, their documents, uploads and (re-)indexing in a worker.

Everything is the caller's current workspace's (app.pages.workspace_scope): another workspace's
collection shows empty, its document ids delete and re-index nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import reflex as rx

from app import db, knowledge
from app.auth.guard import audit_who, caller_of, requires
from app.pages.models_state import human_size
from app.pages.workspace_scope import current_workspace
from engine import audit, jobs
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.roles import Role

log = logging.getLogger(__name__)
POLL_S = 1.0


@dataclass
class CollectionRow:
    name: str
    documents: int
    ready: int
    failed: int
    chunks: int


@dataclass
class DocumentRow:
    id: str
    name: str
    media_type: str
    size: str
    status: str
    chunks: int
    characters: int
    chunking: str
    error: str
    indexed: str


class KnowledgeState(rx.State):
    """The Knowledge page (one state class for the page)."""

    collections: list[CollectionRow] = []
    selected: str = ""
    documents: list[DocumentRow] = []
    new_collection: str = ""
    chunk_size: str = "800"
    chunk_overlap: str = "100"
    error: str = ""
    busy: str = ""
    job_percent: int = 0
    job_message: str = ""
    upload_percent: int = -1
    delete_id: str = ""
    delete_name: str = ""

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        try:
            workspace = current_workspace(self)
            with db.db_session() as session:
                found = knowledge.collections(session, workspace_id=workspace)
                self.collections = [
                    CollectionRow(c.name, c.documents, c.ready, c.failed, c.chunks) for c in found
                ]
                if self.selected and self.selected not in [c.name for c in found]:  # created, still empty
                    self.collections.append(CollectionRow(self.selected, 0, 0, 0, 0))
                if not self.selected and found:
                    self.selected = found[0].name
                rows = (
                    knowledge.documents(session, self.selected, workspace_id=workspace)
                    if self.selected
                    else []
                )
                self.documents = [
                    DocumentRow(
                        str(r.id),
                        r.name,
                        r.media_type,
                        human_size(r.size),
                        r.status,
                        r.chunks,
                        r.characters,
                        f"{r.chunk_size} / {r.chunk_overlap}",
                        r.error or "",
                        r.indexed_at.strftime("%Y-%m-%d %H:%M") if r.indexed_at else "",
                    )  # fmt: skip
                    for r in rows
                ]
            self.error = ""
        except DB_ERRORS as exc:
            self.error = describe_db_error(exc)

    @rx.event
    @requires(Role.VIEWER)
    def select(self, name: str) -> None:
        self.selected = name
        self._refresh()

    @rx.event
    @requires(Role.EDITOR)
    def set_new_collection(self, value: str) -> None:
        self.new_collection = value

    @rx.event
    @requires(Role.EDITOR)
    def create_collection(self) -> None:
        """A collection exists once it has a document: choose its name, then upload into it."""
        try:
            self.selected = knowledge.check_collection(self.new_collection)
        except FlowloomError as exc:
            self.error = user_message(exc)
            return
        self.new_collection, self.error = "", ""
        self._refresh()

    @rx.event
    @requires(Role.EDITOR)
    def set_chunk_size(self, value: str) -> None:
        self.chunk_size = value

    @rx.event
    @requires(Role.EDITOR)
    def set_chunk_overlap(self, value: str) -> None:
        self.chunk_overlap = value

    @rx.event
    @requires(Role.EDITOR)
    def upload_progress(self, progress: dict) -> None:
        try:
            self.upload_percent = max(0, min(100, round(float(progress.get("progress", 0)) * 100)))
        except (TypeError, ValueError):
            return

    @rx.event
    @requires(Role.EDITOR)
    async def upload(self, files: list[rx.UploadFile]):
        """Store the uploaded files in the selected collection and index them in a worker."""
        self.upload_percent = -1
        if not self.selected:
            self.error = "Choose or create a collection first."
            return
        uploads = []
        for file in files:
            data = await file.read(knowledge.MAX_FILE_BYTES + 1)
            uploads.append(
                knowledge.Upload(str(getattr(file, "name", None) or file.filename or "document"), data)
            )
        principal = caller_of(self)
        uploader = uuid.UUID(principal.user_id) if principal and principal.user_id else None
        try:
            size, overlap = int(self.chunk_size), int(self.chunk_overlap)
            with audit.acting_as(audit_who(self)), db.db_session() as session:
                ids = knowledge.add_documents(
                    session, self.selected, uploads, chunk_size=size, chunk_overlap=overlap,
                    uploaded_by=uploader, workspace_id=current_workspace(self),
                )  # fmt: skip
        except ValueError:
            self.error = "Chunk size and overlap must be whole numbers."
            return
        except FlowloomError as exc:
            self.error = user_message(exc)
            return
        except DB_ERRORS as exc:
            self.error = describe_db_error(exc)
            return
        self.error = ""
        self._refresh()
        return KnowledgeState.follow(ids, "")

    @rx.event
    @requires(Role.EDITOR)
    def reindex(self):
        """Index every document of the selected collection again (after changing its settings, say)."""
        if not self.selected or self.busy:
            return None
        with db.db_session() as session:
            knowledge.mark_queued(session, self.selected, workspace_id=current_workspace(self))
        self._refresh()
        return KnowledgeState.follow([], self.selected)

    @rx.event(background=True)
    @requires(Role.EDITOR)
    async def follow(self, document_ids: list[str], collection: str):
        """Submit the indexing job and show its progress until a worker finishes it."""
        async with self:
            if self.busy:
                return
            self.busy, self.job_percent, self.job_message = "Indexing…", 0, "queued"
            workspace = current_workspace(self)  # the job indexes this workspace's documents only
        try:
            job_id = await asyncio.to_thread(
                knowledge.start_indexing,
                document_ids=document_ids or None,
                collection=collection,
                workspace_id=workspace,
            )
            status = await asyncio.to_thread(jobs.status, job_id)
            while not status.done:
                async with self:
                    self.job_message, self.job_percent = status.message, round(status.progress * 100)
                    self._refresh()
                await asyncio.sleep(POLL_S)
                status = await asyncio.to_thread(jobs.status, job_id)
        except Exception as exc:  # the broker is away: say so, stop following
            log.warning("indexing job: %s", exc, exc_info=True)
            async with self:
                self.busy = ""
            yield rx.toast.error(f"The indexing job could not be followed: {user_message(exc)}")
            return
        async with self:
            self.busy, self.job_percent, self.job_message, self.upload_percent = "", 0, "", -1
            self._refresh()
        if status.state == "succeeded":
            yield rx.toast.success(status.message or "Indexed")
        else:
            yield rx.toast.error(f"Indexing failed: {status.error}")

    @rx.event
    @requires(Role.EDITOR)
    def ask_delete(self, document_id: str, name: str) -> None:
        self.delete_id, self.delete_name = document_id, name

    @rx.event
    @requires(Role.EDITOR)
    def cancel_delete(self) -> None:
        self.delete_id, self.delete_name = "", ""

    @rx.event
    @requires(Role.EDITOR)
    def delete(self):
        document_id = self.delete_id
        self.delete_id, self.delete_name = "", ""
        try:
            with audit.acting_as(audit_who(self)), db.db_session() as session:
                name = knowledge.delete_document(session, document_id, workspace_id=current_workspace(self))
        except DB_ERRORS as exc:
            self.error = describe_db_error(exc)
            return None
        self._refresh()
        return rx.toast.success(f"Removed {name} and its chunks") if name else None
