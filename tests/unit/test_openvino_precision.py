"""Precision "auto" of the OpenVINO embedder: the selection rule, the candidates tried, the remembered choice.

No model is loaded: calibration gets fake loaders (vectors chosen here) or a fake measurement, so
what is picked does not depend on how fast this machine happens to be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from engine.settings import get_settings
from nodes.openvino import model_store, precision_auto
from nodes.openvino.precision_auto import Candidate, Measurement, select

MODEL = "emb-fp32"
SIBLING = "emb-int8"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data dir with model folders `emb-fp32` (and no INT8 copy yet); the device lists BF16 only."""
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    _model_folder(tmp_path, MODEL)
    monkeypatch.setattr(precision_auto, "device_capabilities", lambda device: ("BF16", "FP32", "INT8"))
    precision_auto.forget()
    yield tmp_path
    precision_auto.forget()
    get_settings.cache_clear()


def _model_folder(data_dir: Path, name: str) -> None:
    folder = data_dir / "models" / name
    folder.mkdir(parents=True)
    for file in (model_store.MODEL_XML, model_store.TOKENIZER_XML):
        (folder / file).write_text("<net/>")


class FakeMeasure:
    """Stands in for calibration: records what it was asked to measure and returns fixed figures."""

    def __init__(self, figures: dict[str, tuple[float, float]]) -> None:
        self.figures = figures  # name -> (sentences/s, lowest cosine)
        self.calls: list[list[str]] = []

    def __call__(self, found: Sequence[Candidate], load: object) -> list[Measurement]:
        self.calls.append([c.name for c in found])
        return [Measurement(c.name, *self.figures[c.name]) for c in found]


def _no_load(candidate: Candidate) -> precision_auto.Embedder:
    raise AssertionError(f"nothing should be compiled here ({candidate.name})")


def test_the_fastest_candidate_that_keeps_the_cosine_bar_is_picked():
    measured = [
        Measurement("f32", 100, 1.0),
        Measurement("bf16", 150, 0.999),
        Measurement("int8", 130, 0.995),
    ]
    assert select(measured) == "bf16"
    assert select([Measurement("f32", 100, 1.0), Measurement("int8", 130, 0.99)]) == "int8"  # the bar itself


def test_a_faster_candidate_below_the_cosine_bar_is_never_picked():
    measured = [
        Measurement("f32", 100, 1.0),
        Measurement("int8", 900, 0.9899),
        Measurement("bf16", 120, 0.999),
    ]
    assert select(measured) == "bf16"
    assert select([Measurement("f32", 100, 1.0), Measurement("int8", 900, 0.97)]) == "f32"
    assert select([Measurement("f32", 100, 1.0), Measurement("bf16", 900, math.nan)]) == "f32"


def test_f32_stays_unless_another_is_measurably_faster():
    assert select([Measurement("f32", 100, 1.0), Measurement("bf16", 104.9, 0.999)]) == "f32"
    assert select([Measurement("f32", 100, 1.0), Measurement("bf16", 105, 0.999)]) == "bf16"
    assert select([Measurement("f32", 100, 1.0), Measurement("bf16", 80, 0.999)]) == "f32"  # slower
    assert select([Measurement("f32", 100, 1.0)]) == "f32"
    with pytest.raises(ValueError, match="f32"):
        select([Measurement("bf16", 100, 1.0)])


def test_only_hints_the_device_supports_are_tried(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    assert [c.name for c in precision_auto.candidates(MODEL, "CPU")] == ["f32", "bf16"]
    monkeypatch.setattr(precision_auto, "device_capabilities", lambda device: ("FP32", "INT8"))
    fake = FakeMeasure({"f32": (100, 1.0)})
    choice = precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake)
    assert fake.calls == [["f32"]]  # neither bf16 nor f16: the device does not list them
    assert choice.precision == "f32" and choice.hint == "f32"
    monkeypatch.setattr(precision_auto, "device_capabilities", lambda device: ("FP16",))
    assert [c.name for c in precision_auto.candidates(MODEL, "GPU")] == ["f32", "f16"]


