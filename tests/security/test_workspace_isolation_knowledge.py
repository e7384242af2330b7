"""Knowledge, memory, snippets and template copies of a workspace do not exist for another one.

Two workspaces, A and B, each with an editor; both have a knowledge collection "handbook" with a
document "policy.md" (other texts), A also a collection and memory B has nothing like. B's member
on the Knowledge page, in the editor's snippets and on the Templates page (real Reflex states)
sees and changes nothing of A, and A's ids answer like unknown ones. Runs in B (real workers, the
real embedder) retrieve nothing of A's knowledge or memory under the same names, and writing B's
memory under A's collection and document names leaves A's alone. A template used or imported in
B is a workflow of B, with the workflows it calls installed in B.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from app import knowledge
from app.auth.policy import API_POLICY
from app.db import db_session
from app.pages.editor.snippets_state import EditorSnippets
from app.pages.editor.state import EditorState
from app.pages.knowledge_state import KnowledgeState
from app.pages.templates_state import TemplatesState
from engine import jobs, snippets, template_gallery, workflow_calls, workflows, workspaces
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from models.memory import EMBEDDING_DIM, KnowledgeDocument
from models.snippets import Snippet
from models.tables import Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow
from tests.security.test_authorization import cookie_of, reflex_tab, session_client
from tests.security.test_workspace_isolation_runs import World, _path, _shape, key_in

# What B's member sends to each REST route of knowledge, memory, snippets and templates (the id in
# the path is A's or unknown). There is none yet: these live on their pages (Reflex handlers,
# walked below); a route added later fails test_every_knowledge_route_... until it has a body here.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {}
_ROUTE_WORDS = re.compile(r"knowledge|collection|document|memory|snippet|template")


def _walked_routes() -> list[tuple[str, str]]:
    return [(method, path) for method, path in API_POLICY if _ROUTE_WORDS.search(path)]


class KbWorld:
    """Workspaces A and B with an editor each, same-named knowledge in both, more in A."""

    def __init__(self, make_user) -> None:
        with db_session() as session:
            self.a = str(workspaces.create_workspace(session, slug="alpha", name="Alpha", actor="test").id)
            self.b = str(workspaces.create_workspace(session, slug="beta", name="Beta", actor="test").id)
        self.member_a = World._member(make_user("editor"), [self.a])
        self.member_b = World._member(make_user("editor"), [self.b])
        with db_session() as session:
            (self.doc_a,) = knowledge.add_documents(
                session, "handbook", [knowledge.Upload("policy.md", b"A: refunds within 30 days.")],
                workspace_id=self.a,
            )  # fmt: skip
            (self.only_a,) = knowledge.add_documents(
                session,
                "alpha-only",
                [knowledge.Upload("secret.md", b"A's secret plans.")],
                workspace_id=self.a,
            )
            (self.doc_b,) = knowledge.add_documents(
                session, "handbook", [knowledge.Upload("policy.md", b"B: the office opens at nine.")],
                workspace_id=self.b,
            )  # fmt: skip
            for doc_id in (self.doc_a, self.only_a):
                row = session.get(KnowledgeDocument, uuid.UUID(doc_id))
                row.status = "ready"
                session.add(row)
        # A's long-term memory (agent memory): chunks of a collection only A has.
        with get_engine(get_settings().database_url).begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO memory_chunks (id, collection, document_id, workspace_id, chunk_index, content,"
                    " embedding, created_at) VALUES (gen_random_uuid(), 'alpha-memory', 'm1', :w, 0, 'A remembers',"
                    " CAST(:e AS vector), now())"
                ),
                {"w": self.a, "e": str([1.0] * EMBEDDING_DIM)},
            )


@pytest.fixture
def kb(make_user) -> KbWorld:
    return KbWorld(make_user)


def _doc(doc_id: str) -> KnowledgeDocument:
    with db_session() as session:
        row = session.get(KnowledgeDocument, uuid.UUID(doc_id))
        assert row is not None
        session.expunge(row)
        return row


class _Upload:
    """A file as Reflex hands it to an upload handler."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.filename, self._data = name, name, data

    async def read(self, size: int = -1) -> bytes:
        return self._data


