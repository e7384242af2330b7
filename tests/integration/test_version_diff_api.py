"""GET /api/workflows/{id}/versions/diff: two saved versions compared through the REST API, typed in
the OpenAPI document, readable by viewers, credentials hidden."""

from __future__ import annotations

import uuid

DIFF = "/api/workflows/{workflow_id}/versions/diff"


def _definition(url: str, authorization: str, extra_nodes: list[dict] | None = None) -> dict:
    return {
        "name": "diffed",
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
            {
                "id": "fetch",
                "type": "tool.http",
                "config": {"url": url, "headers": {"Authorization": authorization}},
                "position": {"x": 240, "y": 0},
            },
            {"id": "done", "type": "end", "position": {"x": 480, "y": 0}},
            *(extra_nodes or []),
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "fetch"},
            {"id": "e2", "source": "fetch", "target": "done"},
        ],
        "annotations": {"notes": [{"id": "n1", "text": "fetches the page"}]},
    }


def test_diff_of_two_saved_versions(api_client) -> None:
    editor, viewer = api_client("editor"), api_client("viewer")
    wid = editor.post("/api/workflows", json={"name": "Diffed"}).json()["id"]
    first = _definition("https://example.com/a", "Bearer sk-first-0000")
    second = _definition(
        "https://example.com/b",
        "Bearer sk-second-1111",
        [{"id": "wait", "type": "delay", "config": {"seconds": 2}, "position": {"x": 240, "y": 160}}],
    )
    second["edges"].append({"id": "e3", "source": "fetch", "target": "wait"})
    second["annotations"] = {
        "notes": [],
        "groups": [{"id": "g1", "title": "Work", "nodes": ["fetch", "wait"]}],
    }
    for body in (first, second):
        assert editor.post(f"/api/workflows/{wid}/versions", json={"definition": body}).status_code == 201

    answer = viewer.get(f"/api/workflows/{wid}/versions/diff", params={"from": 1, "to": 2})
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert (diff["workflow_id"], diff["from_version"], diff["to_version"]) == (wid, 1, 2)
    assert {(c["id"], c["kind"]) for c in diff["nodes"]} == {("fetch", "changed"), ("wait", "added")}
    assert [(c["id"], c["kind"], c["summary"]) for c in diff["edges"]] == [
        ("e3", "added", "fetch.out -> wait.in")
    ]
    assert {(c["id"], c["kind"]) for c in diff["annotations"]} == {("n1", "removed"), ("g1", "added")}
    fields = {f["path"]: f for f in next(c for c in diff["nodes"] if c["id"] == "fetch")["fields"]}
    assert (fields["config.url"]["before"], fields["config.url"]["after"]) == (
        "https://example.com/a",
        "https://example.com/b",
    )
    assert fields["config.headers.Authorization"]["redacted"] is True
    assert "sk-first-0000" not in answer.text and "sk-second-1111" not in answer.text

    # Backwards is the mirror image; a version against itself is empty.
    back = viewer.get(f"/api/workflows/{wid}/versions/diff", params={"from": 2, "to": 1}).json()
    assert {(c["id"], c["kind"]) for c in back["nodes"]} == {("fetch", "changed"), ("wait", "removed")}
    same = viewer.get(f"/api/workflows/{wid}/versions/diff", params={"from": 2, "to": 2}).json()
    assert same["nodes"] == same["edges"] == same["annotations"] == same["workflow"] == []

    # Missing versions and workflows are problems with their codes; bad numbers are 422.
    missing = viewer.get(f"/api/workflows/{wid}/versions/diff", params={"from": 1, "to": 9})
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
    nobody = viewer.get(f"/api/workflows/{uuid.uuid4()}/versions/diff", params={"from": 1, "to": 2})
    assert nobody.status_code == 404 and nobody.json()["code"] == "workflow_not_found"
    assert viewer.get(f"/api/workflows/{wid}/versions/diff", params={"from": 0, "to": 2}).status_code == 422
    assert viewer.get(f"/api/workflows/{wid}/versions/diff", params={"to": 2}).status_code == 422
    # The route does not shadow reading a version by number.
    assert viewer.get(f"/api/workflows/{wid}/versions/2").json()["version"] == 2


def test_the_diff_is_typed_in_the_openapi_document(api_client) -> None:
    doc = api_client("viewer").get("/api/openapi.json").json()
    operation = doc["paths"][DIFF]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"workflow_id", "from", "to"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["required"]) >= {
        "nodes",
        "edges",
        "annotations",
        "workflow",
        "from_version",
        "to_version",
    }
    item = doc["components"]["schemas"]["ItemChangePublic"]
    assert item["properties"]["kind"]["enum"] == ["added", "removed", "changed", "moved"]