def test_the_int8_sibling_is_a_candidate_once_it_exists_and_runs_its_own_folder(data_dir: Path):
    _model_folder(data_dir, SIBLING)
    found = precision_auto.candidates(MODEL, "CPU")
    assert found[-1] == Candidate("int8", SIBLING, "f32")
    fake = FakeMeasure({"f32": (100, 1.0), "bf16": (104, 0.9999), "int8": (180, 0.995)})
    choice = precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake)
    assert (choice.precision, choice.model, choice.hint) == ("int8", SIBLING, "f32")
    assert choice.metrics()["precision_chosen"] == "int8"
    assert choice.metrics()["precision_rates"] == {"f32": 100, "bf16": 104, "int8": 180}
    assert choice.metrics()["precision_cosines"]["int8"] == 0.995


def test_the_choice_is_remembered_on_disk_and_reused_without_calibrating(data_dir: Path):
    fake = FakeMeasure({"f32": (100, 1.0), "bf16": (160, 0.999)})
    first = precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake)
    assert first.precision == "bf16" and first.calibrated_now
    assert "precision_calibration_ms" in first.metrics()
    stored = json.loads(precision_auto.cache_path().read_text())
    key = precision_auto.calibration_key(MODEL, "CPU")
    assert precision_auto.cache_path() == data_dir / "openvino" / "precision-auto.json"
    assert stored[key]["precision"] == "bf16" and stored[key]["rates"] == {"f32": 100, "bf16": 160}
    assert MODEL in key and "CPU" in key and precision_auto.cpu_name() in key and "OpenVINO" in key

    again = precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake)  # this process remembers
    precision_auto.forget()  # a new worker process: only the file is left
    from_disk = precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake)
    assert len(fake.calls) == 1
    assert again.precision == from_disk.precision == "bf16"
    assert not again.calibrated_now and not from_disk.calibrated_now
    assert "precision_calibration_ms" not in from_disk.metrics()
    assert list(data_dir.joinpath("openvino").glob("*.tmp")) == []  # written atomically, nothing left over

    precision_auto.choose(MODEL, "GPU", _no_load, measure_with=fake)  # another device: its own calibration
    assert len(fake.calls) == 2
    assert len(json.loads(precision_auto.cache_path().read_text())) == 2


def test_new_candidates_or_a_damaged_file_mean_calibrating_again(data_dir: Path):
    fake = FakeMeasure({"f32": (100, 1.0), "bf16": (101, 0.999), "int8": (200, 0.999)})
    assert precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake).precision == "f32"
    _model_folder(data_dir, SIBLING)  # an INT8 copy was made since
    assert precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake).precision == "int8"
    assert fake.calls == [["f32", "bf16"], ["f32", "bf16", "int8"]]
    precision_auto.forget()
    precision_auto.cache_path().write_text("{not json")
    assert precision_auto.choose(MODEL, "CPU", _no_load, measure_with=fake).precision == "int8"
    assert len(fake.calls) == 3


def test_calibration_compares_with_f32_vectors_and_drops_an_inaccurate_candidate(data_dir: Path):
    _model_folder(data_dir, SIBLING)
    compiled: list[str] = []

    def load(candidate: Candidate) -> precision_auto.Embedder:
        compiled.append(candidate.name)

        def embed(texts: list[str]) -> list[list[float]]:
            if candidate.name == "int8":  # instant, but wrong: every vector points elsewhere
                return [[1.0, 0.0, 0.0] if i % 2 else [0.0, 1.0, 0.0] for i, _ in enumerate(texts)]
            return [[1.0, 1.0, float(len(t) % 3)] for t in texts]  # bf16 and f32 agree

        return embed

    choice = precision_auto.choose(MODEL, "CPU", load)
    assert compiled == ["f32", "bf16", "int8"]
    assert choice.cosines["bf16"] == pytest.approx(1.0) and choice.cosines["f32"] == pytest.approx(1.0)
    assert choice.cosines["int8"] < precision_auto.MIN_COSINE
    assert set(choice.rates) == {"f32", "bf16", "int8"} and all(r > 0 for r in choice.rates.values())
    assert choice.precision in ("f32", "bf16")  # whichever was faster; never the inaccurate one


def test_a_candidate_that_fails_to_compile_is_left_out(data_dir: Path):
    def load(candidate: Candidate) -> precision_auto.Embedder:
        if candidate.name == "bf16":
            raise RuntimeError("bf16 is not supported by this plugin")
        return lambda texts: [[1.0, 0.5] for _ in texts]

    choice = precision_auto.choose(MODEL, "CPU", load)
    assert choice.precision == "f32" and set(choice.rates) == {"f32"}