def test_every_knowledge_route_answers_a_guessed_id_of_another_workspace_like_an_unknown_one(
    kb: KbWorld,
) -> None:
    routes = _walked_routes()
    assert set(routes) <= set(BODIES), f"give the new route a body here: {set(routes) - set(BODIES)}"
    assert len(routes) == len(BODIES)
    # What of A's a new route's path may name (add the guess for a new kind of id here).
    guessed = {"{document_id}": kb.doc_a, "{collection}": "alpha-only"}
    for client in (session_client(kb.member_b), key_in(kb.member_b, kb.b, "editor")):
        for method, template in routes:
            mark = next(m for m in guessed if m in template)
            theirs, unknown = guessed[mark], str(uuid.uuid4())
            foreign = client.request(method, _path(template, theirs), json=BODIES[(method, template)])
            missing = client.request(method, _path(template, unknown), json=BODIES[(method, template)])
            assert foreign.status_code == 404, (method, template, foreign.status_code, foreign.text)
            assert _shape(foreign, theirs) == _shape(missing, unknown), (method, template)


def test_the_knowledge_doors_find_a_document_of_another_workspace_as_unknown(kb: KbWorld) -> None:
    with db_session() as session:
        assert knowledge.get_document(session, kb.doc_a, workspace_id=kb.b) is None
        assert knowledge.get_document(session, kb.doc_a, workspace_id=kb.a) is not None
        assert knowledge.delete_document(session, kb.doc_a, workspace_id=kb.b) is None
        assert knowledge.delete_document(session, "not-an-id", workspace_id=kb.b) is None
        assert [c.name for c in knowledge.collections(session, workspace_id=kb.b)] == ["handbook"]
        assert [str(d.id) for d in knowledge.documents(session, "handbook", workspace_id=kb.b)] == [kb.doc_b]
        assert knowledge.documents(session, "alpha-only", workspace_id=kb.b) == []
        assert knowledge.mark_queued(session, "handbook", workspace_id=kb.b) == 1
    assert _doc(kb.doc_a).status == "ready"
    with db_session() as session:
        in_a = {c.name: c for c in knowledge.collections(session, workspace_id=kb.a)}
    assert set(in_a) == {"handbook", "alpha-only", "alpha-memory"} and in_a["alpha-memory"].chunks == 1


