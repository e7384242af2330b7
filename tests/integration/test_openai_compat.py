"""POST /v1/chat/completions and GET /v1/models: the official `openai` client against the API served
by granian on a loopback port, answered by chat workflows on real workers (a scripted model)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from app.auth import api_keys, sessions
from app.db import db_session
from engine.ops.services import find_free_port
from models.db import get_engine
from models.tables import Run
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.chat_helpers import chat_definition, save_chat_workflow
from tests.integration.conftest import TEST_SECRET_KEY

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")
REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # how long a test waits for something (never a measured duration)


@pytest.fixture(scope="module")
def server(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API app under granian; its base URL."""
    port = find_free_port()
    log_path = tmp_path_factory.mktemp("granian-v1") / "server.log"
    env = {
        **os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY, "FLOWLOOM_DATA_DIR": str(log_path.parent / "data"),
    }  # fmt: skip
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--no-ws", "app.api.main:api"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"granian did not come up:\n{log_path.read_text(errors='replace')[-3000:]}"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def llm(scripted_llm):  # noqa: F811 - the imported fixture
    scripted_llm.script()
    yield scripted_llm
    if scripted_llm.gate is not None:
        scripted_llm.gate.set()


def _key(make_user, role: str) -> str:
    with db_session() as session:
        _, key = api_keys.create(
            session, make_user(role), name=f"v1 {role}", role=role, rate_limit_per_min=6000
        )
    return key


def _client(server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=WAIT_S)


def test_the_openai_client_gets_answers_whole_and_streamed(server, llm, make_user, pg_url):
    llm.script(answer("Paris is the capital of France."), answer("And Berlin is the capital of Germany."))
    workflow_id, _ = save_chat_workflow(pg_url, chat_definition(llm, name="geography"))
    client = _client(server, _key(make_user, "operator"))
    assert "geography" in [m.id for m in client.models.list()]
    assert client.models.retrieve(workflow_id).id == workflow_id

    whole = client.chat.completions.create(
        model="geography",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "Capital of France?"},
        ],
        temperature=0.1,  # accepted, and left to the workflow
    )
    assert whole.object == "chat.completion" and whole.model == "geography"
    assert whole.choices[0].message.content == "Paris is the capital of France."
    assert whole.choices[0].finish_reason == "stop"
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens) == (12, 4, 16)

    llm.gate = threading.Event()  # the model holds its reply after the first token until we open it
    history = [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": whole.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "And Germany?"}]},
    ]
    deltas, run_status_at_first = [], None
    with client.chat.completions.create(
        model=workflow_id, messages=history, stream=True, stream_options={"include_usage": True}
    ) as stream:
        run_id = stream.response.headers["x-flowloom-run-id"]
        usage = None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.choices or not chunk.choices[0].delta.content:
                continue
            deltas.append(chunk.choices[0].delta.content)
            if len(deltas) == 1:  # the first token, while the model is still writing
                with get_engine(pg_url).connect() as conn:
                    run_status_at_first = conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
                llm.gate.set()
    assert run_status_at_first == "running" and deltas[0] == "And "
    assert "".join(deltas) == "And Berlin is the capital of Germany." and len(deltas) >= 2
    assert usage is not None and usage.total_tokens == 16
    # The earlier messages reached the model as the conversation (the system message did not).
    sent = [(m["role"], m["content"]) for m in llm.requests[-1]["body"]["messages"] if m["role"] != "system"]
    assert sent == [
        ("user", "Capital of France?"), ("assistant", "Paris is the capital of France."), ("user", "And Germany?"),
    ]  # fmt: skip


def test_a_workflow_that_does_not_stream_sends_its_answer_as_one_chunk(server, llm, make_user, pg_url):
    llm.script(answer("All in one go."))
    save_chat_workflow(pg_url, chat_definition(llm, name="plain", stream=False))
    with _client(server, _key(make_user, "operator")).chat.completions.create(
        model="plain", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as stream:
        deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas == ["All in one go."]


def test_refusals_are_openai_errors(server, llm, make_user, pg_url):
    llm.script(answer("unused"))
    save_chat_workflow(pg_url, chat_definition(llm, name="guarded"))
    operator = _client(server, _key(make_user, "operator"))
    ask = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.NotFoundError) as unknown:
        operator.chat.completions.create(model="no-such-workflow", messages=ask)
    assert unknown.value.code == "model_not_found" and "does not exist" in unknown.value.message
    with pytest.raises(openai.AuthenticationError) as bad_key:
        _client(server, "flk_not_a_real_key").chat.completions.create(model="guarded", messages=ask)
    assert bad_key.value.code == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError):
        _client(server, _key(make_user, "viewer")).chat.completions.create(model="guarded", messages=ask)
    with pytest.raises(openai.BadRequestError) as not_user:
        operator.chat.completions.create(model="guarded", messages=[{"role": "assistant", "content": "hi"}])
    assert not_user.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as malformed:
        operator.chat.completions.create(model="guarded", messages=[])
    assert malformed.value.param == "messages"
    assert llm.requests == []  # nothing was started

    # A signed-in browser's cookie is no API key here.
    token, _ = sessions.issue(str(make_user("admin").id))
    answer_ = httpx.post(f"{server}/v1/chat/completions", json={"model": "guarded", "messages": ask},
                         cookies={sessions.COOKIE_NAME: token})  # fmt: skip
    assert answer_.status_code == 401 and answer_.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{server}/v1/nothing-here").json()["error"]["code"] == "not_found"
    paths = httpx.get(f"{server}/api/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model}"} <= set(paths)
