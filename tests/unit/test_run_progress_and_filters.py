"""Progress of long steps (StepContext.progress, memory.ingest's batches), how the run page shows it,
and the Runs page's filters turned into engine.runs.list_runs arguments. No services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.pages.run_detail_view import duration, progress_of
from app.pages.run_filters import ANY, FilterError, RunFilters, from_params
from engine.contract import Embeddings, StepContext
from engine.contract import context as context_module
from engine.run_detail import StepProgress
from nodes.memory import memory_nodes

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> tuple[StepContext, list[dict[str, Any]], Clock]:
    """A step context whose events land in a list, on a hand-moved clock."""
    ctx = StepContext(run_id="r", step_id="s", node_id="ingest", node_type="memory.ingest", attempt=2)
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(ctx, "emit", lambda event_type, **data: written.append({"type": event_type, **data}))
    clock = Clock()
    monkeypatch.setattr(context_module.time, "monotonic", clock)
    return ctx, written, clock


def test_progress_writes_the_first_and_last_report_and_at_most_one_per_interval_between(reports) -> None:
    ctx, written, clock = reports
    assert ctx.progress(0, 10, "starting")
    assert not ctx.progress(1, 10)  # the same instant: coalesced
    clock.now += context_module.PROGRESS_INTERVAL_S
    assert ctx.progress(5, 10, "half")
    assert ctx.progress(10, 10, "done")  # the last one always, however soon
    assert [(w["type"], w["done"], w["total"], w["note"]) for w in written] == [
        ("workflow.step.progress", 0, 10, "starting"),
        ("workflow.step.progress", 5, 10, "half"),
        ("workflow.step.progress", 10, 10, "done"),
    ]
    clock.now += context_module.PROGRESS_INTERVAL_S
    assert ctx.progress(3, None, "x" * 1000)  # an unknown total, a long note cut
    assert written[-1]["total"] is None and len(written[-1]["note"]) == context_module.PROGRESS_NOTE_CHARS


@pytest.mark.parametrize(
    ("done", "total"), [(-1, 10), (float("nan"), 10), (True, 10), ("3", 10), (1, 0), (1, float("inf"))]
)
def test_progress_refuses_numbers_that_are_not_counts_naming_the_node(reports, done, total) -> None:
    ctx, written, _ = reports
    with pytest.raises(ValueError, match='node "ingest" \\(memory.ingest\\): progress'):
        ctx.progress(done, total)
    assert written == []


class FakeEmbedder:
    """Local models that embed each text as a fixed unit vector, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: list[str], **_: Any) -> Embeddings:
        self.calls.append(len(texts))
        vector = [1.0] + [0.0] * (memory_nodes.EMBEDDING_DIM - 1)
        first = len(self.calls) == 1
        return Embeddings([vector] * len(texts), "fake", {"model_load_ms": 5.0 if first else 0.0,
                                                          "inference_ms": 2.0, "model_cached": not first})  # fmt: skip


def test_ingest_embeds_in_batches_and_reports_each_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEmbedder()
    monkeypatch.setattr(memory_nodes, "local_models", lambda: fake)
    seen: list[tuple[int, int, str]] = []
    texts = [f"chunk {i}" for i in range(memory_nodes.EMBED_BATCH * 2 + 5)]
    done = memory_nodes._embed_batches(texts, 3, lambda *report: seen.append(report))
    total = len(texts)
    assert fake.calls == [memory_nodes.EMBED_BATCH, memory_nodes.EMBED_BATCH, 5]
    assert [(d, t) for d, t, _ in seen] == [(0, total), (64, total), (128, total), (total, total)]
    assert seen[-1][2] == f"embedded {total} of {total} chunks from 3 documents"
    assert len(done.vectors) == total
    assert done.metrics["inference_ms"] == 6.0 and done.metrics["model_load_ms"] == 5.0
    assert done.metrics["batches"] == 3 and done.metrics["model_cached"] is False

    one = FakeEmbedder()
    monkeypatch.setattr(memory_nodes, "local_models", lambda: one)
    small = memory_nodes._embed_batches(["a", "b"], 1, None)  # one batch: its metrics as they were
    assert one.calls == [2] and "batches" not in small.metrics


def test_the_run_page_shows_a_running_steps_progress_and_only_this_attempts() -> None:
    report = StepProgress(30, 120, "embedding", attempt=2, at=NOW)
    assert progress_of({"status": "running", "attempt": 2}, report) == (25, "30 / 120 · embedding")
    assert progress_of({"status": "running", "attempt": 3}, report) == (-1, "")  # an earlier attempt's
    assert progress_of({"status": "succeeded", "attempt": 2}, report) == (-1, "30 / 120 · embedding")
    unknown = StepProgress(7.5, None, "", attempt=None, at=NOW)
    assert progress_of({"status": "running", "attempt": 1}, unknown) == (0, "7.5")
    assert progress_of({"status": "running", "attempt": 1}, None) == (-1, "")
    assert duration(NOW, NOW + timedelta(milliseconds=250)) == "250 ms"
    assert duration(NOW, NOW + timedelta(minutes=5, seconds=3)) == "5 min 3 s"
    assert duration(NOW, None) == "—"


def test_filters_become_list_runs_arguments() -> None:
    f = RunFilters().changed("workflow", "w1").changed("status", "failed").changed("via", "trigger")
    f = f.changed("trigger", "t1").changed("who", "me").changed("search", "  invoice  ")
    assert f.query("u1", NOW) == {
        "workflow_id": "w1", "status": "failed", "started_via": "trigger", "trigger_id": "t1",
        "created_by": "u1", "search": "invoice",
    }  # fmt: skip
    assert f.changed("workflow", "w2").trigger == ANY  # another workflow's triggers do not apply
    assert RunFilters(who="me").query(None, NOW) == {"created_by": "nobody"}  # matches no run
    assert RunFilters(range="24h").query(None, NOW) == {"created_after": NOW - timedelta(days=1)}
    dated = RunFilters().changed("date_from", "2026-02-01").changed("date_to", "2026-02-03")
    assert dated.range == "custom"
    assert dated.query(None, NOW) == {
        "created_after": datetime(2026, 2, 1, tzinfo=UTC), "created_before": datetime(2026, 2, 4, tzinfo=UTC),
    }  # fmt: skip
    assert dated.changed("range", "7d").date_from == ""
    assert not RunFilters().active and f.active


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("status", "bogus", "status: 'bogus' is not one of"), ("via", "email", "via: 'email'"),
     ("range", "1y", "range: '1y'"), ("date_from", "02/01/2026", "from: '02/01/2026' is not a date"),
     ("owner", "x", "'owner' is not a filter")],
)  # fmt: skip
def test_a_bad_filter_is_refused_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        RunFilters().changed(name, value)


def test_a_links_query_names_filters_and_a_stale_value_is_dropped() -> None:
    assert from_params({}) is None
    got = from_params({"status": "failed", "workflow": "w1", "range": "forever", "via": ["cli"]})
    assert got == RunFilters(workflow="w1", status="failed", via="cli")
