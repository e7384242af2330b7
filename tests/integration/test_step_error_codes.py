"""A failed step keeps what its error names: the ErrorCode and the field, on its error port and its event."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.runs import start_run
from models.db import get_engine
from models.tables import Event
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def _failed_event(pg_url: str, run_id: str) -> dict:
    with get_engine(pg_url).connect() as conn:
        payload = conn.execute(
            select(Event.payload).where(Event.run_id == run_id, Event.event_type == "workflow.step.failed")
        ).scalar_one()
    return payload["data"]


def test_a_node_named_error_reaches_the_error_port_and_the_failed_event(pg_url):
    defn = workflow(
        [
            node("start", "start"),
            node("q", "tool.sql", connection="nowhere", query="select 1"),
            node("end", "end"),
        ],
        [("start", "q"), ("q", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    step = steps_by_node(view)["q"]
    assert view.status == "failed" and step["status"] == "failed"
    error = step["outputs"]["error"]
    assert (error["code"], error["field"]) == ("connection_unknown", "connection")
    assert "unknown connection 'nowhere'" in error["message"] or "no SQL connections" in error["message"]
    data = _failed_event(pg_url, view.id)
    assert (data["error_code"], data["error_field"]) == ("connection_unknown", "connection")


def test_a_timeout_and_a_config_rendered_invalid_have_their_own_codes(pg_url):
    slow = workflow(
        [node("start", "start"), node("w", "tool.python", tool="sleep", args={"seconds": 5}, timeout_s=0.3),
         node("end", "end")],
        [("start", "w"), ("w", "end")],
    )  # fmt: skip
    error = steps_by_node(wait_for_run(start_run(slow, {})))["w"]["outputs"]["error"]
    assert (error["code"], error["field"]) == ("step_timeout", "timeout_s")

    rendered = workflow(
        [node("start", "start"), node("q", "tool.sql", connection="db", query="select 1", max_rows="{{ input.n }}"),
         node("end", "end")],
        [("start", "q"), ("q", "end")],
    )  # fmt: skip
    error = steps_by_node(wait_for_run(start_run(rendered, {"n": "many"})))["q"]["outputs"]["error"]
    assert (error["code"], error["field"]) == ("config_invalid", "config.max_rows")
