"""Metrics, logs and traces of runs on real prefork workers (engine/metrics.py, logs.py, tracing.py).

The worker of this module has a queue of its own, a Prometheus multiprocess directory, debug JSON
logs in a file, and exports its spans to a real OTLP/HTTP receiver on loopback
(tests/fixtures/otlp_receiver.py decodes ExportTraceServiceRequest with opentelemetry-proto).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.api.main import api
from app.auth import api_keys
from app.db import db_session
from engine import metrics, secrets, tracing
from engine.celery_app import celery_for
from engine.ops.services import find_free_port
from engine.runs import cancel_run, start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver  # noqa: F401
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.conftest import ENGINE_WORKER_ENV
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

QUEUE = f"flowloom-obs-{os.getpid()}"
API_KEY = "sk-obs-7d3f9a2c51e8b4"


@pytest.fixture(scope="module")
def obs_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("obs")
    (root / "metrics").mkdir()
    return {"data": root / "data", "metrics": root / "metrics"}


@pytest.fixture(scope="module")
def obs_worker(worker_factory, obs_dirs, otlp_receiver):  # noqa: F811 - the imported fixture
    """A prefork worker (2 pool processes) on our own queue, counting, logging and tracing."""
    return worker_factory(
        concurrency=2,
        env={
            **ENGINE_WORKER_ENV,
            "FLOWLOOM_QUEUE": QUEUE,
            "FLOWLOOM_DATA_DIR": str(obs_dirs["data"]),
            "PROMETHEUS_MULTIPROC_DIR": str(obs_dirs["metrics"]),
            "FLOWLOOM_OTLP_ENDPOINT": otlp_receiver.endpoint,
            "FLOWLOOM_LOG_LEVEL": "DEBUG",
            "FLOWLOOM_LOG_FORMAT": "json",
        },
    )


@pytest.fixture
def obs_env(pg_url, redis_url, obs_dirs, obs_worker, clean_db, monkeypatch) -> Iterator[dict[str, Path]]:
    """This process sends to the worker's queue and shares its data dir (the secrets key)."""
    for key, value in {
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_QUEUE": QUEUE,
        "FLOWLOOM_DATA_DIR": str(obs_dirs["data"]),
        "FLOWLOOM_METRICS_TOKEN": "scrape-token-123",
        **ENGINE_WORKER_ENV,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    celery_for.cache_clear()  # the sending app takes its default queue from the settings
    yield obs_dirs
    get_settings.cache_clear()
    celery_for.cache_clear()


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    found: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _pool_metrics(obs_dirs) -> dict:
    return _samples(metrics.render(None, multiproc_dir=str(obs_dirs["metrics"])).decode())


def _simple(name: str):
    return workflow(
        [
            node("start", "start"),
            node("add", "tool.python", tool="add", args={"a": 1, "b": 2}),
            node("end", "end"),
        ],
        [("start", "add"), ("add", "end")],
        name=name,
    )


def test_counters_of_both_pool_processes_add_up_in_the_multiprocess_directory(obs_env, obs_worker):
    before = _pool_metrics(obs_env)
    started_here = _value(_samples(metrics.render(None).decode()), "flowloom_runs_started_total",
                          workflow="metrics-sum", started_via="api")  # fmt: skip
    runs = [start_run(_simple("metrics-sum"), {}, started_via="api") for _ in range(8)]
    views = [wait_for_run(r) for r in runs]
    assert all(v.status == "succeeded" for v in views)

    after = _pool_metrics(obs_env)
    finished = _value(after, "flowloom_runs_finished_total", workflow="metrics-sum", status="succeeded")
    assert (
        finished - _value(before, "flowloom_runs_finished_total", workflow="metrics-sum", status="succeeded")
        == 8
    )
    count = "flowloom_step_duration_seconds_count"
    assert (
        _value(after, count, node_type="tool.python", outcome="succeeded")
        - _value(before, count, node_type="tool.python", outcome="succeeded")
        == 8
    )
    # Each pool process writes its own file; the steps that ran were counted whichever process ran them.
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in obs_env["metrics"].glob("*.db")}
    assert pids and pids <= set(obs_worker.child_pids()) | {obs_worker.pid}
    with get_engine(get_settings().database_url).connect() as conn:
        workers = conn.execute(
            text("SELECT DISTINCT worker FROM step_runs WHERE run_id = ANY(CAST(:runs AS uuid[]))"),
            {"runs": runs},
        ).scalars()
        recorded_pids = {int(w.rsplit(":", 1)[1]) for w in workers if w}
    assert recorded_pids and recorded_pids <= pids  # every process that ran a step has its samples there
    # The runs were started in this process, which has no multiprocess directory: counted here.
    now_here = _value(_samples(metrics.render(None).decode()), "flowloom_runs_started_total",
                      workflow="metrics-sum", started_via="api")  # fmt: skip
    assert now_here - started_here == 8


