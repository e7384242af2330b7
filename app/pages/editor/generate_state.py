"""The editor's "Describe your workflow": ask the configured model for a definition, preview it on
the canvas, and keep it only when the user accepts (engine/workflow_generation.py does the asking)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import reflex as rx

from app.auth.guard import caller_of, requires
from app.auth.policy import Role
from app.pages.editor.auto_layout import layout_positions
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import WorkingGraph
from engine import workflow_generation as generation
from engine.errors import FlowloomError, user_message
from engine.parse import parse_dict

log = logging.getLogger(__name__)


def _placed(graph: WorkingGraph) -> WorkingGraph:
    """The graph laid out left to right when the model gave its nodes no distinct positions."""
    spots = {(n.get("position", {}).get("x", 0), n.get("position", {}).get("y", 0)) for n in graph.nodes}
    if len(spots) == len(graph.nodes):
        return graph
    positions = layout_positions([n["id"] for n in graph.nodes], graph.edges)
    return graph.move([{"id": k, **v} for k, v in positions.items()])


class EditorGenerate(EditorCore):
    """The generate dialog, the running request and the preview waiting to be accepted or discarded."""

    gen_open: bool = False
    gen_description: str = ""
    gen_busy: bool = False
    gen_error: str = ""
    gen_reasons: list[str] = []
    gen_configured: bool = True
    gen_preview: bool = False  # the canvas shows a generated graph that is not saved yet
    gen_summary: str = ""
    _gen_before: WorkingGraph | None = None

    @rx.event
    @requires(Role.EDITOR)
    def set_gen_open(self, value: bool) -> None:
        if self.gen_busy:
            return
        self.gen_open, self.gen_error, self.gen_reasons = value, "", []
        self.gen_configured = generation.configured() is not None

    @rx.event
    @requires(Role.EDITOR)
    def set_gen_description(self, value: str) -> None:
        self.gen_description = value[: generation.MAX_DESCRIPTION + 1]

    @rx.event(background=True)
    @requires(Role.EDITOR)
    async def generate(self):
        """Ask the model (a run on the workers, repaired once if it does not validate) and preview the answer."""
        async with self:
            if self.gen_busy or self.gen_preview:
                return
            self.gen_busy, self.gen_error, self.gen_reasons = True, "", []
            description = self.gen_description
            principal = caller_of(self)
        started_by = f"user:{principal.user_id}" if principal else "system"
        try:
            generated = await asyncio.to_thread(
                generation.generate, description, started_by=started_by, started_via="ui"
            )
            graph = _placed(WorkingGraph.from_definition(parse_dict(generated.definition)))
        except generation.GenerationRefused as exc:
            async with self:
                self.gen_busy, self.gen_error, self.gen_reasons = False, user_message(exc), exc.reasons
            return
        except FlowloomError as exc:
            async with self:
                self.gen_busy, self.gen_error = False, user_message(exc)
            return
        except Exception as exc:  # the broker or database is away: say so, keep the canvas as it was
            log.warning("generating a workflow failed: %s", exc, exc_info=True)
            async with self:
                self.gen_busy, self.gen_error = False, f"Generation failed: {user_message(exc)}"
            return
        async with self:
            self._show_preview(graph, generated)
        yield rx.toast.info("Generated: accept it to save it as a new version, or discard it")

    def _show_preview(self, graph: WorkingGraph, generated: generation.Generated) -> None:
        self._gen_before = self._g()
        self._commit(graph.replace(name=self.wf_name or graph.defn.get("name", "")))
        self._select([], [])
        self._fit(everything=True)
        steps = "after one repair" if generated.repaired else "first time"
        self.gen_summary = f"{len(graph.nodes)} nodes, {len(graph.edges)} edges; valid {steps}"
        self.gen_busy, self.gen_open, self.gen_preview = False, False, True

    @rx.event
    @requires(Role.EDITOR)
    def accept_generated(self) -> Any:
        """Keep the generated graph: it is saved as the workflow's next version."""
        if not self.gen_preview:
            return None
        if not self.dirty:  # already saved with the toolbar's Save
            self.gen_preview, self._gen_before = False, None
            return rx.toast.info(f"The generated workflow is saved as v{self.version}")
        problem = self._save("generated from a description")
        if problem:
            return rx.toast.error(problem)
        self.gen_preview, self._gen_before, self.gen_description = False, None, ""
        return rx.toast.success(f"Saved the generated workflow as v{self.version}")

    @rx.event
    @requires(Role.EDITOR)
    def discard_generated(self) -> Any:
        """Drop the generated graph: the canvas goes back to what it showed before."""
        if not self.gen_preview:
            return None
        before, self._gen_before, self.gen_preview = self._gen_before, None, False
        if before is not None:
            self._commit(before)
            self._fit(everything=True)
        return rx.toast.info("Discarded the generated workflow")