def test_the_knowledge_page_of_a_member_of_b_shows_and_changes_nothing_of_a(kb: KbWorld) -> None:
    tab = reflex_tab(KnowledgeState, cookie_of(kb.member_b), "/knowledge", "/knowledge")
    KnowledgeState.load.fn(tab)
    assert [c.name for c in tab.collections] == ["handbook"] and tab.selected == "handbook"
    assert [d.id for d in tab.documents] == [kb.doc_b]
    KnowledgeState.select.fn(tab, "alpha-only")  # A's collection by name: empty in B
    assert tab.documents == [] and tab.error == ""
    KnowledgeState.select.fn(tab, "alpha-memory")
    assert tab.documents == [] and [c.chunks for c in tab.collections if c.name == "alpha-memory"] == [0]
    # Deleting A's document by its id removes nothing.
    KnowledgeState.ask_delete.fn(tab, kb.doc_a, "policy.md")
    assert KnowledgeState.delete.fn(tab) is None
    KnowledgeState.ask_delete.fn(tab, kb.only_a, "secret.md")
    assert KnowledgeState.delete.fn(tab) is None
    assert _doc(kb.doc_a).name == "policy.md" and _doc(kb.only_a).name == "secret.md"
    # Uploading "policy.md" into B's "handbook" replaces B's file of that name, never A's.
    KnowledgeState.select.fn(tab, "handbook")
    asyncio.run(KnowledgeState.upload.fn(tab, [_Upload("policy.md", b"B: the office opens at ten.")]))
    assert tab.error == ""
    assert _doc(kb.doc_b).content == b"B: the office opens at ten."
    assert _doc(kb.doc_a).content == b"A: refunds within 30 days."
    with db_session() as session:
        in_b = session.exec(
            select(KnowledgeDocument).where(KnowledgeDocument.workspace_id == uuid.UUID(kb.b))
        )
        assert [r.name for r in in_b] == ["policy.md"]
    # Re-indexing B's "handbook" queues B's document only.
    KnowledgeState.reindex.fn(tab)
    assert _doc(kb.doc_b).status == "queued" and _doc(kb.doc_a).status == "ready"
    # Deleting B's own document works (the refusals above were not a broken delete).
    KnowledgeState.ask_delete.fn(tab, kb.doc_b, "policy.md")
    assert KnowledgeState.delete.fn(tab) is not None
    with db_session() as session:
        assert knowledge.get_document(session, kb.doc_b, workspace_id=kb.b) is None
    # A's member sees A's knowledge on the same page.
    theirs = reflex_tab(KnowledgeState, cookie_of(kb.member_a), "/knowledge", "/knowledge")
    KnowledgeState.load.fn(theirs)
    assert [c.name for c in theirs.collections] == ["alpha-memory", "alpha-only", "handbook"]
    KnowledgeState.select.fn(theirs, "handbook")
    assert [d.id for d in theirs.documents] == [kb.doc_a]


def _snippet_definition(name: str) -> dict[str, Any]:
    return {
        "id": "snippets",
        "name": name,
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
            {"id": "wait", "type": "delay", "config": {"seconds": 1}, "position": {"x": 200, "y": 0}},
            {"id": "done", "type": "end", "position": {"x": 400, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "wait"},
            {"id": "e2", "source": "wait", "target": "done"},
        ],
    }


def test_the_editors_snippets_are_the_current_workspaces_only(kb: KbWorld) -> None:
    with db_session() as session:
        shared_a = snippets.save_snippet(
            session, name="A's shared step", fragment={"nodes": [_snippet_definition("x")["nodes"][1]], "edges": []},
            owner_id=kb.member_a.id, shared=True, workspace_id=kb.a,
        )  # fmt: skip
        shared_a_id = str(shared_a.id)
    workflow_b = World._workflow(kb.b, _snippet_definition("B's flow"), "B's flow")
    tab = reflex_tab(
        EditorState, cookie_of(kb.member_b), f"/workflows/{workflow_b}", "/workflows/[workflow_id]"
    )
    asyncio.run(EditorState.load.fn(tab))
    assert tab.loaded, tab.load_error
    asyncio.run(EditorState.select.fn(tab, ["wait"], []))
    snips = asyncio.run(tab.get_state(EditorSnippets))
    EditorSnippets.set_snippets_open.fn(snips, True)
    assert snips.snippet_rows == []  # A's shared snippet is not B's
    EditorSnippets.insert_snippet.fn(snips, shared_a_id)
    assert snips.snippet_error == "This snippet no longer exists."
    unknown = str(uuid.uuid4())
    EditorSnippets.delete_snippet.fn(snips, shared_a_id)
    refused_theirs = snips.snippet_error
    EditorSnippets.delete_snippet.fn(snips, unknown)
    assert refused_theirs == snips.snippet_error != ""  # as for an unknown id
    with db_session() as session:
        assert session.get(Snippet, uuid.UUID(shared_a_id)) is not None
    # A snippet saved in B is B's: listed there, not in A (also when shared).
    EditorSnippets.set_snippet_name.fn(snips, "B's wait")
    EditorSnippets.set_snippet_shared.fn(snips, True)
    EditorSnippets.save_snippet.fn(snips)
    assert snips.snippet_error == "" and [r.name for r in snips.snippet_rows] == ["B's wait"]
    with db_session() as session:
        saved = session.get(Snippet, uuid.UUID(snips.snippet_rows[0].id))
        assert str(saved.workspace_id) == kb.b
        in_a = snippets.list_snippets(session, kb.member_a.id, workspace_id=kb.a)
        assert [s.name for s in in_a] == ["A's shared step"]
        assert snippets.get_fragment(session, saved.id, kb.member_a.id, workspace_id=kb.a) is None
        assert snippets.get_fragment(session, saved.id, kb.member_b.id, workspace_id=kb.b) is not None