def _client(make_user, role: str) -> TestClient:
    user = make_user(role)
    with db_session() as session:
        _, key = api_keys.create(session, user, name=f"metrics {role}", role=role, rate_limit_per_min=6000)
    return TestClient(api, headers={"Authorization": f"Bearer {key}"})


def test_metrics_route_serves_admins_and_the_scrape_token_and_refuses_everyone_else(
    obs_env, make_user, auth_env, monkeypatch
):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(obs_env["metrics"]))
    wait_for_run(start_run(_simple("route"), {}))
    # A run that waits for a person, and a step no worker takes (its queue has no consumer).
    approval = workflow(
        [node("start", "start"), node("review", "human.approval", title="Check"), node("end", "end")],
        [("start", "review"), ("review", "end", "approved")],
        mode="state_machine",
    )
    waiting_run = start_run(approval, {})
    wait_for_step(waiting_run, "review", "waiting")
    monkeypatch.setenv("FLOWLOOM_QUEUE", "flowloom-nobody-listens")
    get_settings.cache_clear()
    celery_for.cache_clear()
    stuck_run = start_run(_simple("stuck"), {})

    anonymous = TestClient(api).get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "sign_in_required"
    assert TestClient(api, headers={"Authorization": "Bearer wrong-token"}).get("/metrics").status_code == 401
    assert _client(make_user, "editor").get("/metrics").status_code == 403

    by_token = TestClient(api, headers={"Authorization": "Bearer scrape-token-123"}).get("/metrics")
    by_admin = _client(make_user, "admin").get("/metrics")
    for response in (by_token, by_admin):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        # The worker's counts come from the multiprocess directory.
        assert _value(samples, "flowloom_runs_finished_total", workflow="route", status="succeeded") >= 1
        assert _value(samples, "flowloom_queue_depth") == 1
        assert _value(samples, "flowloom_queue_oldest_age_seconds") > 0
        assert _value(samples, "flowloom_approvals_pending") == 1
        assert _value(samples, "flowloom_approvals_oldest_age_seconds") > 0
    cancel_run(stuck_run)
    cancel_run(waiting_run)


