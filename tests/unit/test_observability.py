"""Logs, trace propagation, the metrics directory and the Grafana dashboard, without services."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from opentelemetry import trace

from engine import circuit_breaker, logs, metrics, tracing
from engine.ops import metrics_dir
from engine.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "flowloom-dashboard.json"


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("flowloom.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_json_lines_carry_every_id_key_and_the_runs_trace_id():
    formatter = logs.JsonFormatter("worker")
    outside = json.loads(formatter.format(_record("idle")))
    assert {
        k: outside[k] for k in ("run_id", "step_id", "workflow_id", "node_id", "trace_id")
    } == dict.fromkeys(("run_id", "step_id", "workflow_id", "node_id", "trace_id"))
    run_id = str(uuid.uuid4())
    with logs.bound(run_id=run_id, workflow_id="wf-1"), logs.bound(step_id="s-1", node_id="fetch"):
        inside = json.loads(formatter.format(_record("step %s", "fetch")))
    assert inside["message"] == "step fetch" and inside["process"] == "worker" and inside["level"] == "info"
    assert (inside["run_id"], inside["step_id"], inside["workflow_id"], inside["node_id"]) == (
        run_id, "s-1", "wf-1", "fetch",
    )  # fmt: skip
    assert inside["trace_id"] == f"{tracing.run_trace_id(run_id):032x}"
    assert logs.current_ids() == {}  # unbound again after the blocks


def test_a_secret_value_handed_to_a_node_is_masked_in_messages_and_tracebacks():
    value = f"sk-{uuid.uuid4().hex}"
    formatter = logs.JsonFormatter()
    assert value in formatter.format(_record("GET https://api.example.test/?key=%s", value))  # not known yet
    logs.mask_secret(value)
    try:
        raise ValueError(f"the server said: bad key {value}")
    except ValueError as exc:
        line = formatter.format(_record("GET https://api.example.test/?key=%s", value, exc=exc))
    assert value not in line and line.count(logs.MASK) == 2
    assert value not in logs.TextFormatter().format(_record("key=%s", value))


def test_configure_sends_every_logger_through_one_json_handler_at_the_level(capsys):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure(level="warning", fmt="json", process_role="web")
        logs.configure(level="warning", fmt="json", process_role="web")  # idempotent: still one handler
        ours = [h for h in root.handlers if getattr(h, "_flowloom", False)]
        assert len(ours) == 1 and root.level == logging.WARNING
        logging.getLogger("celery.worker").warning("from celery")
        logging.getLogger("flowloom.x").info("below the level")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(line["logger"], line["message"], line["process"]) for line in lines] == [
            ("celery.worker", "from celery", "web")
        ]
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_step_messages_carry_the_runs_root_span_as_traceparent():
    run_id = str(uuid.uuid4())
    assert tracing.inject_headers() == {}  # no run, no header
    with tracing.in_run(run_id):
        headers = tracing.inject_headers()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    assert trace_id == run_id.replace("-", "") and int(span_id, 16) == tracing.run_span_id(run_id)
    extracted = tracing.extract_headers({"traceparent": headers["traceparent"], "other": 1})
    context = trace.get_current_span(extracted).get_span_context()
    assert (context.trace_id, context.span_id) == (tracing.run_trace_id(run_id), tracing.run_span_id(run_id))
    assert tracing.extract_headers({}) is None and tracing.extract_headers(None) is None
    assert tracing.extract_headers({"traceparent": "garbage"}) is None


def test_tracing_off_loads_no_sdk_and_the_cli_loads_no_prometheus_client():
    code = (
        "import sys, engine.tasks, engine.runs, engine.tracing as t;"
        "t.configure('', service='x');"
        "assert not t.enabled();"
        "assert not [m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))];"
        "import subprocess;"
        "out = subprocess.run([sys.executable, '-c', 'import sys, engine.ops.cli; "
        'print("prometheus_client" in sys.modules)\'], capture_output=True, text=True);'
        "assert out.stdout.strip() == 'False', out"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_lone_worker_makes_its_own_metrics_directory_and_a_given_one_is_kept(tmp_path, monkeypatch):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    monkeypatch.setenv(metrics_dir.MULTIPROC_ENV, str(tmp_path / "given"))
    assert metrics_dir.worker_dir(settings) is None  # `flowloom up` owns it
    monkeypatch.delenv(metrics_dir.MULTIPROC_ENV)
    # This process already imported prometheus_client: switching now would count per process.
    with pytest.raises(RuntimeError, match="imported before"):
        metrics_dir.worker_dir(settings)
    stale = tmp_path / "metrics" / "old.db"
    stale.parent.mkdir(parents=True)
    stale.write_text("x")
    assert metrics_dir.fresh(metrics_dir.launcher_dir(settings)) == tmp_path / "metrics"
    assert not stale.exists() and (tmp_path / "metrics").is_dir()


def test_circuit_breakers_are_exposed_one_hot_per_destination(monkeypatch):
    monkeypatch.setattr(
        circuit_breaker,
        "circuits",
        lambda: [circuit_breaker.Circuit("https://api.example.test:443", "open", 5, 12.0)],
    )
    families = {f.name: f for f in metrics.CircuitGauges().collect()}
    states = {s.labels["state"]: s.value for s in families["flowloom_circuit_state"].samples}
    assert states == {"closed": 0.0, "half-open": 0.0, "open": 1.0}
    assert [s.value for s in families["flowloom_circuit_failures"].samples] == [5.0]


def test_the_grafana_dashboard_only_queries_metrics_flowloom_exposes():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exposed = set(metrics.DATABASE_GAUGES) | {f.name for f in metrics.CircuitGauges().collect()}
    for collector in (metrics.RUNS_STARTED, metrics.RUNS_FINISHED, metrics.LLM_CALLS, metrics.LLM_TOKENS,
                      metrics.TRIGGER_DELIVERIES):  # fmt: skip
        exposed.add(collector._name + "_total")
    for histogram in (metrics.STEP_DURATION, metrics.LLM_LATENCY):
        exposed |= {histogram._name + suffix for suffix in ("_bucket", "_count", "_sum")}
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"flowloom_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exposed, queried - exposed
    assert exposed - queried <= {"flowloom_scrape_timestamp_seconds", "flowloom_step_duration_seconds_sum",
                                 "flowloom_llm_call_duration_seconds_count", "flowloom_llm_call_duration_seconds_sum",
                                 "flowloom_step_duration_seconds_count"}  # fmt: skip
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
