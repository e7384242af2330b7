"""Building a workflow through the REST API with an API key only: create, validate, save versions,
list and read them, run each version and read the runs; a bad run-inputs schema; node types; the
OpenAPI document's security schemes and error answers."""

from __future__ import annotations

import uuid
from importlib import metadata

import pytest

from tests.integration.engine_helpers import wait_for_run

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def definition(prefix: str) -> dict:
    """start -> echo("<prefix><n>") -> end, with a run output and an inputs schema."""
    return {
        "id": "built",
        "name": "ignored: the workflow's name wins",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        "outputs": {"said": "{{ steps.echo.output }}"},
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "echo", "type": "tool.python", "config": {"tool": "echo", "args": {"value": prefix + "{{ input.n }}"}}},
            {"id": "end", "type": "end"},
        ],
        "edges": [{"id": "e1", "source": "start", "target": "echo"}, {"id": "e2", "source": "echo", "target": "end"}],
    }  # fmt: skip


def test_an_api_key_builds_validates_versions_and_runs_a_workflow(api_client) -> None:
    editor = api_client("editor")
    assert "cookie" not in {k.lower() for k in editor.headers}  # the key is the only credential

    created = editor.post("/api/workflows", json={"name": "Built by API", "description": "from a script"})
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert created.json()["latest_version"] == 0

    # Validation reports every issue with its place, and the plan once there is no error.
    broken = definition("v1:")
    broken["nodes"].append({"id": "ghost", "type": "tool.pyhton"})
    broken["edges"].append({"id": "e3", "source": "echo", "target": "nowhere"})
    report = editor.post("/api/validate", json={"definition": broken})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["ok"] is False and body["plan"] is None
    by_code = {i["code"]: i for i in body["issues"]}
    assert (
        by_code["unknown_node_type"]["node_id"] == "ghost" and by_code["unknown_node_type"]["field"] == "type"
    )
    assert "tool.python" in by_code["unknown_node_type"]["message"]  # the did-you-mean
    assert by_code["dangling_edge"]["edge_id"] == "e3" and by_code["dangling_edge"]["field"] == "target"
    assert all(
        set(i) == {"message", "code", "node_id", "edge_id", "field", "severity"} for i in body["issues"]
    )
    assert {i["severity"] for i in body["issues"]} <= {"error", "warning"}
    good = editor.post("/api/validate", json={"definition": definition("v1:")}).json()
    assert good == {"ok": True, "issues": [], "plan": [["start"], ["echo"], ["end"]]}
    unparsable = editor.post(
        "/api/validate", json={"definition": {"name": "x", "nodes": [{"id": "a"}]}}
    ).json()
    assert unparsable["ok"] is False
    assert [(i["code"], i["field"]) for i in unparsable["issues"]] == [
        ("definition_invalid", "nodes[0].type")
    ]

    # Two versions.
    v1 = editor.post(
        f"/api/workflows/{wid}/versions", json={"definition": definition("v1:"), "note": "first"}
    )
    assert v1.status_code == 201, v1.text
    assert v1.json()["version"] == 1 and v1.json()["validation"]["ok"] is True
    assert v1.json()["definition"]["name"] == "Built by API" and v1.json()["definition"]["version"] == 1
    v2 = editor.post(
        f"/api/workflows/{wid}/versions", json={"definition": definition("v2:"), "note": "second"}
    )
    assert v2.status_code == 201 and v2.json()["version"] == 2
    assert editor.get(f"/api/workflows/{wid}").json()["latest_version"] == 2

    listed = editor.get(f"/api/workflows/{wid}/versions").json()
    assert [(v["version"], v["note"], v["nodes"]) for v in listed["versions"]] == [
        (2, "second", 3),
        (1, "first", 3),
    ]
    assert listed["next_before"] is None
    first_page = editor.get(f"/api/workflows/{wid}/versions", params={"limit": 1}).json()
    assert [v["version"] for v in first_page["versions"]] == [2] and first_page["next_before"] == 2
    older = editor.get(f"/api/workflows/{wid}/versions", params={"limit": 1, "before": 2}).json()
    assert [v["version"] for v in older["versions"]] == [1] and older["next_before"] is None
    one = editor.get(f"/api/workflows/{wid}/versions/1").json()
    assert one["note"] == "first" and one["workflow_id"] == wid
    assert one["definition"]["nodes"][1]["config"]["args"]["value"] == "v1:{{ input.n }}"

    # Run version 1 and the latest (2), and read the runs.
    run1 = editor.post(f"/api/workflows/{wid}/runs", params={"version": 1}, json={"inputs": {"n": 7}})
    run2 = editor.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": 8}})
    assert run1.status_code == run2.status_code == 201, (run1.text, run2.text)
    for response, said, number in ((run1, "v1:7", 1), (run2, "v2:8", 2)):
        run_id = response.json()["id"]
        assert wait_for_run(run_id).status == "succeeded"
        read = editor.get(f"/api/runs/{run_id}").json()
        assert read["status"] == "succeeded" and read["outputs"] == {"said": said}
        # The run says what it ran: the workflow, the version and when.
        assert (read["workflow_id"], read["version"], read["trigger_id"]) == (wid, number, None)
        assert read["created_at"] <= read["started_at"] <= read["finished_at"]
        assert read["started_by"] == response.json()["started_by"] and read["started_by"].startswith(
            "api_key:"
        )
        steps = {s["node_id"]: s for s in read["steps"]}
        assert steps["echo"]["status"] == "succeeded" and steps["echo"]["metrics"]["duration_ms"] >= 0
    versions = {
        r["id"]: r["version"] for r in editor.get("/api/runs", params={"workflow_id": wid}).json()["runs"]
    }
    assert versions == {run1.json()["id"]: 1, run2.json()["id"]: 2}
    # Inputs are checked against the version's schema.
    refused = editor.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": "seven"}})
    assert refused.status_code == 422 and refused.json()["issues"][0]["field"] == "input.n"