class _EchoServer:
    """Answers every request with the headers it received (as a careless API does in errors)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps({"you_sent": dict(self.headers)}).encode()
                self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for_lines(path: Path, needles: list[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8", errors="replace")
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_a_run_using_a_secret_leaves_no_trace_of_it_in_any_log_and_every_line_has_its_ids(
    obs_env,
    obs_worker,
    scripted_llm,  # noqa: F811 - the imported fixture
    caplog,
):
    echo = _EchoServer()
    caplog.set_level(logging.DEBUG)
    try:
        secrets.set_secret("obs-key", API_KEY, allowed_destinations=[scripted_llm.host, echo.host])
        scripted_llm.script(answer("all good"))
        defn = workflow(
            [
                node("start", "start"),
                node(
                    "agent",
                    "agent",
                    model="scripted",
                    base_url=scripted_llm.base_url,
                    api_key_secret="obs-key",
                    prompt="hello",
                ),  # fmt: skip
                node("echo", "tool.http", url=f"http://{echo.host}/ok", secret_headers={"X-Key": "obs-key"}),
                node(
                    "leak",
                    "tool.http",
                    url=f"http://{echo.host}/fail",
                    secret_headers={"X-Key": "obs-key"},
                    retry={"max_attempts": 2, "backoff_s": 0.1},
                ),  # fmt: skip
                node("end", "end"),
            ],
            [("start", "agent"), ("agent", "echo"), ("echo", "leak"), ("leak", "end")],
            policy={"egress": {"allowed_hosts": [scripted_llm.host, echo.host]}},
            name="secret-run",
        )
        run_id = start_run(defn, {})
        view = wait_for_run(run_id)
    finally:
        echo.close()
    errors = {s["node_id"]: s["error"] for s in view.steps}
    assert view.status == "failed", errors  # the careless API failed twice, echoing the key each time
    assert scripted_llm.requests, errors
    assert scripted_llm.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"  # it was really used
    steps = {s["node_id"]: s for s in view.steps}
    assert steps["echo"]["status"] == "succeeded" and steps["leak"]["status"] == "failed"

    ran = {str(s["id"]) for s in view.steps if s["started_at"]}
    # Each step's last line ("step ... failed") is written just after its commit: wait for them.
    worker_log = _wait_for_lines(obs_worker.log_path, [f'"step_id": "{step_id}"' for step_id in ran])
    assert API_KEY not in worker_log
    assert API_KEY not in caplog.text and all(API_KEY not in r.getMessage() for r in caplog.records)

    lines = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("run_id") == run_id]
    assert {line["step_id"] for line in ours} >= ran
    for line in lines:  # every JSON line carries every key, null outside a run
        assert {"run_id", "step_id", "workflow_id", "trace_id", "level", "logger", "message"} <= set(line)
    assert {line["trace_id"] for line in ours} == {run_id.replace("-", "")}
    assert any(line["logger"] == "httpx" for line in ours)  # third-party lines carry the ids too


def _by_name(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_one_trace_per_run_with_a_span_per_step_and_genai_spans_for_model_calls(
    obs_env,
    otlp_receiver,  # noqa: F811 - the imported fixture
    scripted_llm,  # noqa: F811
):
    secrets.set_secret("trace-key", "sk-trace-1", allowed_destinations=[scripted_llm.host])
    scripted_llm.script(answer("traced"))
    defn = workflow(
        [
            node("start", "start"),
            node(
                "agent",
                "agent",
                model="scripted",
                base_url=scripted_llm.base_url,
                api_key_secret="trace-key",
                prompt="hello",
            ),  # fmt: skip
            node("end", "end"),
        ],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [scripted_llm.host]}},
        name="traced-run",
    )
    run_id = start_run(defn, {})
    assert wait_for_run(run_id).status == "succeeded"
    trace_id = run_id.replace("-", "")
    wanted = {"flowloom.run", "step start", "step agent", "step end", "chat scripted"}
    spans = otlp_receiver.wait_for(lambda got: wanted <= set(_by_name(got, trace_id)))
    named = _by_name(spans, trace_id)

    root = named["flowloom.run"]
    assert root.parent_span_id == "" and root.span_id == f"{tracing.run_span_id(run_id):016x}"
    assert root.attributes["flowloom.status"] == "succeeded" and root.service == "flowloom-worker"
    for step in ("start", "agent", "end"):
        span = named[f"step {step}"]
        assert span.parent_span_id == root.span_id, step  # the context the Celery message carried
        assert span.attributes["flowloom.node_id"] == step and span.attributes["flowloom.run_id"] == run_id
        # The run's span runs from its creation to its end (recorded in the last step's transaction).
        assert root.start_ns <= span.start_ns <= root.end_ns
    chat = named["chat scripted"]
    assert chat.parent_span_id == named["step agent"].span_id
    assert chat.kind == 3  # SPAN_KIND_CLIENT
    assert chat.attributes["gen_ai.system"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "scripted"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    # One trace per run: nothing of this run went to another trace id.
    assert not [s for s in spans if s.attributes.get("flowloom.run_id") == run_id and s.trace_id != trace_id]

    counted = _pool_metrics(obs_env)
    assert _value(counted, "flowloom_llm_calls_total", provider="openai", model="scripted", outcome="ok") >= 1
    tokens = _value(counted, "flowloom_llm_tokens_total", provider="openai", model="scripted", kind="input")
    assert tokens >= chat.attributes["gen_ai.usage.input_tokens"]
    assert (
        _value(counted, "flowloom_llm_call_duration_seconds_count", provider="openai", model="scripted") >= 1
    )


def test_a_lone_worker_counts_in_a_directory_of_its_own_serves_it_and_removes_it(
    worker_factory, obs_env, tmp_path, monkeypatch
):
    port = find_free_port()
    queue = f"{QUEUE}-lone"
    lone = worker_factory(
        concurrency=2,
        env={
            **ENGINE_WORKER_ENV,
            "FLOWLOOM_QUEUE": queue,
            "FLOWLOOM_DATA_DIR": str(tmp_path),
            "FLOWLOOM_METRICS_PORT": str(port),
        },  # fmt: skip
    )
    own_dir = tmp_path / "metrics" / f"worker-{lone.pid}"
    assert own_dir.is_dir()  # no PROMETHEUS_MULTIPROC_DIR given: it made its own
    monkeypatch.setenv("FLOWLOOM_QUEUE", queue)
    get_settings.cache_clear()
    celery_for.cache_clear()
    runs = [start_run(_simple("lone"), {}) for _ in range(4)]
    assert all(wait_for_run(r).status == "succeeded" for r in runs)

    served = _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    assert _value(served, "flowloom_runs_finished_total", workflow="lone", status="succeeded") == 4
    assert (
        _value(served, "flowloom_step_duration_seconds_count", node_type="tool.python", outcome="succeeded")
        == 4
    )
    lone.stop()
    assert not own_dir.exists()
