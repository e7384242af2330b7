"""Embedding precision "auto": the fastest precision that keeps cosine >= 0.99 to f32, measured on this machine.

Candidates are f32 on the model itself, the inference-precision hints bf16 and f16 when the device
lists them in OPTIMIZATION_CAPABILITIES, and the model's INT8 sibling folder (`x-fp32` -> `x-int8`)
when it exists. Each one embeds a fixed set of sentences in interleaved timed rounds (best round
kept); a candidate counts only when its lowest cosine to the f32 vectors is >= 0.99, and it replaces
f32 only when it is at least 5% faster, so auto is never slower than f32. The choice is measured once
per (model, device, CPU model, OpenVINO version), kept in memory per process and in
`<data_dir>/openvino/precision-auto.json`; it is measured again when the candidates change (an INT8
copy appeared, say). `select` is the rule alone, a pure function over measurements.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from engine.contract import node_environment
from nodes.openvino import model_jobs, model_store

log = logging.getLogger(__name__)

MIN_COSINE = 0.99  # lowest cosine to the f32 vectors a candidate may have
MIN_SPEEDUP = 1.05  # how much faster than f32 a candidate must be to replace it
ROUNDS = 5  # timed rounds per candidate, interleaved; the best one counts
REPEAT = 4  # the sentences are embedded this many times per timed round
CACHE_FILE = "precision-auto.json"
# Inference-precision hints and the OPTIMIZATION_CAPABILITIES entry a device must list to try them.
HINTS = (("bf16", "BF16"), ("f16", "FP16"))
SENTENCES = [
    "The cat sits on the mat.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "How do I reset my password if I no longer have access to my email?",
    "Please summarise the attached contract, paying attention to the termination clauses and "
    "any automatic renewal terms hidden in the appendices.",
    "Invoice 4411 is overdue by thirty days.",
    "Der Zug nach Berlin fährt um neun Uhr ab.",
    "¿Dónde está la estación de tren?",
    "Le chat dort sur le tapis.",
    "Error 404: page not found",
    "price: $19.99 (incl. VAT) #42 @home 🙂",
    "def f(x): return x * 2",
    "yes",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "A retrieval step finds the paragraphs that answer the user's question.",
    "Tokyo, Paris, New York",
    "She plays the violin in a string quartet on Thursday evenings.",
]

Vectors = Sequence[Sequence[float]]
Embedder = Callable[[list[str]], Vectors]


@dataclass(frozen=True)
class Candidate:
    """One way to run the model: `name` (f32, bf16, f16, int8), the model folder and the precision hint."""

    name: str
    model: str
    hint: str


@dataclass(frozen=True)
class Measurement:
    """What calibration measured of one candidate: its best sentences/s and lowest cosine to f32."""

    name: str
    sentences_per_s: float
    min_cosine: float


def select(
    measurements: Sequence[Measurement], *, min_cosine: float = MIN_COSINE, min_speedup: float = MIN_SPEEDUP
) -> str:
    """The candidate to use: the fastest with cosine >= `min_cosine`, if `min_speedup` times faster than f32.

    f32 otherwise (also when nothing else was measured). A candidate below the cosine bar is never
    picked, however fast; NaN cosines or rates never pass.
    """
    by_name = {m.name: m for m in measurements}
    if "f32" not in by_name:
        raise ValueError("precision auto: f32 must be among the measurements (it is the reference)")
    base = by_name["f32"].sentences_per_s
    accurate = [m for m in measurements if m.name != "f32" and m.min_cosine >= min_cosine]
    best = max(accurate, key=lambda m: m.sentences_per_s, default=None)
    if best is None or not best.sentences_per_s >= base * min_speedup:
        return "f32"
    return best.name


@dataclass(frozen=True)
class Choice:
    """What "auto" runs for one model and device, and the measurements it was chosen from."""

    precision: str
    model: str
    hint: str
    candidates: list[str]
    rates: dict[str, float]
    cosines: dict[str, float]
    key: str
    calibrated_at: str = ""
    calibration_ms: float = 0.0
    calibrated_now: bool = field(default=False, compare=False)

    def metrics(self) -> dict[str, Any]:
        """The step metrics that show what auto chose and why."""
        found: dict[str, Any] = {
            "precision_chosen": self.precision,
            "precision_model": self.model,
            "precision_rates": self.rates,
            "precision_cosines": self.cosines,
        }
        if self.calibrated_now:
            found["precision_calibration_ms"] = self.calibration_ms
        return found

    def describe(self) -> str:
        """One line for the log and the bench."""
        rates = ", ".join(
            f"{n} {r:.0f}/s (cosine {self.cosines.get(n, 0):.4f})" for n, r in self.rates.items()
        )
        return f"precision auto chose {self.precision} for {self.key}: {rates}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("calibrated_now")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Choice:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "calibrated_now"})


# What the machine offers


@lru_cache(maxsize=8)
def device_capabilities(device: str) -> tuple[str, ...]:
    """OPTIMIZATION_CAPABILITIES of `device` (BF16, FP16, INT8, ...); () when the device cannot say."""
    try:
        return tuple(str(c) for c in ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except (RuntimeError, TypeError):
        return ()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def calibration_key(model: str, device: str) -> str:
    """What a choice holds for: model, device, CPU model name and OpenVINO version."""
    return f"{model} | {device} | {cpu_name()} | OpenVINO {ov.get_version()}"


def _is_embedder(path: Path) -> bool:
    return (path / model_store.MODEL_XML).exists() and (path / model_store.TOKENIZER_XML).exists()


def candidates(model: str, device: str) -> list[Candidate]:
    """f32 first; then the hints the device supports; then the INT8 sibling folder when it exists."""
    found = [Candidate("f32", model, "f32")]
    capabilities = device_capabilities(device)
    found += [Candidate(hint, model, hint) for hint, needs in HINTS if needs in capabilities]
    sibling = model_jobs.int8_name(model)
    if sibling != model and _is_embedder(model_store.model_path(sibling)):
        found.append(Candidate("int8", sibling, "f32"))
    return found


# Calibration


def lowest_cosine(vectors: Vectors, reference: Vectors) -> float:
    """The lowest cosine between matching rows of two sets of vectors."""
    a, b = np.array(vectors, dtype=np.float64), np.array(reference, dtype=np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def measure(
    found: Sequence[Candidate], load: Callable[[Candidate], Embedder], *, rounds: int | None = None
) -> list[Measurement]:
    """Compile every candidate with `load`, then time them in interleaved rounds on SENTENCES.

    A candidate other than f32 that fails to compile is left out (logged). Each one's first call
    is the warm-up whose vectors are compared with f32's; the best of `rounds` (ROUNDS) timed
    rounds gives its sentences/s.
    """
    embedders: dict[str, Embedder] = {}
    for candidate in found:
        try:
            embedders[candidate.name] = load(candidate)
        except Exception as exc:  # noqa: BLE001 - a candidate that does not compile is not a choice
            if candidate.name == "f32":
                raise
            log.warning("precision auto: %s of %s did not load: %s", candidate.name, candidate.model, exc)
    reference = embedders["f32"](list(SENTENCES))
    cosines = {name: lowest_cosine(embed(list(SENTENCES)), reference) for name, embed in embedders.items()}
    texts = list(SENTENCES) * REPEAT
    best = dict.fromkeys(embedders, 0.0)
    names = list(embedders)
    for i in range(rounds or ROUNDS):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # each round starts elsewhere
            started = time.perf_counter()
            embedders[name](texts)
            best[name] = max(best[name], len(texts) / max(time.perf_counter() - started, 1e-9))
    return [Measurement(n, round(best[n], 1), round(cosines[n], 5)) for n in names]


Measure = Callable[[Sequence[Candidate], Callable[[Candidate], Embedder]], list[Measurement]]


# Remembered choices


def cache_path() -> Path:
    """`<data_dir>/openvino/precision-auto.json`."""
    return node_environment().data_dir / "openvino" / CACHE_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, key: str, choice: Choice) -> None:
    """Add `choice` to the file: written to a temporary file beside it, then renamed over it."""
    data = {**_read(path), key: choice.as_json()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_memory: dict[tuple[str, str], Choice] = {}
_guard = threading.Lock()


def forget() -> None:
    """Drop this process's remembered choices (the file stays)."""
    with _guard:
        _memory.clear()


