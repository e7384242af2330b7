"""Local model directories: where they live, how node configs name them, what each one holds."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.contract import DEFAULT_EMBEDDER, StepError, node_environment
from engine.contract import MODEL_NAME_PATTERN as NAME_PATTERN

MANIFEST = "flowloom_model.json"
MODEL_XML = "openvino_model.xml"
TOKENIZER_XML = "openvino_tokenizer.xml"
DETOKENIZER_XML = "openvino_detokenizer.xml"
__all__ = ["DEFAULT_EMBEDDER", "NAME_PATTERN"]  # re-exported: how node configs name models
_NAME = re.compile(NAME_PATTERN)


def models_root() -> Path:
    """The models directory: `<data_dir>/models`."""
    return node_environment().models_dir


def model_path(name: str, *, field: str = "model") -> Path:
    """The directory of model `name` (it may not exist yet); StepError for names that escape the root."""
    if not _NAME.match(name or ""):
        raise StepError(
            f"{field}: {name!r} is not a model name; use a folder name under the models directory "
            "(letters, digits, '.', '_', '-', '/'), e.g. all-MiniLM-L6-v2",
            retryable=False,
        )
    return models_root() / name


@dataclass(frozen=True)
class ModelInfo:
    """What the Models page and the nodes know of one model directory."""

    name: str
    path: Path
    kind: str  # embedding | llm | unknown
    precision: str  # fp32 | fp16 | int8 | int8-weights | unknown
    size_bytes: int
    source: str = ""
    dimension: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "source": self.source,
            "dimension": self.dimension,
        }


def read_manifest(path: Path) -> dict[str, Any]:
    """The model's manifest (written when Flowloom converted it), or {}."""
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_manifest(path: Path, **fields: Any) -> None:
    """Record what a model directory holds (kind, precision, source, ...)."""
    data = {**read_manifest(path), **fields, "updated_at": datetime.now(UTC).isoformat()}
    (path / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def weight_precision(xml_path: Path) -> str:
    """Precision of an IR's weights, from the element types of its constants (no model load)."""
    counts: Counter[str] = Counter()
    fake_quantize = False
    for _, elem in ET.iterparse(xml_path, events=("end",)):
        if elem.tag != "layer":
            continue
        kind = elem.get("type")
        if kind == "FakeQuantize":
            fake_quantize = True
        elif kind == "Const":
            data = elem.find("data")
            if data is not None:
                counts[data.get("element_type", "")] += int(data.get("size", "0") or 0)
        elem.clear()
    if fake_quantize:
        return "int8"
    if not counts:
        return "unknown"
    top = counts.most_common(1)[0][0]
    return {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8-weights", "u8": "int8-weights"}.get(
        top, top
    )


def _kind(path: Path) -> str:
    if (path / DETOKENIZER_XML).exists() or (path / "openvino_language_model.xml").exists():
        return "llm"
    if (path / MODEL_XML).exists():
        return "embedding"
    return "unknown"


def directory_size(path: Path) -> int:
    """Bytes of every file under `path` (symlinks followed)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe(path: Path, name: str | None = None) -> ModelInfo:
    """Kind, precision and size of one model directory."""
    manifest = read_manifest(path)
    precision = manifest.get("precision") or (
        weight_precision(path / MODEL_XML) if (path / MODEL_XML).exists() else "unknown"
    )
    return ModelInfo(
        name=name or path.name,
        path=path,
        kind=manifest.get("kind") or _kind(path),
        precision=precision,
        size_bytes=directory_size(path),
        source=manifest.get("source", ""),
        dimension=manifest.get("dimension"),
    )


def list_models(root: Path | None = None) -> list[ModelInfo]:
    """Every model directory (a folder holding an OpenVINO IR) under the models directory.

    Symlinked folders count (a model kept elsewhere can be linked in); hidden folders and
    unfinished conversions (`*.partial`) do not.
    """
    root = root or models_root()
    if not root.is_dir():
        return []
    found = []
    for folder, subdirs, files in os.walk(root, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and not d.endswith(".partial"))
        if MODEL_XML in files:
            path = Path(folder)
            found.append(describe(path, str(path.relative_to(root))))
    return sorted(found, key=lambda m: m.name)
