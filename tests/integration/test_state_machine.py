"""State-machine mode: the design's example with a retry loop and a human approval resumed via the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.runs import start_run
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


@pytest.fixture
def api(api_client) -> TestClient:
    """The API app with an operator's key (operators run and approve)."""
    return api_client("operator")


def review_workflow(max_visits: int = 10):
    return workflow(
        [
            node("START", "start"),
            # Fails its first visit (reports an error status) and succeeds on the retry through ERROR.
            node(
                "PROCESSING",
                "tool.python",
                tool="echo",
                args={"value": "{{ 'error' if run.visit == 1 else 'ok' }}"},
            ),
            node("ERROR", "tool.python", tool="echo", args={"value": "retrying"}),
            node(
                "REVIEW",
                "human.approval",
                title="Review order {{ input.order }}",
                fields=[{"name": "note", "label": "Note", "kind": "text", "required": True}],
            ),
            node("APPROVED", "tool.python", tool="echo", args={"value": "{{ ports.in.form.note }}"}),
            node("REJECTED", "end"),
            node("COMPLETE", "end"),
        ],
        [
            ("START", "PROCESSING"),
            ("PROCESSING", "ERROR", None, "output == 'error'"),
            ("PROCESSING", "REVIEW", None, "output == 'ok'"),
            ("ERROR", "PROCESSING"),
            ("REVIEW", "APPROVED", "approved"),
            ("REVIEW", "REJECTED", "rejected"),
            ("APPROVED", "COMPLETE"),
        ],
        mode="state_machine",
        policy={"max_visits": max_visits},
    )


def test_design_example_retries_processing_waits_for_review_and_completes(api: TestClient):
    run_id = start_run(review_workflow(), {"order": "A-17"})
    wait_for_step(run_id, "REVIEW", "waiting")

    pending = api.get("/api/approvals").json()
    approval = next(a for a in pending if a["run_id"] == run_id)
    assert approval["title"] == "Review order A-17"

    # A form missing its required field is refused with the field named, and changes nothing.
    bad = api.post(f"/api/approvals/{approval['id']}/decision", json={"action": "approved", "form": {}})
    assert bad.status_code == 422 and "note" in bad.json()["detail"]

    ok = api.post(
        f"/api/approvals/{approval['id']}/decision",
        json={"action": "approved", "form": {"note": "ship it"}, "comment": "fine"},
    )
    assert ok.status_code == 200, ok.text
    again = api.post(
        f"/api/approvals/{approval['id']}/decision", json={"action": "rejected", "form": {"note": "no"}}
    )
    assert again.status_code == 409 and "already approved" in again.json()["detail"]

    view = wait_for_run(run_id)
    assert view.status == "succeeded", view.error
    path = [(s["node_id"], s["visit"]) for s in view.steps]
    assert path == [
        ("START", 1),
        ("PROCESSING", 1),
        ("ERROR", 1),
        ("PROCESSING", 2),
        ("REVIEW", 1),
        ("APPROVED", 1),
        ("COMPLETE", 1),
    ]
    assert view.outputs == {"out": "ship it"}

    run = api.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded" and len(run["steps"]) == 7


def test_rejection_takes_the_rejected_transition(api: TestClient):
    run_id = start_run(review_workflow(), {"order": "B-2"})
    wait_for_step(run_id, "REVIEW", "waiting")
    approval = next(a for a in api.get("/api/approvals").json() if a["run_id"] == run_id)
    r = api.post(
        f"/api/approvals/{approval['id']}/decision", json={"action": "rejected", "form": {"note": "x"}}
    )
    assert r.status_code == 200
    view = wait_for_run(run_id)
    assert view.status == "succeeded"
    assert [s["node_id"] for s in view.steps][-1] == "REJECTED"


def test_loop_guard_fails_the_run_when_a_state_is_visited_too_often():
    defn = workflow(
        [
            node("START", "start"),
            node("SPIN", "tool.python", tool="echo", args={"value": 1}),
            node("END", "end"),
        ],
        [("START", "SPIN"), ("SPIN", "SPIN", None, "output == 1"), ("SPIN", "END")],
        mode="state_machine",
        policy={"max_visits": 3},
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "failed"
    assert 'state "SPIN" would be visited 4 times; the limit is 3' in view.error


def test_unknown_approval_is_404_and_bad_action_is_422(api: TestClient):
    assert (
        api.post(
            "/api/approvals/00000000-0000-0000-0000-000000000000/decision", json={"action": "approved"}
        ).status_code
        == 404
    )
    run_id = start_run(review_workflow(), {"order": "C-3"})
    wait_for_step(run_id, "REVIEW", "waiting")
    approval = next(a for a in api.get("/api/approvals").json() if a["run_id"] == run_id)
    r = api.post(f"/api/approvals/{approval['id']}/decision", json={"action": "maybe", "form": {"note": "x"}})
    assert r.status_code == 422 and "maybe" in r.json()["detail"]
    assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