def _remembered(data: dict[str, Any] | None, names: list[str]) -> Choice | None:
    if not isinstance(data, dict) or data.get("candidates") != names:
        return None
    try:
        choice = Choice.from_json(data)
    except TypeError:
        return None
    return choice if choice.precision in names else None


def choose(
    model: str,
    device: str,
    load: Callable[[Candidate], Embedder],
    *,
    measure_with: Measure = measure,
    recalibrate: bool = False,
) -> Choice:
    """What auto runs for `model` on `device`: remembered (memory, then the file) or calibrated now.

    Calibration holds a file lock, so workers of one machine neither measure at the same time
    (they would slow each other down) nor twice: the second finds the first one's choice.
    """
    found = candidates(model, device)
    names = [c.name for c in found]
    key = calibration_key(model, device)
    path = cache_path()
    with _guard:
        hit = _memory.get((str(path), key))
        if hit is not None and hit.candidates == names and not recalibrate:
            return hit
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            choice = None if recalibrate else _remembered(_read(path).get(key), names)
            if choice is not None:
                log.info("%s (remembered in %s)", choice.describe(), path)
            else:
                started = time.perf_counter()
                measurements = measure_with(found, load)
                chosen = next(c for c in found if c.name == select(measurements))
                choice = Choice(
                    precision=chosen.name,
                    model=chosen.model,
                    hint=chosen.hint,
                    candidates=names,
                    rates={m.name: m.sentences_per_s for m in measurements},
                    cosines={m.name: m.min_cosine for m in measurements},
                    key=key,
                    calibrated_at=datetime.now(UTC).isoformat(),
                    calibration_ms=round((time.perf_counter() - started) * 1000, 3),
                    calibrated_now=True,
                )
                _write(path, key, choice)
                log.info("%s (calibrated in %.0f ms)", choice.describe(), choice.calibration_ms)
        _memory[(str(path), key)] = Choice.from_json(choice.as_json())  # later calls: not "calibrated now"
        return choice
