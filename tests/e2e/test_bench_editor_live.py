"""bench/editor_live.py's core with a 2-step workflow against the real app in Chromium: it times
every node's step end (message, DOM change, frame, event row) and prints its lines. No timing is
asserted, only the order of things that cause each other."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from bench.editor import LIMITS
from bench.editor_live import create_live_workflow, frame_lags, live_definition, live_lines, measure_live


def test_the_live_view_bench_times_each_step_end_and_prints_its_lines(
    page: Page, app_server: str, pg_url: str, login_as: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in LIMITS:  # the bench raises the node caps in this process's env: undone after the test
        monkeypatch.delenv(key, raising=False)
    login_as(page, role="editor")
    definition = live_definition(steps=2, seconds=0.2)
    node_ids = [n["id"] for n in definition["nodes"]]
    assert node_ids == ["start", "s1", "s2", "end"]
    workflow_id = create_live_workflow(pg_url, definition)

    result = measure_live(page, app_server, pg_url, workflow_id, node_ids)

    for times in (result.arrived, result.changed, result.painted, result.event):
        assert set(times) == set(node_ids)  # one value per step end, each recognised
    for node in node_ids:
        # Written, then sent, then applied to the DOM, then drawn (the clock offset has the right sign).
        assert result.event[node] < result.arrived[node] <= result.changed[node] <= result.painted[node], node
    assert result.arrived["start"] <= result.arrived["s1"] < result.arrived["s2"] <= result.arrived["end"]
    assert len(frame_lags([result])) == 4 and result.messages > 0

    lines = live_lines([result], 2, 0.2)
    assert lines[0].startswith("Editor live view: 1 run(s) of start -> 2 sleep steps (0.2 s each) -> end")
    assert "step ends measured: 4 of 4" in lines[1]
    assert "message -> painted frame: p50" in lines[2] and "of 4 within one 60 Hz frame (16.7 ms)" in lines[2]
    assert "message -> DOM change: p50" in lines[3]
    assert "event row created_at -> message: p50" in lines[4] and "(4 step ends)" in lines[4]