def _workspace_of(workflow_id: str) -> str:
    with db_session() as session:
        row = session.get(Workflow, uuid.UUID(workflow_id))
        assert row is not None
        return str(row.workspace_id)


def _called(definition: dict[str, Any]) -> list[str]:
    return [
        n["config"]["workflow_id"] for n in definition["nodes"] if "workflow_id" in (n.get("config") or {})
    ]


def test_a_template_used_or_imported_in_b_is_a_workflow_of_b_calling_workflows_of_b(kb: KbWorld) -> None:
    tab = reflex_tab(TemplatesState, cookie_of(kb.member_b), "/templates", "/templates")
    TemplatesState.use_template.fn(tab, "subworkflow-call")
    theirs = reflex_tab(TemplatesState, cookie_of(kb.member_a), "/templates", "/templates")
    TemplatesState.use_template.fn(theirs, "subworkflow-call")
    with db_session() as session:
        copies = {
            str(w.workspace_id): w
            for w in session.exec(select(Workflow).where(Workflow.name == "Call a sub-workflow"))
        }
    assert set(copies) == {kb.a, kb.b}  # one copy each, none in the default workspace
    bundled = template_gallery.get_template("subworkflow-call").subworkflows[0].id
    for workspace_id, copy in copies.items():
        with db_session() as session:
            definition = workflows.load_workflow(session, copy.id).definition
        (called,) = _called(definition)
        assert called != bundled and _workspace_of(called) == workspace_id
        assert workflow_calls.workspace_of(called) == workspace_id
    assert len({_called(_definition_of(c))[0] for c in copies.values()}) == 2  # each calls its own
    # The default workspace keeps the bundled id (as before workspaces).
    with db_session() as session:
        default = template_gallery.use_template(session, "subworkflow-call")
        assert _called(workflows.load_workflow(session, uuid.UUID(default.workflow_id)).definition) == [
            bundled
        ]
    assert _workspace_of(default.workflow_id) == str(DEFAULT_WORKSPACE_ID)
    # Importing a file in B: B's too, listed by B's API and not A's.
    bare = {**_snippet_definition("Imported in B"), "id": "imported"}
    listed_before = {w["id"] for w in session_client(kb.member_a).get("/api/workflows").json()}
    created = asyncio.run(
        TemplatesState.import_file.fn(tab, [_Upload("flow.json", json.dumps(bare).encode())])
    )
    assert tab.import_error == "", tab.import_error
    assert created is not None
    with db_session() as session:
        (imported,) = session.exec(select(Workflow).where(Workflow.name == "Imported in B"))
    assert str(imported.workspace_id) == kb.b
    listed_b = {w["id"] for w in session_client(kb.member_b).get("/api/workflows").json()}
    listed_a = {w["id"] for w in session_client(kb.member_a).get("/api/workflows").json()}
    assert {str(imported.id), str(copies[kb.b].id)} <= listed_b
    assert str(imported.id) not in listed_a and listed_a == listed_before


def _definition_of(copy: Workflow) -> dict[str, Any]:
    with db_session() as session:
        return workflows.load_workflow(session, copy.id).definition


# --- runs in B against A's knowledge and memory (real worker, real embedder) -------------------------


def _wait_for_job(job_id: str, timeout: float = 180.0) -> jobs.JobStatus:
    deadline = time.monotonic() + timeout
    status = jobs.status(job_id)
    while not status.done and time.monotonic() < deadline:
        time.sleep(0.2)
        status = jobs.status(job_id)
    assert status.done, f"job {job_id} did not finish: {status}"
    return status


