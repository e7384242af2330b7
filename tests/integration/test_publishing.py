"""Four-eyes publishing: drafts, review by another editor, publish, rollback, and who runs what."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.db import db_session
from engine import publishing, trigger_fire, triggers, workflows
from engine.errors import ErrorCode, FlowloomError
from engine.settings import get_settings
from models.auth import AuditLog
from models.db import get_engine
from models.tables import Run, Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.integration.engine_helpers import node, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def definition(label: str) -> dict:
    defn = workflow(
        [node("start", "start"), node("echo", "tool.python", tool="echo", args={"value": label}), node("end", "end")],
        [("start", "echo"), ("echo", "end")], name="reviewed",
    ).to_dict()  # fmt: skip
    defn["triggers"] = [{"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}}]
    return defn


def _set_review(value: bool) -> None:
    with db_session() as session:
        publishing.set_require_review(session, DEFAULT_WORKSPACE_ID, value, role="admin")


@pytest.fixture
def review_required(auth_env) -> Iterator[None]:
    """The default workspace requires review for the test (and stops requiring it after)."""
    _set_review(True)
    yield
    _set_review(False)


def _published_v1(api_client) -> tuple[str, object]:
    """A workflow whose version 1 was saved (and so published) before review was switched on."""
    author = api_client("editor")
    with db_session() as session:
        required = publishing.requires_review_in(session, DEFAULT_WORKSPACE_ID)
    _set_review(False)
    with db_session() as session:
        wid = workflows.create_workflow(session, "reviewed").id
        workflows.save_version(session, wid, definition("one"), created_by=author.user.id)
    _set_review(required)
    return str(wid), author


def _save_draft(client, wid: str, label: str) -> int:
    """`label`'s definition saved by the user behind `client` (its author)."""
    with db_session() as session:
        number, _ = workflows.save_version(
            session, uuid.UUID(wid), definition(label), created_by=client.user.id
        )
    return number


def _version_of_run(run_id: str) -> int | None:
    with db_session() as session:
        run = session.get(Run, uuid.UUID(run_id))
        assert run is not None
        return workflows.version_number(session, run.version_id)


def _fire(wid: str, key: str) -> str:
    with get_engine(get_settings().database_url).connect() as conn:
        (hook,) = triggers.list_for_workflow(conn, wid)
    fired = trigger_fire.fire(hook, key, {})
    assert fired.run_id
    return fired.run_id


def _statuses(wid: str) -> dict[int, str]:
    with db_session() as session:
        return {v.version: v.status for v in workflows.list_versions(session, uuid.UUID(wid))}


def test_without_review_saving_publishes_and_operators_run_any_saved_version(auth_env, api_client) -> None:
    wid, author = _published_v1(api_client)
    assert _save_draft(author, wid, "two") == 2
    assert _statuses(wid) == {2: "published", 1: "superseded"}
    operator = api_client("operator")
    latest = operator.post(f"/api/workflows/{wid}/runs", json={})
    assert latest.status_code == 201 and _version_of_run(latest.json()["id"]) == 2
    assert operator.post(f"/api/workflows/{wid}/runs?version=1", json={}).status_code == 201
    assert _version_of_run(_fire(wid, "k-off")) == 2


@pytest.mark.usefixtures("review_required")
def test_a_draft_cannot_be_run_by_an_operator_an_api_key_or_a_trigger_when_review_is_required(
    api_client,
) -> None:
    wid, author = _published_v1(api_client)
    draft = _save_draft(author, wid, "two")
    assert _statuses(wid) == {2: "draft", 1: "published"}
    operator = api_client("operator")
    for refused in (
        operator.post(f"/api/workflows/{wid}/runs?version={draft}", json={}),
        operator.post("/api/runs", json={"workflow_id": wid, "version": draft}),
    ):
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == ErrorCode.VERSION_NOT_PUBLISHED
    # Without a version, callers get the published one; triggers run it too.
    default = operator.post("/api/runs", json={"workflow_id": wid})
    assert default.status_code == 201 and _version_of_run(default.json()["id"]) == 1
    assert _version_of_run(_fire(wid, "k-on")) == 1
    # Editors test-run the draft.
    tested = author.post(f"/api/workflows/{wid}/runs?version={draft}", json={})
    assert tested.status_code == 201 and _version_of_run(tested.json()["id"]) == draft