def test_a_workflow_can_be_created_with_version_1_renamed_and_its_versions_are_404_elsewhere(
    api_client,
) -> None:
    editor = api_client("editor")
    created = editor.post("/api/workflows", json={"name": "Seeded", "definition": definition("s:")})
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert created.json()["latest_version"] == 1
    assert editor.get(f"/api/workflows/{wid}/versions/1").json()["definition"]["name"] == "Seeded"
    renamed = editor.patch(f"/api/workflows/{wid}", json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert renamed.json()["description"] == ""  # left out: unchanged

    missing = editor.get(f"/api/workflows/{wid}/versions/9")
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
    for response in (
        editor.get(f"/api/workflows/{uuid.uuid4()}/versions"),
        editor.post(f"/api/workflows/{uuid.uuid4()}/versions", json={"definition": definition("x")}),
        editor.patch(f"/api/workflows/{uuid.uuid4()}", json={"name": "x"}),
    ):
        assert response.status_code == 404 and response.json()["code"] == "workflow_not_found", response.text
    # A definition that does not parse creates nothing and says where.
    bad = editor.post("/api/workflows", json={"name": "Bad", "definition": {"nodes": "many"}})
    assert bad.status_code == 422 and bad.json()["code"] == "definition_invalid"
    assert [w["name"] for w in editor.get("/api/workflows").json()] == ["Renamed"]


def test_saving_and_building_need_the_editor_role(api_client) -> None:
    editor, viewer, operator = api_client("editor"), api_client("viewer"), api_client("operator")
    wid = editor.post("/api/workflows", json={"name": "Guarded"}).json()["id"]
    for client in (viewer, operator):
        refused = client.post(f"/api/workflows/{wid}/versions", json={"definition": definition("x")})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert client.patch(f"/api/workflows/{wid}", json={"name": "x"}).status_code == 403
    # Reading versions, validating and listing node types is for viewers too.
    assert viewer.get(f"/api/workflows/{wid}/versions").status_code == 200
    assert viewer.post("/api/validate", json={"definition": definition("x")}).json()["ok"] is True


@pytest.mark.parametrize(
    ("schema", "field", "words"),
    [
        ({"type": "strnig"}, "inputs.type", "not a JSON Schema type"),
        ({"type": "object", "properties": {"n": {"type": "strnig"}}}, "inputs.properties.n.type", "strnig"),
        ({"type": "object", "properties": {"n": {"$ref": "#/$defs/missing"}}}, "inputs.properties.n.$ref", "points to nothing"),
        ({"type": "object", "properties": {"n": {"minimum": "zero"}}}, "inputs.properties.n.minimum", "number"),
    ],
)  # fmt: skip
def test_a_bad_run_inputs_schema_fails_validation_naming_the_field(api_client, schema, field, words) -> None:
    editor = api_client("editor")
    defn = {**definition("x"), "inputs": schema}
    report = editor.post("/api/validate", json={"definition": defn}).json()
    assert report["ok"] is False, report
    issues = [(i["code"], i["field"]) for i in report["issues"]]
    assert issues == [("inputs_invalid", field)], report
    assert words in report["issues"][0]["message"]
    # Saved as a draft with the same issue; running it is a clear 422, not a server error.
    wid = editor.post("/api/workflows", json={"name": "Bad inputs"}).json()["id"]
    saved = editor.post(f"/api/workflows/{wid}/versions", json={"definition": defn})
    assert saved.status_code == 201 and saved.json()["validation"]["issues"] == report["issues"]
    run = editor.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": 1}})
    assert run.status_code == 422, run.text
    assert run.json()["code"] == "validation_failed" and run.json()["field"] == field


def test_node_types_come_with_their_config_schemas_and_ports(api_client) -> None:
    viewer = api_client("viewer")
    listed = viewer.get("/api/node-types")
    assert listed.status_code == 200
    types = {t["type"]: t for t in listed.json()}
    assert {"start", "end", "tool.http", "tool.python", "condition", "agent", "human.approval"} <= set(types)
    http = types["tool.http"]
    assert http["config_schema"]["type"] == "object" and "url" in http["config_schema"]["properties"]
    ports = [p for t in types.values() for p in (*t["inputs"].values(), *t["outputs"].values())]
    assert ports and all(set(p) == {"type", "required", "description"} for p in ports)
    condition = types["condition"]
    assert condition["dynamic_outputs"] is True and condition["branching"] is True
    assert "expression" in " ".join(condition["expression_fields"])
    one = viewer.get("/api/node-types/tool.http")
    assert one.status_code == 200 and one.json() == http
    unknown = viewer.get("/api/node-types/tool.nope")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_the_openapi_document_declares_security_errors_and_typed_answers(api_client) -> None:
    schema = api_client("viewer").get("/api/openapi.json").json()
    assert schema["info"]["version"] == metadata.version("flowloom")
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["session"] == {
        **schemes["session"],
        "type": "apiKey",
        "in": "cookie",
        "name": "flowloom_session",
    }
    paths = schema["paths"]
    assert paths["/api/health"]["get"]["security"] == []
    assert paths["/v1/chat/completions"]["post"]["security"] == [{"apiKey": []}]
    save = paths["/api/workflows/{workflow_id}/versions"]["post"]
    assert save["security"] == [{"apiKey": []}, {"session": []}]
    for status in ("401", "403", "404", "413", "422", "429"):
        assert save["responses"][status]["content"] == {
            "application/problem+json": {"schema": PROBLEM_REF}
        }, status
    assert "Retry-After" in save["responses"]["429"]["headers"]
    body = save["requestBody"]["content"]["application/json"]["schema"]
    assert schema["components"]["schemas"]["VersionCreate"]["properties"]["definition"]["$ref"] == (
        "#/components/schemas/WorkflowDefinition"
    ), body
    assert "NodeSpec" in schema["components"]["schemas"]
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    # Every route that needs a caller documents 401, 403 and 429; no error answer is untyped.
    for path, item in paths.items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation["security"]:
                assert {"401", "403", "429"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response.get("content"), (method, path, status)
    # Typed answers: the approval decision and the step metrics.
    decision = paths["/api/approvals/{approval_id}/decision"]["post"]["responses"]["200"]
    assert decision["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DecisionOutcome"
    }
    assert "metrics" in schema["components"]["schemas"]["StepPublic"]["properties"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_what_schemathesis_found_is_answered_as_a_client_error(api_client) -> None:
    """Each of these was a 500 before: a repeated trigger id (a unique index), a NUL character
    PostgreSQL cannot store, a body that is not JSON, and numbers past the database's integers."""
    editor, admin = api_client("editor"), api_client("admin")
    wid = editor.post("/api/workflows", json={"name": "Found"}).json()["id"]
    hook = {"id": "hook", "kind": "webhook", "config": {"secret": "s"}}
    twice = editor.post(
        f"/api/workflows/{wid}/versions", json={"definition": {**definition("x"), "triggers": [hook, hook]}}
    )
    assert twice.status_code == 201, twice.text  # saved as a draft; the validator names the duplicate
    assert ("duplicate_id", "triggers.hook.id") in {
        (i["code"], i["field"]) for i in twice.json()["validation"]["issues"]
    }
    assert len(editor.get(f"/api/workflows/{wid}/triggers").json()) == 1

    nul = editor.post("/api/workflows", json={"name": "a\u0000b"})
    assert (
        nul.status_code == 422 and nul.json()["code"] == "request_invalid" and "NUL" in nul.json()["detail"]
    )
    not_json = editor.post("/api/validate", content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code in (400, 422) and not_json.json()["code"] == "request_invalid"
    for response in (
        admin.get("/api/dead-letters", params={"offset": 2**64}),
        admin.get(f"/api/dead-letters/{2**64}"),
        editor.get(f"/api/workflows/{wid}/versions", params={"before": 2**40}),
        editor.post(f"/api/workflows/{wid}/runs", params={"version": 2**40}),
    ):
        assert response.status_code == 422, response.text
