"""State of a chat trigger's page (/chat/<trigger id>): my conversations with the workflow, the
open one's messages, and the answer streaming in while the run writes it.

Every message of a conversation shares its chat session (engine.chat_sessions); the answer is
followed through engine.chat_stream from a background event and replaced by the run's answer
when the run ends.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.auth.guard import caller_of, requires
from app.auth.policy import Role
from app.pages.formatting import time_ago
from app.trigger_access import Opened, open_chat
from engine import chat_sessions
from engine.chat_sessions import SessionView
from engine.chat_stream import ANY_NODE, follow_answer
from engine.db_errors import DB_ERRORS
from engine.errors import ErrorCode, FlowloomError, ValidationError, user_message
from engine.trigger_config import ChatConfig

log = logging.getLogger(__name__)

SESSIONS_SHOWN = 30


@dataclass
class ChatLine:
    """One message as the page shows it."""

    role: str  # user | assistant
    content: str
    error: str = ""


@dataclass
class SessionRow:
    """One of my conversations in the side list."""

    id: str
    title: str
    when: str
    active: bool = False


def _lines(view: SessionView) -> list[ChatLine]:
    return [
        ChatLine(str(m.get("role")), str(m.get("content") or ""), str(m.get("error") or ""))
        for m in view.messages
    ]


def _session_rows(opened: Opened, current: str) -> list[SessionRow]:
    rows = chat_sessions.list_sessions(opened.owner, opened.trigger.workflow_id, limit=SESSIONS_SHOWN)
    return [
        SessionRow(s.id, s.title or "New conversation", time_ago(s.updated_at), s.id == current) for s in rows
    ]


class ChatState(rx.State):
    """One chat trigger's page for the signed-in operator."""

    not_found: bool = False
    title: str = ""
    session_id: str = ""
    lines: list[ChatLine] = []
    sessions: list[SessionRow] = []
    draft: str = ""
    streaming: str = ""
    busy: bool = False
    error: str = ""

    _trigger_id: str = ""
    _run_id: str = ""

    def _opened(self) -> Opened | None:
        try:
            return open_chat(self._trigger_id, caller_of(self))
        except DB_ERRORS as exc:
            log.warning("opening chat %s failed: %s", self._trigger_id, exc)
            return None

    def _list(self, opened: Opened) -> None:
        self.sessions = _session_rows(opened, self.session_id)

    def _show(self, view: SessionView) -> None:
        self.session_id, self.lines = view.id, _lines(view)
        self._run_id = view.pending_run or ""
        self.busy = bool(self._run_id)

    def _clear_conversation(self) -> None:
        """An empty conversation: no session, lines, streamed text, run or error."""
        self.session_id, self.lines, self.streaming, self.busy, self.error, self._run_id = (
            "",
            [],
            "",
            False,
            "",
            "",
        )

    @rx.event
    @requires(Role.OPERATOR)
    def load(self) -> Any:
        """Open the page: the trigger, my conversations, the one named in ?session= (else a new one)."""
        self._trigger_id = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        self._clear_conversation()
        opened = self._opened()
        self.not_found = opened is None
        if opened is None:
            self.title, self.sessions = "", []
            return None
        config: ChatConfig = opened.trigger.config
        self.title = config.title or opened.trigger.workflow_name
        wanted = str(self.router.url.query_parameters.get("session", ""))
        try:
            if wanted:
                self._show(chat_sessions.get(wanted, opened.owner, config))
            self._list(opened)
        except FlowloomError as exc:
            self.error = user_message(exc)
        return ChatState.follow if self.busy else None

    @rx.event
    @requires(Role.OPERATOR)
    def set_draft(self, text: str) -> None:
        """What the message box holds."""
        self.draft = text[: chat_sessions.MAX_MESSAGE_CHARS]

    @rx.event
    @requires(Role.OPERATOR)
    def send(self) -> Any:
        """Send the message: a new turn of this conversation (a new conversation if none is open)."""
        text = self.draft.strip()
        if self.busy or not text:
            return None
        opened = self._opened()
        if opened is None:
            self.not_found = True
            return None
        try:
            if not self.session_id:
                self.session_id = chat_sessions.create(opened.trigger.workflow_id, opened.owner).id
            started = chat_sessions.send(opened.trigger, self.session_id, opened.owner, text,
                                         started_by=opened.started_by)  # fmt: skip
        except ValidationError as exc:
            self.error = f"The workflow does not take this message: {user_message(exc)}"
            return None
        except FlowloomError as exc:
            self.error = user_message(exc)
            return None
        self.error, self.draft, self.streaming = "", "", ""
        self._show(started.session)
        self._list(opened)
        return ChatState.follow

    @rx.event(background=True)
    @requires(Role.OPERATOR)
    async def follow(self) -> None:
        """Show the answer as it streams in, then the answer the run gave."""
        async with self:
            run_id, session_id = self._run_id, self.session_id
            opened = self._opened()
        if not run_id or opened is None:
            return
        config: ChatConfig = opened.trigger.config
        try:
            async for piece in follow_answer(
                run_id, config.answer_output, node_id=ANY_NODE, timeout=config.wait_s
            ):
                async with self:
                    if self._run_id != run_id:
                        return  # another conversation was opened meanwhile
                    if piece.restart:
                        self.streaming = ""
                    self.streaming += piece.text
                    if piece.done and not piece.status:
                        self.error = "No answer yet; it will show here when the run ends (reload the page)."
            view = await asyncio.to_thread(chat_sessions.record_answer, session_id, opened.owner, config)
            rows = await asyncio.to_thread(_session_rows, opened, session_id)
        except DB_ERRORS as exc:
            log.warning("following run %s failed: %s", run_id, exc)
            async with self:
                if self._run_id == run_id:
                    self.error, self.busy = user_message(exc), False
            return
        async with self:
            if self._run_id != run_id:
                return
            self.streaming = ""
            self._show(view)
            if self.busy:  # the wait ran out before the run ended
                self.busy, self._run_id = False, ""
            self.sessions = rows

    @rx.event
    @requires(Role.OPERATOR)
    def new_conversation(self) -> None:
        """Start over with an empty conversation (the others stay in the list)."""
        self._clear_conversation()
        for row in self.sessions:
            row.active = False
        self.sessions = list(self.sessions)

    @rx.event
    @requires(Role.OPERATOR)
    def open_session(self, session_id: str) -> Any:
        """Show one of my earlier conversations."""
        opened = self._opened()
        if opened is None:
            self.not_found = True
            return None
        try:
            view = chat_sessions.get(session_id, opened.owner, opened.trigger.config)
        except FlowloomError as exc:
            self.error = (
                user_message(exc) if exc.code != ErrorCode.CHAT_SESSION_NOT_FOUND else "No such conversation."
            )
            return None
        self.error, self.streaming = "", ""
        self._show(view)
        self._list(opened)
        return ChatState.follow if self.busy else None