@pytest.mark.usefixtures("review_required")
def test_an_author_cannot_approve_their_own_version_and_states_are_enforced(api_client) -> None:
    wid, author = _published_v1(api_client)
    draft = _save_draft(author, wid, "two")
    base = f"/api/workflows/{wid}/versions/{draft}"
    too_early = author.post(f"{base}/publish")
    assert too_early.status_code == 409 and too_early.json()["code"] == ErrorCode.VERSION_STATE
    assert author.post(f"{base}/approve").status_code == 409  # not in review yet
    submitted = author.post(f"{base}/submit")
    assert submitted.status_code == 200 and submitted.json()["status"] == "in_review"
    own = author.post(f"{base}/approve", json={"note": "looks good to me"})
    assert own.status_code == 403 and own.json()["code"] == ErrorCode.SELF_REVIEW
    for role in ("viewer", "operator"):
        assert api_client(role).post(f"{base}/approve").status_code == 403
        assert api_client(role).post(f"{base}/submit").status_code == 403
    # An editor who submits someone else's version may not approve it either.
    with db_session() as session, pytest.raises(FlowloomError) as raised:
        other = api_client("editor").user
        publishing.reject(session, uuid.UUID(wid), draft, publishing.Actor(other.id, "editor"))
        publishing.submit(session, uuid.UUID(wid), draft, publishing.Actor(other.id, "editor"))
        publishing.approve(session, uuid.UUID(wid), draft, publishing.Actor(other.id, "editor"))
    assert raised.value.code == ErrorCode.SELF_REVIEW
    assert _statuses(wid)[draft] == "in_review"  # the refused transaction changed nothing


@pytest.mark.usefixtures("review_required")
def test_draft_to_published_through_a_second_editor_moves_the_triggers_and_is_audited(api_client) -> None:
    wid, author = _published_v1(api_client)
    draft = _save_draft(author, wid, "two")
    reviewer = api_client("editor")
    base = f"/api/workflows/{wid}/versions/{draft}"
    assert author.post(f"{base}/submit").status_code == 200
    approved = reviewer.post(f"{base}/approve", json={"note": "ship it"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["reviewed_by"] == str(reviewer.user.id)
    assert approved.json()["review_note"] == "ship it"
    published = author.post(f"{base}/publish")
    assert published.status_code == 200 and published.json()["published_version"] == draft
    assert _statuses(wid) == {2: "published", 1: "superseded"}
    assert _version_of_run(_fire(wid, "k-new")) == draft
    operator_run = api_client("operator").post(f"/api/workflows/{wid}/runs", json={})
    assert _version_of_run(operator_run.json()["id"]) == draft
    with db_session() as session:
        entries = session.exec(
            select(AuditLog.action, AuditLog.actor).where(
                AuditLog.target_id == wid, AuditLog.action.like("version.%")
            ).order_by(AuditLog.id)
        ).all()  # fmt: skip
    actions = [(a, actor.split(" (key ")[0]) for a, actor in entries if a != "version.saved"]
    assert actions == [
        ("version.submitted", author.user.email),
        ("version.approved", reviewer.user.email),
        ("version.published", author.user.email),
    ], actions


@pytest.mark.usefixtures("review_required")
def test_rollback_publishes_an_earlier_version_after_its_own_review(api_client) -> None:
    wid, author = _published_v1(api_client)
    draft = _save_draft(author, wid, "two")
    reviewer = api_client("editor")
    for client, step in ((author, "submit"), (reviewer, "approve"), (author, "publish")):
        assert client.post(f"/api/workflows/{wid}/versions/{draft}/{step}").status_code == 200
    # Back to version 1: it is reviewed again before it is live.
    assert author.post(f"/api/workflows/{wid}/versions/1/publish").status_code == 409
    assert reviewer.post(f"/api/workflows/{wid}/versions/1/submit").status_code == 200
    assert reviewer.post(f"/api/workflows/{wid}/versions/1/approve").status_code == 403  # the submitter
    assert api_client("editor").post(f"/api/workflows/{wid}/versions/1/approve").status_code == 200
    assert reviewer.post(f"/api/workflows/{wid}/versions/1/publish").status_code == 200
    with db_session() as session:
        row = session.get(Workflow, uuid.UUID(wid))
        assert row is not None and row.published_version == 1 and row.latest_version == draft
    assert _statuses(wid) == {2: "superseded", 1: "published"}
    assert _version_of_run(_fire(wid, "k-back")) == 1


def test_only_a_workspace_admin_changes_the_review_rule_and_the_change_is_audited(auth_env) -> None:
    with db_session() as session, pytest.raises(FlowloomError) as raised:
        publishing.set_require_review(session, DEFAULT_WORKSPACE_ID, True, role="editor")
    assert raised.value.code == ErrorCode.FORBIDDEN
    try:
        _set_review(True)
        with db_session() as session:
            actions = session.exec(
                select(AuditLog.action).where(AuditLog.target_id == str(DEFAULT_WORKSPACE_ID))
            ).all()
        assert ("workspace.review_required",) in actions
    finally:
        _set_review(False)
