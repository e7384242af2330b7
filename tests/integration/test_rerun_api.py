"""POST /api/runs/{id}/rerun and /fork by role: operators start a saved version's run again, an
inline definition's run needs an editor, viewers are refused, and bad requests say why."""

from __future__ import annotations

import uuid

import pytest

from app.db import db_session
from engine import workflows
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def definition() -> dict:
    defn = workflow(
        [node("start", "start"), node("echo", "tool.python", tool="echo", args={"value": "{{ input.n }}"}),
         node("again", "tool.python", tool="echo", args={"value": "{{ steps.echo.output }}"}), node("end", "end")],
        [("start", "echo"), ("echo", "again"), ("again", "end")], name="echoer",
    ).to_dict()  # fmt: skip
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    return defn


def saved_run(client) -> dict:
    """A finished run of a saved workflow, started through the API."""
    with db_session() as session:
        workflow_id = workflows.create_workflow(session, f"echoer {uuid.uuid4().hex[:6]}").id
        workflows.save_version(session, workflow_id, definition())
    started = client.post(f"/api/workflows/{workflow_id}/runs", json={"inputs": {"n": 3}})
    assert started.status_code == 201, started.text
    wait_for_run(started.json()["id"])
    return client.get(f"/api/runs/{started.json()['id']}").json()


def test_an_operator_reruns_a_saved_run_from_a_step_and_gets_the_linked_run(api_client) -> None:
    operator = api_client("operator")
    first = saved_run(operator)
    answer = operator.post(f"/api/runs/{first['id']}/rerun", json={"node_id": "again"})
    assert answer.status_code == 201, answer.text
    new = answer.json()
    assert (
        new["source_run_id"] == first["id"]
        and new["source_kind"] == "rerun"
        and new["source_node_id"] == "again"
    )
    assert new["version"] == first["version"] and new["inputs"] == {"n": 3}
    assert new["started_by"].startswith("api_key:") and new["started_via"] == "api"
    wait_for_run(new["id"])
    done = operator.get(f"/api/runs/{new['id']}").json()
    old_steps = {s["node_id"]: s for s in first["steps"]}
    steps = {s["node_id"]: s for s in done["steps"]}
    assert steps["echo"]["reused_from"] == old_steps["echo"]["id"]
    assert steps["again"]["reused_from"] is None and done["status"] == "succeeded"
    assert done["outputs"] == first["outputs"]


def test_an_operator_forks_with_new_inputs_checked_against_the_schema(api_client) -> None:
    operator = api_client("operator")
    first = saved_run(operator)
    answer = operator.post(f"/api/runs/{first['id']}/fork", json={"inputs": {"n": 9}})
    assert answer.status_code == 201, answer.text
    view = wait_for_run(answer.json()["id"])
    assert view.inputs == {"n": 9} and steps_by_node(view)["echo"]["outputs"] == {"out": 9}
    refused = operator.post(f"/api/runs/{first['id']}/fork", json={"inputs": {"n": "nine"}})
    assert refused.status_code == 422
    assert [i["field"] for i in refused.json()["issues"]] == ["input.n"]
    assert operator.post(f"/api/runs/{first['id']}/fork", json={"inputs": {}, "x": 1}).status_code == 422


def test_viewers_may_not_rerun_or_fork(api_client) -> None:
    first = saved_run(api_client("operator"))
    viewer = api_client("viewer")
    assert viewer.post(f"/api/runs/{first['id']}/rerun", json={"node_id": "echo"}).status_code == 403
    assert viewer.post(f"/api/runs/{first['id']}/fork", json={"inputs": {"n": 1}}).status_code == 403


def test_a_run_of_an_inline_definition_is_started_again_only_by_editors(api_client) -> None:
    editor = api_client("editor")
    started = editor.post("/api/runs", json={"definition": definition(), "inputs": {"n": 1}})
    assert started.status_code == 201, started.text
    run_id = wait_for_run(started.json()["id"]).id
    operator = api_client("operator")
    refused = operator.post(f"/api/runs/{run_id}/rerun", json={"node_id": "echo"})
    assert refused.status_code == 403 and refused.json()["code"] == "inline_needs_editor"
    assert operator.post(f"/api/runs/{run_id}/fork", json={"inputs": {"n": 2}}).status_code == 403
    assert editor.post(f"/api/runs/{run_id}/rerun", json={"node_id": "echo"}).status_code == 201


def test_rerun_answers_404_for_an_unknown_run_and_422_for_a_step_it_never_ran(api_client) -> None:
    operator = api_client("operator")
    first = saved_run(operator)
    missing = operator.post(f"/api/runs/{uuid.uuid4()}/rerun", json={"node_id": "echo"})
    assert missing.status_code == 404 and missing.json()["code"] == "run_not_found"
    never = operator.post(f"/api/runs/{first['id']}/rerun", json={"node_id": "echo", "visit": 2})
    assert never.status_code == 422 and never.json()["code"] == "rerun_step_invalid"
    assert never.json()["node_id"] == "echo"


def test_the_rerun_and_fork_routes_are_documented_in_openapi(api_client) -> None:
    spec = api_client("viewer").get("/api/openapi.json").json()
    rerun = spec["paths"]["/api/runs/{run_id}/rerun"]["post"]
    assert {"201", "403", "404", "409", "422"} <= set(rerun["responses"])
    assert "RerunCreate" in spec["components"]["schemas"] and "ForkCreate" in spec["components"]["schemas"]
    assert "reused_from" in spec["components"]["schemas"]["StepPublic"]["properties"]