def _run_in(workspace_id: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Run start -> nodes... -> end inline in `workspace_id`; each node's outputs by id."""
    chain = ["start", *[n["id"] for n in nodes], "end"]
    defn = workflow(
        [node("start", "start"), *nodes, node("end", "end")], list(zip(chain, chain[1:], strict=False))
    )
    view = wait_for_run(start_run(defn, {}, workspace_id=workspace_id), timeout=120)
    assert view.status == "succeeded", (view.error, [s.get("error") for s in view.steps])
    return {k: v.get("outputs") for k, v in steps_by_node(view).items()}


def _search(workspace_id: str, collection: str, query: str) -> list[dict[str, Any]]:
    found = _run_in(
        workspace_id, [node("search", "memory.search", collection=collection, text=query, top_k=10)]
    )
    return found["search"]["out"]


@pytest.mark.usefixtures("ai_env", "ai_worker", "clean_db")
def test_a_run_in_b_retrieves_nothing_of_as_knowledge_or_memory_under_the_same_names() -> None:
    with db_session() as session:
        a = str(workspaces.create_workspace(session, slug="alpha", name="Alpha", actor="test").id)
        b = str(workspaces.create_workspace(session, slug="beta", name="Beta", actor="test").id)
        (doc_a,) = knowledge.add_documents(
            session, "handbook", [knowledge.Upload("policy.md", b"Customers may return items within 30 days.")],
            chunk_size=200, chunk_overlap=20, workspace_id=a,
        )  # fmt: skip
        (doc_b,) = knowledge.add_documents(
            session, "handbook", [knowledge.Upload("policy.md", b"The Lisbon office opens at nine.")],
            chunk_size=200, chunk_overlap=20, workspace_id=b,
        )  # fmt: skip
    # Indexing in B with A's document id indexes nothing (and leaves A's document queued).
    status = _wait_for_job(knowledge.start_indexing(document_ids=[doc_a], workspace_id=b))
    assert status.result == {"indexed": 0, "failed": 0, "chunks": 0}, status
    assert _doc(doc_a).status == "queued"
    for workspace_id, doc_id in ((a, doc_a), (b, doc_b)):
        status = _wait_for_job(knowledge.start_indexing(document_ids=[doc_id], workspace_id=workspace_id))
        assert status.result == {"indexed": 1, "failed": 0, "chunks": 1}, status

    # Knowledge: B's run finds B's "handbook/policy.md" only; A's run A's.
    in_b = _search(b, "handbook", "How many days do I have to return an item?")
    assert [h["content"] for h in in_b] == ["The Lisbon office opens at nine."]
    in_a = _search(a, "handbook", "How many days do I have to return an item?")
    assert [h["content"] for h in in_a] == ["Customers may return items within 30 days."]

    # Memory: A's run remembers; B's run under the same collection finds nothing of it.
    _run_in(
        a,
        [
            node(
                "ingest",
                "memory.ingest",
                collection="notes",
                document_id="code",
                text="The vault code is 4711.",
            )
        ],
    )
    assert _search(b, "notes", "What is the vault code?") == []
    # B writes its own memory under A's collection and document id: A's stays, each sees its own.
    _run_in(
        b,
        [
            node(
                "ingest",
                "memory.ingest",
                collection="notes",
                document_id="code",
                text="B's door code is 1234.",
            )
        ],
    )
    assert [h["content"] for h in _search(a, "notes", "What is the code?")] == ["The vault code is 4711."]
    assert [h["content"] for h in _search(b, "notes", "What is the code?")] == ["B's door code is 1234."]
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT workspace_id::text, content FROM memory_chunks WHERE collection = 'notes' ORDER BY 1"
            )
        ).all()
    assert sorted(rows) == sorted([(a, "The vault code is 4711."), (b, "B's door code is 1234.")])
